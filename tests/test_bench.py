"""bench's timing helpers (no test asserts a time: only what was called, and when)."""

import torch

from bench.__main__ import part_masks, timed_interleaved


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
