"""A Sphinx extension of this book, run before anything is read:

- check that the notebooks the table of contents names under executed/ exist, and otherwise
  stop with one sentence that says which command makes them (instead of Sphinx's warnings
  about unknown documents and two tracebacks);
- hide the cell of parameters papermill injects, whoever ran papermill (`make book` or a plain
  papermill loop), so both give the same pages.
"""

import json
import os
import sys
from pathlib import Path


def _check(app, config) -> None:
    toc = Path(app.srcdir) / "_toc.yml"
    names = [line.split("executed/", 1)[1].strip() for line in toc.read_text().splitlines()
             if "file: executed/" in line]
    missing = [n for n in names if not (Path(app.srcdir) / "executed" / f"{n}.ipynb").is_file()]
    if missing:
        sys.stdout.flush()
        sys.stderr.write(
            f"\nbook/executed/ lacks the executed notebooks {', '.join(missing)}.\nRun `make book` first "
            "(or execute the notebooks with papermill into book/executed/, as the README shows), "
            "then `jupyter-book build book/`.\n")
        sys.stderr.flush()
        os._exit(2)  # one clear sentence, not Sphinx's and jupyter-book's tracebacks
    for n in names:
        path = Path(app.srcdir) / "executed" / f"{n}.ipynb"
        nb = json.loads(path.read_text())
        changed = False
        for cell in nb["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            if "injected-parameters" in tags and "remove-cell" not in tags:
                cell["metadata"]["tags"] = [*tags, "remove-cell"]
                changed = True
        if changed:
            tmp = path.with_suffix(".ipynb.tmp")
            tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            os.replace(tmp, path)


def setup(app):
    app.connect("config-inited", _check)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
