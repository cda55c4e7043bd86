"""The paper's claims, judged: each claim's rows from the tables and analyses, a verdict from
`synclib.verdicts` (the statistics that judge them sit beside them), the table a reader sees.

    claims(study, reading)      one frame of claims under one reading of L_sync
    claims_all(study)           every reading of the profile
    table_claims(rows)          the claims of Tables I-II on per-seed rows (tested on hand-made rows)
    verdict_changes, verdict_table
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import verdicts as V
from .analysis import at_equal_interp, landmark_curves, landscape_table, module_tables, pruning_curves, sensitivity_table
from .paper_values import METHOD_LABELS, TABLE1, TABLE2, TABLE3, TABLE4
from .study import Study, reading_row
from .tables import STD_DDOF, run_rows

__all__ = ["claims", "claims_all", "table_claims", "verdict_changes", "verdict_table", "CLAIM_COLUMNS", "RIVALS"]

#: The comparison methods, in the paper's order (Table I's rows).
RIVALS = ("csgcnn", "decoup", "cw", "iccnn", "icnn")
CLAIM_COLUMNS = ["claim", "reading", "paper", "ours", "effect", "interval", "p", "verdict", "note"]


def _pm(x) -> str:
    """mean ± sample std (n) of the finite values of x."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "n/a"
    sd = f" ± {x.std(ddof=STD_DDOF):.3g}" if len(x) > 1 else ""
    return f"{x.mean():.3g}{sd} (n={len(x)})"


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _claim_row(claim: str, reading: str, paper: str, ours_txt: str, v=None, steps: list | None = None) -> dict:
    """One line of the claims table: a single test `v`, or a conjunction of `steps`."""
    if steps is not None:  # every step's effect and interval, one verdict
        return {"claim": claim, "reading": reading, "paper": paper, "ours": ours_txt,
                "effect": "; ".join(f"{s.effect:.3g}" for s in steps),
                "interval": "; ".join(s.interval() for s in steps),
                "p": "; ".join(f"{s.p:.2g}" for s in steps), "verdict": V.all_of(steps),
                "note": "every step must hold"}
    return {"claim": claim, "reading": reading, "paper": paper, "ours": ours_txt, "effect": f"{v.effect:.3g}",
            "interval": v.interval(), "p": f"{v.p:.2g}", "verdict": v.verdict, "note": v.note}


