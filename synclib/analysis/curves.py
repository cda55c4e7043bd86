"""Figure 6: the metric-pair curves on landmarks as the assigning radius slides, and their
reading at equal Interp (what the claims compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..metrics.hits import landmark_distances
from ..metrics.interpretability import summarize
from ..study import Run, Study
from .runs import cached, load

__all__ = ["landmark_curve", "landmark_curves", "at_equal_interp"]

ROOM = "analysis/curves.py"


def landmark_curve(study: Study, run: Run, radii: list[float], split: str = "test") -> list[dict]:
    """The four metrics of one run on landmarks at each radius r: [{r, interp, stability,
    purity, diversity}]; cached per run, so the claims read what Figure 6 computed."""
    def compute():
        p = load(study, run, split)
        if not p.data.has_landmarks:
            raise ValueError(f"{p.data.root} has no landmarks: Figure 6 needs them")
        lm = torch.stack([torch.tensor(r["landmarks"], dtype=torch.float32) for r in p.data.rows])
        d = landmark_distances(p.probe.a, lm)  # (I, N, K)
        return [{"r": r, **{k: float(v) for k, v in summarize(d < r).items()}} for r in radii]

    fp = study.datasets[run.dataset].fingerprint(split)
    return cached(study, run, "landmarks", {"radii": radii, "split": split, "split_data": fp}, compute, ROOM)


def landmark_curves(study: Study, radii: np.ndarray | None = None, seeds: list[int] | None = None,
                    rows: list[str] | None = None) -> pd.DataFrame:
    """Metric-pair curves on landmarks: the four metrics as the assigning radius r (normalized
    image units) slides, per data set, arch, row and seed (default seed 0).
    Rows: dataset, arch, method, seed, r, interp, stability, purity, diversity."""
    radii = [float(r) for r in (np.linspace(0.02, 0.4, 12) if radii is None else radii)]
    out = []
    for ds in study.landmark_datasets:
        split = study.datasets[ds].spec.get("eval_split", "test")
        for arch in study.families:
            for m in study.methods_for(arch, ds, rows):
                for seed in seeds or [0]:
                    curve = landmark_curve(study, study.find_row(ds, arch, m, seed), radii, split)
                    out += [{"dataset": ds, "arch": arch, "method": m, "seed": seed, **point} for point in curve]
    return pd.DataFrame(out)


def at_equal_interp(curves: pd.DataFrame, metric: str, points: int = 20) -> pd.DataFrame:
    """Figure 6 read at equal Interp: per data set and arch, the Interp range every curve
    covers (all rows, all seeds) is sampled at `points` values; each curve's `metric` is
    interpolated there and averaged. Rows: dataset, arch, method, seed, value, lo, hi
    (lo, hi: the common Interp range; NaN values when the curves do not overlap)."""
    out = []
    for (ds, arch), g in curves.groupby(["dataset", "arch"], sort=False):
        per = list(g.groupby(["method", "seed"], sort=False))
        lo = max(c["interp"].min() for _, c in per)
        hi = min(c["interp"].max() for _, c in per)
        grid = np.linspace(lo, hi, points) if hi > lo else None
        for (m, seed), c in per:
            c = c.sort_values("interp")
            x, y = c["interp"].to_numpy(float), c[metric].to_numpy(float)
            ok = np.isfinite(y)
            v = float(np.interp(grid, x[ok], y[ok]).mean()) if grid is not None and ok.sum() >= 2 else float("nan")
            out.append({"dataset": ds, "arch": arch, "method": m, "seed": seed, "value": v, "lo": lo, "hi": hi})
    return pd.DataFrame(out)
