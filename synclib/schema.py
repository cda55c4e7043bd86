"""What a profile may say, and what a training run may be given: one schema, as data
(sections, keys, types, ranges), checked where a profile is loaded (`synclib.study.load_profile`)
and where a `TrainConfig` is made (the CLI, a job, a study), so a typo or a value out of range is
an error that names the file, the key and the value, never a silent default.

    check_profile(prof, path, registries)   raises ProfileError naming path, key and value
    check_train_values(values)              the numbers of a TrainConfig (epochs >= 1, width > 0, ...)

A key whose values come from a registry (methods, archs, artifacts, readings, the swept
parameters) names the registry (`one_of("methods")`); the caller that knows the registries (the
study) passes them in. This module imports nothing of synclib: it is the floor the others stand on.

The schema grows with the product: a new method parameter, executor or profile section is a
new entry here, nowhere else.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Spec", "PROFILE", "TRAIN_VALUES", "REGISTRIES", "check", "check_profile", "check_train_values",
           "SchemaError", "ProfileError"]

#: The registries a profile's values may name; `check_profile` needs each of them.
REGISTRIES = ("methods", "archs", "artifacts", "readings", "swept")


class ProfileError(ValueError):
    """A profile is missing or malformed; the message names the file and the key."""


class SchemaError(ValueError):
    """A value breaks the schema: `where` is its dotted key, the message says what was expected."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.detail = message


@dataclass(frozen=True)
class Spec:
    """One node of the schema.

    what: the expected value in words ("an integer >= 1"); accept(value) -> bool for a leaf.
    keys: a section's known keys (each a Spec); required: those that must be there.
    values: a mapping of free names (data sets, architectures) to values of this Spec.
    items: a list whose items are of this Spec; nonempty: at least one item.
    choices: the allowed strings; registry: or the name of the registry that holds them (one of
    REGISTRIES, given to `check` by its caller). nullable: `null` is allowed (the key is as if absent).
    """

    what: str
    accept: Callable[[object], bool] | None = None
    keys: dict[str, Spec] | None = None
    required: tuple[str, ...] = ()
    values: Spec | None = None
    items: Spec | None = None
    nonempty: bool = False
    choices: tuple[str, ...] = ()
    registry: str | None = None
    nullable: bool = False  # null (None) means "not set"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None) -> Spec:
    return Spec(f"an integer >= {lo}" if lo is not None else "an integer",
                lambda v: _is_int(v) and (lo is None or v >= lo))


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Spec:
    lo_s = f"{'>' if lo_open else '>='} {lo}" if lo is not None else ""
    hi_s = f"{'<' if hi_open else '<='} {hi}" if hi is not None else ""
    what = "a number" + (f" {lo_s}" if lo_s else "") + (" and" if lo_s and hi_s else "") + (f" {hi_s}" if hi_s else "")

    def ok(v) -> bool:
        if not _is_num(v) or v != v:  # NaN is no number here
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    return Spec(what, ok)


def text(nullable: bool = False) -> Spec:
    return Spec("a string" + (" or null" if nullable else ""), lambda v: isinstance(v, str) and v != "",
                nullable=nullable)


def boolean() -> Spec:
    return Spec("true or false", lambda v: isinstance(v, bool))


def one_of(choices: str | list[str]) -> Spec:
    """A string out of `choices`, or out of the registry named `choices` (see REGISTRIES)."""
    if isinstance(choices, str):
        if choices not in REGISTRIES:
            raise ValueError(f"{choices!r} is no registry; known: {list(REGISTRIES)}")
        return Spec("one of", registry=choices)
    return Spec("one of", choices=tuple(choices))


def section(keys: dict[str, Spec], required: tuple[str, ...] = (), what: str = "a mapping") -> Spec:
    return Spec(what, keys=keys, required=required)


def mapping_of(values: Spec, what: str = "a mapping of names") -> Spec:
    return Spec(what, values=values, nonempty=True)


