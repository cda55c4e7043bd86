"""`synclib reproduce`: plan the study, train what the store lacks, execute every artifact's
notebook with papermill into book/executed/, build the book.

book/                  the Jupyter Book (its _toc.yml, chapter pages and extension are committed)
book/executed/         the executed notebooks and the study they read (git ignores it); the same
                       folder a plain papermill loop writes, so `jupyter-book build book/`
                       builds exactly this book
results/<profile>/     the CSV of each table, the figures, provenance.json
A failing notebook stops no other: it is saved with its error, reported at the end, and the
command exits non-zero. An artifact whose data sets are missing gets a page that says so.

Two builds of one checkout may start at once (two terminals, a SLURM build beside a local
one): the run store trains each run once (each run's lock), and the notebook and book stages
are held by one build at a time (`book/.build.lock`, taken once the runs are trained). The
second build says who holds it and waits, then finds every page current and executes nothing
again; with `wait=False` (`--no-wait`) it stops with exit code 3 instead. Each notebook's
kernel talks over IPC sockets in a folder of its own, so two kernels never share a socket.

The output is one line per stage and a progress bar for each long one; each run's training
log is in runs/<hash>/train.log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import papermill as pm
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from tqdm import tqdm

from .executors import LocalExecutor, SlurmExecutor, run_ready
from .files import Busy, atomic_write_text, file_lock, read_json
from .profile import repo_root
from .provenance import commit, distributions
from .store import RunStore
from .study import ARTIFACTS, Study

__all__ = ["reproduce", "build_book", "execute_notebook", "run_pages", "reads", "READERS", "REFERENCE_PAGES", "book_dir",
           "BUSY"]

#: The exit code of a build that found another build of the checkout running and, told not to
#: wait (`--no-wait`), stopped.
BUSY = 3

#: How a notebook's kernel ends once its last cell ran (nbclient's `shutdown_kernel`): its
#: process group is killed, no shutdown request is sent. ipykernel 7.4 answers a shutdown
#: request and then, on its control thread, flushes stderr and publishes "idle" while its main
#: thread is already closing the IOPub sockets: on a busy machine (two builds at once) the
#: flush meets a closed socket and the kernel prints a ZMQError traceback ("Socket operation on
#: non-socket") into the build's output. ipykernel's fix (PR #1518) covers the send, not the
#: flush's wake-up of the IO thread. A kernel here holds nothing to save: every cell has run and
#: every file it wrote is written atomically before the notebook is saved.
KERNEL_SHUTDOWN = "immediate"

# pages of the book's Reference part that are notebooks too (they need no run)
REFERENCE_PAGES = {"getting_data": "Getting the data", "own_network": "Measure your own network",
                   "performance": "Performance", "cluster": "Running on a cluster"}


def book_dir() -> Path:
    return repo_root() / "book"


class IPCKernelManager(AsyncKernelManager):
    """A kernel on IPC sockets (no TCP ports, no warning about unencrypted TCP) in a private
    temporary folder, on the process's one ZeroMQ context.

    - jupyter_client's default IPC path is `kernel-ipc-N` in the working directory: two builds
      of one checkout then bind the same sockets and each reads the other's messages ("Invalid
      Signature").
    - A manager that made its own context destroys it when the kernel shuts down, before
      nbclient closes the client's channels on it: a message still arriving then is logged as
      a ZMQError traceback ("Socket operation on non-socket"). The shared context is never
      destroyed, so the channels close in their own time.
    - jupyter_client gives a kernel 2.5 s to exit after its shutdown request, then terminates
      it: on a machine busy with a second build, a kernel that is exiting normally is
      interrupted ("KeyboardInterrupt caught in kernel") and its last messages meet closed
      sockets (the same ZMQError traceback). A kernel here is killed instead (KERNEL_SHUTDOWN).
    """

    #: the kernel's CPU threads (OMP_NUM_THREADS), None: torch's default (every core). Pages run
    #: `--jobs` at once get cores // jobs each, as training runs do: two kernels of two OpenMP
    #: threads each on two cores spin against each other (a pruning page took 152 s, not 17).
    threads: int | None = None

    def __init__(self, **kw):
        kw.setdefault("context", zmq.asyncio.Context.instance())
        super().__init__(**kw)
        self.transport = "ipc"
        self._socket_dir = tempfile.mkdtemp(prefix="synclib-kernel-")
        self.ip = os.path.join(self._socket_dir, "k")

    async def _async_pre_start_kernel(self, **kw):
        if self.threads:
            kw["env"] = dict(kw.get("env", os.environ), OMP_NUM_THREADS=str(self.threads),
                             SYNCLIB_THREADS=str(self.threads))
        return await super()._async_pre_start_kernel(**kw)

    pre_start_kernel = _async_pre_start_kernel

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources


def kernel_manager(threads: int | None = None) -> type[IPCKernelManager]:
    """The kernel manager class of a notebook run on `threads` CPU threads (None: torch's default)."""
    return type("IPCKernelManager", (IPCKernelManager,), {"threads": threads}) if threads else IPCKernelManager


def execute_notebook(nb: str, out: Path, parameters: dict, threads: int | None = None) -> tuple[bool, float, str]:
    """papermill `notebooks/<nb>.ipynb` into `out` on an IPC kernel (of `threads` CPU threads).
    Returns (ok, seconds, error)."""
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(repo_root() / "notebooks" / f"{nb}.ipynb"), str(out),
                            parameters=parameters, cwd=str(repo_root()), progress_bar=False,
                            kernel_name="python3", kernel_manager_class=kernel_manager(threads),
                            shutdown_kernel=KERNEL_SHUTDOWN)
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


