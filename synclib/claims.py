"""The paper's claims, judged: each claim's rows from the tables and analyses, a verdict from
`synclib.verdicts` (the statistics that judge them sit beside them), the table a reader sees.

    claims(study, reading)      one frame of claims under one reading of L_sync
    claims_all(study)           every reading of the profile
    table_claims(rows)          the claims of Tables I-II on per-seed rows (tested on hand-made rows)
    verdict_changes, verdict_table
"""

from __future__ import annotations

import re

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
#: The data sets on which the paper says CSGCNN's accuracy declines (§IV-C3: CUB200, ILSVRC Part and
#: ImageNet-100, its data sets with many classes); judged where the paper's own Table II shows it.
CSGCNN_DECLINES = ("cub200", "ilsvrc_part", "imagenet100")
CLAIM_COLUMNS = ["claim", "reading", "source", "quote", "paper", "ours", "effect", "interval", "p", "p_adjusted",
                 "detectable", "verdict", "note"]

#: Where the paper makes each kind of claim, and its own words (verbatim from the paper's text).
Q_INTERP = ("§IV-C1, Table I", "our method achieves significant improvement on the metric and hits the top in both "
            "architectures")
Q_STAB_PUR = ("§IV-C1, Table I", "the improvement of *Stability* and *Purity* metrics means that the proposed "
              "interpretable model is capable of consistently associating filters")
Q_DIVERSITY = ("§IV-C1, Table I", "ICNN and ours with only the activation consistency constraint present a low diversity "
               "on semantic parts. The proposed method with the synchronization mechanism preserves diverse "
               "interpretability.")
Q_ICNN_DIV = ("§IV-C1, Table I", "ICNN and ours with only the activation consistency constraint present a low diversity "
              "on semantic parts.")
Q_ACCURACY = ("§IV-C3, Table II", "it also provides comparable or even superior results compared to other methods")
Q_FIG6 = ("§IV-C2, Fig. 6", "the interpretability of the proposed method achieves superior stability and purity")
Q_FIG6_DIV = ("§IV-C2, Fig. 6", "the interpretability of the proposed method achieves superior stability and purity, "
              "as well as comparable diversity")
Q_FIG6_SOTA = ("§IV-C2, Fig. 6", "exhibits better interpretability than state-of-the-art interpretable models")
Q_FIG6_SCALE = ("§IV-C2, Fig. 6", "our model has a broader interpretability scale")
Q_FIG6_CUB = ("§IV-C2, Fig. 6", "Our model with only the activation consistency constraint has a greater advantage on "
              "the CUB200 dataset.")
Q_CSGCNN_ACC = ("§IV-C3, Table II", "This damages the capacity and representation ability of the model, leading to a "
                "decline in performance")
Q_L1_INTERP = ("§IV-D, Fig. 7", "enhancing *Interp.* and *Stability*. However, excessive consistency constraints can "
               "cause filters to completely collapse")
Q_L2_DIV = ("§IV-D, Fig. 7", "the filters between the modules exhibit diversity. However, extremely high values can "
            "cause filters to associate with meaningless spaces.")
Q_EPS = ("§IV-D, Fig. 7", "When its value is too small, a filter cannot be synchronized with other filters [...] when "
         "its value is too large, most filters are grouped into a cluster")
Q_ROBUST = ("§IV-D, Fig. 7", "The accuracy remains robust to changes in hyper-parameters, with only a slight decrease "
            "under extreme settings.")
Q_MODULE = ("§IV-E1, Table III", "when only the activation consistency constraint is adopted, our model shows the best "
            "module consistency")
Q_ICCNN_MODULE = ("§IV-E1, Table III", "icCNN only slightly outperforms the baseline model")
Q_TABLE4 = ("§IV-E2, Table IV", "The indicator values of the proposed method are greater than those of other models, "
            "especially ours without the synchronization constraint.")
Q_ICCNN_T4 = ("§IV-E2, Table IV", "the icCNN method did not demonstrate significant gains in the relationship between "
              "modules and semantic parts")
