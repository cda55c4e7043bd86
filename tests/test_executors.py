"""The local executor: the order runs start in, a run waiting for its parent, a failed parent
blocking its children, and a run's process (forked from the preloaded server) writing its log."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import nbformat
import papermill as pm
import pytest

from synclib.executors import LocalExecutor, _exit_reason, _fork_server, _train_process, run_ready, schedule_order
from synclib.reproduce import IPCKernelManager, kernel_manager, reads, run_pages


def _run(h: str, parent: str | None = None, epochs: int = 5) -> SimpleNamespace:
    return SimpleNamespace(hash=h, label=f"run {h}", parent=parent, train={"epochs": epochs})


class _Store:
    """What the scheduler asks of a run store: is a run done."""

    def __init__(self, done=()):
        self.done = set(done)

    def is_done(self, h: str) -> bool:
        return h in self.done


def test_parents_start_first_then_the_longest_runs():
    runs = [_run("a", "p", 5), _run("b", None, 5), _run("p", None, 10), _run("c", "q", 10),
            _run("q", None, 2), _run("d", None, 10)]
    # p and q have children; among the rest 10 epochs go before 5; ties keep the given order
    assert [r.hash for r in schedule_order(runs)] == ["p", "q", "c", "d", "a", "b"]


class _Timed:
    """A fake job of 50 ms: records each call's (start, end) under its name and the most calls
    running at once; `fail` names the calls that return False."""

    def __init__(self, fail=()):
        self.times, self.fail, self.lock = {}, set(fail), threading.Lock()
        self.now = self.most = 0

    def __call__(self, name: str) -> bool:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        start = time.monotonic()
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        self.times[name] = (start, time.monotonic())
        return name not in self.fail


def _execute(runs, jobs, fail=(), done=()):
    """Schedule `runs` with a fake training (`_Timed`) that fails for the hashes in `fail`.
    Returns (the failed labels, each run's (start, end), the most runs at once)."""
    store, job = _Store(done), _Timed(fail)

    def one(run) -> bool:
        ok = job(run.hash)
        if ok:
            store.done.add(run.hash)
        return ok

    failed = LocalExecutor(jobs)._schedule(list(runs), store, one)
    return failed, job.times, job.most


def test_a_run_starts_once_its_parent_is_done_and_slots_stay_full():
    runs = schedule_order([_run("p"), _run("a", "p"), _run("b", "p"), _run("x"), _run("y"), _run("z")])
    failed, times, most = _execute(runs, jobs=2)
    assert failed == [] and set(times) == {"p", "a", "b", "x", "y", "z"} and most == 2
    assert all(times[c][0] >= times["p"][1] for c in ("a", "b"))
    # the parent first, then no waiting for a wave: x starts beside p, not after it
    assert times["x"][0] < times["p"][1]


def test_a_failed_parent_blocks_its_children_and_nothing_else(capsys):
    runs = schedule_order([_run("p"), _run("a", "p"), _run("g", "a"), _run("x")])
    failed, times, _ = _execute(runs, jobs=2, fail={"p"})
    assert sorted(failed) == ["run a", "run g", "run p"] and set(times) == {"p", "x"}
    assert "run a [a] not started: the run it fine-tunes failed" in capsys.readouterr().out


def test_a_parent_already_in_the_store_is_not_waited_for():
    failed, times, _ = _execute([_run("a", "p")], jobs=1, done={"p"})
    assert failed == [] and set(times) == {"a"}


def test_a_runs_process_writes_its_log_and_fails_with_its_error(tmp_path):
    """A run's process, forked from the server, appends its output to the run's log and exits
    non-zero with the error in it (here: a job file that is not there), in the environment the
    executor gives it, whatever the server started with."""
    log = tmp_path / "train.log"
    log.write_text("an earlier build's lines\n")
    job = tmp_path / "missing" / "job.json"
    p = _fork_server().Process(target=_train_process, args=(str(job), str(log), {"SYNCLIB_THREADS": "1"}))
    p.start()
    p.join()
    text = log.read_text()
    assert p.exitcode == 1
    assert text.startswith("an earlier build's lines\n") and str(job) in text and "Traceback" in text


def test_pages_that_read_others_wait_for_them():
    pages = ["table1", "table3", "table4", "fig9", "claims", "ambiguities", "cluster", "provenance"]
    assert reads("table4", pages) == ["table3"] and reads("table2", ["table1", "table2"]) == ["table1"]
    assert reads("claims", pages) == ["table1", "fig9", "table3", "table4"]  # in ARTIFACTS' order
    assert reads("ambiguities", pages) == reads("claims", pages)
    assert reads("cluster", pages) == [] and reads("provenance", pages) == pages[:-1]

    page = _Timed(fail={"table3"})  # a failed page still lets its readers run: they compute what it lacks
    run_pages(pages, 2, page)
    times = page.times
    assert set(times) == set(pages) and page.most == 2
    assert times["table4"][0] >= times["table3"][1]
    for reader in ("claims", "ambiguities"):
        assert all(times[reader][0] >= times[p][1] for p in ("table1", "table3", "table4", "fig9"))
    assert all(times["provenance"][0] >= times[p][1] for p in pages[:-1])
    # a page that reads nothing takes the slot a waiting page cannot
    page = _Timed()
    run_pages(["table3", "table4", "cluster"], 2, page)
    assert page.times["cluster"][0] < page.times["table3"][1] <= page.times["table4"][0]


def test_run_ready_blocks_a_failures_chain_and_names_a_cycle():
    job, blocked = _Timed(fail={"p"}), []
    after = {"a": ["p"], "g": ["a"], "x": ["elsewhere"]}  # a key of no item waits for nothing
    failed = run_ready(["p", "a", "g", "x"], 2, job, after=lambda i: after.get(i, []), on_blocked=blocked.append)
    assert sorted(failed) == ["a", "g", "p"] and blocked == ["a", "g"] and set(job.times) == {"p", "x"}
    with pytest.raises(RuntimeError, match=r"items that wait on each other: \['u', 'v'\]"):
        run_ready(["u", "v"], 2, _Timed(), after=lambda i: ["v" if i == "u" else "u"])


def test_a_killed_run_says_by_what():
    assert _exit_reason(-9) == "killed by SIGKILL" and _exit_reason(1) == "exit code 1"
    assert _exit_reason(-200) == "killed by signal 200"


def test_a_page_run_beside_others_has_its_share_of_the_cores(tmp_path):
    """Pages executed `--jobs` at once get cores // jobs threads each, as runs do (two kernels of
    every core each spin against each other); alone, a kernel keeps torch's default."""
    assert kernel_manager(None) is IPCKernelManager
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import os, torch\nprint(torch.get_num_threads(), os.environ['SYNCLIB_THREADS'])"))
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False,
                        kernel_manager_class=kernel_manager(1))
    assert nbformat.read(out, as_version=4).cells[0].outputs[0]["text"] == "1 1\n"
