"""A study: a profile read once, resolved into an immutable plan of runs.

    study = Study.plan("quick")         # parses configs/quick.yaml once, reads each manifest once
    study.runs_for("table1")            # the runs an artifact needs, parents first
    study.find("partworld", "vgg16", "ours", seed=1)
    study.save(path); Study.load(path)  # what notebooks and workers read instead of the YAML

Each `Run` carries everything a worker needs to train it: its full `TrainConfig`, the data
root, the data fingerprint, the run it fine-tunes (`parent`) and its hash. The hash is a
function of the run's key (config, data fingerprint, and the hash of the source its training
runs: `provenance.training_source`), computed here and
nowhere else, so a planner and a worker on another machine can never disagree about it.

Names: `family` is the paper's architecture (vgg16, resnet18: a column of its tables and the
key of the profile's `archs:` section); `arch` is the network that stands for it
(`TrainConfig.arch`, e.g. vgg16_bn at 1/8 width on the CPU profiles).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .data import PartDataset
from .data.format import read_manifest
from .data.partworld import WorldMismatch, generate, world_differences
from .files import atomic_write_text, key_digest, read_json
from .methods import METHODS, get_method
from .models import ARCHS
from .profile import profile_path, read_profile, repo_root
from .provenance import training_source
from .schema import check_profile
from .train import TrainConfig

__all__ = ["Study", "Run", "DataSet", "ARTIFACTS", "Artifact", "run_hash", "READINGS", "row_of", "reading_row",
           "load_profile", "registries"]

# Readings of the paper that the specification had to choose between, as the method parameters that make
# each one. "printed" is the specification's (and every method's default); a method takes a reading when
# it has all of its parameters (today: `ours`). Its row in a table is `<method>_<reading>`.
READINGS: dict[str, tuple[tuple[str, object], ...]] = {
    "printed": (),                       # L_sync summed over filters (Eq. 6), distances normalized
    "mean": (("reduction", "mean"),),    # L_sync averaged over filters: N times weaker
    "cells": (("units", "cells"),),      # L_sync's distances, softmax and ε in map cells
    "tau1": (("tau", 1.0),),             # L_lac's softmax with no temperature (Eq. 4 as printed), image units
}


#: The readings the Ambiguities page judges every claim under.
AMBIGUITY_READINGS = ("printed", "mean", "cells", "tau1")


def reading_row(method: str, reading: str) -> str:
    """The table row of `method` under a reading: `ours`, `ours_mean`, `ours_cells`."""
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; known: {list(READINGS)}")
    return method if reading == "printed" else f"{method}_{reading}"


def row_of(method: str, params) -> str:
    """The table row of a run: its method, or `<method>_<reading>` under another reading."""
    p = dict(params)
    for name, rp in READINGS.items():
        if rp and all(p.get(k) == v for k, v in rp):
            return f"{method}_{name}"
    return method


#: How a reader sees a network and a width (`Study.arch_label`).
NETWORK_LABELS = {"vgg16": "VGG16", "vgg16_bn": "VGG16-BN", "resnet18": "ResNet18"}
WIDTH_LABELS = {0.125: "⅛", 0.25: "¼", 0.5: "½"}


@dataclass(frozen=True)
class Artifact:
    title: str
    needs: Callable[[Study], list[Run]] = field(repr=False)
    always: bool = False  # built even when its data sets are missing (an empty table says so)


def _table_runs(s: Study) -> list[Run]:
    return [s.find_row(ds, fam, r, seed) for ds in s.train_datasets for fam in s.families
            for r in s.rows if s.supports(r, ds, fam) for seed in s.seeds]


def _main_runs(s: Study, all_seeds: bool = False, rows: list[str] | None = None) -> list[Run]:
    ds = s.main_dataset
    if ds is None:
        return []
    return [s.find_row(ds, fam, r, seed) for fam in s.families for r in (rows or s.methods) if s.supports(r, ds, fam)
            for seed in (s.seeds if all_seeds else [0])]


def _analysis_runs(s: Study) -> list[Run]:
    """Figures 9-10: the methods the paper's analyses show, seed 0."""
    return _main_runs(s, False, s.analysis_methods)


