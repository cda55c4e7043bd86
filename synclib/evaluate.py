"""One evaluation path, for the CLI and the book: a run's Table I row and Table II accuracy.

`evaluate(model, test_set, eval_set, top, phi)` computes; `evaluate_run(run_dir, ...)` loads
a finished run and caches the result in its folder, keyed by what it depends on: the
evaluated splits' fingerprints, the protocol's `top` and `phi`, and the source of the probe,
the hits and the metrics (so a fix there recomputes, and nothing else does).

`run_probe(run_dir, split)` is a finished run's probe (the interpretable layer's maps and the
logits) on a split: the test split's is kept in the run's folder, so the evaluation and every
analysis of the run share one pass of the network over the images (each page of the book
runs in its own process, and most read the test split's probe of the same runs).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
import torchvision

from .data import PartDataset
from .files import RECOMPUTE, atomic_write_bytes, atomic_write_text, file_lock, key_digest, load_torch, read_json
from .metrics.interpretability import summarize
from .probe import Probe, activations, mask_hits_for
from .provenance import source_hash
from .train import load_run

__all__ = ["evaluate", "evaluate_tops", "evaluate_run", "run_probe", "torchvision_model", "imagenet_normalize",
           "EVAL_SOURCES", "PROBE_SOURCES"]

EVAL_SOURCES = ("probe.py", "evaluate.py", "metrics/hits.py", "metrics/interpretability.py", "data/dataset.py")
#: What a run's cached probe depends on besides the run's weights and the split's images.
PROBE_SOURCES = ("probe.py", "models.py", "data/dataset.py")


def evaluate(model, test_set: PartDataset, eval_set: PartDataset | None = None, top: float = 0.3,
             phi: float = 0.2, device=None, progress: bool = False) -> dict:
    """{"accuracy"} on `test_set`, plus Interp, Stability, Purity and Diversity (mask protocol)
    on `eval_set` when it has part masks (`eval_set` may be `test_set` itself)."""
    return evaluate_tops(model, test_set, eval_set, (top,), phi, device=device, progress=progress)[top]


def evaluate_tops(model, test_set: PartDataset, eval_set: PartDataset | None = None, tops: tuple[float, ...] = (0.3,),
                  phi: float = 0.2, device=None, progress: bool = False) -> dict[float, dict]:
    """`evaluate` with each of `tops`, the network run over the images once: {top: row}."""
    probe = lambda ds: activations(model, ds, device=device, progress=progress)  # noqa: E731
    return _rows(probe, test_set, eval_set, tops, phi)


def _rows(probe, test_set: PartDataset, eval_set: PartDataset | None, tops: tuple[float, ...], phi: float):
    """{top: row} from `probe(split)`, the network's probe on a split."""
    p = probe(test_set)
    rows = {t: {"accuracy": p.accuracy} for t in tops}
    if eval_set is not None and eval_set.has_masks:
        if eval_set is not test_set:
            p = probe(eval_set)
        for t in tops:
            rows[t].update(summarize(mask_hits_for(p, eval_set, t, phi)))
    return rows


