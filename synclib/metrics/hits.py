"""From activations to hits: the region a filter covers, IoU with part masks, landmark hits.

See the book's Specification page (`book/specification.md`), "The region a filter covers" and "Hits".
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ..losses import focus
from .native import library
from .native import region_overlaps as native_overlaps

__all__ = ["filter_thresholds", "regions", "mask_iou", "region_overlaps", "mask_hits", "mask_hits_dense",
           "landmark_hits", "landmark_distances"]


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


def mask_hits_dense(a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
                    phi: float = 0.2, chunk: int = 64) -> torch.Tensor:
    """`mask_hits` the direct way: every map upsampled to the mask size, compared, and its IoU
    with every mask computed pixel by pixel. The reference `mask_hits` is tested against."""
    size = masks.shape[-1]
    out = []
    for s in range(0, a.shape[1], chunk):
        reg = regions(a[:, s:s + chunk], thresholds[s:s + chunk], size)
        out.append(mask_iou(reg, masks) > phi)
    return torch.cat(out, dim=1)


def _interp_rows(out: int, inp: int) -> torch.Tensor:
    """(out, inp): the weights of torch's bilinear, align_corners=False resize along one axis."""
    src = ((torch.arange(out, dtype=torch.float64) + 0.5) * (inp / out) - 0.5).clamp_min(0)
    j0 = src.floor().long().clamp_max(inp - 1)
    j1 = (j0 + 1).clamp_max(inp - 1)
    lam = src - j0
    m = torch.zeros(out, inp, dtype=torch.float64)
    m[torch.arange(out), j0] += 1 - lam
    m[torch.arange(out), j1] += lam
    return m


@lru_cache(maxsize=32)
def _columns(size: int, w: int) -> dict:
    """How the upsampled columns of a row fall between the map's column centres.

    Output column x samples the map at src(x) = (x + 0.5)·w/size − 0.5. Columns with src < 0
    take column 0's value and columns with src ≥ w − 1 the last one's (flat ends); between the
    centres j and j + 1 the value is linear in x, so the columns above a threshold form one
    interval per segment.
    """
    x = torch.arange(size, dtype=torch.float64)
    src = (x + 0.5) * (w / size) - 0.5
    segs = [(int(sel[0]), int(sel[-1]) + 1, j) for j in range(w - 1)
            if len(sel := ((src >= j) & (src < j + 1)).nonzero().flatten())]
    ratio = size / w
    return {"left": int((src < 0).sum()), "right": int((src < w - 1).sum()),
            "start": torch.tensor([g[0] for g in segs], dtype=torch.float32),
            "end": torch.tensor([g[1] for g in segs], dtype=torch.float32),
            "j": torch.tensor([g[2] for g in segs], dtype=torch.long),
            "x0": torch.tensor([ratio * (g[2] + 0.5) - 0.5 for g in segs], dtype=torch.float32),
            "ratio": ratio}