def _module_runs(s: Study) -> list[Run]:
    fam = s.analysis["arch"]
    return [s.find_row(ds, fam, m, seed) for ds in s.module_datasets for m in s.analysis_methods
            if s.supports(m, ds, fam) for seed in s.seeds]


def _claims_runs(s: Study) -> list[Run]:
    mean = [r for *_, r in s.sensitivity("mean")] if "mean" in s.readings else []
    return (_table_runs(s) + _main_runs(s, True, s.rows) + _sensitivity_runs(s) + mean
            + _landmark_runs(s, True, s.rows) + _module_runs(s))


def _ambiguity_runs(s: Study) -> list[Run]:
    alt = [r for r in s.readings_of("ours", AMBIGUITY_READINGS)]
    return _main_runs(s, True, alt) + [r for *_, r in s.sensitivity("mean")] if "ours" in s.methods else []


def _landmark_runs(s: Study, all_seeds: bool = False, rows: list[str] | None = None) -> list[Run]:
    return [s.find_row(ds, fam, m, seed) for ds in s.landmark_datasets for fam in s.families
            for m in (rows or s.methods) if s.supports(m, ds, fam) for seed in (s.seeds if all_seeds else [0])]


def _control_runs(s: Study) -> list[Run]:
    """The positive control (`parts_control`, seed 0) per arch on the main data set, beside
    Table I's runs, where it places the paper's methods (`synclib.controls`)."""
    ds = s.main_dataset
    if ds is None:
        return []
    ctl = [s.find(ds, fam, "parts_control", 0) for fam in s.families if s.supports("parts_control", ds, fam)]
    return ctl + _table_runs(s) if ctl else []


def _sensitivity_runs(s: Study) -> list[Run]:
    return [r for _, _, r in s.sensitivity()]


ARTIFACTS: dict[str, Artifact] = {  # the one list of the book's artifacts, in the book's order
    "table1": Artifact("Table I: interpretability metrics", _table_runs, always=True),
    "table2": Artifact("Table II: classification accuracy", _table_runs, always=True),
    "fig4": Artifact("Figure 4: activation maps of single filters", _main_runs),
    "fig5": Artifact("Figure 5: average feature maps", _main_runs),
    "fig6": Artifact("Figure 6: metric-pair curves on landmarks", _landmark_runs),
    "fig7": Artifact("Figure 7: parameter sensitivity", _sensitivity_runs),
    "fig8": Artifact("Figure 8: average maps under each setting", _sensitivity_runs),
    "fig9": Artifact("Figure 9: redundancy by pruning", _analysis_runs),
    "fig10": Artifact("Figure 10: loss landscapes", _analysis_runs),
    "table3": Artifact("Table III: module consistency", _module_runs),
    "table4": Artifact("Table IV: modules and semantic parts", _module_runs),
    "controls": Artifact("Controls: can the metrics see interpretable filters?", _control_runs),
    "claims": Artifact("Claims: what holds on this profile", _claims_runs, always=True),
    "ambiguities": Artifact("Ambiguities: where the paper reads two ways", _ambiguity_runs),
}


def registries() -> dict[str, list[str]]:
    """What a profile's registry-named values may be (`synclib.schema.REGISTRIES`): the registered
    methods and networks, the book's artifacts, the readings, and the parameters of `ours` that
    Figure 7 may sweep (its numbers)."""
    swept = sorted(k for k, v in get_method("ours", "vgg16").params.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool))
    return {"methods": sorted(METHODS), "archs": sorted(ARCHS), "artifacts": list(ARTIFACTS),
            "readings": list(READINGS), "swept": swept}


def load_profile(name_or_path: str | Path) -> dict:
    """A profile by name (configs/<name>.yaml) or path, read once and checked against the schema
    with the registries (a `ProfileError` names the file, the key and the value)."""
    path = profile_path(name_or_path)
    prof = read_profile(path)
    check_profile(prof, path, registries())
    return prof


