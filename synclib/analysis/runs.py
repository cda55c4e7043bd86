"""What every analysis stands on: a finished run loaded with its probe (`load`), the run of a
table row (`main_run`), the data set's evaluation thresholds (`top_phi`), and the one cache of
per-run results (`cached`): JSON in the run's folder, keyed by the analysis, its arguments, the
evaluated splits' fingerprints and the source of that analysis's own room."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..data import PartDataset
from ..evaluate import run_probe
from ..files import atomic_write_text, file_lock, key_digest, read_json
from ..probe import Probe
from ..provenance import source_hash
from ..store import RunStore
from ..study import Run, Study
from ..train import load_run

__all__ = ["LoadedRun", "load", "cached", "main_run", "top_phi", "BASE_SOURCES"]

#: What every analysis's numbers depend on besides its own room (`analysis/<room>.py`).
BASE_SOURCES = ("analysis/runs.py", "probe.py", "metrics", "data/dataset.py", "models.py")


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
    probe = run_probe(store.path(run.hash), ds, model)  # the test split's is read from the run's folder
    return LoadedRun(run, model.cpu(), probe, ds)


def cached(study: Study, run: Run, name: str, args: dict, compute, room: str):
    """compute() once per (run, name, args, data, source); JSON in runs/<hash>/analysis-*.json.
    `room` is the analysis's module (`analysis/pruning.py`): its source, with BASE_SOURCES, keys
    the cache, so an edit to one analysis recomputes that analysis alone."""
    ds = study.datasets[run.dataset]
    key = {"name": name, "args": args, "data": ds.fingerprint("test"), "train_data": ds.fingerprint("train"),
           "source": source_hash(*BASE_SOURCES, room)}  # pruning ranks filters on training images
    digest = key_digest(key)
    store = RunStore()
    path = store.path(run.hash) / f"analysis-{name}-{digest}.json"
    if path.is_file():
        return read_json(path, keys=("value",), what="a cached analysis")["value"]
    # two callers at once compute it once; the lock sits outside the run's folder, which
    # compute() may be the first to make (it trains a missing run)
    locks = store.root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with file_lock(locks / f"{run.hash}-{name}-{digest}.lock"):
        if path.is_file():
            return read_json(path, keys=("value",), what="a cached analysis")["value"]
        value = compute()
        atomic_write_text(path, json.dumps({"key": key, "value": value}))
    return value


def main_run(study: Study, arch: str, row: str, seed: int = 0, dataset: str | None = None) -> Run:
    """The run of a table row (`ours`, `ours_mean`, ...) on the main data set (or `dataset`)."""
    if dataset is None and study.main_dataset is None:
        raise FileNotFoundError(f"{study.path}: no mask-annotated training data set is present")
    return study.find_row(dataset or study.main_dataset, arch, row, seed)


def top_phi(study: Study, run: Run) -> tuple[float, float]:
    """The data set's activation fraction `top` and IoU threshold `phi` (the specification: 0.3 and 0.2)."""
    d = study.datasets[run.dataset].spec
    return d.get("top", 0.3), d.get("phi", 0.2)
