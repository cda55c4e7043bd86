"""Executors: launch the jobs of the runs a store lacks. They only launch; each job trains
itself under its run's lock (`synclib.store.train_job`), so any executor can race another,
and the run store stays the one source of truth.

`LocalExecutor(jobs=N)` trains N runs at once on this machine, each in a process of its own
with cpu_count // N threads (results depend on the thread count: keep it fixed to compare
numbers). `SlurmExecutor(...)` makes each run one SLURM job through submitit. A run that
fine-tunes another waits for it: locally it starts as soon as its parent is done and a slot is
free; on SLURM the runs go in waves (one job array each).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import submitit
from tqdm import tqdm

from .store import RunStore, read_job, train_job

__all__ = ["LocalExecutor", "SlurmExecutor", "Waves", "schedule_order", "run_ready"]


class Waves:
    """The runs in waves: each wave holds every run whose parent is finished (or that has
    none); iterate, training each wave before the next is asked for. When the remaining runs'
    parents failed, the iteration stops and `blocked` lists them."""

    def __init__(self, runs: list, store: RunStore):
        self.pending, self.store, self.blocked = list(runs), store, []

    def __iter__(self):
        while self.pending:
            wave = [r for r in self.pending if not r.parent or self.store.is_done(r.parent)]
            if not wave:
                self.blocked = self.pending
                return
            yield wave
            self.pending = [r for r in self.pending if r not in wave]


#: The modules every training process needs (torch, torchvision, every method): imported once
#: into the fork server, from which each run's process is forked. Importing them costs about
#: 3 s a process on the reference machine, 95 runs a quick book, so a run's process starts
#: in milliseconds instead. Each run still has a process of its own, forked from a server that
#: never trained anything: no state passes from one run to the next.
PRELOAD = ["synclib.store"]


def _fork_server():
    """The context that starts runs' processes: a fork server with PRELOAD, where the platform
    has one (Linux, macOS); else each process starts afresh (spawn) and imports them itself."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    multiprocessing.set_forkserver_preload(PRELOAD)  # read when the server starts (its first use)
    return multiprocessing.get_context("forkserver")


def _exit_reason(code: int | None) -> str:
    """A process's exit code in words: a signal (the kernel's OOM killer sends 9) or a number."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _train_process(job: str, log: str, env: dict) -> None:
    """The body of a run's process: the environment of the executor that launched it (the fork
    server keeps the one it started with), stdout and stderr appended to the run's log (a second
    build waiting on this run appends, never truncates), then `train_job`: what
    `synclib train JOB.json` does. An exception is printed into the log and exits with 1."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    print(f"run written to {train_job(job)}", flush=True)


def schedule_order(runs: list) -> list:
    """The order in which runs start when slots are free: the runs others fine-tune first (they
    unblock the rest), then the longer ones (more epochs) before the shorter, so that no long run
    is left alone at the end; ties keep the study's order."""
    parents = {r.parent for r in runs if r.parent}
    return sorted(runs, key=lambda r: (r.hash not in parents, -int(r.train.get("epochs", 0))))


