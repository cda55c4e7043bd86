"""The instrument, checked: can the metrics see interpretable filters when they exist?

On a data set whose part masks are known (PartWorld, VOC Part), three networks bracket the
paper's methods, each measured exactly as Table I measures a run (`tables.eval_sets`):

- **positive**: the `parts_control` method, whose filter f is trained to fire on part f mod K
  (`synclib.methods.control`); Interp should be near 1 and Stability near 0;
- **shuffled**: the same network with its interpretable layer's weights permuted at random (the
  layer's weight distribution kept, its structure gone);
- **init**: the same network with its interpretable layer re-initialized (Kaiming normal, as
  torchvision initializes a conv), the layer a network starts from;
- **oracle**: no network at all: each part's own coverage of the map's cells taken as a
  filter's activations (one filter per part), at the map size the networks have, and at twice
  it. It is the best any filter could score at that resolution: the instrument's ceiling.

`position` places each of the paper's methods between the controls, metric by metric:
(method − negative) / (positive − negative), with the better of the two negatives as 0, so 0
is what a layer without structure scores and 1 what a layer taught the parts scores (for
Stability, where lower is better, the same formula holds). `separated` says whether the
positive control beats both negatives on every metric: if it does not, the metrics or the
evaluation have a defect.

`instrument_limits` says where such a defect can come from on a data set: a region that covers a
fraction `top` of an image reaches an IoU of at most a / top with a part covering a fraction a of
it, so with φ = 0.2 and `top` = 0.3 a filter whose region is its usual size can hit a part only
if the part covers more than φ · top = 6 % of the image. It gives the parts' sizes and the
ceiling at other `top` fractions.
"""

from __future__ import annotations

import copy

import pandas as pd
import torch

from .analysis.runs import cached, load
from .evaluate import evaluate
from .methods.control import part_targets
from .metrics import filter_thresholds, mask_hits, summarize
from .study import Run, Study
from .tables import HIGHER_IS_BETTER, METRICS, SMALL_TOP, aggregate, eval_sets, run_rows, table1

__all__ = ["CONTROL", "NEGATIVES", "SMALL_TOP", "control_run", "controls", "control_positions", "oracle_metrics", "part_sizes",
           "instrument_limits"]

ROOM = "controls.py"
CONTROL = "parts_control"
#: How the negative controls change the positive control's interpretable layer.
NEGATIVES = ("shuffled", "init")


def control_run(study: Study, arch: str, seed: int = 0) -> Run:
    """The positive control's run on the study's main data set (the one with part masks)."""
    if study.main_dataset is None:
        raise FileNotFoundError(f"{study.path}: the controls need a training data set with part masks")
    return study.find(study.main_dataset, arch, CONTROL, seed)


def _altered(model: torch.nn.Module, how: str, seed: int) -> torch.nn.Module:
    """A copy of `model` whose interpretable layer is `how` ("trained": as it is, "shuffled",
    "init"); the draws come from a generator seeded by `seed`."""
    model = copy.deepcopy(model)
    w = model.interpretable_layer.weight
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if how == "shuffled":
            flat = w.detach().flatten()
            w.copy_(flat[torch.randperm(flat.numel(), generator=g)].view_as(w))
        elif how == "init":
            fan_out = w.shape[0] * w[0, 0].numel()
            w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_out) ** 0.5)
            if model.interpretable_layer.bias is not None:
                model.interpretable_layer.bias.zero_()
        elif how != "trained":
            raise ValueError(f"unknown control {how!r}; known: trained, {', '.join(NEGATIVES)}")
    return model


def _measure(study: Study, run: Run, how: str, top: float | None = None) -> dict:
    """Table I's four metrics and the accuracy of the control network `how` (with the profile's
    `top`, or this one); cached per run."""
    def compute():
        p = load(study, run)
        _, test_set, eval_set, run_top, phi = eval_sets(study, run)
        return evaluate(_altered(p.model, how, run.seed), test_set, eval_set, run_top if top is None else top, phi)

    return cached(study, run, "control", {"how": how} if top is None else {"how": how, "top": top}, compute, ROOM)


def oracle_metrics(masks: torch.Tensor, size: tuple[int, int], top: float = 0.3, phi: float = 0.2,
                   batch_size: int = 64) -> dict:
    """The four metrics of ideal filters: one per part, whose (h, w) map is the part's coverage of
    each cell, from masks (I, K, S, S) bool; measured as any network's maps are."""
    a = part_targets(masks, size, channels=masks.shape[1])  # (I, K, h, w)
    t = filter_thresholds(a, top)
    hits = torch.cat([mask_hits(a[s:s + batch_size], masks[s:s + batch_size], t, phi)
                      for s in range(0, len(a), batch_size)])
    return summarize(hits)