def list_of(items: Spec, nonempty: bool = True) -> Spec:
    plain = not items.choices and items.registry is None
    return Spec(f"a list, each item {items.what}" if plain else "a list", items=items, nonempty=nonempty)


# ------------------------------------------------------------------ TrainConfig's numbers
TRAIN_VALUES: dict[str, Spec] = {  # a TrainConfig's numbers; the profile's `train:` shares them
    "epochs": integer(1),
    "width": number(0, 8, lo_open=True),
    "batch_size": integer(1),
    "lr": number(0, lo_open=True),
    "momentum": number(0, 1, hi_open=True),
    "weight_decay": number(0),
    "seed": integer(0),
}

DIFFICULTY = section({"swap": number(0, 1), "texture_mix": number(0, 1), "occlusion": number(0, 1),
                      "clutter": integer(0)})
GENERATE = section({"n_train": integer(1), "n_test": integer(0), "size": integer(32), "seed": integer(0),
                    "difficulty": DIFFICULTY}, required=("n_train", "n_test", "size", "seed"))
DATASET = section({
    "kind": one_of(["partworld", "folder"]),
    "root": text(),
    "generate": GENERATE,
    "converter": text(),
    "train": boolean(),
    "protocol": one_of(["masks", "landmarks", "none"]),
    "top": number(0, 1, lo_open=True),
    "phi": number(0, 1, lo_open=True),
    "paper_dataset": text(),
    "eval_split": text(),
    "eval_on": text(),
    "lambda_scale": number(0, lo_open=True),
}, required=("kind", "root"))
ARCH = section({"arch": one_of("archs"), "width": TRAIN_VALUES["width"], "batch_size": TRAIN_VALUES["batch_size"],
                "pretrained": text(nullable=True)}, required=("arch", "batch_size"))

PROFILE = section({
    "profile": text(),
    "datasets": mapping_of(DATASET, "a mapping of data set names to their settings"),
    "archs": mapping_of(ARCH, "a mapping of the paper's architectures (vgg16, resnet18) to networks"),
    "methods": list_of(one_of("methods")),
    "readings": list_of(one_of("readings")),
    "pretrain": section({"epochs": integer(1), "seed": integer(0)}, required=("epochs",)),
    "train": section({k: TRAIN_VALUES[k] for k in ("epochs", "lr", "momentum", "weight_decay")}, required=("epochs",)),
    "seeds": list_of(integer(0)),
    "sensitivity": section({"arch": text(), "params": list_of(one_of("swept")), "values": list_of(number(0, lo_open=True))},
                           required=("arch", "params", "values")),
    "analysis": section({"arch": text(), "module_images": integer(1), "landscape_points": integer(1),
                         "landscape_images": integer(1), "pruning_steps": integer(1)}),
    "artifacts": list_of(one_of("artifacts")),
    # submitit's SLURM parameters (partition, time, gpus_per_node, mem, account, ...): checked by
    # submitit itself, which knows them, when `--executor slurm` is used
    "slurm": mapping_of(Spec("a value", lambda v: isinstance(v, (str, int, float, bool, list, dict))),
                        "a mapping of submitit SLURM parameters"),
}, required=("profile", "datasets", "archs", "methods", "train", "seeds"), what="a mapping of sections")


# ------------------------------------------------------------------ checking
def _show(v) -> str:
    if isinstance(v, str) and _looks_numeric(v):
        return f"{v!r} (text: YAML reads a number like 5e-4 as text; write 5.0e-4)"
    return repr(v)


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


# other names a user may write for a key (the words of other tools): the closest-key hint
# looks at these too, so `learning_rate` (or `lerning_rate`) points to `lr`
ALIASES = {"lr": ("learning_rate",), "weight_decay": ("wd", "decay"), "batch_size": ("bs", "batch"),
           "epochs": ("n_epochs", "num_epochs"), "seeds": ("seed",), "archs": ("arch", "architectures"),
           "methods": ("method",), "datasets": ("dataset", "data")}