def run_hash(key: dict) -> str:
    """The run store's name for a run: the first 12 hex digits of sha256 over its key."""
    return key_digest(key)


@dataclass(frozen=True)
class DataSet:
    """A data set of the study: its profile section, where it lies, and its manifest
    (None when it is not there: a real data set not yet converted)."""

    name: str
    root: str
    spec: dict
    manifest: dict | None

    @property
    def present(self) -> bool:
        return self.manifest is not None

    def missing_message(self) -> str:
        conv = self.spec.get("converter", "<converter>")
        return (f"data set {self.name!r} is not at {self.root}: convert it with `python -m data_prep.{conv} "
                f"--src ORIGINAL --out {self.root}` (see the book's 'Getting the data' page)")

    def fingerprint(self, split: str) -> str | None:
        return (self.manifest or {}).get("fingerprints", {}).get(split)

    def split(self, split: str, cache: bool = False, decoded: bool = True):
        """The PartDataset of `split`, from the manifest the study read (no second read), read from
        its decoded copy (decoded once, shared by every evaluation and analysis of the split)."""
        if self.manifest is None:
            raise FileNotFoundError(self.missing_message())
        return PartDataset(self.root, split, cache=cache, manifest=self.manifest, decoded=decoded)


@dataclass(frozen=True, eq=False)
class Run:
    """One training run of a study. `train` is its TrainConfig as a dict, with `init_from`
    naming the parent run's hash (the store turns it into a path); `key` is what `hash` hashes."""

    hash: str
    label: str
    dataset: str
    family: str
    method: str
    row: str
    seed: int
    params: tuple
    backbone: bool
    parent: str | None
    data_root: str
    train: dict = field(repr=False)
    key: dict = field(repr=False)

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and other.hash == self.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.train)

    def to_dict(self) -> dict:
        return {"hash": self.hash, "label": self.label, "dataset": self.dataset, "family": self.family,
                "method": self.method, "row": self.row, "seed": self.seed, "params": [list(p) for p in self.params],
                "backbone": self.backbone, "parent": self.parent, "data_root": self.data_root,
                "train": self.train, "key": self.key}

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        return cls(**{**d, "params": tuple(tuple(p) for p in d["params"])})