def part_sizes(masks: torch.Tensor) -> torch.Tensor:
    """The share of its image each present part covers: masks (I, K, S, S) bool -> (n,) over
    the (image, part) pairs whose mask is not empty."""
    share = masks.flatten(2).float().mean(-1)  # (I, K)
    return share[masks.flatten(2).any(-1)]


def instrument_limits(study: Study, arch: str, tops: tuple[float, ...] = (SMALL_TOP,), seed: int = 0) -> dict:
    """Where the instrument can see parts at all, on the split Table I reads: the parts' sizes
    (mean, median, and the share of parts larger than φ · top, the smallest a region of `top`
    of the image can hit), and the ceiling (`oracle_metrics` at the networks' map size) at the
    profile's `top` and at each of `tops`. Cached with the positive control's run."""
    run = control_run(study, arch, seed)

    def compute():
        p = load(study, run)
        _, _, eval_set, top, phi = eval_sets(study, run)
        masks = torch.stack([eval_set[i]["masks"] for i in range(len(eval_set))])
        sizes = part_sizes(masks)
        size = tuple(p.probe.a.shape[-2:])
        return {"top": top, "phi": phi, "bound": top * phi, "map": "×".join(map(str, size)),
                "part_mean": float(sizes.mean()), "part_median": float(sizes.median()),
                "part_above_bound": float((sizes > top * phi).float().mean()),
                "ceiling": {str(t): oracle_metrics(masks, size, t, phi) for t in dict.fromkeys((top, *tops))}}

    return cached(study, run, "limits", {"tops": list(tops)}, compute, ROOM)


def _oracle(study: Study, run: Run, scale: int, top: float | None = None) -> dict:
    """`oracle_metrics` at `scale` times the run's map size, on the split Table I reads (with the
    profile's `top`, or this one); cached."""
    def compute():
        p = load(study, run)
        _, _, eval_set, run_top, phi = eval_sets(study, run)
        masks = torch.stack([eval_set[i]["masks"] for i in range(len(eval_set))])
        h, w = p.probe.a.shape[-2:]
        return {**oracle_metrics(masks, (h * scale, w * scale), run_top if top is None else top, phi),
                "map": f"{h * scale}×{w * scale}"}

    return cached(study, run, "oracle", {"scale": scale} if top is None else {"scale": scale, "top": top},
                  compute, ROOM)


def controls(study: Study, arch: str, seed: int = 0, top: float | None = None) -> pd.DataFrame:
    """The ceiling (the oracle at the networks' map size and at twice it), the three controls and
    the paper's methods (Table I's means over seeds) on the main data set: one row each, with
    accuracy and the four metrics; `kind` is ceiling, control or method. Every network is
    measured with the profile's `top` (Table I's instrument) or, given, this one (the same
    networks under a region a small part can fill)."""
    run = control_run(study, arch, seed)
    rows = [{"kind": "ceiling", "method": f"oracle ×{scale}", "n_seeds": 1, **_oracle(study, run, scale, top)}
            for scale in (1, 2)]
    rows += [{"kind": "control", "method": name, "n_seeds": 1, **_measure(study, run, how, top)}
             for how, name in (("trained", "positive"), ("shuffled", "shuffled"), ("init", "init"))]
    if top is None:
        t1 = table1(study)
    else:  # Table I's runs measured again with this `top` (each evaluation cached in its run)
        df = run_rows(study, "table1", train_missing=False, top=top)
        if "interp" in df.columns:
            df = df[df["eval_dataset"].notna() & df["interp"].notna()]
            t1 = aggregate(df, METRICS, ["eval_dataset", "arch", "method"]).rename(columns={"eval_dataset": "dataset"})
        else:
            t1 = pd.DataFrame(columns=["dataset", "arch", "method", *METRICS, "n_seeds"])
    t1 = t1[(t1["dataset"] == study.main_dataset) & (t1["arch"] == arch)]
    for _, r in t1.iterrows():
        rows.append({"kind": "method", "method": r["method"], "n_seeds": int(r["n_seeds"]),
                     **{m: float(r[m]) for m in METRICS}})
    return pd.DataFrame(rows)


def control_positions(frame: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """(each method's position between the controls per metric, whether the controls separate).

    position = (method − negative) / (positive − negative), the negative being the better of
    the two negative controls on that metric; NaN where the controls do not separate on it."""
    ctl = frame[frame["kind"] == "control"].set_index("method")
    pos = {}
    separated = True
    for m in METRICS:
        sign = 1.0 if HIGHER_IS_BETTER[m] else -1.0
        positive = ctl.loc["positive", m]
        negative = max((ctl.loc[n, m] for n in NEGATIVES), key=lambda v: sign * v)
        gap = sign * (positive - negative)
        separated &= bool(gap > 0)
        pos[m] = (frame[m] - negative) / (positive - negative) if gap > 0 else float("nan")
    out = frame[["kind", "method"]].assign(**pos)
    return out, separated