class LocalExecutor:
    def __init__(self, jobs: int = 1):
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {jobs}")
        self.jobs = jobs
        self.threads = max(1, (os.cpu_count() or 2) // jobs)

    def run(self, study, runs: list, store: RunStore) -> list[str]:
        """Train the runs the store lacks. Returns the labels of those that failed."""
        todo = [r for r in runs if not store.is_done(r.hash)]
        print(f"{len(runs) - len(todo)} of {len(runs)} runs are in the store; {len(todo)} to train")
        if not todo:
            return []
        for r in todo:
            store.write_job(r, study.datasets[r.dataset].manifest)
        bar = tqdm(total=len(todo), desc="training runs", unit="run")
        ctx = _fork_server()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), SYNCLIB_THREADS=str(self.threads))

        def one(run) -> bool:
            log = store.path(run.hash) / "train.log"
            t0 = time.perf_counter()
            p = ctx.Process(target=_train_process, args=(str(store.path(run.hash) / "job.json"), str(log), env),
                            name=f"train-{run.hash}")
            p.start()
            p.join()
            if p.exitcode != 0:  # a finished run says nothing: the bar counts it, its log has the rest
                tqdm.write(f"{run.label} [{run.hash}] FAILED after {time.perf_counter() - t0:.0f} s, "
                           f"{_exit_reason(p.exitcode)} (see {log})")
            bar.set_postfix_str(run.label)
            bar.update(1)
            return p.exitcode == 0

        failed = self._schedule(schedule_order(todo), store, one)
        bar.close()
        return failed

    def _schedule(self, pending: list, store: RunStore, one) -> list[str]:
        """Start `one(run)` on up to `jobs` runs at once, in `pending`'s order, each once its
        parent is in the store; a run whose parent failed is never started. Returns the labels
        of the runs that failed or could not start."""
        here = {r.hash for r in pending}
        lost = [r for r in pending if r.parent and r.parent not in here and not store.is_done(r.parent)]

        def blocked(r) -> None:
            tqdm.write(f"{r.label} [{r.hash}] not started: the run it fine-tunes failed")

        for r in lost:  # its parent is neither in the store nor among these runs
            blocked(r)
        failed = run_ready([r for r in pending if r not in lost], self.jobs, one, key=lambda r: r.hash,
                           after=lambda r: [r.parent] if r.parent in here else [], on_blocked=blocked)
        return [r.label for r in lost + failed]


def run_ready(items: list, jobs: int, call, key=lambda item: item, after=lambda item: (), on_blocked=None) -> list:
    """Call `call(item)` on up to `jobs` items at once (threads), in the list's order, each once
    the items it comes `after` (their keys) have ended; keys of no item in the list wait for
    nothing. `call` returns whether the item succeeded. With `on_blocked`, an item after one
    that failed is not called: `on_blocked(item)` is, and it counts as failed (so do the items
    after it); without, it is called all the same. Returns the items that failed, in the order
    they ended. What the local executor does with runs and `reproduce` with the book's pages."""
    keys = {key(i) for i in items}
    pending, ended, failed, running = list(items), set(), [], {}
    gone: set = set()  # the keys of the items that failed or were blocked

    def waits_on(item) -> set:
        return {k for k in after(item) if k in keys}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        while pending or running:
            if on_blocked is not None:
                for item in [i for i in pending if waits_on(i) & gone]:
                    on_blocked(item)
                    pending.remove(item)
                    failed.append(item)
                    gone.add(key(item))  # not ended: the items after it are blocked on the next pass
            for item in [i for i in pending if waits_on(i) <= ended]:
                if len(running) >= jobs:
                    break
                running[ex.submit(call, item)] = item
                pending.remove(item)
            if not running:
                if pending and not any(waits_on(i) & gone for i in pending):
                    raise RuntimeError(f"items that wait on each other: {[key(i) for i in pending]}")
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                item = running.pop(f)
                ended.add(key(item))
                if not f.result():
                    failed.append(item)
                    gone.add(key(item))
    return failed


