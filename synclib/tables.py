"""Tables I-IV of the paper from a study's runs, beside each other, and the paper's values
joined to any of them by one function.

Every table has one row per data set × arch × method (a method under another reading of the
paper is a row of its own, `ours_mean`): the mean over the study's seeds,
the sample standard deviation (`*_std`, ddof = 1, the same everywhere in the book) and
`n_seeds`. Evaluations are cached in each run's folder (`synclib.evaluate`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .analysis import module_tables
from .data import PartDataset
from .evaluate import evaluate_run
from .files import atomic_write_text, read_json
from .paper_values import DATASET_LABELS, METHOD_LABELS, TABLE1, TABLE2, TABLE3, TABLE4
from .store import RunStore
from .study import Run, Study

__all__ = ["table1", "table2", "table3", "table4", "run_rows", "SMALL_TOP", "train_times", "with_paper", "aggregate", "gain",
           "write_csv", "side_by_side", "METRICS", "STD_DDOF", "HIGHER_IS_BETTER"]

METRICS = ["interp", "stability", "purity", "diversity"]
STD_DDOF = 1  # the spread over seeds is the sample standard deviation, in every table and claim


# the direction of each column, as the paper's tables mark it (↑ higher is better, ↓ lower)
HIGHER_IS_BETTER = {"interp": True, "stability": False, "purity": False, "diversity": True, "accuracy": True,
                    "consistency": False, "nmi": True, "ari": True, "avi": True}
COLUMN_LABELS = {"interp": "Interp", "stability": "Stability", "purity": "Purity", "diversity": "Diversity",
                 "accuracy": "Accuracy", "consistency": "Consistency", "nmi": "NMI", "ari": "ARI", "avi": "AVI"}
ARCH_LABELS = {"vgg16": "VGG16", "resnet18": "ResNet18"}


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """`df` as CSV at `path`, atomically; returns the path (a notebook shows it relative to the project)."""
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))
    return Path(path)


def side_by_side(df: pd.DataFrame, metrics: list[str], percent: bool = False, std: bool = False,
                 digits: int = 4):
    """A table as the paper lays it out, for the book: per metric, ours then the paper's
    (columns `paper_<metric>` of `with_paper`) under one header with its direction (↑, ↓);
    in each column the best value of each data set × arch in bold, as the paper marks its
    best; `std`: ours as mean ± sample std over seeds; no index column. A pandas Styler."""
    def fmt(v, sd=None):
        if v is None or v != v:
            return "–"
        text = f"{100 * v:.2f}" if percent else f"{v:.{digits}f}"
        if sd is not None and sd == sd:
            text += f" ± {100 * sd:.2f}" if percent else f" ± {sd:.{digits}f}"
        return text

    nets = df["network"] if "network" in df.columns else [ARCH_LABELS.get(a, a) for a in df["arch"]]
    paper = "paper"
    if "paper_dataset" in df.columns and df["paper_dataset"].nunique() == 1:
        paper = f"paper ({DATASET_LABELS.get(df['paper_dataset'].iloc[0], df['paper_dataset'].iloc[0])})"
    cols: dict[tuple, list] = {("", "data set, network"): [f"{DATASET_LABELS.get(d, d)}, {n}"
                                                           for d, n in zip(df["dataset"], nets)],
                               ("", "method"): [METHOD_LABELS.get(m, m) for m in df["method"]]}
    best: dict[tuple, list[bool]] = {}
    groups = [df["dataset"].to_numpy(), df["arch"].to_numpy()]
    for m in metrics:
        head = f"{COLUMN_LABELS.get(m, m)} {'↑' if HIGHER_IS_BETTER.get(m, True) else '↓'}" + (" (%)" if percent else "")
        for who, col in (("ours", m), (paper, f"paper_{m}")):
            if col not in df.columns:
                continue
            vals = pd.to_numeric(df[col], errors="coerce")
            sds = df[f"{m}_std"] if std and who == "ours" and f"{m}_std" in df.columns else [None] * len(df)
            cols[(head, who)] = [fmt(v, sd) for v, sd in zip(vals, sds)]
            pick = vals.groupby(groups).transform("max" if HIGHER_IS_BETTER.get(m, True) else "min")
            best[(head, who)] = list((vals == pick) & vals.notna())
    if "n_seeds" in df.columns:
        cols[("", "seeds")] = ["–" if n != n else str(int(n)) for n in df["n_seeds"]]  # – : the paper's row only
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    mask = pd.DataFrame({c: best.get(c, [False] * len(out)) for c in out.columns})
    mask.columns = out.columns
    return (out.style.hide(axis="index")
            .apply(lambda _: mask.replace({True: "font-weight: bold", False: ""}), axis=None)
            .set_table_styles([{"selector": "", "props": "font-size: 0.8em; border-collapse: collapse;"},
                               {"selector": "th.col_heading", "props": "text-align: center; padding: 2px 4px;"},
                               {"selector": "td", "props": "padding: 2px 4px; white-space: nowrap;"},
                               {"selector": "td.col0, td.col1", "props": "white-space: normal; min-width: 6em;"}]))


#: A region a small part can fill: Table I's runs are also measured with it, in the same pass over
#: the images, for the Controls page (`synclib.controls`), which asks whether the instrument can
#: see a data set's parts at all. No claim is judged with it.
SMALL_TOP = 0.1


def run_rows(study: Study, artifact: str = "table1", train_missing: bool = True,
             rows: list[str] | None = None, datasets: list[str] | None = None,
             top: float | None = None) -> pd.DataFrame:
    """One row per run of Tables I-II (those `artifact` needs; or, given `rows`, those rows on
    `datasets` (default: every training data set), both families, every seed): dataset,
    eval_dataset, arch, method (the row), seed, hash, accuracy and (mask protocol) the four metrics,
    measured with the evaluation data set's `top` or, given, this one."""
    store = RunStore()
    if rows is None:
        runs = study.runs_for(artifact)
    else:
        runs = [study.find_row(ds, fam, r, seed) for ds in (datasets or study.train_datasets)
                for fam in study.families for r in rows if study.supports(r, ds, fam) for seed in study.seeds]
    out = []
    for run in runs:
        if run.backbone:
            continue  # the start of the other runs, not a row of any table
        if not store.is_done(run.hash):
            if not train_missing:
                continue
            store.ensure(study, run)
        ev_name, test_set, eval_set, run_top, phi = eval_sets(study, run)
        also = (SMALL_TOP,) if eval_set is not None and eval_set.has_masks else ()
        with store.naming(run):
            row = evaluate_run(store.path(run.hash), test_set, eval_set, run_top if top is None else top, phi,
                               also_tops=also)
        out.append({"dataset": run.dataset, "eval_dataset": ev_name, "arch": run.family, "method": run.row,
                    "seed": run.seed, "hash": run.hash, **row})
    return pd.DataFrame(out)


