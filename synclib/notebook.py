"""What every notebook does first: open its study (the one `synclib reproduce` saved, or a plan
of the profile when the notebook runs on its own, as under nbval or a plain papermill call)."""

from __future__ import annotations

from .study import Study

__all__ = ["setup"]


def setup(profile: str = "smoke", study_file: str | None = None) -> Study:
    """The notebook's `Study`: `study_file` when given (no YAML parsed), else `profile` planned."""
    return Study.open(profile, study_file)
