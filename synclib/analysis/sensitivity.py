"""Figures 7 and 8: the hyperparameter sweep (one run per setting), its metrics and its maps."""

from __future__ import annotations

import pandas as pd

from ..metrics.interpretability import summarize
from ..probe import mask_hits_for
from ..study import Run, Study
from .runs import cached, load, top_phi

__all__ = ["run_metrics", "sensitivity_table", "sensitivity_maps"]

ROOM = "analysis/sensitivity.py"


def run_metrics(study: Study, run: Run) -> dict:
    """One run's Interp, Stability, Purity, Diversity (mask protocol) and accuracy on the test
    split; cached per run, so Figure 7, the claims and the Ambiguities page compute it once."""
    top, phi = top_phi(study, run)

    def compute():
        p = load(study, run)
        met = summarize(mask_hits_for(p.probe, p.data, top, phi))
        return {**{k: float(v) for k, v in met.items()}, "accuracy": float(p.probe.accuracy)}

    return cached(study, run, "metrics", {"top": top, "phi": phi}, compute, ROOM)


def sensitivity_table(study: Study, reading: str = "printed") -> pd.DataFrame:
    """Rows: param, value, interp, stability, purity, diversity, accuracy, hash."""
    return pd.DataFrame([{"param": param, "value": value, **run_metrics(study, run), "hash": run.hash}
                         for param, value, run in study.sensitivity(reading)])


def sensitivity_maps(study: Study, image: int = 0) -> pd.DataFrame:
    """The average filter map on one test image per setting. Rows: param, value, map."""
    rows = []
    for param, value, run in study.sensitivity():
        p = load(study, run)
        rows.append({"param": param, "value": value, "map": p.probe.a[image].mean(0),
                     "image": p.data[image]["image"]})
    return pd.DataFrame(rows)