Q_PRUNING = ("§IV-E3, Fig. 9", "Figure 9 shows that our method exhibits higher redundancy to prevent performance "
             "degradation.")
Q_ICCNN_PRUNING = ("§IV-E3, Fig. 9", "Surprisingly, icCNN is difficult to resist filter pruning")
Q_NOSYNC_PRUNING = ("§IV-E3, Fig. 9", "since neurons have collapsed, the model with only the activation consistency "
                    "constraint is of more redundant units")
Q_LANDSCAPE_SYNC = ("§IV-E4, Fig. 10", "icCNN and the proposed model with the synchronization loss perform more stably "
                    "against parameter disturbance than ours without the synchronization loss and the baseline model, "
                    "respectively")
Q_LANDSCAPE = ("§IV-E4, Fig. 10", "models with modular constraints have lower loss values and smoother loss landscapes "
               "than the baseline model")


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


def _g(x: float, fmt: str = ".2g") -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:{fmt}}"


def _entry(claim: str, reading: str, where: tuple[str, str], paper: str, ours_txt: str, v=None,
           steps: list | None = None, note: str = "") -> dict:
    """One claim before Holm's adjustment: a single test `v`, or a conjunction of `steps`;
    `where` = (source, quote)."""
    return {"claim": claim, "reading": reading, "source": where[0], "quote": where[1], "paper": paper,
            "ours": ours_txt, "tests": [v] if steps is None else list(steps), "conj": steps is not None, "extra": note}


def _finish(entries: list[dict]) -> list[dict]:
    """The claims' rows: every individual test of the family (each step of a conjunction) Holm-
    adjusted together, each re-decided from its adjusted p; a conjunction holds only if every
    step holds (`verdicts.all_of`)."""
    tests = [t for e in entries for t in e["tests"]]
    adj = V.holm([t.p for t in tests])
    it = iter(adj)
    out = []
    for e in entries:
        steps = [t.adjusted(float(next(it))) for t in e["tests"]]
        row = {k: e[k] for k in ("claim", "reading", "source", "quote", "paper", "ours")}
        if e["conj"]:
            row.update(effect="; ".join(f"{s.effect:.3g}" for s in steps),
                       interval="; ".join(s.interval() for s in steps),
                       p="; ".join(_g(s.p) for s in steps), p_adjusted="; ".join(_g(s.p_adjusted) for s in steps),
                       detectable="; ".join(_g(s.detectable, ".3g") for s in steps),
                       verdict=V.all_of(steps), note="every step must hold")
        else:
            s_ = steps[0]
            row.update(effect=f"{s_.effect:.3g}", interval=s_.interval(), p=_g(s_.p), p_adjusted=_g(s_.p_adjusted),
                       detectable=_g(s_.detectable, ".3g"), verdict=s_.verdict, note=s_.note)
        row["note"] = "; ".join(x for x in (row["note"], e["extra"]) if x)
        out.append(row)
    return out


def table_claims(rr: pd.DataFrame, reading: str = "printed", paper_dataset=lambda ds: ds) -> list[dict]:
    """The claims of Tables I and II, judged on per-seed rows `rr` (columns dataset,
    eval_dataset, arch, method, seed, accuracy and, for Table I, interp, stability, purity,
    diversity; `method` holds the row: `ours` is `ours` under the printed reading, else
    `ours_<reading>`). A claim whose rows are missing is left out. Returns claim rows, their
    p-values Holm-adjusted over these claims alone (`claims` adjusts over every claim of a
    reading)."""
    return _finish(_table_entries(rr, reading, paper_dataset))