def _skipped_page(art: str, reason: str, out: Path) -> None:
    """The page of an artifact this build does not make: its title, why, and "n/a" for every
    number the introduction and the summary glue from it (so the book still builds with warnings
    as errors)."""
    text = "".join((book_dir() / page).read_text() for page in ("intro.md", "summary.md"))
    keys = sorted(set(re.findall(rf"`executed/{art}\.ipynb::(\w+)", text))  # {glue:text}`doc::key`
                  | set(re.findall(rf"{{glue(?::\w+)?}} (\w+)\n:doc: executed/{art}\.ipynb", text)))  # a directive
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {ARTIFACTS[art].title}\n\n{reason}"))
    if keys:
        code = "from myst_nb import glue\n\n" + "".join(f'glue("{k}", "n/a", display=False)\n' for k in keys)
        nb.cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": ["remove-cell"]}))
    nbformat.write(nb, out)
    # executed, so the glued values exist in its outputs
    pm.execute_notebook(str(out), str(out), progress_bar=False, kernel_name="python3",
                        kernel_manager_class=IPCKernelManager, shutdown_kernel=KERNEL_SHUTDOWN)


def build_book(book: Path | None = None, every_page: bool = False) -> bool:
    """`jupyter-book build` with warnings as errors. `every_page`: rebuild every page, not only
    the changed ones: a page that glues numbers from notebooks (the introduction, the summary)
    does not change when they do, and Sphinx would keep its old numbers."""
    book = book or book_dir()
    flags = ["-W", "-n", "--keep-going"] + (["--all"] if every_page else [])
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(book), *flags]
    jb = Path(sys.executable).with_name("jupyter-book")
    if jb.exists():
        cmd = [str(jb), "build", str(book), *flags]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:], sep="\n")
    return r.returncode == 0