class Study:
    """A profile resolved once: data sets, runs and the artifacts that need them. Every run
    is a pure function of the profile and the data fingerprints (`find` resolves one more on
    request, with the same hash any planner would give it); `save`/`load` carry the study to
    notebooks and workers without the YAML."""

    def __init__(self, profile: dict, path: str, datasets: dict[str, DataSet]):
        self.profile = profile
        self.path = path
        self.datasets = datasets
        self._runs: dict[str, Run] = {}
        self._by_request: dict[tuple, str] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def plan(cls, profile: str | Path = "quick", prepare_data: bool = True, progress: bool = False) -> Study:
        """Read the profile, generate PartWorld where the profile says how, read each present
        data set's manifest once, and plan every run of every artifact the data allows."""
        path = profile_path(profile)
        prof = load_profile(path)
        datasets = {name: _resolve_dataset(name, d, prepare_data, progress, path) for name, d in prof["datasets"].items()}
        study = cls(prof, str(path), datasets)
        for art in study.artifacts:
            ARTIFACTS[art].needs(study)  # registers every run the artifact asks for
        return study

    def find(self, dataset: str, family: str, method: str, seed: int = 0, params: tuple = (),
             backbone: bool = False) -> Run:
        """The run of the study with these coordinates (planned on first request)."""
        req = (dataset, family, method, int(seed), tuple(params), backbone)
        if req in self._by_request:
            return self._runs[self._by_request[req]]
        run = self._make_run(*req)
        self._runs.setdefault(run.hash, run)  # a setting equal to the defaults is the main run
        self._by_request[req] = run.hash
        return self._runs[run.hash]

    def _make_run(self, dataset: str, family: str, method: str, seed: int, params: tuple, backbone: bool) -> Run:
        prof = self.profile
        ds = self.datasets[dataset]
        if not ds.present:
            raise FileNotFoundError(ds.missing_message())
        a, t = prof["archs"][family], prof["train"]
        base = get_method(method, a["arch"]).params
        defaults = dict(base)
        if scale := ds.spec.get("lambda_scale"):
            defaults = {k: (v * scale if k in ("lambda1", "lambda2") else v) for k, v in defaults.items()}
        merged = {**defaults, **dict(params)}
        method_params = {k: v for k, v in merged.items() if base.get(k) != v}  # only what differs
        parent = None
        pretrain = prof.get("pretrain")
        if not backbone and pretrain:
            # each seed fine-tunes a backbone of its own seed, so the spread over seeds holds the
            # backbone's variance too (independent replicates); `pretrain.seed` pins one backbone
            # that every seed shares instead
            parent = self.find(dataset, family, "baseline", int(pretrain.get("seed", seed)), backbone=True).hash
        cfg = TrainConfig(method=method, arch=a["arch"], width=float(a.get("width", 1.0)),
                          epochs=int(pretrain["epochs"] if backbone else t["epochs"]),
                          batch_size=int(a["batch_size"]), lr=float(t.get("lr", 0.01)),
                          momentum=float(t.get("momentum", 0.9)), weight_decay=float(t.get("weight_decay", 5e-4)),
                          seed=seed, pretrained=None if parent else a.get("pretrained"),
                          init_from=parent, method_params=method_params).to_dict()
        keyed = dict(cfg)
        if keyed["pretrained"]:
            keyed["pretrained"] = Path(keyed["pretrained"]).name  # the file, not where it lies
        key = {"train": keyed, "data_fingerprint": ds.fingerprint("train"), "source": training_source(method)}
        extra = "".join(f",{k}={v}" for k, v in params)
        label = f"{dataset}/{family}/{'backbone' if backbone else method}/s{seed}{extra}"
        return Run(run_hash(key), label, dataset, family, method, row_of(method, params), seed, tuple(params),
                   backbone, parent, ds.root, cfg, key)

    def find_row(self, dataset: str, family: str, row: str, seed: int = 0, params: tuple = ()) -> Run:
        """The run of a table row (`ours_mean`: `ours` under the "mean" reading) with these coordinates."""
        method, rp = self.row_spec(row)
        return self.find(dataset, family, method, seed, tuple(rp) + tuple(params))

    @staticmethod
    def row_spec(row: str) -> tuple[str, tuple]:
        """(method, the reading's parameters) of a row name."""
        for name, rp in READINGS.items():
            if rp and row.endswith(f"_{name}"):
                return row[: -len(name) - 1], rp
        return row, ()

    # ------------------------------------------------------------------ reading
    @property
    def name(self) -> str:
        return self.profile["profile"]

    @property
    def readings(self) -> list[str]:
        """The readings of the paper the tables show (profile `readings:`; default: as printed)."""
        r = list(self.profile.get("readings", ["printed"]))
        unknown = [x for x in r if x not in READINGS]
        if unknown:
            raise ValueError(f"{self.path}: unknown readings {unknown}; known: {list(READINGS)}")
        return r

    def readings_of(self, method: str, readings=None) -> list[str]:
        """The rows of `method` under each reading it takes (`ours`, `ours_mean`, ...)."""
        archs = [self.profile["archs"][f]["arch"] for f in self.families]
        arch = next((a for a in archs if method not in METHODS or METHODS[method].takes_arch(a)), archs[0])  # ICNN: VGG16's
        params = get_method(method, arch).params
        out = []
        for name in readings or self.readings:
            rp = READINGS[name]
            if not rp:
                out.append(method)
            elif all(k in params for k, _ in rp):
                out.append(f"{method}_{name}")
        return out

    @property
    def rows(self) -> list[str]:
        """Tables I-II's rows: every method, under every reading of the profile it takes."""
        return [r for m in self.methods for r in self.readings_of(m)]

    @property
    def families(self) -> list[str]:
        return list(self.profile["archs"])

    @property
    def methods(self) -> list[str]:
        return list(self.profile["methods"])

    @property
    def analysis_methods(self) -> list[str]:
        """The profile's methods that the paper's pruning, landscape and module analyses show
        (baseline, ours w/o sync, ours, icCNN: `Method.in_analyses`)."""
        return [m for m in self.methods if METHODS[m].in_analyses]

    def supports(self, row: str, dataset: str, family: str) -> bool:
        """Whether the paper compares `row`'s method on this data set with this architecture
        (ICNN: VGG16 only, VOC Part and ILSVRC Part only); a study plans no other run."""
        cls = METHODS[self.row_spec(row)[0]]
        if not cls.takes_arch(self.profile["archs"][family]["arch"]):
            return False
        if cls.needs_masks and not (self.datasets[dataset].manifest or {}).get("has_masks"):
            return False
        pds = self.datasets[dataset].spec.get("paper_dataset", dataset)
        return cls.paper_datasets is None or pds in cls.paper_datasets

    def methods_for(self, family: str, dataset: str | None = None, rows: list[str] | None = None) -> list[str]:
        """The methods (or `rows`) the study runs for a family on a data set (the main one by default)."""
        ds = dataset or self.main_dataset
        return [m for m in (rows or self.methods) if ds is None or self.supports(m, ds, family)]

    def arch_label(self, family: str) -> str:
        """The network that stands for the paper's `family` here, as a reader should see it:
        "VGG16-BN ⅛" for vgg16_bn at width 0.125, "ResNet18" at full width."""
        a = self.profile["archs"][family]
        name = NETWORK_LABELS.get(a["arch"], a["arch"])
        width = float(a.get("width", 1.0))
        return name if width == 1.0 else f"{name} {WIDTH_LABELS.get(width, f'×{width:g}')}"

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.profile["seeds"]]

    @property
    def analysis(self) -> dict:
        """The analyses' settings, with `arch` the family they run on (default vgg16)."""
        return {"arch": "vgg16", **self.profile.get("analysis", {})}

    @property
    def train_datasets(self) -> list[str]:
        return [n for n, d in self.datasets.items() if d.spec.get("train", True) and d.present]

    @property
    def missing_datasets(self) -> list[DataSet]:
        return [d for d in self.datasets.values() if not d.present]

    @property
    def main_dataset(self) -> str | None:
        """The first present training data set with part masks: the analyses' data."""
        masks = [n for n in self.train_datasets if self.datasets[n].spec.get("protocol") == "masks"]
        return masks[0] if masks else None

    @property
    def module_datasets(self) -> list[str]:
        """Table III's data sets: every present training data set with named parts."""
        return [n for n in self.train_datasets if (self.datasets[n].manifest or {}).get("parts")]

    @property
    def landmark_datasets(self) -> list[str]:
        """Figure 6's data sets: those evaluated by landmarks, else the main one (PartWorld has both)."""
        lm = [n for n in self.train_datasets if self.datasets[n].spec.get("protocol") == "landmarks"]
        return lm or ([self.main_dataset] if self.main_dataset else [])

    def eval_dataset(self, dataset: str) -> str | None:
        """Where a training data set's filters are evaluated (ImageNet-100's on Broden)."""
        d = self.datasets[dataset].spec
        return d.get("eval_on", dataset if d.get("protocol") != "none" else None)

    def sensitivity(self, reading: str = "printed") -> list[tuple[str, object, Run]]:
        """Figures 7 and 8: (param, value, run) for `ours` with one hyperparameter varied.
        Under another reading (the Ambiguities page's λ2 sweep), λ2 alone is varied."""
        s, ds = self.profile.get("sensitivity"), self.main_dataset
        if not s or ds is None or "ours" not in self.methods:
            return []
        row = reading_row("ours", reading)
        params = s["params"] if reading == "printed" else [p for p in s["params"] if p == "lambda2"]
        return [(p, v, self.find_row(ds, s["arch"], row, 0, ((p, v),))) for p in params for v in s["values"]]

    @property
    def artifacts(self) -> list[str]:
        """The profile's artifacts that its present data sets allow."""
        arts = list(self.profile.get("artifacts", list(ARTIFACTS)))
        unknown = [a for a in arts if a not in ARTIFACTS]
        if unknown:
            raise ValueError(f"{self.path}: unknown artifacts {unknown}; known: {list(ARTIFACTS)}")
        return [a for a in arts if ARTIFACTS[a].always or ARTIFACTS[a].needs(self)]

    def runs_for(self, *artifacts: str) -> list[Run]:
        """The runs the artifacts need, deduplicated, each after the run it fine-tunes."""
        out: dict[str, Run] = {}
        for art in artifacts:
            for run in ARTIFACTS[art].needs(self):
                if run.parent:
                    out.setdefault(run.parent, self._runs[run.parent])
                out.setdefault(run.hash, run)
        return [r for r in out.values() if r.backbone] + [r for r in out.values() if not r.backbone]

    @property
    def runs(self) -> dict[str, Run]:
        return dict(self._runs)

    def run(self, h: str) -> Run:
        return self._runs[h]

    @property
    def results_dir(self) -> Path:
        d = repo_root() / "results" / self.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"profile": self.profile, "path": self.path,
                "datasets": {n: {"root": d.root, "spec": d.spec, "manifest": d.manifest} for n, d in self.datasets.items()},
                "runs": [r.to_dict() for r in self._runs.values()],
                "requests": [[list(k[:4]) + [[list(p) for p in k[4]], k[5]], h] for k, h in self._by_request.items()]}

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        """A study saved by `save`: no YAML parsed, no manifest read."""
        path = Path(path)
        fix = "plan it again with `synclib reproduce --profile NAME`"
        d = read_json(path, fix, keys=("profile", "path", "datasets", "runs", "requests"), what="a saved study")
        try:
            study = cls(d["profile"], d["path"],
                        {n: DataSet(n, v["root"], v["spec"], v["manifest"]) for n, v in d["datasets"].items()})
            study._runs = {r["hash"]: Run.from_dict(r) for r in d["runs"]}
            for (ds, fam, m, seed, params, bb), h in d["requests"]:
                study._by_request[(ds, fam, m, seed, tuple(tuple(p) for p in params), bb)] = h
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a saved study ({type(e).__name__}: {e}); {fix}") from e
        return study

    @classmethod
    def open(cls, profile: str | Path = "smoke", study: str | Path | None = None) -> Study:
        """What a notebook calls: the saved study when `study` names one (relative to the project
        folder), else a plan of `profile`. A notebook downloaded from a built book names the study
        its build saved; in a checkout without that file, the profile is planned instead."""
        if study:
            path = Path(study) if Path(study).is_absolute() else repo_root() / study
            if path.is_file():
                return cls.load(path)
            print(f"{study} is not in this checkout: planning the profile {profile!r} here instead")
        return cls.plan(profile)


def _resolve_dataset(name: str, d: dict, prepare: bool, progress: bool, profile: Path | str = "") -> DataSet:
    root = Path(d["root"])
    root = root if root.is_absolute() else repo_root() / root
    manifest = None
    if d.get("kind") == "partworld" and prepare:
        try:
            manifest = generate(root, progress=progress, **d["generate"])
        except WorldMismatch as e:  # the profile's world changed, or its folder holds another
            diff = f" ({world_differences(e.held, e.asked)})" if e.held else ""
            raise ValueError(f"{profile}: datasets.{name}: {root} holds another PartWorld than the profile's "
                             f"generate: settings{diff}. Delete {root} to render the profile's, or give "
                             f"datasets.{name}.root another folder") from None
        except (TypeError, ValueError) as e:  # an unknown or malformed generator setting
            raise ValueError(f"{profile}: datasets.{name}.generate: {e}") from e
    elif (root / "manifest.json").is_file():
        manifest = read_manifest(root)
    return DataSet(name, str(root), d, manifest)
