"""What every notebook does first: open its study (the one `synclib reproduce` saved, or a plan
of the profile when the notebook runs on its own, as under nbval or a plain papermill call),
and how it names the files it writes (relative to the project: a page never shows a path of
the machine that built it)."""

from __future__ import annotations

import warnings
from pathlib import Path

from . import viz
from .profile import repo_root
from .study import Study

__all__ = ["setup", "rel"]


def setup(profile: str = "smoke", study_file: str | None = None) -> Study:
    """The notebook's `Study`: `study_file` when given (no YAML parsed), else `profile` planned."""

    viz.theme()  # one look for every figure of the book
    # a warning names the category and the message, not the kernel's temp file it came from
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
    return Study.open(profile, study_file)


def rel(path: str | Path) -> str:
    """`path` relative to the project folder (`results/quick/table1.csv`), or its name alone
    when it lies outside."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(repo_root().resolve()))
    except ValueError:
        return path.name