def table_claims(rr: pd.DataFrame, reading: str = "printed", paper_dataset=lambda ds: ds) -> list[dict]:
    """The claims of Tables I and II, judged on per-seed rows `rr` (columns dataset,
    eval_dataset, arch, method, seed, accuracy and, for Table I, interp, stability, purity,
    diversity; `method` holds the row: `ours` is `ours` under the printed reading, else
    `ours_<reading>`). A claim whose rows are missing is left out. Returns claim rows."""
    ours = reading_row("ours", reading)
    out: list[dict] = []
    if rr.empty:
        return out
    if "interp" in rr.columns:
        t1 = rr[rr["eval_dataset"].notna() & rr["interp"].notna()]
        for (ds, a), g in t1.groupby(["eval_dataset", "arch"], sort=False):
            col = {m: g[g.method == m] for m in g.method.unique()}
            if ours not in col or "baseline" not in col:
                continue
            o, b = col[ours], col["baseline"]
            po, pb = TABLE1.get((paper_dataset(ds), a, "ours"), {}), TABLE1.get((paper_dataset(ds), a, "baseline"), {})
            for metric, expect, word in (("interp", "greater", "a higher Interp"),
                                         ("stability", "less", "a lower Stability (more stable)"),
                                         ("purity", "less", "a lower Purity")):
                out.append(_claim_row(f"{ds}/{a}: ours has {word} than the baseline (Table I)", reading,
                                      f"{_fmt(po.get(metric))} vs {_fmt(pb.get(metric))}",
                                      f"{_pm(o[metric])} vs {_pm(b[metric])}", V.compare(o[metric], b[metric], expect)))
            if "ours_nosync" in col:
                n_ = col["ours_nosync"]
                pn = TABLE1.get((paper_dataset(ds), a, "ours_nosync"), {})
                out.append(_claim_row(
                    f"{ds}/{a}: ours w/o sync has the highest Interp (Table I)", reading,
                    f"{_fmt(pn.get('interp'))} vs ours {_fmt(po.get('interp'))}, baseline {_fmt(pb.get('interp'))}",
                    f"{_pm(n_.interp)} vs ours {_pm(o.interp)}, baseline {_pm(b.interp)}",
                    steps=[V.compare(n_.interp, o.interp, "greater"), V.compare(n_.interp, b.interp, "greater")]))
                out.append(_claim_row(
                    f"{ds}/{a}: synchronization raises Diversity: ours above ours w/o sync (Table I)", reading,
                    f"{_fmt(po.get('diversity'))} vs {_fmt(pn.get('diversity'))}",
                    f"{_pm(o.diversity)} vs {_pm(n_.diversity)}", V.compare(o.diversity, n_.diversity, "greater")))
            rivals = [m for m in RIVALS if m in col]
            if rivals:
                out.append(_claim_row(
                    f"{ds}/{a}: ours has a higher Interp than every comparison method (Table I)", reading,
                    f"{_fmt(po.get('interp'))} vs " + ", ".join(
                        f"{METHOD_LABELS[m]} {_fmt(TABLE1.get((paper_dataset(ds), a, m), {}).get('interp'))}" for m in rivals),
                    f"{_pm(o.interp)} vs " + ", ".join(f"{METHOD_LABELS[m]} {_pm(col[m].interp)}" for m in rivals),
                    steps=[V.compare(o.interp, col[m].interp, "greater") for m in rivals]))
            if "icnn" in col:
                pi = TABLE1.get((paper_dataset(ds), a, "icnn"), {})
                out.append(_claim_row(
                    f"{ds}/{a}: ICNN's filters collapse onto few parts: its Diversity is below ours (Table I)", reading,
                    f"{_fmt(pi.get('diversity'))} vs {_fmt(po.get('diversity'))}",
                    f"{_pm(col['icnn'].diversity)} vs {_pm(o.diversity)}",
                    V.compare(col["icnn"].diversity, o.diversity, "less")))
    for (ds, a), g in rr.groupby(["dataset", "arch"], sort=False):
        o, b = g[g.method == ours], g[g.method == "baseline"]
        if o.empty or b.empty:
            continue
        po, pb = TABLE2.get((paper_dataset(ds), a, "ours")), TABLE2.get((paper_dataset(ds), a, "baseline"))
        out.append(_claim_row(
            f"{ds}/{a}: ours' accuracy is within a point of the baseline's (Table II, non-inferiority)", reading,
            f"{100 * po:.2f} % vs {100 * pb:.2f} %" if po and pb else "n/a",
            f"{_pm(100 * o.accuracy)} % vs {_pm(100 * b.accuracy)} %",
            V.noninferior(100 * o.accuracy.to_numpy(), 100 * b.accuracy.to_numpy(), 1.0)))
    return out


