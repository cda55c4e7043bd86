"""What the figure and module notebooks compute (Figures 4-10, Tables III-IV, claims).

Every function takes a `Study` and returns plain data: the notebooks only plot and glue it.
Runs missing from the store are trained on the way (seconds on smoke). What is costly per
run (module tables, pruning curves, loss landscapes) is cached in the run's folder, keyed
by its arguments, the evaluated split's fingerprint and the source it depends on, so the
claims page reads what Tables III-IV and Figures 9-10 computed instead of recomputing it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .data import PartDataset
from .data.format import atomic_write_text
from .metrics.hits import filter_thresholds, landmark_distances, mask_iou, regions
from .metrics.interpretability import summarize
from .metrics.landscape import loss_landscape
from .metrics.modules import module_consistency, module_labels, module_part_alignment, part_labels
from .metrics.pruning import taylor_pruning_curve
from .probe import Probe, activations, mask_hits_for
from .provenance import source_hash
from .store import RunStore
from .study import Run, Study
from .train import load_run

__all__ = ["LoadedRun", "load", "filter_examples", "mean_maps", "landmark_curves",
           "sensitivity_table", "sensitivity_maps", "pruning_curves", "landscapes",
           "module_tables", "module_row", "pruning_curve", "landscape", "claims"]

ANALYSIS_SOURCES = ("analysis.py", "probe.py", "metrics", "data/dataset.py", "models.py")


@dataclass
class LoadedRun:
    """A finished run with its model and its probe (the interpretable layer's activations)
    on one split of its data set."""

    run: Run
    model: torch.nn.Module
    probe: Probe
    data: PartDataset


@lru_cache(maxsize=64)
def load(study: Study, run: Run, split: str = "test") -> LoadedRun:
    """A run of the study (trained here if the store lacks it), its model and its probe."""
    store = RunStore()
    store.ensure(study, run)
    model, _, _ = load_run(store.path(run.hash))
    ds = study.datasets[run.dataset].split(split)
    return LoadedRun(run, model, activations(model, ds), ds)


def _cached(study: Study, run: Run, name: str, args: dict, compute):
    """compute() once per (run, name, args, data, source); JSON in runs/<hash>/analysis-*.json."""
    key = {"name": name, "args": args, "data": study.datasets[run.dataset].fingerprint("test"),
           "source": source_hash(*ANALYSIS_SOURCES)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = RunStore().path(run.hash) / f"analysis-{name}-{digest}.json"
    if path.is_file():
        return json.loads(path.read_text())["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}))
    return value


def _main(study: Study, arch: str, method: str, seed: int = 0) -> Run:
    if study.main_dataset is None:
        raise FileNotFoundError(f"{study.path}: no mask-annotated training data set is present")
    return study.find(study.main_dataset, arch, method, seed)


def _top_phi(study: Study, run: Run) -> tuple[float, float]:
    d = study.datasets[run.dataset].spec
    return d.get("top", 0.3), d.get("phi", 0.2)


# ---------------------------------------------------------------- Figure 4 and 5
def filter_examples(study: Study, arch: str, image: int = 0,
                    quantiles: tuple[float, ...] = (0.95, 0.70, 0.30)) -> dict:
    """Per method: the filters whose best-part IoU on test image `image` sits at the given
    quantiles of all its filters' IoUs (great, good, bad), with their maps.

    Returns {"image": (3, S, S), "methods": {method: [(q, filter, iou, part, map (H, W))]}}.
    """
    out = {"methods": {}}
    for m in study.methods:
        p = load(study, _main(study, arch, m))
        t = filter_thresholds(p.probe.a, _top_phi(study, p.run)[0])
        item = p.data[image]
        a = p.probe.a[image:image + 1]
        iou = mask_iou(regions(a, t, item["image"].shape[-1]), item["masks"][None])[0]  # (N, K)
        best, part = iou.max(-1)
        order = best.argsort()
        picks = []
        for q in quantiles:
            f = int(order[min(len(order) - 1, int(round(q * (len(order) - 1))))])
            picks.append((q, f, float(best[f]), p.data.parts[int(part[f])], a[0, f]))
        out["methods"][m] = picks
        out["image"] = item["image"]
    return out


def mean_maps(study: Study, arch: str, images: list[int]) -> dict:
    """Per method: the average over all filters of the interpretable layer's maps, for each
    of the test images. Returns {"images": (n, 3, S, S), method: (n, H, W)}."""
    out = {}
    for m in study.methods:
        p = load(study, _main(study, arch, m))
        out[m] = p.probe.a[images].mean(1)
        out["images"] = torch.stack([p.data[i]["image"] for i in images])
    return out


# ---------------------------------------------------------------- Figure 6
def landmark_curves(study: Study, radii: np.ndarray | None = None) -> pd.DataFrame:
    """Metric-pair curves on landmarks: the four metrics as the assigning radius r (normalized
    image units) slides, per data set, arch and method.
    Rows: dataset, arch, method, r, interp, stability, purity, diversity."""
    radii = np.linspace(0.02, 0.4, 12) if radii is None else radii
    rows = []
    for ds in study.landmark_datasets:
        split = study.datasets[ds].spec.get("eval_split", "test")
        for arch in study.families:
            for m in study.methods:
                p = load(study, study.find(ds, arch, m, 0), split)
                if not p.data.has_landmarks:
                    raise ValueError(f"{p.data.root} has no landmarks: Figure 6 needs them")
                lm = torch.stack([torch.tensor(r["landmarks"], dtype=torch.float32) for r in p.data.rows])
                d = landmark_distances(p.probe.a, lm)  # (I, N, K)
                for r in radii:
                    rows.append({"dataset": ds, "arch": arch, "method": m, "r": float(r), **summarize(d < r)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Figures 7 and 8
def sensitivity_table(study: Study) -> pd.DataFrame:
    """Rows: param, value, interp, stability, purity, diversity, accuracy, hash."""
    rows = []
    for param, value, run in study.sensitivity():
        p = load(study, run)
        met = summarize(mask_hits_for(p.probe, p.data, *_top_phi(study, run)))
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


# ---------------------------------------------------------------- Figures 9 and 10
def pruning_curve(study: Study, run: Run, max_images: int = 400, steps: int = 32) -> dict:
    """{"removed": [...], "accuracy": [...], "n": filters} of Taylor pruning; cached per run."""
    def compute():
        p = load(study, run)
        a, y = p.probe.a[:max_images], p.probe.labels[:max_images]
        n = a.shape[1]
        removed, acc = taylor_pruning_curve(p.model.head, a, y, step=max(1, n // steps))
        return {"removed": [int(r) for r in removed], "accuracy": [float(v) for v in acc], "n": int(n)}

    return _cached(study, run, "pruning", {"max_images": max_images, "steps": steps}, compute)


def pruning_curves(study: Study, arch: str, max_images: int = 400, steps: int = 32) -> pd.DataFrame:
    """Accuracy against filters removed by Taylor pruning. Rows: method, removed, fraction, accuracy."""
    rows = []
    for m in study.methods:
        c = pruning_curve(study, _main(study, arch, m), max_images, steps)
        rows += [{"method": m, "removed": r, "fraction": r / c["n"], "accuracy": v}
                 for r, v in zip(c["removed"], c["accuracy"])]
    return pd.DataFrame(rows)


def landscape(study: Study, run: Run, images: int = 64, points: int = 9, span: float = 1.0):
    """(coords (P,), loss grid (P, P)) of the interpretable layer's loss landscape; cached per run."""
    def compute():
        p = load(study, run)
        batch = [p.data[i] for i in range(min(images, len(p.data)))]
        x = torch.stack([b["image"] for b in batch])
        y = torch.tensor([b["label"] for b in batch])
        coords, loss = loss_landscape(p.model.cpu(), x, y, span=span, points=points)
        return {"coords": [float(c) for c in coords], "loss": torch.as_tensor(loss).tolist()}

    v = _cached(study, run, "landscape", {"images": images, "points": points, "span": span}, compute)
    return np.asarray(v["coords"]), torch.tensor(v["loss"])


def landscapes(study: Study, arch: str, images: int = 64, points: int = 9, span: float = 1.0) -> dict:
    """Per method: (coords, loss grid) of the interpretable layer's loss landscape (seed 0)."""
    return {m: landscape(study, _main(study, arch, m), images, points, span) for m in study.methods}


# ---------------------------------------------------------------- Tables III and IV
def module_row(study: Study, run: Run, max_images: int = 100) -> dict:
    """Module consistency (Table III) and module-part alignment (Table IV) of one run, with
    K = the data set's number of parts; cached per run."""
    def compute():
        p = load(study, run)
        k = len(p.data.parts)
        hits = mask_hits_for(p.probe, p.data, *_top_phi(study, run))
        parts, active = part_labels(hits)
        return {"consistency": float(module_consistency(p.probe.a[:max_images], k)),
                **{k_: float(v) for k_, v in module_part_alignment(module_labels(p.probe.a, k), parts, active).items()}}

    return _cached(study, run, "modules", {"max_images": max_images}, compute)


def module_tables(study: Study, arch: str, max_images: int = 100, seeds: list[int] | None = None) -> pd.DataFrame:
    """Tables III and IV per method and seed. Rows: dataset, arch, method, seed,
    consistency, nmi, ari, avi."""
    rows = []
    for m in study.methods:
        for seed in seeds or [0]:
            run = _main(study, arch, m, seed)
            rows.append({"dataset": run.dataset, "arch": arch, "method": m, "seed": seed,
                         **module_row(study, run, max_images)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- claims
def _pm(mean: float, std: float | None, n: int, fmt: str = ".3f") -> str:
    return f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if n > 1 and std == std else "")


def claims(study: Study) -> pd.DataFrame:
    """Each qualitative claim of the paper with the paper's numbers, ours (mean ± std over the
    profile's seeds where a table has them) and whether it holds on this profile.
    Columns: claim, paper, ours, holds."""
    from .paper_values import TABLE1, TABLE2, TABLE3, TABLE4
    from .tables import STD_DDOF, table1, table2

    prof = study.profile
    arch = study.analysis["arch"]
    t1, t2 = table1(study), table2(study)
    rows = []

    def row(claim, paper, ours, holds):
        rows.append({"claim": claim, "paper": paper, "ours": ours, "holds": bool(holds)})

    if not t1.empty:
        ds = t1["dataset"].iloc[0]
        pds = prof["datasets"][ds].get("paper_dataset", ds)
        for a in prof["archs"]:
            sel = t1[(t1.dataset == ds) & (t1.arch == a)].set_index("method")
            if not {"ours", "baseline"} <= set(sel.index):
                continue
            o, b = sel.loc["ours"], sel.loc["baseline"]
            po, pb = TABLE1.get((pds, a, "ours"), {}), TABLE1.get((pds, a, "baseline"), {})
            row(f"{a}: ours has a higher mean Interp than the baseline",
                f"{po.get('interp')} vs {pb.get('interp')}",
                f"{_pm(o.interp, o.interp_std, o.n_seeds)} vs {_pm(b.interp, b.interp_std, b.n_seeds)}",
                o.interp > b.interp)
            row(f"{a}: ours is more stable (lower Stability) than the baseline",
                f"{po.get('stability')} vs {pb.get('stability')}",
                f"{_pm(o.stability, o.stability_std, o.n_seeds)} vs {_pm(b.stability, b.stability_std, b.n_seeds)}",
                o.stability < b.stability)
            if "ours_nosync" in sel.index:
                n_ = sel.loc["ours_nosync"]
                pn = TABLE1.get((pds, a, "ours_nosync"), {})
                row(f"{a}: ours w/o sync has the highest Interp but a lower Diversity than ours",
                    f"Interp {pn.get('interp')} vs {po.get('interp')}; Diversity {pn.get('diversity')} vs {po.get('diversity')}",
                    f"Interp {_pm(n_.interp, n_.interp_std, n_.n_seeds)} vs {_pm(o.interp, o.interp_std, o.n_seeds)}; "
                    f"Diversity {_pm(n_.diversity, n_.diversity_std, n_.n_seeds)} vs {_pm(o.diversity, o.diversity_std, o.n_seeds)}",
                    n_.interp >= sel.interp.max() and n_.diversity < o.diversity)
    if not t2.empty:
        ds = t2["dataset"].iloc[0]
        pds = prof["datasets"][ds].get("paper_dataset", ds)
        for a in prof["archs"]:
            sel = t2[(t2.dataset == ds) & (t2.arch == a)].set_index("method")
            if not {"ours", "baseline"} <= set(sel.index):
                continue
            o, b = sel.loc["ours"], sel.loc["baseline"]
            po, pb = TABLE2.get((pds, a, "ours")), TABLE2.get((pds, a, "baseline"))
            row(f"{a}: ours' accuracy is within a point of the baseline's (or above it)",
                f"{po:.2%} vs {pb:.2%}" if po and pb else "n/a",
                f"{_pm(100 * o.accuracy, 100 * o.accuracy_std, o.n_seeds, '.2f')} % vs "
                f"{_pm(100 * b.accuracy, 100 * b.accuracy_std, b.n_seeds, '.2f')} %",
                o.accuracy >= b.accuracy - 0.01)
    a_cfg = study.analysis
    if study.main_dataset is None:  # the module, pruning and landscape claims need a mask data set
        return pd.DataFrame(rows, columns=["claim", "paper", "ours", "holds"])
    mt = module_tables(study, arch, a_cfg.get("module_images", 100), study.seeds)
    g = mt.groupby("method")
    mean, std, n = g.mean(numeric_only=True), g.std(ddof=STD_DDOF, numeric_only=True), g.size()
    if {"ours", "baseline", "ours_nosync"} <= set(mean.index):
        c = mean["consistency"]
        row(f"{arch}: module consistency ranks ours w/o sync < ours < baseline (lower is better)",
            " < ".join(f"{TABLE3[('voc_part', m)]}" for m in ("ours_nosync", "ours", "baseline")) + " (VOC Part)",
            " < ".join(f"{m} {_pm(c[m], std.loc[m, 'consistency'], n[m])}" for m in ("ours_nosync", "ours", "baseline")),
            c["ours_nosync"] < c["ours"] < c["baseline"])
        row(f"{arch}: ours' modules align with parts better than the baseline's (NMI, ARI, AVI)",
            ", ".join(f"{k.upper()} {TABLE4['ours'][k]} vs {TABLE4['baseline'][k]}" for k in ("nmi", "ari", "avi")),
            ", ".join(f"{k.upper()} {_pm(mean.loc['ours', k], std.loc['ours', k], n['ours'])} vs "
                      f"{_pm(mean.loc['baseline', k], std.loc['baseline', k], n['baseline'])}" for k in ("nmi", "ari", "avi")),
            all(mean.loc["ours", k] > mean.loc["baseline", k] for k in ("nmi", "ari", "avi")))
    pr = pruning_curves(study, arch, steps=a_cfg.get("pruning_steps", 32))
    auc = pr.groupby("method")["accuracy"].mean()
    if {"ours", "baseline"} <= set(auc.index):
        row(f"{arch}: ours keeps its accuracy longer under Taylor pruning (mean accuracy over the curve)",
            "qualitative (Fig. 9)", f"{auc['ours']:.3f} vs {auc['baseline']:.3f} (seed 0)",
            auc["ours"] > auc["baseline"])
    ls = landscapes(study, arch, a_cfg.get("landscape_images", 64), a_cfg.get("landscape_points", 9))
    if {"ours", "baseline"} <= set(ls):
        lo, lb = float(ls["ours"][1].mean()), float(ls["baseline"][1].mean())
        row(f"{arch}: ours has a lower loss landscape than the baseline (mean loss over the grid)",
            "qualitative (Fig. 10)", f"{lo:.4f} vs {lb:.4f} (seed 0)", lo < lb)
    return pd.DataFrame(rows, columns=["claim", "paper", "ours", "holds"])