def eval_sets(study: Study, run: Run) -> tuple[str | None, PartDataset, PartDataset | None, float, float]:
    """Where Table I measures a run: (the evaluation data set's name, the test split accuracy is
    read on, the split the four metrics are read on (None without part masks), top, phi)."""
    ev_name = study.eval_dataset(run.dataset)
    ev = study.datasets.get(ev_name) if ev_name else None
    spec = ev.spec if ev is not None else {}
    eval_set = None
    test_set = study.datasets[run.dataset].split("test")
    if ev is not None and ev.present and spec.get("protocol") == "masks":
        eval_set = test_set if ev_name == run.dataset else ev.split("test")
    return ev_name, test_set, eval_set, spec.get("top", 0.3), spec.get("phi", 0.2)


def aggregate(df: pd.DataFrame, cols: list[str], by: list[str]) -> pd.DataFrame:
    """Mean, `*_std` (ddof = STD_DDOF) and `n_seeds` of `cols` per group; `hashes` lists the runs."""
    cols = [c for c in cols if c in df.columns]
    g = df.groupby(by, sort=False)
    out = g[cols].mean().join(g[cols].std(ddof=STD_DDOF).add_suffix("_std"))
    out["n_seeds"] = g.size()
    if "hash" in df.columns:
        out["hashes"] = g["hash"].agg(" ".join)
    return out.reset_index()