def claims(study: Study, reading: str = "printed") -> pd.DataFrame:
    """Each claim of the paper, judged over the profile's seeds under one reading of the paper
    (`ours` is the row of that reading: `ours`, `ours_mean`, `ours_cells`). Verdicts and tests:
    `synclib.verdicts`. Columns: claim, reading, paper, ours, effect, interval, p, verdict, note.
    A claim whose runs the profile lacks is left out."""
    ours = reading_row("ours", reading)
    rows: list[dict] = []

    def add(claim: str, paper: str, ours_txt: str, v, steps: list | None = None):
        rows.append(_claim_row(claim, reading, paper, ours_txt, v, steps))

    def pds(ds):
        return study.datasets[ds].spec.get("paper_dataset", ds)

    # ---- Tables I and II, per data set and arch, from every seed's run
    in_tables = ours in study.rows  # a reading the tables show has runs on every data set; another, on the main one
    if not in_tables and study.main_dataset is None:
        return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    datasets = study.train_datasets if in_tables else [study.main_dataset]
    rr = run_rows(study, rows=list(dict.fromkeys(study.rows + [ours])), datasets=datasets)
    rows += table_claims(rr, reading, pds)

    arch = study.analysis["arch"]
    a_cfg = study.analysis
    if study.main_dataset is None or "baseline" not in study.methods:
        return pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    seeds = study.seeds
    rows_m = [r for r in ("baseline", "ours_nosync", ours, "iccnn") if r == ours or r in study.methods]
    ic = "iccnn" in study.methods

    # ---- Tables III and IV, every training data set with parts
    mt = module_tables(study, arch, a_cfg.get("module_images", 100), seeds, rows_m,
                       None if in_tables else [study.main_dataset])
    for ds, g in mt.groupby("dataset", sort=False):
        col = {m: g[g.method == m] for m in g.method.unique()}
        if "ours_nosync" in col:
            add(f"{ds}/{arch}: module consistency ranks ours w/o sync < ours < baseline (Table III, lower is better)",
                " < ".join(_fmt(TABLE3.get((pds(ds), m))) for m in ("ours_nosync", "ours", "baseline")),
                " < ".join(_pm(col[m].consistency) for m in ("ours_nosync", ours, "baseline")), None,
                [V.compare(col["ours_nosync"].consistency, col[ours].consistency, "less"),
                 V.compare(col[ours].consistency, col["baseline"].consistency, "less")])
        if "iccnn" in col and "baseline" in col:
            add(f"{ds}/{arch}: icCNN's module consistency only slightly beats the baseline's, and ours beats icCNN's "
                "(Table III, lower is better)",
                " < ".join(_fmt(TABLE3.get((pds(ds), m))) for m in ("ours", "iccnn", "baseline")),
                " < ".join(_pm(col[m].consistency) for m in (ours, "iccnn", "baseline")), None,
                [V.compare(col["iccnn"].consistency, col["baseline"].consistency, "less"),
                 V.compare(col[ours].consistency, col["iccnn"].consistency, "less")])
        if not np.isfinite(g["nmi"].to_numpy(float)).any():
            continue
        for ref in ("baseline", "ours_nosync"):
            if ref not in col:
                continue
            paper = ", ".join(f"{k.upper()} {TABLE4['ours'][k]} vs {TABLE4[ref][k]}" for k in ("nmi", "ari", "avi"))
            paper += " (VOC Part)" if pds(ds) == "voc_part" else " (VOC Part; not this data set's)"
            other = "the baseline's" if ref == "baseline" else "ours w/o sync's"
            add(f"{ds}/{arch}: ours' modules align with parts better than {other} on NMI, ARI and AVI (Table IV)", paper,
                ", ".join(f"{k.upper()} {_pm(col[ours][k])} vs {_pm(col[ref][k])}" for k in ("nmi", "ari", "avi")), None,
                [V.compare(col[ours][k], col[ref][k], "greater") for k in ("nmi", "ari", "avi")])

    # ---- Figure 6: at equal Interp on the landmark curves
    lm_ok = in_tables or study.landmark_datasets == [study.main_dataset]
    curves = landmark_curves(study, seeds=seeds, rows=["baseline", ours]) if lm_ok else pd.DataFrame()
    for metric in ("stability", "purity") if lm_ok else ():
        eq = at_equal_interp(curves, metric)
        for (ds, a), g in eq.groupby(["dataset", "arch"], sort=False):
            o, b = g[g.method == ours]["value"], g[g.method == "baseline"]["value"]
            add(f"{ds}/{a}: at equal Interp, ours has the lower {metric.capitalize()} on the landmark curves (Fig. 6)",
                "qualitative (Fig. 6)",
                f"{_pm(o)} vs {_pm(b)}, mean over Interp in [{g['lo'].iloc[0]:.3f}, {g['hi'].iloc[0]:.3f}]",
                V.compare(o, b, "less"))

    # ---- Figure 7: the sensitivity sweep (one run per setting)
    sens = sensitivity_table(study, reading) if reading in ("printed", "mean") else pd.DataFrame()
    if not sens.empty:
        l1 = sens[sens.param == "lambda1"].sort_values("value")
        if len(l1):
            add(f"{arch}: Interp rises with λ1 until too much consistency makes it collapse (Fig. 7)",
                "qualitative (Fig. 7)", ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(l1.value, l1.interp)),
                V.peak(l1.value, l1.interp))
        l2 = sens[sens.param == "lambda2"].sort_values("value")
        if len(l2):
            add(f"{arch}: λ2 raises Diversity (Fig. 7)", "qualitative (Fig. 7)",
                ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(l2.value, l2.diversity)),
                V.slope(l2.value, l2.diversity, "greater"))

    # ---- Figure 9: accuracy kept under pruning, relative to each model's start
    pr = pruning_curves(study, arch, steps=a_cfg.get("pruning_steps", 32), seeds=seeds,
                        rows=["baseline", ours] + ["iccnn"] * ic)
    auc = pr.groupby(["method", "seed"])["auc"].first().reset_index()
    o, b = auc[auc.method == ours]["auc"], auc[auc.method == "baseline"]["auc"]
    add(f"{arch}: ours keeps more of its accuracy under Taylor pruning (normalized area under the curve, Fig. 9)",
        "qualitative (Fig. 9)", f"{_pm(o)} vs {_pm(b)}", V.compare(o, b, "greater"))
    if ic:
        i_ = auc[auc.method == "iccnn"]["auc"]
        add(f"{arch}: icCNN resists pruning worse than the baseline (normalized area under the curve, Fig. 9)",
            "qualitative (Fig. 9)", f"{_pm(i_)} vs {_pm(b)}", V.compare(i_, b, "less"))

    # ---- Figure 10: the loss landscape, lower and smoother
    lt = landscape_table(study, arch, a_cfg.get("landscape_images", 64), a_cfg.get("landscape_points", 9),
                         seeds=seeds, rows=["baseline", ours] + ["iccnn"] * ic)
    o, b = lt[lt.method == ours], lt[lt.method == "baseline"]
    if ic:
        i_ = lt[lt.method == "iccnn"]
        add(f"{arch}: icCNN has a smoother loss landscape than the baseline (mean |Laplacian| / mean loss, Fig. 10)",
            "qualitative (Fig. 10)", f"{_pm(i_.roughness)} vs {_pm(b.roughness)}", V.compare(i_.roughness, b.roughness, "less"))
    add(f"{arch}: ours has a lower loss landscape (mean loss over the grid, Fig. 10)", "qualitative (Fig. 10)",
        f"{_pm(o.mean_loss)} vs {_pm(b.mean_loss)}", V.compare(o.mean_loss, b.mean_loss, "less"))
    add(f"{arch}: ours has a smoother loss landscape (mean |Laplacian| / mean loss, Fig. 10)", "qualitative (Fig. 10)",
        f"{_pm(o.roughness)} vs {_pm(b.roughness)}", V.compare(o.roughness, b.roughness, "less"))
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS)