def _table_entries(rr: pd.DataFrame, reading: str, paper_dataset) -> list[dict]:
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
            for metric, expect, word, q in (("interp", "greater", "a higher Interp", Q_INTERP),
                                            ("stability", "less", "a lower Stability (more stable)", Q_STAB_PUR),
                                            ("purity", "less", "a lower Purity", Q_STAB_PUR)):
                out.append(_entry(f"{ds}/{a}: ours has {word} than the baseline (Table I)", reading, q,
                                      f"{_fmt(po.get(metric))} vs {_fmt(pb.get(metric))}",
                                      f"{_pm(o[metric])} vs {_pm(b[metric])}", V.compare(o[metric], b[metric], expect)))
            if "ours_nosync" in col:
                n_ = col["ours_nosync"]
                pn = TABLE1.get((paper_dataset(ds), a, "ours_nosync"), {})
                # "ours w/o sync has the highest Interp" is not a claim the paper's text makes: not judged
                out.append(_entry(
                    f"{ds}/{a}: synchronization raises Diversity: ours above ours w/o sync (Table I)", reading, Q_DIVERSITY,
                    f"{_fmt(po.get('diversity'))} vs {_fmt(pn.get('diversity'))}",
                    f"{_pm(o.diversity)} vs {_pm(n_.diversity)}", V.compare(o.diversity, n_.diversity, "greater")))
            rivals = [m for m in RIVALS if m in col]
            if rivals:
                out.append(_entry(
                    f"{ds}/{a}: ours has a higher Interp than every comparison method (Table I)", reading, Q_INTERP,
                    f"{_fmt(po.get('interp'))} vs " + ", ".join(
                        f"{METHOD_LABELS[m]} {_fmt(TABLE1.get((paper_dataset(ds), a, m), {}).get('interp'))}" for m in rivals),
                    f"{_pm(o.interp)} vs " + ", ".join(f"{METHOD_LABELS[m]} {_pm(col[m].interp)}" for m in rivals),
                    steps=[V.compare(o.interp, col[m].interp, "greater") for m in rivals]))
            if "icnn" in col:
                pi = TABLE1.get((paper_dataset(ds), a, "icnn"), {})
                out.append(_entry(
                    f"{ds}/{a}: ICNN's filters collapse onto few parts: its Diversity is below ours (Table I)", reading,
                    Q_ICNN_DIV,
                    f"{_fmt(pi.get('diversity'))} vs {_fmt(po.get('diversity'))}",
                    f"{_pm(col['icnn'].diversity)} vs {_pm(o.diversity)}",
                    V.compare(col["icnn"].diversity, o.diversity, "less")))
    for (ds, a), g in rr.groupby(["dataset", "arch"], sort=False):
        o, b = g[g.method == ours], g[g.method == "baseline"]
        if o.empty or b.empty:
            continue
        c = g[g.method == "csgcnn"]
        pc, pb = TABLE2.get((paper_dataset(ds), a, "csgcnn")), TABLE2.get((paper_dataset(ds), a, "baseline"))
        if not c.empty and paper_dataset(ds) in CSGCNN_DECLINES and pc is not None and pb is not None and pc < pb:
            # the paper says it for its data sets with many classes, and its own numbers show it only there and per arch
            out.append(_entry(
                f"{ds}/{a}: CSGCNN's accuracy declines below the baseline's as the classes grow in number (Table II)",
                reading, Q_CSGCNN_ACC, f"{100 * pc:.2f} % vs {100 * pb:.2f} %",
                f"{_pm(100 * c.accuracy)} % vs {_pm(100 * b.accuracy)} %",
                V.compare(100 * c.accuracy.to_numpy(), 100 * b.accuracy.to_numpy(), "less")))
        po, pb = TABLE2.get((paper_dataset(ds), a, "ours")), TABLE2.get((paper_dataset(ds), a, "baseline"))
        out.append(_entry(
            f"{ds}/{a}: ours' accuracy is within a point of the baseline's (Table II, non-inferiority)", reading, Q_ACCURACY,
            f"{100 * po:.2f} % vs {100 * pb:.2f} %" if po and pb else "n/a",
            f"{_pm(100 * o.accuracy)} % vs {_pm(100 * b.accuracy)} %",
            V.noninferior(100 * o.accuracy.to_numpy(), 100 * b.accuracy.to_numpy(), 1.0)))
    return out