def table1(study: Study) -> pd.DataFrame:
    """Table I: Interp, Stability, Purity, Diversity per evaluated data set × arch × method."""
    df = run_rows(study, "table1")
    if df.empty or "interp" not in df.columns:
        return pd.DataFrame(columns=["dataset", "arch", "method", *METRICS, "n_seeds", "hashes"])
    df = df[df["eval_dataset"].notna() & df["interp"].notna()]
    return aggregate(df, METRICS, ["eval_dataset", "arch", "method"]).rename(columns={"eval_dataset": "dataset"})


def table2(study: Study) -> pd.DataFrame:
    """Table II: test accuracy per training data set × arch × method."""
    df = run_rows(study, "table2")
    if df.empty:
        return pd.DataFrame(columns=["dataset", "arch", "method", "accuracy", "n_seeds", "hashes"])
    return aggregate(df, ["accuracy"], ["dataset", "arch", "method"])


def train_times(study: Study, artifact: str = "table2") -> pd.DataFrame:
    """What each run of `artifact` cost to train, read from the provenance its run wrote (runs not
    yet in the store are left out): per data set × arch × method (the backbones as "backbone"),
    the mean wall time in seconds, `seconds_std`, `n_seeds`, and the epochs and processes."""
    store = RunStore()
    rows = []
    for run in study.runs_for(artifact):
        if not store.is_done(run.hash):
            continue
        prov = read_json(store.path(run.hash) / "provenance.json", keys=("seconds",), what="a run's provenance")
        rows.append({"dataset": run.dataset, "arch": run.family, "method": "backbone" if run.backbone else run.row,
                     "seconds": float(prov["seconds"]), "epochs": int(run.train["epochs"]),
                     "processes": int(prov.get("processes", 1))})
    if not rows:
        return pd.DataFrame(columns=["dataset", "arch", "method", "seconds", "seconds_std", "n_seeds", "epochs",
                                     "processes"])
    df = pd.DataFrame(rows)
    out = aggregate(df, ["seconds"], ["dataset", "arch", "method"])
    extra = df.groupby(["dataset", "arch", "method"], sort=False)[["epochs", "processes"]].max().reset_index()
    return out.merge(extra, on=["dataset", "arch", "method"])


def _module_frame(study: Study) -> pd.DataFrame:
    a = study.analysis
    return module_tables(study, a["arch"], a.get("module_images", 100), study.seeds)