def verdict_changes(cl: pd.DataFrame, reading: str, against: str = "printed") -> list[str]:
    """The claims whose verdict under `reading` differs from that under `against`, among the
    claims both readings judged (a claim one reading cannot judge is not a change)."""
    wide = cl.pivot_table(index="claim", columns="reading", values="verdict", aggfunc="first", sort=False)
    if reading not in wide.columns or against not in wide.columns:
        return []
    both = wide[[reading, against]].dropna()
    return list(both.index[both[reading] != both[against]])


def claims_all(study: Study, readings: list[str] | None = None) -> pd.DataFrame:
    """`claims` under every reading of the profile (or `readings`), one frame."""
    return pd.concat([claims(study, r) for r in readings or study.readings], ignore_index=True)


VERDICT_COLOURS = {"holds": "#d9f2d9", "contradicted": "#f8d7d7", "inconclusive": "#eeeeee"}
READING_LABELS = {"printed": "Eq. 6 as printed", "mean": "mean over filters", "cells": "L_sync in map cells"}


def verdict_table(cl: pd.DataFrame):
    """Results at a glance: one row per claim, its verdict under each reading, coloured
    (holds green, contradicted red, inconclusive grey); no index column. A pandas Styler."""
    wide = cl.pivot_table(index="claim", columns="reading", values="verdict", aggfunc="first", sort=False)
    wide = wide.reindex(columns=[r for r in READING_LABELS if r in wide.columns]).fillna("not judged")
    wide.columns = [f"verdict ({READING_LABELS[r]})" for r in wide.columns]
    shown = wide.reset_index()
    return (shown.style.hide(axis="index")
            .map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, '#ffffff')}", subset=list(wide.columns))
            .set_properties(**{"text-align": "left"})
            .set_table_styles([{"selector": "", "props": "font-size: 0.9em;"}]))
