"""`synclib reproduce`: plan the runs, train what the store lacks, execute every artifact's
notebook with papermill into the profile's book, build the book.

build/<profile>/book/        the book's sources for this profile (copied from book/) and the
                             executed notebooks; jupyter-book builds it to _build/html
results/<profile>/           the CSV of each table and provenance.json
A failing notebook stops no other: it is saved with its error, reported at the end, and the
command exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .data.format import atomic_write_text
from .executors import LocalExecutor
from .profile import repo_root
from .provenance import commit
from .store import RunStore
from .study import ARTIFACTS, Study

__all__ = ["reproduce", "build_book", "REFERENCE_PAGES"]

# pages of the book's Reference part that are notebooks too (they need no run)
REFERENCE_PAGES = {"getting_data": "Getting the data"}


def _prepare_book(profile: str, artifacts: list[str]) -> Path:
    """Copy book/ into build/<profile>/book and write its table of contents."""
    src = repo_root() / "book"
    dst = repo_root() / "build" / profile / "book"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix in (".md", ".yml", ".bib", ".css"):
            shutil.copy2(f, dst / f.name)
    summary = "\n\n".join((src / "fragments" / f"{a}.md").read_text()
                          for a in artifacts if (src / "fragments" / f"{a}.md").is_file())
    (dst / "summary.md").write_text((src / "fragments" / "summary_head.md").read_text()
                                    .replace("{profile}", profile) + "\n\n" + summary + "\n")
    shutil.copytree(src / "_mathjax", dst / "_mathjax", dirs_exist_ok=True)
    chapters = [{"file": "summary"}] + [{"file": a} for a in artifacts]
    chapters += [{"file": "provenance"}]
    toc = {"format": "jb-book", "root": "intro",
           "parts": [{"caption": "Results", "chapters": chapters},
                     {"caption": "Reference", "chapters": [{"file": p} for p in REFERENCE_PAGES]}]}
    (dst / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return dst


def _execute(nb: str, out: Path, parameters: dict) -> tuple[bool, float, str]:
    import papermill as pm

    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(repo_root() / "notebooks" / f"{nb}.ipynb"), str(out),
                            parameters=parameters, cwd=str(repo_root()),
                            progress_bar=False, kernel_name="python3")
        _hide_injected(out)
        return True, time.perf_counter() - t0, ""
    except Exception as e:  # noqa: BLE001 - any failure is reported, the others still run
        return False, time.perf_counter() - t0, f"{type(e).__name__}: {str(e).strip()[-800:]}"


def _execution_key(art: str, study: Study, hashes: list[str]) -> str:
    """What an executed notebook depends on: itself, the study, its runs and synclib's code.
    The same key means the page in the book is still right and need not run again."""
    h = hashlib.sha256()
    h.update((repo_root() / "notebooks" / f"{art}.ipynb").read_bytes())
    h.update(json.dumps(study.to_dict(), sort_keys=True).encode())
    h.update(" ".join(hashes).encode())
    for p in sorted((repo_root() / "synclib").rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()


def _hide_injected(path: Path) -> None:
    """Keep papermill's injected-parameters cell out of the rendered page."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            c.metadata["tags"] = tags + ["remove-cell"]
    nbformat.write(nb, path)


def build_book(book_dir: Path) -> bool:
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(book_dir), "-W", "-n", "--keep-going"]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), "build", str(book_dir), "-W", "-n", "--keep-going"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:], sep="\n")
    return r.returncode == 0


def reproduce(profile: str = "quick", only: list[str] | None = None, jobs: int = 1,
              book: bool = True, executor=None) -> int:
    """Regenerate the artifacts of a profile. Returns the process exit code."""
    t_start = time.perf_counter()
    study = Study.plan(profile, progress=True)
    name = study.name
    unknown = [a for a in only or [] if a not in ARTIFACTS]
    if unknown:
        print(f"unknown artifacts {unknown}; known: {list(ARTIFACTS)}", file=sys.stderr)
        return 2
    for ds in study.missing_datasets:
        conv = ds.spec.get("converter", "<converter>")
        print(f"[skip] data set {ds.name!r} not found at {ds.spec['root']}: convert it with "
              f"`python -m data_prep.{conv} --src ORIGINAL --out {ds.spec['root']}` "
              "(see the book's 'Getting the data' page); artifacts that need it are built without it")
    wanted = list(only or study.profile.get("artifacts", list(ARTIFACTS)))
    artifacts = [a for a in wanted if a in study.artifacts]
    for art in wanted:
        if art not in artifacts:
            print(f"[skip] {art}: the data sets it needs are missing")
    book_dir = _prepare_book(name, artifacts)
    study_path = study.save(book_dir / "study.json")  # what the notebooks read: no YAML, no manifest
    store = RunStore()
    runs = study.runs_for(*artifacts)
    t0 = time.perf_counter()
    failed_runs = (executor or LocalExecutor(jobs)).run(study, runs, store)
    train_s = time.perf_counter() - t0
    print(f"{len(runs)} runs planned, trained in {train_s:.0f} s"
          + (f"; FAILED: {failed_runs}" if failed_runs else ""))

    params = {"profile": name, "study_file": str(study_path)}
    prov = {"profile": name, "commit": commit(), "train_seconds": round(train_s, 1), "artifacts": {}}
    failures = []
    done_path = book_dir / ".executed.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    for art in artifacts + list(REFERENCE_PAGES):
        hashes = sorted({r.hash for r in study.runs_for(art)}) if art in ARTIFACTS else []
        title = ARTIFACTS[art].title if art in ARTIFACTS else REFERENCE_PAGES[art]
        key = _execution_key(art, study, hashes)
        prev = done.get(art, {})
        if prev.get("key") == key and prev["record"]["ok"] and (book_dir / f"{art}.ipynb").is_file():
            if art in ARTIFACTS:
                prov["artifacts"][art] = prev["record"]
            print(f"{art}: unchanged, not executed again (it took {prev['record']['wall_seconds']} s)")
            continue
        ok, secs, err = _execute(art, book_dir / f"{art}.ipynb", params)
        record = {"title": title, "profile": name, "hashes": hashes, "commit": prov["commit"],
                  "wall_seconds": round(secs, 1), "ok": ok, "error": err}
        if art in ARTIFACTS:
            prov["artifacts"][art] = record
        done[art] = {"key": key, "record": record}
        atomic_write_text(done_path, json.dumps(done, indent=2))
        print(f"{art}: {'ok' if ok else 'FAILED'} in {secs:.1f} s" + (f" -- {err}" if err else ""))
        if not ok:
            failures.append(art)
    atomic_write_text(study.results_dir / "provenance.json", json.dumps(prov, indent=2))
    ok, secs, err = _execute("provenance", book_dir / "provenance.ipynb", params)
    if not ok:
        failures.append(f"provenance ({err})")
    if book:
        if build_book(book_dir):
            print(f"book: {book_dir / '_build' / 'html' / 'index.html'}")
        else:
            failures.append("jupyter-book build")
    print(f"reproduce --profile {name}: {time.perf_counter() - t_start:.0f} s")
    if failures or failed_runs:
        print(f"FAILED: {failures + failed_runs}", file=sys.stderr)
        return 1
    return 0
