"""The run store: `runs/<hash>/` folders, their jobs and their locks.

A run folder holds `job.json` (written by the planner: everything needed to train the run,
so a worker never reads the profile), then what training writes (config.json,
checkpoint.pt, model.pt, history.json, train.log) and `DONE` once finished. Cached
evaluations and analyses live beside them. `runs/<hash>.lock` is an exclusive file lock,
taken once per run by `train_job`, so two callers never both train a run, whichever
executor launched them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .data import PartDataset, read_manifest
from .devices import pick_device
from .evaluate import run_probe
from .files import RECOMPUTE, RETRAIN, CorruptFile, atomic_write_text, file_lock, read_json
from .profile import repo_root
from .provenance import commit, environment
from .train import TrainConfig, fit

__all__ = ["RunStore", "train_job", "fit_job", "read_job"]


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else repo_root() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, h: str) -> Path:
        return self.root / h

    def is_done(self, h: str) -> bool:
        return (self.path(h) / "DONE").is_file()

    @contextmanager
    def naming(self, run):
        """Errors about a stored run's files name the run too (its label: data set, family,
        method, seed), so a notebook that fails says which run to retrain."""
        try:
            yield
        except CorruptFile as e:
            e.args = (f"run {run.label}: {e}",)
            raise

    def history(self, h: str) -> dict | None:
        """runs/<h>/history.json (None before the run is finished)."""
        p = self.path(h) / "history.json"
        return read_json(p, RETRAIN, keys=("epochs",), what="a run's history") if p.is_file() else None

    def provenance(self, h: str) -> dict:
        """runs/<h>/provenance.json ({} for a run trained before runs recorded it)."""
        p = self.path(h) / "provenance.json"
        return read_json(p, RECOMPUTE.replace("run the command", "retrain the run"), what="a run's provenance") \
            if p.is_file() else {}

    def lock(self, h: str):
        """Hold runs/<h>.lock exclusively (waits while another process holds it)."""
        return file_lock(self.root / f"{h}.lock")

    def job(self, run) -> dict:
        """The job of a `study.Run`: its config with the parent's folder as `init_from`."""
        cfg = dict(run.train)
        if run.parent:
            cfg["init_from"] = str(self.path(run.parent))
        return {"hash": run.hash, "label": run.label, "config": cfg, "data": run.data_root,
                "parent": run.parent, "key": run.key}

    def write_job(self, run, manifest: dict | None = None) -> Path:
        """runs/<hash>/job.json; `manifest` (the data set's, as the study read it) spares the
        worker a second read."""
        path = self.path(run.hash) / "job.json"
        job = self.job(run)
        if manifest is not None:
            job["manifest"] = manifest
        atomic_write_text(path, json.dumps(job, indent=2))
        return path

    def ensure(self, study, run, progress: bool = False) -> Path:
        """Train `run` (and the run it fine-tunes) in this process unless the store has it."""
        if run.parent and not self.is_done(run.parent):
            self.ensure(study, study.run(run.parent), progress)
        if not self.is_done(run.hash):
            train_job(self.write_job(run, study.datasets[run.dataset].manifest), progress=progress)
        return self.path(run.hash)


def read_job(path: str | Path) -> dict:
    return read_json(path, "plan it again with `synclib reproduce`", keys=("hash", "config", "data"),
                     what="a training job")


def fit_job(path: str | Path, progress: bool = True, device: str | None = None) -> dict:
    """Train the run of a job file in this process (one rank of it under torchrun), with no
    lock: `train_job` holds the run's lock around it. Returns the history."""

    path = Path(path).resolve()
    job = read_job(path)
    if job.get("parent"):  # the run it fine-tunes, beside it in this store (wherever it is mounted)
        job["config"]["init_from"] = str(RunStore(path.parent.parent).path(job["parent"]))
    if os.environ.get("SYNCLIB_THREADS"):

        torch.set_num_threads(int(os.environ["SYNCLIB_THREADS"]))
    return fit(TrainConfig.from_dict(job["config"]), job["data"], path.parent, progress=progress, device=device,
               manifest=job.get("manifest"))


def train_job(path: str | Path, progress: bool = True, device: str | None = None, nproc: int = 1) -> Path:
    """Train the run a job file describes, under the run's lock; a finished run is left as it is.
    What `synclib train JOB.json` and every executor run. Reads no profile.

    nproc > 1: the run trains on `nproc` processes (DistributedDataParallel, one per GPU, or
    gloo on the CPU) launched by torchrun; the lock is taken here, once, outside every rank."""
    path = Path(path).resolve()
    job = read_job(path)
    out = path.parent
    store = RunStore(out.parent)  # the job lies in its run folder: the store is where the job is
    h = job["hash"]
    if store.is_done(h):
        return out
    with store.lock(h):
        if store.is_done(h):  # another process trained it while this one waited for the lock
            print(f"[train] {h}: trained by another process meanwhile", flush=True)
        else:
            print(f"[train] {h}: training", flush=True)

            t0 = time.time()
            if nproc > 1:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                       "-m", "synclib.cli", "train", str(path)] + (["--device", device] if device else [])
                if subprocess.call(cmd) != 0:
                    raise RuntimeError(f"{path}: the {nproc} processes of the run failed (their output is above)")
            else:
                fit_job(path, progress=progress, device=device)
            atomic_write_text(out / "provenance.json", json.dumps({
                "commit": commit(), "source": job.get("key", {}).get("source"),
                "environment": environment(str(pick_device(device))), "processes": nproc,
                "seconds": round(time.time() - t0, 1)}, indent=2))
            atomic_write_text(out / "DONE", time.strftime("%Y-%m-%dT%H:%M:%S"))
            probe_test_split(out, job, device)
    return out


def probe_test_split(out: Path, job: dict, device: str | None = None) -> None:
    """Keep a finished run's probe on its data set's test split in its folder (`run_probe`): the
    evaluation and every analysis of the run read it instead of running the network again, each
    page of the book in its own process. Done by the process that trained the run, beside the
    other runs training, so the book's pages only read."""
    manifest = job.get("manifest") or read_manifest(job["data"])
    if "test" not in manifest.get("splits", {}):
        return
    t0 = time.time()
    run_probe(out, PartDataset(job["data"], "test", manifest=manifest, decoded=True), device=device)
    print(f"[train] {job['hash']}: its test split probed in {time.time() - t0:.1f} s", flush=True)
