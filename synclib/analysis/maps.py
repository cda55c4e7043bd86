"""Figures 4 and 5: individual filters' maps on one image, each method's mean map, and where
its filters fire relative to the map's border."""

from __future__ import annotations

import pandas as pd
import torch

from ..losses import focus
from ..metrics.hits import filter_thresholds, mask_iou, regions
from ..study import Study
from .runs import load, main_run, top_phi

__all__ = ["filter_examples", "mean_maps", "border_share", "border_focus"]


def filter_examples(study: Study, arch: str, image: int = 0,
                    quantiles: tuple[float, ...] = (0.95, 0.70, 0.30)) -> dict:
    """Per method: the filters whose best-part IoU on test image `image` sits at the given
    quantiles of all its filters' IoUs (great, good, bad), with their maps.

    Returns {"image": (3, S, S), "methods": {method: [(q, filter, iou, part, map (H, W))]}}.
    """
    out = {"methods": {}}
    for m in study.methods_for(arch, None, study.rows):  # ours under every reading the tables show
        p = load(study, main_run(study, arch, m))
        t = filter_thresholds(p.probe.a, top_phi(study, p.run)[0])
        item = p.data[image]
        a = p.probe.a[image:image + 1]
        iou = mask_iou(regions(a, t, item["image"].shape[-1]), item["masks"][None])[0]  # (N, K)
        best, part = iou.max(-1)
        order = best.argsort()
        picks = []
        for q in quantiles:
            f = int(order[min(len(order) - 1, int(round(q * (len(order) - 1))))])
            picks.append((q, f, float(best[f]), p.data.parts[int(part[f])], a[0, f]))
        out["methods"][m] = picks
        out["image"] = item["image"]
    return out


def mean_maps(study: Study, arch: str, images: list[int]) -> dict:
    """Per method: the average over all filters of the interpretable layer's maps, for each
    of the test images. Returns {"images": (n, 3, S, S), method: (n, H, W)}."""
    out = {}
    for m in study.methods_for(arch):
        p = load(study, main_run(study, arch, m))
        out[m] = p.probe.a[images].mean(1)
        out["images"] = torch.stack([p.data[i]["image"] for i in images])
    return out


def border_share(a: torch.Tensor) -> dict:
    """Where the filters of maps `a` (B, N, H, W) fire relative to the map's border, over every
    (image, filter) pair:
    - "focus": the share whose focus point x̄ (`losses.focus`, the point L_sync moves) lies
      within one cell of the border (closer than 1/H to a top or bottom edge, or 1/W to a side);
    - "peak": the share whose most active cell is in the map's outer ring of cells;
    - "ring": the share of the map's cells in that ring (what "peak" is for peaks at random).
    """
    b, n, h, w = a.shape
    x = focus(a.float())  # (B, N, 2) as (row, col) in [0, 1]
    near = (torch.minimum(x[..., 0], 1 - x[..., 0]) < 1 / h) | (torch.minimum(x[..., 1], 1 - x[..., 1]) < 1 / w)
    m = a.reshape(b, n, h * w).argmax(-1)
    r, c = m // w, m % w
    ring = (r == 0) | (r == h - 1) | (c == 0) | (c == w - 1)
    inner = max(0, h - 2) * max(0, w - 2)
    return {"focus": float(near.float().mean()), "peak": float(ring.float().mean()), "ring": 1 - inner / (h * w)}


def border_focus(study: Study, arch: str) -> pd.DataFrame:
    """Figure 4's runs (seed 0, every row the tables show): `border_share` of their interpretable
    layer's maps on the test split. Rows: method, map, focus, peak, ring."""
    out = []
    for m in study.methods_for(arch, None, study.rows):
        a = load(study, main_run(study, arch, m)).probe.a
        out.append({"method": m, "map": "×".join(map(str, a.shape[-2:])), **border_share(a)})
    return pd.DataFrame(out, columns=["method", "map", "focus", "peak", "ring"])
