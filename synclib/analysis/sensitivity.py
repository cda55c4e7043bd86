"""Figures 7 and 8: the hyperparameter sweep (one run per setting), its metrics and its maps."""

from __future__ import annotations

import pandas as pd

from ..metrics.interpretability import summarize
from ..probe import mask_hits_for
from ..study import Study
from .runs import load, top_phi

__all__ = ["sensitivity_table", "sensitivity_maps"]


def sensitivity_table(study: Study, reading: str = "printed") -> pd.DataFrame:
    """Rows: param, value, interp, stability, purity, diversity, accuracy, hash."""
    rows = []
    for param, value, run in study.sensitivity(reading):
        p = load(study, run)
        met = summarize(mask_hits_for(p.probe, p.data, *top_phi(study, run)))
        rows.append({"param": param, "value": value, **met, "accuracy": p.probe.accuracy, "hash": run.hash})
    return pd.DataFrame(rows)


def sensitivity_maps(study: Study, image: int = 0) -> pd.DataFrame:
    """The average filter map on one test image per setting. Rows: param, value, map."""
    rows = []
    for param, value, run in study.sensitivity():
        p = load(study, run)
        rows.append({"param": param, "value": value, "map": p.probe.a[image].mean(0),
                     "image": p.data[image]["image"]})
    return pd.DataFrame(rows)
