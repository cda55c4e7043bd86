"""What the figure and module notebooks compute (Figures 4-10, Tables III-IV, claims).

Every function takes a profile (name or path) and returns plain data: the notebooks only
plot and glue it. Runs missing from the store are trained on the way (seconds on smoke).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .data import PartDataset
from .metrics.hits import filter_thresholds, landmark_distances, mask_iou, regions
from .metrics.interpretability import summarize
from .metrics.landscape import loss_landscape
from .metrics.modules import module_consistency, module_labels, module_part_alignment, part_labels
from .metrics.pruning import taylor_pruning_curve
from .probe import Probe, activations, mask_hits_for
from .runs import (
    RunSpec,
    RunStore,
    dataset_root,
    ensure_data,
    landmark_datasets,
    load_profile,
    sensitivity_specs,
)
from .train import load_run

__all__ = ["Probed", "probed", "main_dataset", "filter_examples", "mean_maps", "landmark_curves",
           "sensitivity_specs", "sensitivity_table", "sensitivity_maps", "pruning_curves",
           "landscapes", "module_tables", "analysis_methods"]


@dataclass
class Probed:
    spec: RunSpec
    hash: str
    model: torch.nn.Module
    probe: Probe
    data: PartDataset


def main_dataset(profile: str) -> str:
    """The first training data set of the profile that has part masks (the analyses' data)."""
    prof = load_profile(profile)
    for name, d in prof["datasets"].items():
        if d.get("train", True) and d.get("protocol") == "masks" and ensure_data(prof, name, progress=False):
            return name
    raise FileNotFoundError(f"profile {profile}: no mask-annotated training data set is present")


def analysis_methods(profile: str) -> list[str]:
    return list(load_profile(profile)["methods"])


@lru_cache(maxsize=64)
def probed(profile: str, spec: RunSpec, split: str = "test") -> Probed:
    """A run of the store (trained if missing), its model and its activations on `split`."""
    prof = load_profile(profile)
    store = RunStore()
    h = spec.hash(prof)
    store.train(spec, prof)
    model, _, _ = load_run(store.path(h))
    ds = PartDataset(dataset_root(prof, spec.dataset), split)
    return Probed(spec, h, model, activations(model, ds), ds)


def _spec(profile: str, arch: str, method: str, seed: int = 0, params: tuple = ()) -> RunSpec:
    return RunSpec(main_dataset(profile), arch, method, seed, params)


# ---------------------------------------------------------------- Figure 4 and 5
def filter_examples(profile: str, arch: str, image: int = 0,
                    quantiles: tuple[float, ...] = (0.95, 0.70, 0.30)) -> dict:
    """Per method: the filters whose best-part IoU on test image `image` sits at the given
    quantiles of all its filters' IoUs (great, good, bad), with their maps.

    Returns {"image": (3, S, S), "methods": {method: [(q, filter, iou, part, map (H, W))]}}.
    """
    out = {"methods": {}}
    for m in analysis_methods(profile):
        p = probed(profile, _spec(profile, arch, m))
        t = filter_thresholds(p.probe.a, load_profile(profile)["datasets"][p.spec.dataset].get("top", 0.3))
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


def mean_maps(profile: str, arch: str, images: list[int]) -> dict:
    """Per method: the average over all filters of the interpretable layer's maps, for each
    of the test images. Returns {"images": (n, 3, S, S), method: (n, H, W)}."""
    out = {}
    for m in analysis_methods(profile):
        p = probed(profile, _spec(profile, arch, m))
        out[m] = p.probe.a[images].mean(1)
        out["images"] = torch.stack([p.data[i]["image"] for i in images])
    return out


# ---------------------------------------------------------------- Figure 6
def landmark_curves(profile: str, radii: np.ndarray | None = None) -> pd.DataFrame:
    """Metric-pair curves on landmarks: the four metrics as the assigning radius r (normalized
    image units) slides, per data set, arch and method.
    Rows: dataset, arch, method, r, interp, stability, purity, diversity."""
    radii = np.linspace(0.02, 0.4, 12) if radii is None else radii
    prof = load_profile(profile)
    rows = []
    for ds in landmark_datasets(prof):
        if not ensure_data(prof, ds, progress=False):
            continue
        split = prof["datasets"][ds].get("eval_split", "test")
        for arch in prof["archs"]:
            for m in analysis_methods(profile):
                p = probed(profile, RunSpec(ds, arch, m, 0), split)
                if not p.data.has_landmarks:
                    raise ValueError(f"{p.data.root} has no landmarks: Figure 6 needs them")
                lm = torch.stack([torch.tensor(r["landmarks"], dtype=torch.float32) for r in p.data.rows])
                d = landmark_distances(p.probe.a, lm)  # (I, N, K)
                for r in radii:
                    rows.append({"dataset": ds, "arch": arch, "method": m, "r": float(r), **summarize(d < r)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Figures 7 and 8
def sensitivity_table(profile: str) -> pd.DataFrame:
    """Rows: param, value, interp, stability, purity, diversity, accuracy, hash."""
    prof = load_profile(profile)
    rows = []
    for spec in sensitivity_specs(prof):
        p = probed(profile, spec)
        d = prof["datasets"][spec.dataset]
        met = summarize(mask_hits_for(p.probe, p.data, d.get("top", 0.3), d.get("phi", 0.2)))
        (param, value), = spec.params
        rows.append({"param": param, "value": value, **met, "accuracy": p.probe.accuracy, "hash": p.hash})
    return pd.DataFrame(rows)


def sensitivity_maps(profile: str, image: int = 0) -> pd.DataFrame:
    """The average filter map on one test image per setting. Rows: param, value, map."""
    rows = []
    for spec in sensitivity_specs(load_profile(profile)):
        p = probed(profile, spec)
        (param, value), = spec.params
        rows.append({"param": param, "value": value, "map": p.probe.a[image].mean(0),
                     "image": p.data[image]["image"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Figures 9 and 10
def pruning_curves(profile: str, arch: str, max_images: int = 400, steps: int = 32) -> pd.DataFrame:
    """Accuracy against filters removed by Taylor pruning. Rows: method, removed, fraction, accuracy."""
    rows = []
    for m in analysis_methods(profile):
        p = probed(profile, _spec(profile, arch, m))
        a, y = p.probe.a[:max_images], p.probe.labels[:max_images]
        n = a.shape[1]
        removed, acc = taylor_pruning_curve(p.model.head, a, y, step=max(1, n // steps))
        rows += [{"method": m, "removed": r, "fraction": r / n, "accuracy": v} for r, v in zip(removed, acc)]
    return pd.DataFrame(rows)


def landscapes(profile: str, arch: str, images: int = 64, points: int = 9, span: float = 1.0) -> dict:
    """Per method: (coords, loss grid) of the interpretable layer's loss landscape."""
    out = {}
    for m in analysis_methods(profile):
        p = probed(profile, _spec(profile, arch, m))
        batch = [p.data[i] for i in range(min(images, len(p.data)))]
        x = torch.stack([b["image"] for b in batch])
        y = torch.tensor([b["label"] for b in batch])
        out[m] = loss_landscape(p.model.cpu(), x, y, span=span, points=points)
    return out


# ---------------------------------------------------------------- Tables III and IV
def module_tables(profile: str, arch: str, max_images: int = 100, seeds: list[int] | None = None) -> pd.DataFrame:
    """Module consistency (Table III) and module-part alignment (Table IV) per method and
    seed, with K = the data set's number of parts. Rows: dataset, arch, method, seed,
    consistency, nmi, ari, avi."""
    prof = load_profile(profile)
    seeds = seeds or [0]
    rows = []
    for m in analysis_methods(profile):
        for seed in seeds:
            p = probed(profile, _spec(profile, arch, m, seed))
            d = prof["datasets"][p.spec.dataset]
            k = len(p.data.parts)
            a = p.probe.a[:max_images]
            hits = mask_hits_for(p.probe, p.data, d.get("top", 0.3), d.get("phi", 0.2))
            parts, active = part_labels(hits)
            rows.append({"dataset": p.spec.dataset, "arch": arch, "method": m, "seed": seed,
                         "consistency": module_consistency(a, k),
                         **module_part_alignment(module_labels(p.probe.a, k), parts, active)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- claims
def _pm(mean: float, std: float | None, n: int, fmt: str = ".3f") -> str:
    return f"{mean:{fmt}}" + (f" ± {std:{fmt}}" if n > 1 and std == std else "")


def claims(profile: str) -> pd.DataFrame:
    """Each qualitative claim of the paper with the paper's numbers, ours (mean ± std over the
    profile's seeds where a table has them) and whether it holds on this profile.
    Columns: claim, paper, ours, holds."""
    from .paper_values import TABLE1, TABLE2, TABLE3, TABLE4
    from .results import table1, table2

    prof = load_profile(profile)
    arch = prof.get("analysis", {}).get("arch", "vgg16")
    t1, t2 = table1(profile), table2(profile)
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
    a_cfg = prof.get("analysis", {})
    try:
        main_dataset(profile)
    except FileNotFoundError:  # the module, pruning and landscape claims need a mask data set
        return pd.DataFrame(rows, columns=["claim", "paper", "ours", "holds"])
    mt = module_tables(profile, arch, a_cfg.get("module_images", 100), prof["seeds"])
    g = mt.groupby("method")
    mean, std, n = g.mean(numeric_only=True), g.std(ddof=0, numeric_only=True), g.size()
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
    pr = pruning_curves(profile, arch, steps=a_cfg.get("pruning_steps", 32))
    auc = pr.groupby("method")["accuracy"].mean()
    if {"ours", "baseline"} <= set(auc.index):
        row(f"{arch}: ours keeps its accuracy longer under Taylor pruning (mean accuracy over the curve)",
            "qualitative (Fig. 9)", f"{auc['ours']:.3f} vs {auc['baseline']:.3f} (seed 0)",
            auc["ours"] > auc["baseline"])
    ls = landscapes(profile, arch, a_cfg.get("landscape_images", 64), a_cfg.get("landscape_points", 9))
    if {"ours", "baseline"} <= set(ls):
        lo, lb = float(ls["ours"][1].mean()), float(ls["baseline"][1].mean())
        row(f"{arch}: ours has a lower loss landscape than the baseline (mean loss over the grid)",
            "qualitative (Fig. 10)", f"{lo:.4f} vs {lb:.4f} (seed 0)", lo < lb)
    return pd.DataFrame(rows, columns=["claim", "paper", "ours", "holds"])
