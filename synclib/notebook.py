"""What every notebook does first: open its study (the one `synclib reproduce` saved, or a plan
of the profile when the notebook runs on its own, as under nbval or a plain papermill call),
and how it names the files it writes (relative to the project: a page never shows a path of
the machine that built it)."""

from __future__ import annotations

import warnings
from pathlib import Path

from IPython.display import Markdown

from . import viz
from .profile import repo_root
from .study import ARTIFACTS, Study

__all__ = ["setup", "rel", "reproduce_box"]


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


#: From a page of the built book (book/_build/html/executed/<page>.html) to the project folder.
TO_PROJECT = "../../../../"


def reproduce_box(study: Study, page: str):
    """The box that ends a page: the command that rebuilds it on this profile, and the CSV files
    it wrote (`results/<profile>/<page>*.csv`), each a link from the built book to the file in
    the project. An IPython Markdown object (raw HTML: a notebook's Markdown output has no
    directives)."""
    only = f" --only {page}" if page in ARTIFACTS else ""
    csvs = sorted(study.results_dir.glob(f"{page}*.csv"))
    wrote = (" It writes " + ", ".join(f'<a href="{TO_PROJECT}{rel(c)}"><code>{rel(c)}</code></a>' for c in csvs) + "."
             if csvs else "")
    return Markdown(f'<div class="admonition tip"><p class="admonition-title">Reproduce this page</p>'
                    f"<p><code>synclib reproduce --profile {study.name}{only}</code> from the project folder "
                    f"(or <code>make book PROFILE={study.name}</code> for the whole book).{wrote}</p></div>")