@lru_cache(maxsize=32)
def _cells(size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """How `size` upsampled pixels fall into the n + 1 cells that the map's n centres cut.

    Pixel x samples the map at src(x) = (x + 0.5)·n/size − 0.5. Cell 0 (src < 0) repeats
    centre 0, cell n (src ≥ n − 1) centre n − 1, and cell c in between goes linearly from
    centre c − 1 to centre c with weight lam(x) = src(x) − (c − 1) (0 in the flat cells).
    Returns (edges (n + 2,) int64: cell c spans [edges[c], edges[c + 1]); lam (size,) float64).
    """
    src = (torch.arange(size, dtype=torch.float64) + 0.5) * (n / size) - 0.5
    cell = torch.where(src < 0, 0, torch.where(src >= n - 1, n, src.floor().long() + 1)).long()
    lam = torch.where((cell == 0) | (cell == n), torch.zeros_like(src), src - (cell - 1))
    return torch.searchsorted(cell, torch.arange(n + 2)), lam


def region_overlaps(a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
                    native: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The areas of S_f^I ∩ mask_k^I and of S_f^I without upsampling a single map.

    On the CPU a small C kernel (`synclib.metrics.native`) does it: the map's centres cut the
    upsampled map into cells; a cell whose four corner values are all above the threshold adds
    its mask counts whole, one all below adds nothing, and only the cells the threshold passes
    through are walked row by row, each row's pixels above the threshold being one interval
    (the value is linear along it) counted by the mask row's prefix sums. Elsewhere (a GPU, or
    no C compiler, or native=False) the same counts come from tensor operations over every
    row: see `_region_overlaps_torch`. Counts equal the dense computation's except at pixels
    whose upsampled value lies within float rounding of the threshold.

    a: (B, N, H, W) activations; masks: (B, K, S, S) bool; thresholds: (N,).
    Returns (inter (B, N, K), area (B, N)), both int64.
    """

    lib = library() if native is not False and a.device.type == "cpu" else None
    if native and lib is None:
        raise RuntimeError("the C kernel of region_overlaps is not available here (see the warning above)")
    if lib is not None:
        ey, lam_y = _cells(masks.shape[-2], a.shape[-2])
        ex, _ = _cells(masks.shape[-1], a.shape[-1])
        return native_overlaps(lib, a, masks.cpu(), thresholds.cpu(), ey, lam_y, ex)
    return _region_overlaps_torch(a, masks, thresholds)


def _region_overlaps_torch(a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`region_overlaps` by tensor operations, for any device.

    The upsampled map is separable: one matrix product gives every output row's values at
    the map's column centres, and along a row the value is linear between two centres, so
    the region's pixels in each such segment form an interval whose overlap with a mask is a
    difference of the mask row's prefix sums (gathered for all filters at once by
    `embedding_bag`). Counts equal the dense computation's except at pixels whose upsampled
    value lies within float rounding of the threshold.

    a: (B, N, H, W) activations; masks: (B, K, S, S) bool; thresholds: (N,).
    Returns (inter (B, N, K), area (B, N)), both int64.
    """
    b, n, h, w = a.shape
    k, size = masks.shape[1], masks.shape[-1]
    cols = _columns(size, w)
    a = a.float()
    ry = _interp_rows(size, h).float().to(a.device)  # (S, H)

    def rows_at(j: torch.Tensor) -> torch.Tensor:  # (S, B, N, len(j)): row y's values at centres j
        return (ry @ a[..., j].permute(2, 0, 1, 3).reshape(h, -1)).view(size, b, n, len(j))

    prefix = torch.zeros(size, b, size + 1, k, device=a.device)
    prefix[:, :, 1:] = masks.permute(2, 0, 3, 1).float().cumsum(2)  # (S, B, S+1, K): row y's prefix sums
    t = thresholds.float().view(1, 1, n)
    inter = torch.zeros(b, n, k, device=a.device)
    area = torch.zeros(b, n, device=a.device)
    for col, lo, hi in ((0, 0, cols["left"]), (w - 1, cols["right"], size)):  # the flat ends
        if hi > lo:
            on = (rows_at(torch.tensor([col]))[..., 0] > t).float()  # (S, B, N)
            inter += torch.einsum("ybn,ybk->bnk", on, prefix[:, :, hi] - prefix[:, :, lo])
            area += on.sum(0) * (hi - lo)
    if len(cols["j"]):
        j = cols["j"].to(a.device)
        r0 = rows_at(j)  # (S, B, N, L) at each segment's left centre
        d = rows_at(j + 1) - r0  # the value's change to the right centre
        tt = t.unsqueeze(-1)
        xb = cols["x0"].to(a.device) + (tt - r0) / d * cols["ratio"]  # the column where the value crosses T
        flat = d == 0  # all of the segment or none of it, taken as rising from -inf or +inf
        xb = torch.where(flat, torch.where(r0 > tt, -torch.inf, torch.inf), xb)
        start, end = cols["start"].to(a.device), cols["end"].to(a.device)
        up = d >= 0
        lo = torch.where(up, (xb.floor() + 1).clamp(min=start, max=end), start)
        hi = torch.where(up, end, xb.ceil().clamp(min=start, max=end))
        hi = torch.maximum(hi, lo)
        area += (hi - lo).sum((0, -1))
        # one bag per (y, b, n) of the segments' [hi, lo] pairs, weighted +1/-1, over that row's prefix sums
        base = ((torch.arange(size, device=a.device).view(size, 1, 1, 1) * b
                 + torch.arange(b, device=a.device).view(1, b, 1, 1)) * (size + 1)).float()
        idx = torch.stack([hi + base, lo + base], -1).long().view(size * b * n, -1)  # (S·B·N, L·2)
        sign = torch.tensor([1.0, -1.0], device=a.device).repeat(idx.shape[1] // 2).expand(idx.shape).contiguous()
        rows_sum = F.embedding_bag(idx, prefix.view(-1, k), mode="sum", per_sample_weights=sign)
        inter += rows_sum.view(size, b, n, k).sum(0)
    return inter.round().long(), area.round().long()


def mask_hits(a: torch.Tensor, masks: torch.Tensor, thresholds: torch.Tensor,
              phi: float = 0.2, max_elements: int = 1 << 22, native: bool | None = None) -> torch.Tensor:
    """hit[I, f, k] = IoU(S_f^I, mask_k^I) > φ, by `region_overlaps` (no upsampled map is ever
    built). a: (B, N, H, W) activations; masks: (B, K, S, S) bool (an absent part has an empty
    mask and is never hit); thresholds: (N,). On the PyTorch path images go through in chunks
    of about `max_elements` row segments to bound memory; `native` as in `region_overlaps`.
    Returns (B, N, K) bool.
    """
    b, n, _, w = a.shape
    size = masks.shape[-1]
    if a.device.type == "cuda":
        max_elements *= 16  # a GPU has the memory, and fewer launches pay
    step = max(1, max_elements // max(1, n * size * max(1, w - 1)))
    if a.device.type == "cpu" and native is not False:

        if library() is not None:
            step = b  # the C kernel needs no more memory than its answer
    out = []
    for s in range(0, b, step):
        inter, area = region_overlaps(a[s:s + step], masks[s:s + step], thresholds, native)
        mask_area = masks[s:s + step].flatten(2).sum(-1).unsqueeze(1)  # (B, 1, K)
        union = area.unsqueeze(-1) + mask_area - inter  # (B, N, K)
        iou = inter.float() / union.float().clamp_min(1)  # float32, as `mask_iou` computes it
        out.append((union > 0) & (iou > phi))
    return torch.cat(out)


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
