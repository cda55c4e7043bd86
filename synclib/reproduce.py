"""`synclib reproduce`: plan the runs, train what the store lacks, execute every artifact's
notebook with papermill into the profile's book, build the book.

build/<profile>/book/        the book's sources for this profile (copied from book/) and the
                             executed notebooks; jupyter-book builds it to _build/html
results/<profile>/           the CSV of each table and provenance.json
A failing notebook stops no other: it is saved with its error, reported at the end, and the
command exits non-zero.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .data.format import atomic_write_text
from .results import commit, results_dir
from .runs import RunStore, ensure_data, load_profile, plan, repo_root

__all__ = ["reproduce", "build_book", "ARTIFACTS"]

# artifact -> (page title, notebook)
ARTIFACTS = {
    "table1": "Table I: interpretability metrics",
    "table2": "Table II: classification accuracy",
    "fig4": "Figure 4: activation maps of single filters",
    "fig5": "Figure 5: average feature maps",
    "fig6": "Figure 6: metric-pair curves on landmarks",
    "fig7": "Figure 7: parameter sensitivity",
    "fig8": "Figure 8: average maps under each setting",
    "fig9": "Figure 9: redundancy by pruning",
    "fig10": "Figure 10: loss landscapes",
    "table3": "Table III: module consistency",
    "table4": "Table IV: modules and semantic parts",
    "claims": "Claims: what holds on this profile",
}


def _profile_path(profile: str) -> str:
    p = Path(profile)
    return str(p.resolve()) if p.suffix else str(repo_root() / "configs" / f"{profile}.yaml")


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
    gd = src / "getting_data.md"
    if gd.is_file():
        (dst / "getting_data.md").write_text(gd.read_text().replace("{pascal_part_mapping}", _part_map_table()))
    chapters = [{"file": "summary"}] + [{"file": a} for a in artifacts]
    chapters += [{"file": "provenance"}]
    extra = [{"file": p} for p in ("getting_data",) if (src / f"{p}.md").is_file()]
    toc = {"format": "jb-book", "root": "intro",
           "parts": [{"caption": "Results", "chapters": chapters}]
           + ([{"caption": "Reference", "chapters": extra}] if extra else [])}
    (dst / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    return dst


def _part_map_table() -> str:
    """The PASCAL-Part coarse-part table, rendered from the converter's own mapping."""
    from data_prep.pascal_part import PART_MAP

    lines = ["| coarse part | fine PASCAL-Part parts |", "|---|---|"]
    for part, fine in PART_MAP.items():
        names = ", ".join(f"{n[5:]} (*bird*)" if n.startswith("bird:") else n for n in fine)
        lines.append(f"| {part} | {names} |")
    return "\n".join(lines)


def _execute(nb: str, out: Path, profile: str) -> tuple[bool, float, str]:
    import papermill as pm

    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(repo_root() / "notebooks" / f"{nb}.ipynb"), str(out),
                            parameters={"profile": profile}, cwd=str(repo_root()),
                            progress_bar=False, kernel_name="python3")
        _hide_injected(out)
        return True, time.perf_counter() - t0, ""
    except Exception as e:  # noqa: BLE001 - any failure is reported, the others still run
        return False, time.perf_counter() - t0, f"{type(e).__name__}: {str(e).strip()[-800:]}"


def _execution_key(art: str, profile_path: str, hashes: list[str]) -> str:
    """What an executed notebook depends on: itself, the profile, its runs and synclib's code.
    The same key means the page in the book is still right and need not run again."""
    import hashlib

    h = hashlib.sha256()
    h.update((repo_root() / "notebooks" / f"{art}.ipynb").read_bytes())
    h.update(Path(profile_path).read_bytes())
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
              book: bool = True) -> int:
    """Regenerate the artifacts of a profile. Returns the process exit code."""
    t_start = time.perf_counter()
    prof = load_profile(profile)
    name = prof["profile"]
    artifacts = list(only or prof.get("artifacts", list(ARTIFACTS)))
    unknown = [a for a in artifacts if a not in ARTIFACTS]
    if unknown:
        print(f"unknown artifacts {unknown}; known: {sorted(ARTIFACTS)}", file=sys.stderr)
        return 2
    available = set()
    for ds in prof["datasets"]:
        if ensure_data(prof, ds):
            available.add(ds)
        else:
            root = prof["datasets"][ds]["root"]
            conv = prof["datasets"][ds].get("converter", "<converter>")
            print(f"[skip] data set {ds!r} not found at {root}: convert it with "
                  f"`python -m data_prep.{conv} --src ORIGINAL --out {root}` "
                  "(see the book's 'Getting the data' page); artifacts that need it are built without it")
    store = RunStore()
    for art in list(artifacts):
        if art not in ("table1", "table2", "claims") and not plan(prof, [art], available):
            print(f"[skip] {art}: the data sets it needs are missing")
            artifacts.remove(art)
    specs = plan(prof, artifacts, available)
    t0 = time.perf_counter()
    failed_runs = store.train_all(specs, prof, _profile_path(profile), jobs=jobs)
    train_s = time.perf_counter() - t0
    print(f"{len(specs)} runs planned, trained in {train_s:.0f} s"
          + (f"; FAILED: {failed_runs}" if failed_runs else ""))

    book_dir = _prepare_book(name, artifacts)
    prov = {"profile": name, "commit": commit(), "train_seconds": round(train_s, 1),
            "artifacts": {}}
    failures = []
    done_path = book_dir / ".executed.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    for art in artifacts:
        hashes = sorted({s.hash(prof) for s in plan(prof, [art], available)})
        key = _execution_key(art, _profile_path(profile), hashes)
        prev = done.get(art, {})
        if prev.get("key") == key and prev["record"]["ok"] and (book_dir / f"{art}.ipynb").is_file():
            prov["artifacts"][art] = prev["record"]
            print(f"{art}: unchanged, not executed again (it took {prev['record']['wall_seconds']} s)")
            continue
        ok, secs, err = _execute(art, book_dir / f"{art}.ipynb", profile)
        prov["artifacts"][art] = {"title": ARTIFACTS[art], "profile": name, "hashes": hashes,
                                  "commit": prov["commit"], "wall_seconds": round(secs, 1),
                                  "ok": ok, "error": err}
        done[art] = {"key": key, "record": prov["artifacts"][art]}
        atomic_write_text(done_path, json.dumps(done, indent=2))
        print(f"{art}: {'ok' if ok else 'FAILED'} in {secs:.1f} s" + (f" -- {err}" if err else ""))
        if not ok:
            failures.append(art)
    atomic_write_text(results_dir(name) / "provenance.json", json.dumps(prov, indent=2))
    ok, secs, err = _execute("provenance", book_dir / "provenance.ipynb", profile)
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