def _closest(key: str, known: list[str]) -> str | None:
    names = {k: k for k in known}
    names.update({a: k for k in known for a in ALIASES.get(k, ())})
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return names[close[0]] if close else None


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


def check(value, spec: Spec, where: str = "", registries: Mapping[str, Sequence[str]] | None = None) -> None:
    """Raise SchemaError at the first value that breaks `spec` (depth first, in file order).
    `registries` maps each registry a spec names to its names (KeyError when one is missing)."""
    if value is None and spec.nullable:
        return
    if spec.choices or spec.registry is not None:
        allowed = list(spec.choices) if spec.choices else list(_registry(registries, spec.registry))
        if not (isinstance(value, str) and value in allowed):
            close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise SchemaError(where, f"{_show(value)} is not one of {allowed}{hint}")
        return
    if spec.keys is not None:
        if not isinstance(value, dict):
            raise SchemaError(where, f"must be {spec.what}, got {_show(value)}")
        for k in value:
            if k not in spec.keys:
                close = _closest(str(k), list(spec.keys))
                hint = f"; did you mean {close!r}?" if close else ""
                raise SchemaError(_join(where, k), f"unknown key{hint} (known here: {sorted(spec.keys)})")
        for k in spec.required:
            if k not in value:
                raise SchemaError(_join(where, k), "is required and missing")
        for k, v in value.items():
            check(v, spec.keys[k], _join(where, k), registries)
        return
    if spec.values is not None:
        if not isinstance(value, dict) or (spec.nonempty and not value):
            raise SchemaError(where, f"must be {spec.what}, got {_show(value)}")
        for k, v in value.items():
            check(v, spec.values, _join(where, k), registries)
        return
    if spec.items is not None:
        if not isinstance(value, list) or (spec.nonempty and not value):
            raise SchemaError(where, f"must be {spec.what}{' (at least one)' if spec.nonempty else ''}, "
                                     f"got {_show(value)}")
        for i, v in enumerate(value):
            check(v, spec.items, f"{where}[{i}]", registries)
        return
    if not spec.accept(value):
        raise SchemaError(where, f"must be {spec.what}, got {_show(value)}")


def _registry(registries: Mapping[str, Sequence[str]] | None, name: str) -> Sequence[str]:
    if not registries or name not in registries:
        raise KeyError(f"checking this value needs the registry {name!r}; pass registries= (the study's)")
    return registries[name]


def check_profile(prof, path, registries: Mapping[str, Sequence[str]]) -> None:
    """The profile at `path` against PROFILE, with the names of each registry (REGISTRIES), then
    the keys that name each other (sensitivity.arch and analysis.arch are keys of archs; eval_on
    names a data set)."""
    try:
        check(prof, PROFILE, registries=registries)
        families = list(prof["archs"])
        for sec in ("sensitivity", "analysis"):
            arch = prof.get(sec, {}).get("arch")
            if arch is not None and arch not in families:
                raise SchemaError(f"{sec}.arch", f"{arch!r} is not one of the profile's archs {families}")
        for name, d in prof["datasets"].items():
            if d.get("eval_on") is not None and d["eval_on"] not in prof["datasets"]:
                raise SchemaError(f"datasets.{name}.eval_on", f"{d['eval_on']!r} is not one of the profile's "
                                                             f"data sets {list(prof['datasets'])}")
            if d["kind"] == "partworld" and "generate" not in d:
                raise SchemaError(f"datasets.{name}.generate", "is required for a data set of kind partworld")
    except SchemaError as e:
        raise ProfileError(f"{path}: {e}") from None


def check_train_values(values: dict) -> None:
    """The numbers of a TrainConfig (a dict of its fields) against TRAIN_VALUES."""
    for k, spec in TRAIN_VALUES.items():
        if k in values:
            check(values[k], spec, k)
