"""Figures 4 and 5: individual filters' maps on one image, and each method's mean map."""

from __future__ import annotations

import torch

from ..metrics.hits import filter_thresholds, mask_iou, regions
from ..study import Study
from .runs import load, main_run, top_phi

__all__ = ["filter_examples", "mean_maps"]


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
