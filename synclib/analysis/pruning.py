"""Figure 9: accuracy against filters removed by Taylor pruning; one cached curve per run."""

from __future__ import annotations

import pandas as pd
import torch

from ..metrics.pruning import pruning_auc, taylor_pruning_curve
from ..probe import activations
from ..study import Run, Study
from .runs import cached, load, main_run

__all__ = ["pruning_curve", "pruning_curves"]

ROOM = "analysis/pruning.py"


def pruning_curve(study: Study, run: Run, max_images: int = 400, steps: int = 32) -> dict:
    """{"removed": [...], "accuracy": [...], "n": filters, "auc": normalized area} of Taylor
    pruning: filters ranked on (at most `max_images`) training images, accuracy measured on
    the test images; cached per run."""
    def compute():
        p = load(study, run)
        train = study.datasets[run.dataset].split("train")
        ranked = activations(p.model, torch.utils.data.Subset(train, range(min(max_images, len(train)))), device="cpu")
        n = p.probe.a.shape[1]
        removed, acc = taylor_pruning_curve(p.model.head, ranked.a, ranked.labels, max(1, n // steps),
                                            p.probe.a, p.probe.labels)
        return {"removed": [int(r) for r in removed], "accuracy": [float(v) for v in acc], "n": int(n),
                "auc": pruning_auc(removed, acc, n)}

    return cached(study, run, "pruning", {"max_images": max_images, "steps": steps, "rank": "train"}, compute, ROOM)


def pruning_curves(study: Study, arch: str, max_images: int = 400, steps: int = 32,
                   seeds: list[int] | None = None, rows: list[str] | None = None) -> pd.DataFrame:
    """Accuracy against filters removed by Taylor pruning.
    Rows: method, seed, removed, fraction, accuracy, auc (the run's normalized area)."""
    out = []
    for m in study.methods_for(arch, None, rows or study.analysis_methods):
        for seed in seeds or [0]:
            c = pruning_curve(study, main_run(study, arch, m, seed), max_images, steps)
            out += [{"method": m, "seed": seed, "removed": r, "fraction": r / c["n"], "accuracy": v, "auc": c["auc"]}
                    for r, v in zip(c["removed"], c["accuracy"])]
    return pd.DataFrame(out)
