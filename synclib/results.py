"""Tables from the run store: what the notebooks call. Evaluations are cached per run.

`table1(profile)` and `table2(profile)` make sure the data and runs exist (training what is
missing, in this process: seconds on the smoke profile), evaluate each run once (cached as
`runs/<hash>/eval-<dataset>-<protocol>.json`) and return a DataFrame with one row per
data set × arch × method: the mean over seeds, plus `n_seeds` and the `*_std` columns.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from .data.format import atomic_write_text
from .paper_values import TABLE1, TABLE2
from .runs import RunStore, dataset_root, ensure_data, load_profile, plan, repo_root

__all__ = ["table1", "table2", "run_rows", "results_dir", "write_csv", "commit", "with_paper",
           "gain"]

METRICS = ["interp", "stability", "purity", "diversity"]


def results_dir(profile: str) -> Path:
    """results/<profile name>/ (a profile given by path is named by its `profile` key)."""
    name = load_profile(profile)["profile"] if Path(profile).suffix else profile
    d = repo_root() / "results" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))
    return Path(path)


def commit() -> str:
    """The git commit of the checkout (with '+dirty' if it has uncommitted changes)."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _eval_dataset(prof: dict, train_ds: str) -> str | None:
    d = prof["datasets"][train_ds]
    return d.get("eval_on", train_ds if d.get("protocol") != "none" else None)


def _evaluate(store: RunStore, h: str, prof: dict, eval_ds: str | None, train_ds: str) -> dict:
    """Accuracy on the training set's test split; mask metrics on eval_ds; cached."""
    from .data import PartDataset
    from .metrics.interpretability import summarize
    from .probe import activations, mask_hits_for
    from .train import load_run

    d = prof["datasets"].get(eval_ds, {}) if eval_ds else {}
    tag = f"{eval_ds}-{d.get('protocol')}-top{d.get('top')}-phi{d.get('phi')}"
    cache = store.path(h) / f"eval-{tag}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    model, _, _ = load_run(store.path(h))
    row: dict = {}
    test = PartDataset(dataset_root(prof, train_ds), "test")
    p = activations(model, test)
    row["accuracy"] = p.accuracy
    if eval_ds and d.get("protocol") == "masks" and ensure_data(prof, eval_ds, progress=False):
        ds = test
        if eval_ds != train_ds:
            ds = PartDataset(dataset_root(prof, eval_ds), "test")
            p = activations(model, ds)
        row.update(summarize(mask_hits_for(p, ds, d.get("top", 0.3), d.get("phi", 0.2))))
    atomic_write_text(cache, json.dumps(row, indent=2))
    return row


def run_rows(profile: str, artifact: str = "table1", train_missing: bool = True) -> pd.DataFrame:
    """One row per run the artifact needs: data set, arch, method, seed, hash, metrics."""
    prof = load_profile(profile)
    available = {name for name in prof["datasets"] if ensure_data(prof, name, progress=False)}
    store = RunStore()
    rows = []
    for spec in plan(prof, [artifact], available):
        if spec.backbone:
            continue  # the start of the other runs, not a row of any table
        h = spec.hash(prof)
        if not store.is_done(h):
            if not train_missing:
                continue
            store.train(spec, prof)
        ev = _evaluate(store, h, prof, _eval_dataset(prof, spec.dataset), spec.dataset)
        rows.append({"dataset": spec.dataset, "eval_dataset": _eval_dataset(prof, spec.dataset),
                     "arch": spec.arch, "method": spec.method, "seed": spec.seed, "hash": h, **ev})
    return pd.DataFrame(rows)


def _aggregate(df: pd.DataFrame, cols: list[str], by: list[str]) -> pd.DataFrame:
    cols = [c for c in cols if c in df.columns]
    g = df.groupby(by, sort=False)
    out = g[cols].mean()
    std = g[cols].std(ddof=0).add_suffix("_std")
    out = out.join(std)
    out["n_seeds"] = g.size()
    out["hashes"] = g["hash"].agg(" ".join)
    return out.reset_index()


def table1(profile: str) -> pd.DataFrame:
    """Table I: Interp, Stability, Purity, Diversity per evaluated data set × arch × method."""
    df = run_rows(profile, "table1")
    if df.empty or "interp" not in df.columns:
        return pd.DataFrame(columns=["dataset", "arch", "method", *METRICS, "n_seeds", "hashes"])
    df = df[df["eval_dataset"].notna() & df["interp"].notna()]
    out = _aggregate(df, METRICS, ["eval_dataset", "arch", "method"])
    return out.rename(columns={"eval_dataset": "dataset"})


def table2(profile: str) -> pd.DataFrame:
    """Table II: test accuracy per training data set × arch × method."""
    df = run_rows(profile, "table2")
    if df.empty:
        return pd.DataFrame(columns=["dataset", "arch", "method", "accuracy", "n_seeds", "hashes"])
    return _aggregate(df, ["accuracy"], ["dataset", "arch", "method"])


def with_paper(df: pd.DataFrame, profile: str, table: str) -> pd.DataFrame:
    """The table with the paper's published values beside ours, in columns `paper_<metric>`,
    taken from the paper's data set that each of ours stands in for (`paper_dataset`)."""
    prof = load_profile(profile)
    df = df.copy()
    df["paper_dataset"] = [prof["datasets"][d].get("paper_dataset", d) for d in df["dataset"]]
    if table == "table1":
        for m in METRICS:
            df[f"paper_{m}"] = [TABLE1.get((pd_, a, me), {}).get(m)
                                for pd_, a, me in zip(df["paper_dataset"], df["arch"], df["method"])]
    else:
        df["paper_accuracy"] = [TABLE2.get((pd_, a, me))
                                for pd_, a, me in zip(df["paper_dataset"], df["arch"], df["method"])]
    return df


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
