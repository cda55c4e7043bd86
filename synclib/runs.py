"""Profiles, the run store and the plan of runs per artifact.

A training run is keyed by a hash of its whole config, the fingerprint of the data it trains
on and the synclib version: `runs/<hash>/`. A finished run (it has `DONE`) is reused; a
half-finished one resumes from its checkpoint. Two processes asking for the same run never
both train it: the first takes `runs/<hash>.lock` (an exclusive file lock), the second waits
for it and then finds the run done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from . import __version__
from .data.format import atomic_write_text, read_manifest
from .train import TrainConfig

__all__ = ["repo_root", "load_profile", "RunSpec", "plan", "RunStore", "ensure_data",
           "dataset_root", "ARTIFACT_NEEDS", "sensitivity_specs",
           "landmark_datasets"]


def repo_root() -> Path:
    """The project folder: $SYNCLIB_HOME, else the checkout synclib was installed from, else cwd."""
    if os.environ.get("SYNCLIB_HOME"):
        return Path(os.environ["SYNCLIB_HOME"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "configs").is_dir():
        return here
    return Path.cwd()


_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _expand(value):
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def load_profile(name_or_path: str) -> dict:
    """A profile by name (configs/<name>.yaml) or path, with ${VAR:-default} expanded."""
    path = Path(name_or_path)
    if not path.suffix:
        path = repo_root() / "configs" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (repo_root() / "configs").glob("*.yaml"))
        raise FileNotFoundError(f"profile {name_or_path!r} not found at {path}; known: {known}")
    prof = _expand(yaml.safe_load(path.read_text()))
    for key in ("profile", "datasets", "archs", "methods", "train", "seeds"):
        if key not in prof:
            raise ValueError(f"{path} lacks the key {key!r}")
    return prof


def dataset_root(prof: dict, name: str) -> Path:
    root = Path(prof["datasets"][name]["root"])
    return root if root.is_absolute() else repo_root() / root


def ensure_data(prof: dict, name: str, progress: bool = True) -> Path | None:
    """The data set's folder, generating PartWorld if the profile says how; None if missing."""
    d = prof["datasets"][name]
    root = dataset_root(prof, name)
    if d.get("kind") == "partworld":
        from .data.partworld import generate

        generate(root, progress=progress, **d["generate"])
        return root
    if (root / "manifest.json").is_file():
        return root
    return None