def table3(study: Study, modules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table III: module consistency (lower is better) per data set × arch × method."""
    mt = _module_frame(study) if modules is None else modules
    return aggregate(mt, ["consistency"], ["dataset", "arch", "method"])


def table4(study: Study, modules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table IV: alignment of modules with parts (NMI, ARI, AVI) per data set × arch × method."""
    mt = _module_frame(study) if modules is None else modules
    return aggregate(mt, ["nmi", "ari", "avi"], ["dataset", "arch", "method"])


def with_paper(df: pd.DataFrame, study: Study, table: str) -> pd.DataFrame:
    """The table with the paper's published values beside ours, in columns `paper_<metric>`,
    taken from the paper's data set each of ours stands in for (`paper_dataset`). Tables III
    and IV are the paper's VGG16 columns."""
    df = df.copy()
    pds = [study.datasets[d].spec.get("paper_dataset", d) for d in df["dataset"]]
    keys = list(zip(pds, df["arch"], [study.row_spec(m)[0] for m in df["method"]]))  # every reading: the paper's row
    if table == "table1":
        for m in METRICS:
            df[f"paper_{m}"] = [TABLE1.get(k, {}).get(m) for k in keys]
    elif table == "table2":
        df["paper_accuracy"] = [TABLE2.get(k) for k in keys]
    elif table == "table3":
        df["paper_consistency"] = [TABLE3.get((p, m)) if a == "vgg16" else None for p, a, m in keys]
    elif table == "table4":
        for m in ("nmi", "ari", "avi"):
            df[f"paper_{m}"] = [TABLE4.get(me, {}).get(m) if (p, a) == ("voc_part", "vgg16") else None
                                for p, a, me in keys]
    else:
        raise ValueError(f"unknown table {table!r}; one of table1, table2, table3, table4")
    if table in ("table1", "table2") and len(df):
        df = _with_paper_only_rows(df, study, table)
    # how a reader sees the network (its width) and the paper's data set beside each row
    df["network"] = [study.arch_label(a) if a in study.families else ARCH_LABELS.get(a, a) for a in df["arch"]]
    df["paper_dataset"] = [study.datasets[d].spec.get("paper_dataset", d) if d in study.datasets else d
                           for d in df["dataset"]]
    return df


#: Tables I-II's rows in the paper's order (the readings of ours after it).
PAPER_ORDER = ("baseline", "csgcnn", "decoup", "cw", "iccnn", "icnn", "ours_nosync", "ours", "ours_mean", "ours_cells",
               "ours_tau1")


def _with_paper_only_rows(df: pd.DataFrame, study: Study, table: str) -> pd.DataFrame:
    """Rows for the paper's methods the study does not measure on a data set and arch (one its
    profile leaves out; CW where the data set has no part masks for its concept images), with the
    paper's values beside an empty "ours", each in the paper's place."""
    metrics = list(METRICS) if table == "table1" else ["accuracy"]
    extra = []
    for (ds, arch), g in df.groupby(["dataset", "arch"], sort=False):
        pds = study.datasets[ds].spec.get("paper_dataset", ds)
        for m in PAPER_ORDER:
            if m in set(g["method"]):  # measured here (a reading of ours counts under its own row)
                continue
            if m in ("ours_mean", "ours_cells", "ours_tau1"):  # the paper has one row for ours
                continue
            vals = ({k: TABLE1.get((pds, arch, m), {}).get(k) for k in METRICS} if table == "table1"
                    else {"accuracy": TABLE2.get((pds, arch, m))})
            if any(v is not None for v in vals.values()):
                extra.append({"dataset": ds, "arch": arch, "method": m, **{k: float("nan") for k in metrics},
                              **{f"paper_{k}": v for k, v in vals.items()}})
    if not extra:
        return df
    out = pd.concat([df, pd.DataFrame(extra)], ignore_index=True)
    place = {m: i for i, m in enumerate(PAPER_ORDER)}
    first = {k: i for i, k in enumerate(dict.fromkeys(zip(df["dataset"], df["arch"])))}
    key = [(first[(d, a)], place.get(m, len(place))) for d, a, m in zip(out["dataset"], out["arch"], out["method"])]
    return out.iloc[sorted(range(len(out)), key=key.__getitem__)].reset_index(drop=True)


def gain(df: pd.DataFrame, metric: str, arch: str, dataset: str | None = None,
         method: str = "ours", reference: str = "baseline") -> float | None:
    """`metric` of `method` minus that of `reference` for one arch (first data set by default);
    None when either row is missing."""
    if df.empty:
        return None
    dataset = dataset or df["dataset"].iloc[0]
    sel = df[(df["dataset"] == dataset) & (df["arch"] == arch)].set_index("method")
    if method not in sel.index or reference not in sel.index:
        return None
    return float(sel.loc[method, metric] - sel.loc[reference, metric])
