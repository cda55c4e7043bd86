"""The Ambiguities page's other readings of Eq. 11–14: Table I's metrics of a run with Purity
over every image and with no-hit cases skipped everywhere (`metrics.summarize_variants`),
beside the specification's; one cached row per run."""

from __future__ import annotations

import pandas as pd

from ..metrics import summarize_variants
from ..probe import mask_hits_for
from ..study import Study
from .runs import cached, load, main_run, top_phi

__all__ = ["metric_variants", "variants_table"]

ROOM = "analysis/variants.py"


def metric_variants(study: Study, run) -> dict:
    """The specification's four metrics and their other readings for one run on its own test
    split (the main data set's mask protocol); cached per run."""
    top, phi = top_phi(study, run)

    def compute():
        p = load(study, run)
        return summarize_variants(mask_hits_for(p.probe, p.data, top, phi))

    return cached(study, run, "variants", {"top": top, "phi": phi}, compute, ROOM)


def variants_table(study: Study, arch: str, rows: list[str]) -> pd.DataFrame:
    """One row per (table row, seed) on the main data set: method, seed and every reading's metric."""
    out = []
    for row in rows:
        if not study.supports(row, study.main_dataset, arch):
            continue
        for seed in study.seeds:
            out.append({"arch": arch, "method": row, "seed": seed, **metric_variants(study, main_run(study, arch, row, seed))})
    return pd.DataFrame(out)