def _executor(executor, study: Study, jobs: int, slurm: dict | None):
    if executor is None or executor == "local":
        return LocalExecutor(jobs)
    if executor == "slurm":

        params = {**study.profile.get("slurm", {}), **{k: v for k, v in (slurm or {}).items() if v is not None}}
        threads = params.pop("cpus_per_task", None) or max(1, (os.cpu_count() or 2) // jobs)
        return SlurmExecutor(threads=threads, **params)
    if isinstance(executor, str):
        raise ValueError(f"unknown executor {executor!r}; choose local or slurm")
    return executor


#: The pages that read what other pages compute and cache (evaluations, module tables, pruning
#: curves, landscapes, curves): they start once those pages ended. Started beside them, they
#: would only wait on the analyses' locks (`analysis.runs.cached`), holding a slot that a page
#: with work of its own can use. Provenance reads every page's record.
READERS = {"table2": ("table1",), "table4": ("table3",), "claims": "the figures and tables",
           "ambiguities": "the figures and tables"}


def reads(art: str, pages: list[str]) -> list[str]:
    """The pages among `pages` that `art` starts after (READERS; provenance: every other)."""
    if art == "provenance":
        return [p for p in pages if p != art]
    need = READERS.get(art, ())
    if isinstance(need, str):  # every table and figure: every artifact that is not a reader of them
        need = [a for a in ARTIFACTS if not isinstance(READERS.get(a), str)]
    return [p for p in need if p in pages and p != art]


def run_pages(pages: list[str], jobs: int, execute) -> None:
    """Call `execute(page)` for every page, up to `jobs` at once, in the list's order, each once
    the pages it `reads` have ended (whether or not they failed: a reader then computes what it
    lacks). `execute` records its page's failure itself."""
    run_ready(pages, jobs, lambda art: execute(art) or True, after=lambda art: reads(art, pages))


def _pages(study: Study, artifacts: list[str], skipped: list[str], only: list[str] | None, book: bool,
           train_s: float, jobs: int = 1) -> list[str]:
    """The notebook and book stages (under the build lock): execute every page whose inputs
    changed (`jobs` at once), write the skipped pages and provenance.json, build the book.
    Returns what failed."""
    executed = book_dir() / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    study_path = study.save(executed / "study.json")  # what the notebooks read: no YAML, no manifest
    name = study.name
    # relative to the project folder, so an executed notebook downloaded from the book runs in
    # any checkout (`notebook.setup` plans the profile where the file is absent)
    params = {"profile": name, "study_file": str(study_path.relative_to(repo_root()))}
    prov = {"profile": name, "commit": commit(), "train_seconds": round(train_s, 1), "artifacts": {},
            "distributions": distributions()}
    failures = []
    changed = []  # the pages other than provenance that were executed (the glued pages then change)
    done_path = executed / ".executed.json"
    done = read_json(done_path, what="the record of executed notebooks") if done_path.is_file() else {}
    # the reference pages need no run: `--only ... --no-book` skips them (the book needs them all)
    pages = artifacts + ([] if only and not book else list(REFERENCE_PAGES)) + ["provenance"]
    print(f"[notebooks] {len(pages)} pages into book/executed/, {jobs} at once")
    bar = tqdm(total=len(pages), desc="notebooks", unit="nb")
    record_lock = threading.Lock()  # the record of executed pages is written by one page at a time
    threads = max(1, (os.cpu_count() or 2) // jobs) if jobs > 1 else None  # as a run's process has

    def execute(art: str) -> None:
        hashes = sorted({r.hash for r in study.runs_for(art)}) if art in ARTIFACTS else []
        title = ARTIFACTS[art].title if art in ARTIFACTS else REFERENCE_PAGES.get(art, "How this book was made")
        if art == "provenance":  # the provenance page reads the others: it runs last (`reads`)
            order = {a: i for i, a in enumerate(artifacts)}  # the book's order, not the order they ended in
            prov["artifacts"] = dict(sorted(prov["artifacts"].items(), key=lambda kv: order.get(kv[0], len(order))))
            atomic_write_text(study.results_dir / "provenance.json", json.dumps(prov, indent=2))
        key = _execution_key(art, study, hashes)
        prev = done.get(art, {})
        if art != "provenance" and prev.get("key") == key and prev["record"]["ok"] and (executed / f"{art}.ipynb").is_file():
            with record_lock:
                if art in ARTIFACTS:
                    prov["artifacts"][art] = prev["record"]
                tqdm.write(f"{art}: unchanged, not executed again (it took {prev['record']['wall_seconds']} s)")
                bar.update(1)
            return
        bar.set_postfix_str(art)
        ok, secs, err = execute_notebook(art, executed / f"{art}.ipynb", params, threads)
        record = {"title": title, "profile": name, "hashes": hashes, "commit": prov["commit"],
                  "wall_seconds": round(secs, 1), "ok": ok, "error": err}
        with record_lock:
            if art != "provenance":
                changed.append(art)
            if art in ARTIFACTS:
                prov["artifacts"][art] = record
            done[art] = {"key": key, "record": record}
            atomic_write_text(done_path, json.dumps(done, indent=2))
            if not ok:
                tqdm.write(f"{art}: FAILED in {secs:.1f} s -- {err}")
                failures.append(art)
            bar.update(1)

    t0 = time.perf_counter()
    run_pages(pages, jobs, execute)
    bar.close()
    # the notebook stage's wall time, `jobs` pages at once (each page's own time is in its record)
    prov.update(notebooks_seconds=round(time.perf_counter() - t0, 1), notebooks_jobs=jobs)
    for art in skipped:  # the data set it needs is missing
        need = "a mask-annotated training data set" if art not in ("fig6",) else "a landmark or mask data set"
        _skipped_page(art, f"Not built on this profile: it needs {need}, and none of this profile's is present.",
                      executed / f"{art}.ipynb")
        done.pop(art, None)
        changed.append(art)
    # a page this build does not make (`--only`, or left out of the profile's `artifacts:`) keeps
    # what an earlier build of this profile executed; another profile's page, or none, is replaced
    for art in [a for a in ARTIFACTS if a not in artifacts and a not in skipped]:
        record = done.get(art, {}).get("record", {})
        if record.get("profile") != name or not record.get("ok") or not (executed / f"{art}.ipynb").is_file():
            why = (f"this build made only {', '.join(artifacts)}; `synclib reproduce --profile {name}` builds every page"
                   if only else "the profile's `artifacts:` list leaves it out")
            _skipped_page(art, f"Not built for the {name} profile: {why}.", executed / f"{art}.ipynb")
            done.pop(art, None)
            changed.append(art)
        elif art in ARTIFACTS:
            prov["artifacts"][art] = record
    atomic_write_text(done_path, json.dumps(done, indent=2))
    atomic_write_text(study.results_dir / "provenance.json", json.dumps(prov, indent=2))
    if book:
        print("[book] jupyter-book build book/")
        if build_book(every_page=bool(changed)):
            print(f"book: {book_dir() / '_build' / 'html' / 'index.html'}")
        else:
            failures.append("jupyter-book build")
    return failures


def reproduce(profile: str = "quick", only: list[str] | None = None, jobs: int = 1,
              book: bool = True, executor=None, slurm: dict | None = None, wait: bool = True) -> int:
    """Regenerate the artifacts of a profile into book/executed/. Returns the exit code: 0 when
    every run trained and every page it built is whole and current, 1 when something failed,
    `BUSY` when another build held the checkout and `wait` was False.

    executor: None or "local" (`jobs` processes here), "slurm" (each run a SLURM job through
    submitit, with the profile's `slurm:` parameters updated by `slurm`), or an executor
    object. The notebooks and the book are built here once every run is done."""
    t_start = time.perf_counter()
    study = Study.plan(profile, progress=True)
    name = study.name
    unknown = [a for a in only or [] if a not in ARTIFACTS]
    if unknown:
        print(f"unknown artifacts {unknown}; known: {list(ARTIFACTS)}", file=sys.stderr)
        return 2
    print(f"[plan] profile {name}: {len(study.datasets) - len(study.missing_datasets)} of "
          f"{len(study.datasets)} data sets present")
    for ds in study.missing_datasets:
        conv = ds.spec.get("converter", "<converter>")
        print(f"[skip] data set {ds.name!r} not found at {ds.spec['root']}: convert it with "
              f"`python -m data_prep.{conv} --src ORIGINAL --out {ds.spec['root']}` "
              "(see the book's 'Getting the data' page); artifacts that need it are built without it")
    wanted = list(only or study.profile.get("artifacts", list(ARTIFACTS)))
    artifacts = [a for a in wanted if a in study.artifacts]
    skipped = [a for a in ARTIFACTS if a not in study.artifacts]  # stub pages: their data sets are missing
    for art in wanted:
        if art not in artifacts:
            print(f"[skip] {art}: the data sets it needs are missing")
    store = RunStore()
    runs = study.runs_for(*artifacts)
    t0 = time.perf_counter()
    print(f"[train] {len(runs)} runs (logs in runs/<hash>/train.log)")
    failed_runs = _executor(executor, study, jobs, slurm).run(study, runs, store)
    train_s = time.perf_counter() - t0

    lock = book_dir() / ".build.lock"

    def waiting(holder: str) -> None:
        print(f"[wait] another build of this checkout is running ({holder}); waiting for it to end "
              "(--no-wait stops instead)", flush=True)

    try:
        with file_lock(lock, wait=wait, on_wait=waiting):
            failures = _pages(study, artifacts, skipped, only, book, train_s, jobs)
    except Busy as e:
        print(f"synclib reproduce: another build of this checkout is running ({e.holder}); --no-wait was "
              f"given, so this one stops (the runs it trained are kept). Run it again once that build has "
              f"ended (its lock: {lock}).", file=sys.stderr)
        return BUSY
    print(f"reproduce --profile {name}: {time.perf_counter() - t_start:.0f} s")
    if failures or failed_runs:
        print(f"FAILED: {failures + failed_runs}", file=sys.stderr)
        return 1
    return 0
