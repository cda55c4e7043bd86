"""What the figure and module notebooks compute (Figures 4-10, Tables III-IV, claims).

Every function takes a `Study` and returns plain data: the notebooks only plot and glue it.
Runs missing from the store are trained on the way (seconds on smoke). What is costly per
run (module tables, pruning curves, loss landscapes) is cached in the run's folder, keyed
by its arguments, the evaluated split's fingerprint and the source it depends on, so the
claims page reads what Tables III-IV and Figures 9-10 computed instead of recomputing it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .data import PartDataset
from .data.format import atomic_write_text
from .devices import pick_device
from .files import read_json
from .metrics.hits import filter_thresholds, landmark_distances, mask_iou, regions
from .metrics.interpretability import summarize
from .metrics.landscape import loss_landscape, roughness
from .metrics.modules import module_consistency, module_labels, module_part_alignment, part_labels
from .metrics.pruning import pruning_auc, taylor_pruning_curve
from .probe import Probe, activations, mask_hits_for
from .provenance import source_hash
from .store import RunStore
from .study import Run, Study, reading_row
from .train import load_run

__all__ = ["LoadedRun", "load", "filter_examples", "mean_maps", "landmark_curves",
           "sensitivity_table", "sensitivity_maps", "pruning_curves", "landscapes",
           "module_tables", "module_row", "pruning_curve", "landscape", "landscape_table", "at_equal_interp",
           "claims", "claims_all", "table_claims", "verdict_changes", "verdict_table", "CLAIM_COLUMNS"]

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
    """A run of the study (trained here if the store lacks it), its model and its probe.

    The probe runs on the accelerator when there is one (in float32); the model is then
    handed back on the CPU, beside the probe's CPU tensors, so no analysis can mix devices.
    An analysis that wants the accelerator (the loss landscape) moves model and data itself.
    """
    store = RunStore()
    store.ensure(study, run)
    with store.naming(run):
        model, _, _ = load_run(store.path(run.hash))
    ds = study.datasets[run.dataset].split(split)
    probe = activations(model, ds)
    return LoadedRun(run, model.cpu(), probe, ds)


def _cached(study: Study, run: Run, name: str, args: dict, compute):
    """compute() once per (run, name, args, data, source); JSON in runs/<hash>/analysis-*.json."""
    ds = study.datasets[run.dataset]
    key = {"name": name, "args": args, "data": ds.fingerprint("test"), "train_data": ds.fingerprint("train"),
           "source": source_hash(*ANALYSIS_SOURCES)}  # pruning ranks filters on training images
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = RunStore().path(run.hash) / f"analysis-{name}-{digest}.json"
    if path.is_file():
        return read_json(path, keys=("value",), what="a cached analysis")["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}))
    return value


def _main(study: Study, arch: str, row: str, seed: int = 0, dataset: str | None = None) -> Run:
    """The run of a table row (`ours`, `ours_mean`, ...) on the main data set (or `dataset`)."""
    if dataset is None and study.main_dataset is None:
        raise FileNotFoundError(f"{study.path}: no mask-annotated training data set is present")
    return study.find_row(dataset or study.main_dataset, arch, row, seed)


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
    for m in study.methods_for(arch):
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
    for m in study.methods_for(arch):
        p = load(study, _main(study, arch, m))
        out[m] = p.probe.a[images].mean(1)
        out["images"] = torch.stack([p.data[i]["image"] for i in images])
    return out


# ---------------------------------------------------------------- Figure 6
def landmark_curves(study: Study, radii: np.ndarray | None = None, seeds: list[int] | None = None,
                    rows: list[str] | None = None) -> pd.DataFrame:
    """Metric-pair curves on landmarks: the four metrics as the assigning radius r (normalized
    image units) slides, per data set, arch, row and seed (default seed 0).
    Rows: dataset, arch, method, seed, r, interp, stability, purity, diversity."""
    radii = np.linspace(0.02, 0.4, 12) if radii is None else radii
    out = []
    for ds in study.landmark_datasets:
        split = study.datasets[ds].spec.get("eval_split", "test")
        for arch in study.families:
            for m in study.methods_for(arch, ds, rows):
                for seed in seeds or [0]:
                    p = load(study, study.find_row(ds, arch, m, seed), split)
                    if not p.data.has_landmarks:
                        raise ValueError(f"{p.data.root} has no landmarks: Figure 6 needs them")
                    lm = torch.stack([torch.tensor(r["landmarks"], dtype=torch.float32) for r in p.data.rows])
                    d = landmark_distances(p.probe.a, lm)  # (I, N, K)
                    for r in radii:
                        out.append({"dataset": ds, "arch": arch, "method": m, "seed": seed, "r": float(r),
                                    **summarize(d < r)})
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


# ---------------------------------------------------------------- Figures 7 and 8
def sensitivity_table(study: Study, reading: str = "printed") -> pd.DataFrame:
    """Rows: param, value, interp, stability, purity, diversity, accuracy, hash."""
    rows = []
    for param, value, run in study.sensitivity(reading):
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
    """{"removed": [...], "accuracy": [...], "n": filters, "auc": normalized area} of Taylor
    pruning: filters ranked on (at most `max_images`) training images, accuracy measured on
    the test images; cached per run."""
    def compute():
        p = load(study, run)
        train = study.datasets[run.dataset].split("train")
        ranked = activations(p.model, torch.utils.data.Subset(train, range(min(max_images, len(train)))), device="cpu")
        n = p.probe.a.shape[1]
        removed, acc = taylor_pruning_curve(p.model.head, ranked.a, ranked.labels, max(1, n // steps),
                                            p.probe.a, p.probe.labels)
        return {"removed": [int(r) for r in removed], "accuracy": [float(v) for v in acc], "n": int(n),
                "auc": pruning_auc(removed, acc, n)}

    return _cached(study, run, "pruning", {"max_images": max_images, "steps": steps, "rank": "train"}, compute)


def pruning_curves(study: Study, arch: str, max_images: int = 400, steps: int = 32,
                   seeds: list[int] | None = None, rows: list[str] | None = None) -> pd.DataFrame:
    """Accuracy against filters removed by Taylor pruning.
    Rows: method, seed, removed, fraction, accuracy, auc (the run's normalized area)."""
    out = []
    for m in study.methods_for(arch, None, rows or study.analysis_methods):
        for seed in seeds or [0]:
            c = pruning_curve(study, _main(study, arch, m, seed), max_images, steps)
            out += [{"method": m, "seed": seed, "removed": r, "fraction": r / c["n"], "accuracy": v, "auc": c["auc"]}
                    for r, v in zip(c["removed"], c["accuracy"])]
    return pd.DataFrame(out)


def landscape(study: Study, run: Run, images: int = 64, points: int = 9, span: float = 1.0):
    """(coords (P,), loss grid (P, P)) of the interpretable layer's loss landscape; cached per run."""
    def compute():
        p = load(study, run)
        batch = [p.data[i] for i in range(min(images, len(p.data)))]
        dev = pick_device()
        x = torch.stack([b["image"] for b in batch]).to(dev)
        y = torch.tensor([b["label"] for b in batch]).to(dev)
        model = copy.deepcopy(p.model).to(dev)  # the loaded run's model stays on the CPU
        coords, loss = loss_landscape(model, x, y, span=span, points=points)
        return {"coords": [float(c) for c in coords], "loss": torch.as_tensor(loss).cpu().tolist()}

    v = _cached(study, run, "landscape", {"images": images, "points": points, "span": span}, compute)
    return np.asarray(v["coords"]), torch.tensor(v["loss"])


def landscapes(study: Study, arch: str, images: int = 64, points: int = 9, span: float = 1.0,
               seed: int = 0) -> dict:
    """Per method: (coords, loss grid) of the interpretable layer's loss landscape."""
    return {m: landscape(study, _main(study, arch, m, seed), images, points, span)
            for m in study.methods_for(arch, None, study.analysis_methods)}


def landscape_table(study: Study, arch: str, images: int = 64, points: int = 9, span: float = 1.0,
                    seeds: list[int] | None = None, rows: list[str] | None = None) -> pd.DataFrame:
    """Per row and seed: the landscape's mean loss ("lower") and its roughness ("smoother":
    mean |discrete Laplacian| / mean loss). Rows: method, seed, mean_loss, roughness."""
    out = []
    for m in study.methods_for(arch, None, rows or study.analysis_methods):
        for seed in seeds or [0]:
            _, loss = landscape(study, _main(study, arch, m, seed), images, points, span)
            out.append({"method": m, "seed": seed, "mean_loss": float(loss.mean()), "roughness": roughness(loss)})
    return pd.DataFrame(out)


# ---------------------------------------------------------------- Tables III and IV
def module_row(study: Study, run: Run, max_images: int = 100) -> dict:
    """Module consistency (Table III) and module-part alignment (Table IV) of one run, with
    K = the data set's number of parts; cached per run."""
    def compute():
        p = load(study, run)
        k = len(p.data.parts)
        row = {"consistency": float(module_consistency(p.probe.a[:max_images], k)),
               "nmi": float("nan"), "ari": float("nan"), "avi": float("nan")}
        if p.data.has_masks:  # Table IV needs parts in pixels; Table III needs none
            hits = mask_hits_for(p.probe, p.data, *_top_phi(study, run))
            parts, active = part_labels(hits)
            row.update({k_: float(v) for k_, v in
                        module_part_alignment(module_labels(p.probe.a, k), parts, active).items()})
        return row

    return _cached(study, run, "modules", {"max_images": max_images}, compute)


def module_tables(study: Study, arch: str, max_images: int = 100, seeds: list[int] | None = None,
                  rows: list[str] | None = None, datasets: list[str] | None = None) -> pd.DataFrame:
    """Tables III and IV per data set, row and seed (default: every training data set of the
    study with parts, as the paper's four columns). Rows: dataset, arch, method, seed,
    consistency, nmi, ari, avi (NaN without part masks)."""
    out = []
    for ds in datasets or study.module_datasets:
        for m in study.methods_for(arch, ds, rows or study.analysis_methods):
            for seed in seeds or [0]:
                run = _main(study, arch, m, seed, ds)
                out.append({"dataset": run.dataset, "arch": arch, "method": m, "seed": seed,
                            **module_row(study, run, max_images)})
    return pd.DataFrame(out)


# ---------------------------------------------------------------- claims
#: The comparison methods, in the paper's order (Table I's rows).
RIVALS = ("csgcnn", "decoup", "cw", "iccnn", "icnn")
CLAIM_COLUMNS = ["claim", "reading", "paper", "ours", "effect", "interval", "p", "verdict", "note"]


def _pm(x) -> str:
    """mean ± sample std (n) of the finite values of x."""
    from .tables import STD_DDOF

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
    from . import verdicts as V

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
    from . import verdicts as V
    from .paper_values import METHOD_LABELS, TABLE1, TABLE2

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
    from . import verdicts as V
    from .paper_values import TABLE3, TABLE4
    from .tables import run_rows

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
