"""Tables III and IV: module consistency and module-part alignment; one cached row per run."""

from __future__ import annotations

import pandas as pd

from ..metrics.modules import module_consistency, module_labels, module_part_alignment, part_labels
from ..probe import mask_hits_for
from ..study import Run, Study
from .runs import cached, load, main_run, top_phi

__all__ = ["module_row", "module_tables"]

ROOM = "analysis/modules.py"


def module_row(study: Study, run: Run, max_images: int = 100) -> dict:
    """Module consistency (Table III) and module-part alignment (Table IV) of one run, with
    K = the data set's number of parts; cached per run."""
    def compute():
        p = load(study, run)
        k = len(p.data.parts)
        row = {"consistency": float(module_consistency(p.probe.a[:max_images], k)),
               "nmi": float("nan"), "ari": float("nan"), "avi": float("nan")}
        if p.data.has_masks:  # Table IV needs parts in pixels; Table III needs none
            hits = mask_hits_for(p.probe, p.data, *top_phi(study, run))
            parts, active = part_labels(hits)
            row.update({k_: float(v) for k_, v in
                        module_part_alignment(module_labels(p.probe.a, k), parts, active).items()})
        return row

    return cached(study, run, "modules", {"max_images": max_images}, compute, ROOM)


def module_tables(study: Study, arch: str, max_images: int = 100, seeds: list[int] | None = None,
                  rows: list[str] | None = None, datasets: list[str] | None = None) -> pd.DataFrame:
    """Tables III and IV per data set, row and seed (default: every training data set of the
    study with parts, as the paper's four columns). Rows: dataset, arch, method, seed,
    consistency, nmi, ari, avi (NaN without part masks)."""
    out = []
    for ds in datasets or study.module_datasets:
        for m in study.methods_for(arch, ds, rows or study.analysis_methods):
            for seed in seeds or [0]:
                run = main_run(study, arch, m, seed, ds)
                out.append({"dataset": run.dataset, "arch": arch, "method": m, "seed": seed,
                            **module_row(study, run, max_images)})
    return pd.DataFrame(out)