def run_probe(run_dir: str | Path, dataset: PartDataset, model=None, device=None, progress: bool = False) -> Probe:
    """`activations` of the finished run in `run_dir` on `dataset` (`model`: the run's network,
    when the caller has loaded it). A test split's probe is kept in the run's folder as
    `probe-<key>.pt`, keyed by the split's fingerprint, PROBE_SOURCES and the run's weights file
    (its size and time), so a retrained run or an edited model is probed again; other splits
    (a pruning's training images, larger and read once) are computed each time."""
    run_dir = Path(run_dir)
    compute = lambda: activations(model if model is not None else load_run(run_dir, device)[0],  # noqa: E731
                                  dataset, device=device, progress=progress)
    fingerprint = _fingerprint(dataset)
    if dataset.split != "test" or fingerprint is None or not (run_dir / "model.pt").is_file():
        return compute()
    st = (run_dir / "model.pt").stat()
    key = {"data": fingerprint, "source": source_hash(*PROBE_SOURCES), "weights": [st.st_size, st.st_mtime_ns]}
    path = run_dir / f"probe-{key_digest(key)}.pt"
    if path.is_file():
        d = load_torch(path, RECOMPUTE, keys=("a", "logits", "labels"), what="a run's cached probe")
        return Probe(d["a"], d["logits"], d["labels"])
    p = compute()
    buf = io.BytesIO()
    torch.save({"key": key, "a": p.a, "logits": p.logits, "labels": p.labels}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return p


def _fingerprint(ds: PartDataset) -> str | None:
    return ds.manifest.get("fingerprints", {}).get(ds.split)


def evaluate_run(run_dir: str | Path, test_set: PartDataset, eval_set: PartDataset | None = None,
                 top: float = 0.3, phi: float = 0.2, device=None, progress: bool = False,
                 cache: bool = True, also_tops: tuple[float, ...] = ()) -> dict:
    """`evaluate` for a finished run folder, cached as `eval-<key>.json` in it. With `also_tops`,
    the rows for those tops are computed in the same pass over the images and cached beside it
    (a later `evaluate_run` with one of them as `top` reads its file)."""

    run_dir = Path(run_dir)
    tops = tuple(dict.fromkeys((top, *also_tops)))
    paths = {t: _eval_path(run_dir, test_set, eval_set, t, phi) for t in tops}
    if not cache:
        model, _, _ = load_run(run_dir, device)
        return evaluate_tops(model, test_set, eval_set, tops, phi, device=device, progress=progress)[top]
    probe = lambda ds: run_probe(run_dir, ds, device=device, progress=progress)  # noqa: E731

    def read() -> dict | None:
        rows = {t: read_json(path, keys=("row",), what="a cached evaluation")["row"]
                for t, (path, _) in paths.items() if path.is_file()}
        return rows[top] if len(rows) == len(tops) else None

    row = read()
    if row is not None:
        return row
    with file_lock(run_dir / ".eval.lock"):  # two pages built at once evaluate a run once
        row = read()
        if row is not None:
            return row
        rows = _rows(probe, test_set, eval_set, tops, phi)
        for t, (path, key) in paths.items():
            atomic_write_text(path, json.dumps({"key": key, "row": rows[t]}, indent=2))
    return rows[top]


def _eval_path(run_dir: Path, test_set: PartDataset, eval_set: PartDataset | None, top: float,
               phi: float) -> tuple[Path, dict]:
    """Where `evaluate_run` caches one evaluation, and its key."""
    key = {"test": _fingerprint(test_set), "eval": eval_set is not None and _fingerprint(eval_set),
           "top": top, "phi": phi, "source": source_hash(*EVAL_SOURCES)}
    return run_dir / f"eval-{key_digest(key)}.json", key


def imagenet_normalize(x):
    """synclib's [0, 1] images -> the input torchvision's ImageNet models expect (mean/std of
    ImageNet per channel). synclib's own models do this inside; another network needs it
    written out, as its `preprocess`."""

    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def torchvision_model(name: str, weights: str | Path | None = None, num_classes: int | None = None):
    """A torchvision network by name (`torchvision.models.get_model`), its weights from a
    local state-dict file (nothing is downloaded). The number of classes is the file's (its
    last 2-D weight), else `num_classes`, else torchvision's default."""

    state = None
    if weights is not None:
        state = load_torch(weights, "give the state_dict of the network named (torch.save(model.state_dict(), PATH))",
                           what="a state dict")
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        mats = [v for k, v in state.items() if k.endswith(".weight") and getattr(v, "ndim", 0) == 2]
        num_classes = num_classes or (mats[-1].shape[0] if mats else None)
    try:
        model = torchvision.models.get_model(name, weights=None, **({"num_classes": num_classes} if num_classes else {}))
    except ValueError as e:
        known = ", ".join(torchvision.models.list_models(torchvision.models)[:12])
        raise ValueError(f"torchvision has no model {name!r} ({e}); e.g. {known}, ...") from None
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise ValueError(f"{weights}: not the weights of torchvision's {name} ({first})") from None
    return model.eval()
