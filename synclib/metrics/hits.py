"""From activations to hits: the region a filter covers, IoU with part masks, landmark hits.

See ../shared/SPEC.md, "The region a filter covers" and "Hits".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import focus

__all__ = ["filter_thresholds", "mask_iou", "mask_hits", "landmark_hits", "landmark_distances"]


def filter_thresholds(a: torch.Tensor, top: float = 0.3) -> torch.Tensor:
    """T_f: the value that a fraction `top` of filter f's activations lies above, over every
    position of every image's (not upsampled) map.

    a: (I, N, H, W) activations. Returns (N,).
    """
    if not 0 < top < 1:
        raise ValueError(f"top must be in (0, 1), got {top}")
    i, n, h, w = a.shape
    v = a.transpose(0, 1).reshape(n, i * h * w).float()  # (N, I*H*W)
    k = max(1, int(round((1 - top) * v.shape[1])))  # the k-th smallest value
    return v.kthvalue(k, dim=1).values


def regions(a: torch.Tensor, thresholds: torch.Tensor, size: int) -> torch.Tensor:
    """S_f^I: the bilinearly upsampled map above T_f. a: (B, N, H, W) -> (B, N, S, S) bool."""
    up = F.interpolate(a.float(), size=(size, size), mode="bilinear", align_corners=False)
    return up > thresholds.view(1, -1, 1, 1).to(up)


def mask_iou(region: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """IoU of every filter region with every part mask.

    region: (B, N, S, S) bool; masks: (B, K, S, S) bool. Returns (B, N, K); 0 where the union
    is empty.
    """
    r = region.flatten(2).float()  # (B, N, S*S)
    m = masks.flatten(2).float()  # (B, K, S*S)
    inter = r @ m.transpose(1, 2)  # (B, N, K)
    union = r.sum(-1, keepdim=True) + m.sum(-1).unsqueeze(1) - inter  # (B, N, K)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def mask_hits(a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
              phi: float = 0.2, chunk: int = 64) -> torch.Tensor:
    """hit[I, f, k] = IoU(S_f^I, mask_k^I) > φ.

    a: (B, N, H, W) activations; masks: (B, K, S, S) bool (an absent part has an empty mask
    and is never hit); thresholds: (N,). Filters go through in chunks to bound memory.
    Returns (B, N, K) bool.
    """
    size = masks.shape[-1]
    out = []
    for s in range(0, a.shape[1], chunk):
        reg = regions(a[:, s:s + chunk], thresholds[s:s + chunk], size)
        out.append(mask_iou(reg, masks) > phi)
    return torch.cat(out, dim=1)


def landmark_distances(a: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """Distance of each filter's focus to each landmark, in normalized image units.

    a: (B, N, H, W); landmarks: (B, K, 3) as x, y, visible. Invisible landmarks get +inf.
    Returns (B, N, K).
    """
    xbar = focus(a.float())  # (B, N, 2) as (row, col)
    lm = torch.stack([landmarks[..., 1], landmarks[..., 0]], dim=-1).to(xbar)  # (B, K, 2) as (row, col)
    d = torch.cdist(xbar, lm)  # (B, N, K)
    return torch.where(landmarks[..., 2].unsqueeze(1).to(xbar) > 0, d, torch.full_like(d, float("inf")))


def landmark_hits(a: torch.Tensor, landmarks: torch.Tensor, r: float) -> torch.Tensor:
    """hit[I, f, k] = dist(x̄_f^I, landmark_k^I) < r. a: (B, N, H, W), landmarks: (B, K, 3).
    Returns (B, N, K) bool."""
    return landmark_distances(a, landmarks) < r
