"""Executors: launch the jobs of the runs a store lacks. They only launch; each job trains
itself under its run's lock (`synclib.store.train_job`), so any executor can race another.

`LocalExecutor(jobs=N)` runs N `synclib train JOB.json` processes at once on this machine,
each with cpu_count // N threads (results depend on the thread count: keep it fixed to
compare numbers). Runs that fine-tune another wait for it: the plan goes in waves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from .store import RunStore

__all__ = ["LocalExecutor"]


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
        failed: list[str] = []
        if not todo:
            return failed
        for r in todo:
            store.write_job(r, study.datasets[r.dataset].manifest)
        bar = tqdm(total=len(todo), desc="training runs", unit="run")

        def one(run) -> None:
            log = store.path(run.hash) / "train.log"
            cmd = [sys.executable, "-m", "synclib.cli", "train", str(store.path(run.hash) / "job.json")]
            env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), SYNCLIB_THREADS=str(self.threads))
            t0 = time.perf_counter()
            with open(log, "w") as lf:
                rc = subprocess.call(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
            if rc != 0:  # a finished run says nothing: the bar counts it, its log has the rest
                tqdm.write(f"{run.label} [{run.hash}] FAILED after {time.perf_counter() - t0:.0f} s (see {log})")
                failed.append(run.label)
            bar.set_postfix_str(run.label)
            bar.update(1)

        pending = list(todo)
        with ThreadPoolExecutor(max_workers=self.jobs) as ex:
            while pending:  # a wave: every run whose parent is finished (or has none)
                wave = [r for r in pending if not r.parent or store.is_done(r.parent)]
                if not wave:  # the parents failed: their children cannot start
                    for r in pending:
                        tqdm.write(f"{r.label} [{r.hash}] not started: the run it fine-tunes failed")
                        failed.append(r.label)
                    break
                list(ex.map(one, wave))
                pending = [r for r in pending if r not in wave]
        bar.close()
        return failed