def claims(study: Study, reading: str = "printed") -> pd.DataFrame:
    """Each claim of the paper, judged over the profile's seeds under one reading of the paper
    (`ours` is the row of that reading: `ours`, `ours_mean`, `ours_cells`). Verdicts and tests:
    `synclib.verdicts`. Columns: `CLAIM_COLUMNS`. The p-values of every individual test of the
    reading (each step of a conjunction, the one-sided p of a non-inferiority claim) are
    Holm-adjusted together and the verdicts decided from the adjusted p. A claim whose runs the
    profile lacks is left out."""
    ours = reading_row("ours", reading)
    rows: list[dict] = []

    def add(claim: str, where: tuple[str, str], paper: str, ours_txt: str, v, steps: list | None = None,
            note: str = ""):
        rows.append(_entry(claim, reading, where, paper, ours_txt, v, steps, note))

    def done() -> pd.DataFrame:
        return pd.DataFrame(_finish(rows), columns=CLAIM_COLUMNS)

    def pds(ds):
        return study.datasets[ds].spec.get("paper_dataset", ds)

    # ---- Tables I and II, per data set and arch, from every seed's run
    in_tables = ours in study.rows  # a reading the tables show has runs on every data set; another, on the main one
    if not in_tables and study.main_dataset is None:
        return done()
    datasets = study.train_datasets if in_tables else [study.main_dataset]
    rr = run_rows(study, rows=list(dict.fromkeys(study.rows + [ours])), datasets=datasets)
    rows += _table_entries(rr, reading, pds)

    arch = study.analysis["arch"]
    a_cfg = study.analysis
    if study.main_dataset is None or "baseline" not in study.methods:
        return done()
    seeds = study.seeds
    rows_m = [r for r in ("baseline", "ours_nosync", ours, "iccnn") if r == ours or r in study.methods]
    ic = "iccnn" in study.methods

    # ---- Tables III and IV, every training data set with parts
    mt = module_tables(study, arch, a_cfg.get("module_images", 100), seeds, rows_m,
                       None if in_tables else [study.main_dataset])
    for ds, g in mt.groupby("dataset", sort=False):
        col = {m: g[g.method == m] for m in g.method.unique()}
        if "ours_nosync" in col and pds(ds) == "voc_part":  # the paper ranks them on VOC Part only (§IV-E1)
            add(f"{ds}/{arch}: module consistency ranks ours w/o sync < ours < baseline (Table III, lower is better)",
                Q_MODULE,
                " < ".join(_fmt(TABLE3.get((pds(ds), m))) for m in ("ours_nosync", "ours", "baseline")),
                " < ".join(_pm(col[m].consistency) for m in ("ours_nosync", ours, "baseline")), None,
                [V.compare(col["ours_nosync"].consistency, col[ours].consistency, "less"),
                 V.compare(col[ours].consistency, col["baseline"].consistency, "less")])
        if "iccnn" in col and "baseline" in col:
            add(f"{ds}/{arch}: icCNN's module consistency only slightly beats the baseline's, and ours beats icCNN's "
                "(Table III, lower is better)", Q_ICCNN_MODULE,
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
            add(f"{ds}/{arch}: ours' modules align with parts better than {other} on NMI, ARI and AVI (Table IV)",
                Q_TABLE4, paper,
                ", ".join(f"{k.upper()} {_pm(col[ours][k])} vs {_pm(col[ref][k])}" for k in ("nmi", "ari", "avi")), None,
                [V.compare(col[ours][k], col[ref][k], "greater") for k in ("nmi", "ari", "avi")])
        if "iccnn" in col and "baseline" in col:
            vp = " (VOC Part)" if pds(ds) == "voc_part" else " (VOC Part; not this data set's)"
            add(f"{ds}/{arch}: ours' modules align with parts better than icCNN's on NMI, ARI and AVI (Table IV)",
                Q_TABLE4, ", ".join(f"{k.upper()} {TABLE4['ours'][k]} vs {TABLE4['iccnn'][k]}" for k in ("nmi", "ari", "avi"))
                + vp,
                ", ".join(f"{k.upper()} {_pm(col[ours][k])} vs {_pm(col['iccnn'][k])}" for k in ("nmi", "ari", "avi")),
                None, [V.compare(col[ours][k], col["iccnn"][k], "greater") for k in ("nmi", "ari", "avi")])
            add(f"{ds}/{arch}: icCNN's modules show no significant gain over the baseline's on NMI, ARI and AVI "
                "(Table IV)", Q_ICCNN_T4,
                ", ".join(f"{k.upper()} {TABLE4['iccnn'][k]} vs {TABLE4['baseline'][k]}" for k in ("nmi", "ari", "avi"))
                + vp,
                ", ".join(f"{k.upper()} {_pm(col['iccnn'][k])} vs {_pm(col['baseline'][k])}" for k in ("nmi", "ari", "avi")),
                None, [V.compare(col["iccnn"][k], col["baseline"][k], "less") for k in ("nmi", "ari", "avi")],
                "contradicted if icCNN significantly beats the baseline on a metric; a non-significant difference "
                "cannot confirm 'no gain' (no equivalence margin is given), so it holds only where icCNN is "
                "significantly below the baseline")

    # ---- Figure 6: at equal Interp on the landmark curves
    lm_ok = in_tables or study.landmark_datasets == [study.main_dataset]
    others = [r for r in ("ours_nosync", *RIVALS) if r in study.methods] if in_tables else []
    curves = landmark_curves(study, seeds=seeds, rows=["baseline", ours, *others]) if lm_ok else pd.DataFrame()
    pair = curves[curves.method.isin(["baseline", ours])] if len(curves) else curves
    for metric in ("stability", "purity") if lm_ok else ():
        eq = at_equal_interp(pair, metric)
        for (ds, a), g in eq.groupby(["dataset", "arch"], sort=False):
            o, b = g[g.method == ours]["value"], g[g.method == "baseline"]["value"]
            add(f"{ds}/{a}: at equal Interp, ours has the lower {metric.capitalize()} on the landmark curves (Fig. 6)",
                Q_FIG6,
                "qualitative (Fig. 6)",
                f"{_pm(o)} vs {_pm(b)}, mean over Interp in [{g['lo'].iloc[0]:.3f}, {g['hi'].iloc[0]:.3f}]",
                V.compare(o, b, "less"))
    for (ds, a), g in curves.groupby(["dataset", "arch"], sort=False) if len(curves) else ():
        rivals = [m for m in RIVALS if m in set(g.method)]
        if ours not in set(g.method):
            continue
        # against each comparison method at the Interp range the two curves share (pair by pair, so
        # one method's short curve does not narrow the others' comparison)
        for metric in ("stability", "purity") if rivals else ():
            vals = {m: at_equal_interp(g[g.method.isin([ours, m])], metric) for m in rivals}
            add(f"{ds}/{a}: at equal Interp, ours has a lower {metric.capitalize()} than every comparison method on "
                "the landmark curves (Fig. 6)", Q_FIG6_SOTA, "qualitative (Fig. 6)",
                ", ".join(f"{_pm(e[e.method == ours]['value'])} vs {METHOD_LABELS[m]} {_pm(e[e.method == m]['value'])}"
                          for m, e in vals.items()), None,
                [V.compare(e[e.method == ours]["value"], e[e.method == m]["value"], "less") for m, e in vals.items()])
        if "baseline" in set(g.method):
            e = at_equal_interp(g[g.method.isin([ours, "baseline"])], "diversity")
            o, b = e[e.method == ours]["value"], e[e.method == "baseline"]["value"]
            add(f"{ds}/{a}: at equal Interp, ours' Diversity is comparable to the baseline's on the landmark curves "
                "(Fig. 6)", Q_FIG6_DIV, "qualitative (Fig. 6)", f"{_pm(o)} vs {_pm(b)}", V.compare(o, b, "greater"),
                note="read as 'not worse': holds if ours' Diversity is significantly above the baseline's, "
                     "contradicted if significantly below; the paper gives no equivalence margin, so a difference "
                     "that is not significant stays inconclusive")
        span = g.groupby(["method", "seed"], sort=False)["interp"].agg(lambda x: x.max() - x.min())
        refs = [m for m in ("baseline", *rivals) if m in set(g.method)]
        if refs:
            add(f"{ds}/{a}: ours has a broader interpretability scale than the baseline and every comparison method: "
                "its landmark curve spans the widest range of Interp (Fig. 6)", Q_FIG6_SCALE, "qualitative (Fig. 6)",
                f"{_pm(span[ours])} vs " + ", ".join(f"{METHOD_LABELS[m]} {_pm(span[m])}" for m in refs), None,
                [V.compare(span[ours], span[m], "greater") for m in refs])
        if "ours_nosync" in set(g.method) and pds(ds) == "cub200":
            for metric in ("stability", "purity"):
                e = at_equal_interp(g[g.method.isin([ours, "ours_nosync"])], metric)
                n_, o = e[e.method == "ours_nosync"]["value"], e[e.method == ours]["value"]
                add(f"{ds}/{a}: on CUB200, ours w/o sync has a lower {metric.capitalize()} than ours at equal Interp "
                    "(Fig. 6)", Q_FIG6_CUB, "qualitative (Fig. 6)", f"{_pm(n_)} vs {_pm(o)}", V.compare(n_, o, "less"))

    # ---- Figure 7: the sensitivity sweep (one run per setting)
    sens = sensitivity_table(study, reading) if reading in ("printed", "mean") else pd.DataFrame()
    if not sens.empty:
        l1 = sens[sens.param == "lambda1"].sort_values("value")
        if len(l1):
            add(f"{arch}: Interp rises with λ1 until too much consistency makes it collapse (Fig. 7)", Q_L1_INTERP,
                "qualitative (Fig. 7)", ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(l1.value, l1.interp)),
                V.peak(l1.value, l1.interp))
            add(f"{arch}: λ1 also improves Stability until too much consistency makes it collapse: Stability falls, "
                "then rises (Fig. 7)", Q_L1_INTERP,
                "qualitative (Fig. 7)", ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(l1.value, l1.stability)),
                V.peak(l1.value, -l1.stability),
                note="a peak of −Stability (lower Stability is better); the effect is the curvature of −Stability")
        l2 = sens[sens.param == "lambda2"].sort_values("value")
        if len(l2):
            add(f"{arch}: λ2 raises Diversity until extremely high values tie filters to meaningless spaces (Fig. 7)",
                Q_L2_DIV, "qualitative (Fig. 7)",
                ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(l2.value, l2.diversity)),
                V.peak(l2.value, l2.diversity))
        ep = sens[sens.param == "eps"].sort_values("value")
        if len(ep):
            add(f"{arch}: ε has a peak: Interp rises with ε, then falls when most filters fall into one cluster "
                "(Fig. 7)", Q_EPS, "qualitative (Fig. 7)",
                ", ".join(f"{v:g}: {x:.3f}" for v, x in zip(ep.value, ep.interp)), V.peak(ep.value, ep.interp))
        default = rr[(rr.method == ours) & (rr.arch == arch) & (rr.dataset == study.main_dataset)]["accuracy"]
        params = [q for q in dict.fromkeys(sens.param) if len(sens[sens.param == q])]
        if len(default) and params:
            add(f"{arch}: accuracy is robust to the hyperparameters: over each swept parameter, accuracy within a "
                "point of the default setting's (Fig. 7, non-inferiority)", Q_ROBUST, "qualitative (Fig. 7)",
                "; ".join(f"{q}: {_pm(100 * sens[sens.param == q].accuracy)} %" for q in params)
                + f" vs default {_pm(100 * default)} %", None,
                [V.noninferior(100 * sens[sens.param == q].accuracy.to_numpy(float), 100 * default.to_numpy(float), 1.0)
                 for q in params],
                "per swept parameter, the sweep's settings (one run each) as one sample against the default's seeds: "
                "the mean accuracy over the sweep no worse than the default's by more than 1 point (one-sided Welch); "
                "the sweep's spread widens the interval, so a setting far below the others makes it fail")

    # ---- Figure 9: accuracy kept under pruning, relative to each model's start
    pr = pruning_curves(study, arch, steps=a_cfg.get("pruning_steps", 32), seeds=seeds,
                        rows=["baseline", "ours_nosync", ours] + ["iccnn"] * ic)
    auc = pr.groupby(["method", "seed"])["auc"].first().reset_index()
    o, b = auc[auc.method == ours]["auc"], auc[auc.method == "baseline"]["auc"]
    add(f"{arch}: ours keeps more of its accuracy under Taylor pruning (normalized area under the curve, Fig. 9)",
        Q_PRUNING,
        "qualitative (Fig. 9)", f"{_pm(o)} vs {_pm(b)}", V.compare(o, b, "greater"))
    ns = auc[auc.method == "ours_nosync"]["auc"]
    if len(ns):
        add(f"{arch}: ours w/o sync has more redundant units than ours: it keeps more of its accuracy under Taylor "
            "pruning (normalized area under the curve, Fig. 9)", Q_NOSYNC_PRUNING,
            "qualitative (Fig. 9)", f"{_pm(ns)} vs {_pm(o)}", V.compare(ns, o, "greater"))
    if ic:
        i_ = auc[auc.method == "iccnn"]["auc"]
        add(f"{arch}: icCNN resists pruning worse than the baseline (normalized area under the curve, Fig. 9)",
            Q_ICCNN_PRUNING,
            "qualitative (Fig. 9)", f"{_pm(i_)} vs {_pm(b)}", V.compare(i_, b, "less"))

    # ---- Figure 10: the loss landscape, lower and smoother
    lt = landscape_table(study, arch, a_cfg.get("landscape_images", 64), a_cfg.get("landscape_points", 9),
                         seeds=seeds, rows=["baseline", "ours_nosync", ours] + ["iccnn"] * ic)
    o, b, ns = lt[lt.method == ours], lt[lt.method == "baseline"], lt[lt.method == "ours_nosync"]
    if ic:
        i_ = lt[lt.method == "iccnn"]
        add(f"{arch}: icCNN has a lower loss landscape than the baseline (mean loss over the grid, Fig. 10)",
            Q_LANDSCAPE,
            "qualitative (Fig. 10)", f"{_pm(i_.mean_loss)} vs {_pm(b.mean_loss)}",
            V.compare(i_.mean_loss, b.mean_loss, "less"))
    if len(ns):
        add(f"{arch}: ours is more stable against disturbance than ours w/o sync: a lower loss landscape (mean loss "
            "over the grid, Fig. 10)", Q_LANDSCAPE_SYNC, "qualitative (Fig. 10)",
            f"{_pm(o.mean_loss)} vs {_pm(ns.mean_loss)}", V.compare(o.mean_loss, ns.mean_loss, "less"))
        add(f"{arch}: ours is more stable against disturbance than ours w/o sync: a smoother loss landscape (mean "
            "|Laplacian| / mean loss, Fig. 10)", Q_LANDSCAPE_SYNC, "qualitative (Fig. 10)",
            f"{_pm(o.roughness)} vs {_pm(ns.roughness)}", V.compare(o.roughness, ns.roughness, "less"))
    if ic:
        add(f"{arch}: icCNN has a smoother loss landscape than the baseline (mean |Laplacian| / mean loss, Fig. 10)",
            Q_LANDSCAPE,
            "qualitative (Fig. 10)", f"{_pm(i_.roughness)} vs {_pm(b.roughness)}", V.compare(i_.roughness, b.roughness, "less"))
    add(f"{arch}: ours has a lower loss landscape (mean loss over the grid, Fig. 10)", Q_LANDSCAPE,
        "qualitative (Fig. 10)",
        f"{_pm(o.mean_loss)} vs {_pm(b.mean_loss)}", V.compare(o.mean_loss, b.mean_loss, "less"))
    add(f"{arch}: ours has a smoother loss landscape (mean |Laplacian| / mean loss, Fig. 10)", Q_LANDSCAPE,
        "qualitative (Fig. 10)",
        f"{_pm(o.roughness)} vs {_pm(b.roughness)}", V.compare(o.roughness, b.roughness, "less"))
    return done()


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
READING_LABELS = {"printed": "Eq. 6 as printed", "mean": "mean over filters", "cells": "L_sync in map cells",
                  "tau1": "L_lac with no temperature"}


