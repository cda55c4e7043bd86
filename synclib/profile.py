"""Profiles: `configs/<name>.yaml`, read once per study and checked where they are read.

A profile says which data sets, architectures, methods, seeds and schedule a study runs.
`read_profile` is the only place that parses one (YAML, `${VAR:-default}` expanded);
`synclib.study.load_profile` checks the result against `synclib.schema.PROFILE` with the
registries the study knows (methods, archs, artifacts); everything downstream takes the
resolved `synclib.study.Study`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from . import trace
from .schema import PROFILE, ProfileError

__all__ = ["repo_root", "read_profile", "profile_path", "ProfileError"]

REQUIRED = PROFILE.required
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def repo_root() -> Path:
    """The project folder: $SYNCLIB_HOME, else the checkout synclib was installed from, else cwd."""
    if os.environ.get("SYNCLIB_HOME"):
        return Path(os.environ["SYNCLIB_HOME"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "configs").is_dir():
        return here
    return Path.cwd()


def _expand(value):
    if isinstance(value, str):
        return _VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def profile_path(name_or_path: str | Path) -> Path:
    """configs/<name>.yaml for a bare name, else the path itself (absolute)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = repo_root() / "configs" / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (repo_root() / "configs").glob("*.yaml"))
        raise FileNotFoundError(f"profile {str(name_or_path)!r} not found at {path}; known: {known}")
    return path.resolve()


def read_profile(name_or_path: str | Path) -> dict:
    """A profile by name (configs/<name>.yaml) or path, with ${VAR:-default} expanded, parsed but
    not yet checked against the schema (`synclib.study.load_profile` does both)."""
    path = profile_path(name_or_path)
    trace.record("profile", path)
    try:
        prof = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path} is not valid YAML: {e}") from e
    if prof is None:
        raise ProfileError(f"{path} is empty; a profile names its sections {list(REQUIRED)} "
                           "(copy configs/smoke.yaml to start)")
    if not isinstance(prof, dict):
        raise ProfileError(f"{path} must be a mapping of sections (profile, datasets, archs, ...), "
                           f"not {type(prof).__name__}")
    return _expand(prof)
