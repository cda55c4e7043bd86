"""Figure 10: the interpretable layer's loss landscape, its mean and its roughness; one cached
grid per run."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from ..devices import pick_device
from ..metrics.landscape import loss_landscape, roughness
from ..study import Run, Study
from .runs import cached, load, main_run

__all__ = ["landscape", "landscapes", "landscape_table"]

ROOM = "analysis/landscape.py"


def landscape(study: Study, run: Run, images: int = 64, points: int = 9, span: float = 1.0):
    """(coords (P,), loss grid (P, P)) of the interpretable layer's loss landscape; cached per run."""
    def compute():
        p = load(study, run)
        batch = [p.data[i] for i in range(min(images, len(p.data)))]
        dev = pick_device()
        x = torch.stack([b["image"] for b in batch]).to(dev)
        y = torch.tensor([b["label"] for b in batch]).to(dev)
        model = copy.deepcopy(p.model).to(dev)  # the loaded run's model stays on the CPU
        coords, loss = loss_landscape(model, x, y, span=span, points=points)
        return {"coords": [float(c) for c in coords], "loss": torch.as_tensor(loss).cpu().tolist()}

    v = cached(study, run, "landscape", {"images": images, "points": points, "span": span, "orthogonal": True},
               compute, ROOM)
    return np.asarray(v["coords"]), torch.tensor(v["loss"])


def landscapes(study: Study, arch: str, images: int = 64, points: int = 9, span: float = 1.0,
               seed: int = 0, rows: list[str] | None = None) -> dict:
    """Per method (the analyses' methods, or `rows`): (coords, loss grid) of the interpretable
    layer's loss landscape."""
    return {m: landscape(study, main_run(study, arch, m, seed), images, points, span)
            for m in study.methods_for(arch, None, rows or study.analysis_methods)}


def landscape_table(study: Study, arch: str, images: int = 64, points: int = 9, span: float = 1.0,
                    seeds: list[int] | None = None, rows: list[str] | None = None) -> pd.DataFrame:
    """Per row and seed: the landscape's mean loss ("lower") and its roughness ("smoother":
    mean |discrete Laplacian| / mean loss). Rows: method, seed, mean_loss, roughness."""
    out = []
    for m in study.methods_for(arch, None, rows or study.analysis_methods):
        for seed in seeds or [0]:
            _, loss = landscape(study, main_run(study, arch, m, seed), images, points, span)
            out.append({"method": m, "seed": seed, "mean_loss": float(loss.mean()), "roughness": roughness(loss)})
    return pd.DataFrame(out)