#: The artifact a claim's source names, as its page in the book (`executed/<page>.html`).
ARTIFACT_PAGES = {"Table I": "table1", "Table II": "table2", "Table III": "table3", "Table IV": "table4",
                  **{f"Fig. {i}": f"fig{i}" for i in range(4, 11)}}
VERDICT_LEGEND = ("holds: the paper's sign, and the test rejects no difference (Holm-adjusted p < 0.05); "
                  "contradicted: the test rejects, with the opposite sign; inconclusive: neither; "
                  "not judged: this reading has no runs for it")


def claim_artifact(source: str) -> str:
    """The table or figure a claim's source names (`§IV-C, Table I` -> `Table I`), else "text"."""
    m = re.search(r"(Table [IV]+|Fig\. \d+)", source)
    return m.group(1) if m else "text"


def verdict_table(cl: pd.DataFrame, link_base: str = ""):
    """Results at a glance: one row per claim, grouped by the table or figure it rests on (a
    link to that page, `link_base` + `<page>.html`), its verdict under each reading, coloured
    (holds green, contradicted red, inconclusive grey), and the effect with its 95 % interval
    under the first reading; a one-line legend as its caption; no index column. A pandas Styler."""
    wide = cl.pivot_table(index="claim", columns="reading", values="verdict", aggfunc="first", sort=False)
    wide = wide.reindex(columns=[r for r in READING_LABELS if r in wide.columns]).fillna("not judged")
    first = cl.drop_duplicates("claim").set_index("claim")
    lead = cl[cl.reading == wide.columns[0]].drop_duplicates("claim").set_index("claim") if len(wide.columns) else first
    art = [claim_artifact(first.loc[c, "source"]) for c in wide.index]
    order = {a: i for i, a in enumerate(ARTIFACT_PAGES)}
    wide.columns = [f"verdict ({READING_LABELS[r]})" for r in wide.columns]
    verdict_cols = list(wide.columns)
    shown = wide.reset_index()
    shown.insert(0, "rests on", [f'<a href="{link_base}{ARTIFACT_PAGES[a]}.html">{a}</a>' if a in ARTIFACT_PAGES
                                 else f'<a href="{link_base}claims.html">text</a>' for a in art])
    shown["effect [95 % interval]"] = [f"{lead.loc[c, 'effect']} {lead.loc[c, 'interval']}" if c in lead.index else ""
                                       for c in wide.index]
    shown["_order"] = [order.get(a, len(order)) for a in art]
    shown = shown.sort_values("_order", kind="stable").drop(columns="_order")
    return (shown.style.hide(axis="index")
            .map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, '#ffffff')}", subset=verdict_cols)
            .set_caption(VERDICT_LEGEND)
            .set_properties(**{"text-align": "left"})
            .set_table_styles([{"selector": "", "props": "font-size: 0.8em;"},
                               {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.95em;"},
                               {"selector": "td, th", "props": "white-space: normal; padding: 2px 4px;"},
                               {"selector": "td.col0", "props": "white-space: nowrap;"}]))