def _train_on_node(job_path: str, threads: int, nproc: int = 1) -> str:
    """What a SLURM job runs: the run's job file, pinned to `threads` CPU threads (as the local
    executor pins its processes), under the run's lock; on `nproc` GPUs (DistributedDataParallel)
    when the job has more than one. Returns the run's hash."""
    os.environ["SYNCLIB_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(threads)

    train_job(job_path, progress=False, nproc=nproc)
    return read_job(job_path)["hash"]


class SlurmExecutor:
    """Every run the store lacks becomes one SLURM job, submitted through submitit.

    The jobs of a wave go out as one job array; the executor waits for them (polling), then
    submits the next wave (the runs that fine-tune them). A job trains its run with
    `train_job` under the run's lock in the shared run store, so a run is trained once however
    many `reproduce` calls race, a failed job is reported with its log, and a job submitted
    again resumes from the run's last checkpoint. Logs: `runs/_slurm/<job id>_<task>_log.{out,err}`.

    params: any submitit SLURM parameter (partition, time in minutes, gpus_per_node, mem,
    account, qos, constraint, setup, ...; `submitit.SlurmExecutor` checks the names), from the
    profile's `slurm:` section and the command line. `threads`: the CPU threads of each run
    (`cpus_per_task`), the same number the local executor would give, to compare numbers.
    """

    def __init__(self, folder: str | Path | None = None, threads: int = 1, poll_s: float = 2.0, **params):
        # without SLURM accounting (a small cluster) every poll's sacct fails; the result files
        # and squeue decide instead, so submitit's warning about it says nothing new
        logging.getLogger("submitit").setLevel(logging.ERROR)
        self.folder = Path(folder) if folder else RunStore().root / "_slurm"
        self.threads = int(threads)
        self.poll_s = poll_s
        self.executor = submitit.SlurmExecutor(folder=self.folder / "%j")
        params = {k: v for k, v in params.items() if v is not None}
        params.setdefault("cpus_per_task", self.threads)
        self.nproc = int(params.get("gpus_per_node") or 1)  # a run on several GPUs: one process each
        params.setdefault("job_name", "synclib")
        try:
            self.executor.update_parameters(**params)
        except ValueError as e:  # an unknown parameter: submitit lists the valid ones
            raise ValueError(f"slurm: {e}") from None

    def run(self, study, runs: list, store: RunStore) -> list[str]:
        """Submit the runs the store lacks, wave by wave, and wait for them. Returns the labels
        of those that failed (each reported with its job id and log path)."""
        todo = [r for r in runs if not store.is_done(r.hash)]
        print(f"{len(runs) - len(todo)} of {len(runs)} runs are in the store; {len(todo)} to train on SLURM "
              f"(logs in {self.folder})")
        failed: list[str] = []
        if not todo:
            return failed
        paths = {r.hash: str(store.write_job(r, study.datasets[r.dataset].manifest)) for r in todo}
        bar = tqdm(total=len(todo), desc="SLURM runs", unit="run")
        plan = Waves(todo, store)
        for wave in plan:
            jobs = self.executor.map_array(_train_on_node, [paths[r.hash] for r in wave], [self.threads] * len(wave),
                                           [self.nproc] * len(wave))
            tqdm.write(f"submitted {len(jobs)} jobs ({', '.join(j.job_id for j in jobs[:4])}"
                       f"{', ...' if len(jobs) > 4 else ''})")
            for run, job in self._wait(list(zip(wave, jobs))):
                bar.set_postfix_str(run.label)
                bar.update(1)
                if not store.is_done(run.hash):
                    tqdm.write(f"{run.label} [{run.hash}] FAILED in SLURM job {job.job_id} (see {job.paths.stderr})")
                    failed.append(run.label)
        for r in plan.blocked:
            tqdm.write(f"{r.label} [{r.hash}] not submitted: the run it fine-tunes failed")
            failed.append(r.label)
        bar.close()
        return failed

    def _wait(self, pending: list):
        """Yield (run, job) as each job ends: its result file is written, or it has left the
        queue (a job killed by SLURM writes no result) for longer than a grace period."""
        gone_since: dict[str, float] = {}
        while pending:
            queued = _squeue([job.job_id for _, job in pending])
            still = []
            for run, job in pending:
                if job.done():
                    yield run, job
                elif queued is not None and job.job_id not in queued:
                    gone_since.setdefault(job.job_id, time.time())
                    if time.time() - gone_since[job.job_id] > 30:
                        yield run, job
                    else:
                        still.append((run, job))
                else:
                    still.append((run, job))
            pending = still
            if pending:
                time.sleep(self.poll_s)


def _squeue(job_ids: list[str]) -> set[str] | None:
    """The ids among `job_ids` that SLURM still lists (`-r`: one line per array task, so a
    pending `<id>_[4-7]` is listed as its tasks); None when squeue cannot be asked."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted({j.split("_")[0] for j in job_ids}))],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return set() if "Invalid job id" in out.stderr else None
    listed = set(out.stdout.split())
    return {j for j in job_ids if j in listed or j.split("_")[0] in listed}