@dataclass(frozen=True)
class RunSpec:
    """One training run of a profile: data set × arch × method × seed (+ hyperparameters).

    With a `pretrain` section in the profile, every run fine-tunes a backbone run of its data
    set and arch (the baseline trained for `pretrain.epochs`), as the paper fine-tunes from
    ImageNet weights; `backbone=True` marks that run itself.
    """

    dataset: str
    arch: str  # the paper's name: vgg16 / resnet18
    method: str
    seed: int = 0
    params: tuple = ()  # method hyperparameters that override the defaults, as sorted items
    backbone: bool = False

    def parent(self, prof: dict) -> RunSpec | None:
        if self.backbone or not prof.get("pretrain"):
            return None
        return RunSpec(self.dataset, self.arch, "baseline", int(prof["pretrain"].get("seed", 0)),
                       backbone=True)

    def config(self, prof: dict) -> TrainConfig:
        from .methods import get_method

        a = prof["archs"][self.arch]
        t = prof["train"]
        d = prof["datasets"][self.dataset]
        defaults = get_method(self.method, a["arch"]).params
        scale = d.get("lambda_scale")
        if scale:
            defaults = {k: (v * scale if k in ("lambda1", "lambda2") else v) for k, v in defaults.items()}
        params = {**defaults, **dict(self.params)}
        base = get_method(self.method, a["arch"]).params
        params = {k: v for k, v in params.items() if base.get(k) != v}  # only what differs
        epochs = int(t["epochs"])
        init_from = None
        if self.backbone:
            epochs = int(prof["pretrain"]["epochs"])
        elif (parent := self.parent(prof)) is not None:
            init_from = str(RunStore().path(parent.hash(prof)))
        return TrainConfig(method=self.method, arch=a["arch"], width=float(a.get("width", 1.0)),
                           epochs=epochs, batch_size=int(a["batch_size"]),
                           lr=float(t.get("lr", 0.01)), momentum=float(t.get("momentum", 0.9)),
                           weight_decay=float(t.get("weight_decay", 5e-4)), seed=self.seed,
                           pretrained=None if init_from else a.get("pretrained"),
                           init_from=init_from, method_params=params)

    def key(self, prof: dict) -> dict:
        root = dataset_root(prof, self.dataset)
        fp = read_manifest(root).get("fingerprints", {}).get("train")
        cfg = self.config(prof).to_dict()
        if cfg["pretrained"]:
            cfg["pretrained"] = Path(cfg["pretrained"]).name  # the file, not where it lies
        if cfg["init_from"]:
            cfg["init_from"] = Path(cfg["init_from"]).name  # the backbone's hash
        return {"train": cfg, "data_fingerprint": fp, "synclib": __version__}

    def hash(self, prof: dict) -> str:
        blob = json.dumps(self.key(prof), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def label(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.params)
        return f"{self.dataset}/{self.arch}/{'backbone' if self.backbone else self.method}/s{self.seed}{extra}"


# which runs each artifact needs: a function of the profile
def _train_datasets(prof: dict) -> list[str]:
    return [ds for ds, d in prof["datasets"].items() if d.get("train", True)]


def _table_runs(prof: dict) -> list[RunSpec]:
    return [RunSpec(ds, arch, m, seed) for ds in _train_datasets(prof)
            for arch in prof["archs"] for m in prof["methods"] for seed in prof["seeds"]]


def _main_runs(prof: dict, seeds: list[int] | None = None) -> list[RunSpec]:
    """The runs the analyses use: the first mask-annotated training data set, seed 0."""
    ds = [d for d in _train_datasets(prof) if prof["datasets"][d].get("protocol") == "masks"]
    return [RunSpec(d, arch, m, seed) for d in ds[:1] for arch in prof["archs"]
            for m in prof["methods"] for seed in (seeds or [0])]


def landmark_datasets(prof: dict) -> list[str]:
    """Figure 6's data sets: those evaluated by landmarks, else the main one (PartWorld has both)."""
    lm = [d for d in _train_datasets(prof) if prof["datasets"][d].get("protocol") == "landmarks"]
    if lm:
        return lm
    main = [d for d in _train_datasets(prof) if prof["datasets"][d].get("protocol") == "masks"]
    return main[:1]


def _landmark_runs(prof: dict) -> list[RunSpec]:
    return [RunSpec(d, arch, m, 0) for d in landmark_datasets(prof) for arch in prof["archs"]
            for m in prof["methods"]]


def sensitivity_specs(prof: dict) -> list[RunSpec]:
    """Figures 7 and 8: `ours` with one hyperparameter varied, the others at their defaults."""
    s = prof.get("sensitivity")
    if not s:
        return []
    ds = [d for d in _train_datasets(prof) if prof["datasets"][d].get("protocol") == "masks"][:1]
    return [RunSpec(d, s["arch"], "ours", 0, ((param, float(v)),)) for d in ds
            for param in s["params"] for v in s["values"]]


ARTIFACT_NEEDS = {
    "table1": _table_runs,
    "table2": _table_runs,
    "fig4": _main_runs,
    "fig5": _main_runs,
    "fig6": _landmark_runs,
    "fig7": sensitivity_specs,
    "fig8": sensitivity_specs,
    "fig9": _main_runs,
    "fig10": _main_runs,
    "table3": lambda prof: _main_runs(prof, prof["seeds"]),
    "table4": lambda prof: _main_runs(prof, prof["seeds"]),
    "claims": lambda prof: _table_runs(prof) + _main_runs(prof, prof["seeds"]),
}


def plan(prof: dict, artifacts: list[str] | None = None, available: set[str] | None = None) -> list[RunSpec]:
    """The runs the artifacts need (deduplicated, in a stable order), on available data sets."""
    artifacts = artifacts or prof.get("artifacts", list(ARTIFACT_NEEDS))
    out: dict[RunSpec, None] = {}
    for art in artifacts:
        if art not in ARTIFACT_NEEDS:
            raise ValueError(f"unknown artifact {art!r}; known: {sorted(ARTIFACT_NEEDS)}")
        for spec in ARTIFACT_NEEDS[art](prof):
            if available is None or spec.dataset in available:
                parent = spec.parent(prof)
                if parent is not None:
                    out[parent] = None
                out[spec] = None
    backbones = [s for s in out if s.backbone]
    return backbones + [s for s in out if not s.backbone]


class RunStore:
    """runs/<hash>/ folders: config, checkpoint, model, history, evaluations."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else repo_root() / "runs"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, h: str) -> Path:
        return self.root / h

    def is_done(self, h: str) -> bool:
        return (self.path(h) / "DONE").is_file()

    def train(self, spec: RunSpec, prof: dict, progress: bool = False) -> Path:
        """Train `spec` unless the store has it; safe against a concurrent call for the same run."""
        h = spec.hash(prof)
        out = self.path(h)
        if self.is_done(h):
            return out
        parent = spec.parent(prof)
        if parent is not None:
            self.train(parent, prof, progress)
        lock = self.root / f"{h}.lock"
        with open(lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # waits while another process trains this run
            try:
                if not self.is_done(h):
                    from .train import fit

                    out.mkdir(parents=True, exist_ok=True)
                    atomic_write_text(out / "key.json", json.dumps(
                        {**spec.key(prof), "label": spec.label()}, indent=2))
                    fit(spec.config(prof), dataset_root(prof, spec.dataset), out, progress=progress)
                    atomic_write_text(out / "DONE", time.strftime("%Y-%m-%dT%H:%M:%S"))
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return out

    def train_all(self, specs: list[RunSpec], prof: dict, profile_path: str, jobs: int = 1) -> list[str]:
        """Train the missing runs, `jobs` processes at once. Returns the labels that failed."""
        todo = [s for s in specs if not self.is_done(s.hash(prof))]
        failed: list[str] = []
        self.last_trained = len(todo)
        print(f"{len(specs) - len(todo)} of {len(specs)} runs are in the store; {len(todo)} to train")
        if not todo:
            return failed
        threads = max(1, (os.cpu_count() or 2) // jobs)
        bar = tqdm(total=len(todo), desc="training runs", unit="run")

        def one(spec: RunSpec) -> None:
            h = spec.hash(prof)
            self.path(h).mkdir(parents=True, exist_ok=True)
            log = self.path(h) / "train.log"
            cmd = [sys.executable, "-m", "synclib.runs", profile_path, json.dumps(spec.__dict__)]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), SYNCLIB_THREADS=str(threads))
            t0 = time.perf_counter()
            with open(log, "w") as lf:
                rc = subprocess.call(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
            msg = f"{spec.label()} [{h}] {'done' if rc == 0 else 'FAILED (see ' + str(log) + ')'} in {time.perf_counter() - t0:.0f} s"
            tqdm.write(msg)
            if rc != 0:
                failed.append(spec.label())
            bar.update(1)

        with ThreadPoolExecutor(max_workers=jobs) as ex:  # backbones first: the rest start from them
            list(ex.map(one, [s for s in todo if s.backbone]))
            list(ex.map(one, [s for s in todo if not s.backbone]))
        bar.close()
        return failed


def _main(argv: list[str]) -> int:
    """python -m synclib.runs PROFILE SPEC_JSON: train one run (what train_all launches)."""
    import torch

    if os.environ.get("SYNCLIB_THREADS"):
        torch.set_num_threads(int(os.environ["SYNCLIB_THREADS"]))
    prof = load_profile(argv[0])
    d = json.loads(argv[1])
    d["params"] = tuple(tuple(p) for p in d.get("params", ()))
    d["backbone"] = bool(d.get("backbone", False))
    RunStore().train(RunSpec(**d), prof, progress=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
