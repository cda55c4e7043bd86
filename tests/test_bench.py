"""bench's timing helpers (no test asserts a time: only what was called, and when)."""

import json

import torch

from bench.__main__ import part_masks, timed_interleaved
from bench.book_stages import stages
from bench.compile_cost import gpu_run_configs


def test_interleaved_timing_takes_turns_after_each_warms_up():
    calls = []
    fns = {"baseline": lambda: calls.append("b"), "ours": lambda: calls.append("o")}
    times = timed_interleaved(fns, torch.device("cpu"), repeats=3, warmup=2)
    assert calls == ["b", "b", "o", "o"] + ["b", "o"] * 3
    assert set(times) == {"baseline", "ours"} and all(t >= 0 for t in times.values())


def test_part_masks_are_repeatable_ellipses_inside_the_image():
    m = part_masks(4, 5, 32, seed=1)
    assert m.shape == (4, 5, 32, 32) and m.dtype == torch.bool
    assert torch.equal(m, part_masks(4, 5, 32, seed=1))
    assert 0 < m.float().mean() < 0.5


def test_book_stages_reads_the_builds_records(tmp_path, monkeypatch):
    # a hand-made build: two runs (a backbone and its fine-tune), two pages, one page of another profile
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    (tmp_path / "configs").mkdir()
    for h, secs, parent in (("bb", 100.0, None), ("ft", 50.0, "bb")):
        (tmp_path / "runs" / h).mkdir(parents=True)
        (tmp_path / "runs" / h / "provenance.json").write_text(json.dumps({"seconds": secs}))
        (tmp_path / "runs" / h / "job.json").write_text(json.dumps({"hash": h, "parent": parent}))
    (tmp_path / "results" / "quick").mkdir(parents=True)
    (tmp_path / "results" / "quick" / "provenance.json").write_text(json.dumps(
        {"train_seconds": 120.0, "notebooks_seconds": 6.0, "notebooks_jobs": 2, "artifacts": {"table1": {"hashes": ["ft"]}}}))
    (tmp_path / "book" / "executed").mkdir(parents=True)
    rec = lambda s, profile="quick": {"record": {"wall_seconds": s, "ok": True, "profile": profile, "commit": "abc"}}  # noqa: E731
    (tmp_path / "book" / "executed" / ".executed.json").write_text(json.dumps(
        {"table1": rec(9.0), "provenance": rec(3.0), "fig4": rec(50.0, "smoke")}))
    st = stages("quick")
    assert st["pages_s"] == {"table1": 9.0, "provenance": 3.0} and st["pages_total_s"] == 12.0
    assert st["runs"] == 2 and st["runs_train_s_sum"] == 150.0  # the fine-tune and the backbone it reads
    assert st["train_wall_s"] == 120.0 and st["commits"] == ["abc"]
    # the stage ran the two pages at once: 6 s of wall, 12 s of pages
    assert st["pages_wall_s"] == 6.0 and st["pages_jobs"] == 2
    assert st["pages_over_training"] == 0.05 and st["pages_sum_over_training"] == 0.1


def test_compile_cost_times_the_gpu_profiles_own_run_length(tmp_path, monkeypatch):
    # a hand-made profile: 100 training images, 3 epochs, batches of 32 and 64
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.yaml").write_text(
        "profile: mine\ndatasets:\n  pw: {kind: partworld, train: true, generate: {n_train: 100}}\n"
        "  extra: {kind: partworld, generate: {n_train: 7}}\n"
        "archs:\n  vgg16: {arch: vgg16_bn, batch_size: 32}\n  resnet18: {arch: resnet18, batch_size: 64}\n"
        "train: {epochs: 3}\n")
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    assert gpu_run_configs("mine") == [("vgg16_bn", 32, 3 * 4), ("resnet18", 64, 3 * 2)]  # ceil(100/32), ceil(100/64)
