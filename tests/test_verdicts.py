"""The claims' statistics on hand-made numbers whose verdicts are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from synclib import verdicts as V
from synclib.claims import table_claims


def test_welch_matches_scipy_and_its_interval():
    a, b = [0.50, 0.55, 0.52, 0.58], [0.40, 0.41, 0.47]
    effect, lo, hi, p = V.welch(a, b)
    assert effect == pytest.approx(np.mean(a) - np.mean(b))
    assert p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    # the interval by hand: Welch-Satterthwaite degrees of freedom
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (lo, hi) == pytest.approx((effect - half, effect + half))


def test_clear_win_holds_and_clear_loss_is_contradicted():
    win = V.compare([0.70, 0.71, 0.69], [0.40, 0.42, 0.41], "greater")
    assert win.verdict == V.HOLDS and win.lo > 0
    loss = V.compare([0.40, 0.42, 0.41], [0.70, 0.71, 0.69], "greater")
    assert loss.verdict == V.CONTRADICTED and loss.hi < 0
    assert V.compare([0.40, 0.42, 0.41], [0.70, 0.71, 0.69], "less").verdict == V.HOLDS


def test_a_tie_and_a_difference_inside_the_spread_are_inconclusive():
    assert V.compare([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "greater").verdict == V.INCONCLUSIVE
    assert V.compare([0.5, 0.6, 0.4], [0.5, 0.6, 0.4], "greater").verdict == V.INCONCLUSIVE
    inside = V.compare([0.1048, 0.20, 0.01], [0.1049, 0.19, 0.02], "less")
    assert inside.verdict == V.INCONCLUSIVE and inside.lo < 0 < inside.hi


def test_one_seed_nan_and_empty_groups_are_inconclusive():
    one = V.compare([0.9], [0.1], "greater")
    assert one.verdict == V.INCONCLUSIVE and math.isnan(one.lo) and one.effect == pytest.approx(0.8)
    nan = V.compare([0.9, float("nan")], [0.1, 0.2], "greater")  # one finite value left
    assert nan.verdict == V.INCONCLUSIVE
    assert V.compare([], [0.1, 0.2], "greater").verdict == V.INCONCLUSIVE
    # NaNs are dropped, not propagated: two finite values remain on each side
    kept = V.compare([0.9, 0.91, float("nan")], [0.1, 0.11], "greater")
    assert kept.verdict == V.HOLDS


def test_no_spread_but_different_means_is_decided():
    v = V.compare([1.0, 1.0], [0.5, 0.5], "greater")
    assert v.verdict == V.HOLDS and v.p == 0.0 and v.lo == v.hi == 0.5


def test_noninferiority_within_a_point():
    base = [90.0, 90.5, 89.5]
    assert V.noninferior([90.1, 90.4, 89.9], base, 1.0).verdict == V.HOLDS  # interval well above -1
    assert V.noninferior([85.0, 85.2, 84.8], base, 1.0).verdict == V.CONTRADICTED  # 5 points below
    wide = V.noninferior([88.0, 92.0, 86.0], base, 1.0)  # interval straddles -1
    assert wide.verdict == V.INCONCLUSIVE and wide.lo < -1 < wide.hi
    assert V.noninferior([90.0], base, 1.0).verdict == V.INCONCLUSIVE
    assert V.noninferior([100.0, 100.0], [100.0, 100.0], 1.0).verdict == V.HOLDS  # exact: 0 > -1


def test_a_ranking_holds_only_if_every_step_holds():
    h = V.Verdict(V.HOLDS)
    c = V.Verdict(V.CONTRADICTED)
    i = V.Verdict(V.INCONCLUSIVE)
    assert V.all_of([h, h]) == V.HOLDS
    assert V.all_of([h, i]) == V.INCONCLUSIVE
    assert V.all_of([h, c]) == V.CONTRADICTED
    assert V.all_of([]) == V.INCONCLUSIVE


def test_slope_and_peak_on_known_curves():
    x = np.array([0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5])
    assert V.slope(x, 0.4 + 0.5 * x + [0.001, -0.001, 0.002, 0, -0.002, 0.001, 0], "greater").verdict == V.HOLDS
    assert V.slope(x, 0.4 - 0.5 * x + [0.001, -0.001, 0.002, 0, -0.002, 0.001, 0], "greater").verdict == V.CONTRADICTED
    assert V.slope(x[:2], x[:2], "greater").verdict == V.INCONCLUSIVE
    noise = np.array([0.003, -0.002, 0.001, -0.003, 0.002, 0.0, -0.001])
    rise_fall = 0.2 + 2.0 * x - 4.0 * x**2 + noise  # vertex at 0.25, inside the sweep
    p = V.peak(x, rise_fall)
    assert p.verdict == V.HOLDS and p.effect == pytest.approx(-4.0, abs=0.2)
    assert V.peak(x, 0.2 + 0.3 * x + 4.0 * x**2 + noise).verdict == V.CONTRADICTED  # convex
    # concave but still rising at the end of the sweep: no collapse seen
    assert V.peak(x, 0.2 + 3.0 * x - 1.0 * x**2 + noise).verdict == V.INCONCLUSIVE


def _frame(values: dict, seeds=(0, 1, 2), arch="vgg16") -> pd.DataFrame:
    """Per-seed rows of Tables I-II: values[method] = (interp, stability, purity, diversity, accuracy) per seed."""
    rows = []
    for m, per_seed in values.items():
        for s, (i, st, pu, d, acc) in zip(seeds, per_seed):
            rows.append({"dataset": "pw", "eval_dataset": "pw", "arch": arch, "method": m, "seed": s,
                         "interp": i, "stability": st, "purity": pu, "diversity": d, "accuracy": acc})
    return pd.DataFrame(rows)


def _verdicts(rows: list[dict]) -> dict[str, str]:
    return {r["claim"].split(": ", 1)[1]: r["verdict"] for r in rows}


def test_table_claims_on_a_hand_made_table():
    base = [(0.40, 0.50, 0.06, 0.80, 0.900), (0.41, 0.51, 0.06, 0.81, 0.901), (0.39, 0.49, 0.06, 0.79, 0.899)]
    ours = [(0.60, 0.60, 0.05, 0.80, 0.901), (0.61, 0.61, 0.05, 0.82, 0.899), (0.62, 0.59, 0.05, 0.81, 0.902)]
    nosync = [(0.70, 0.40, 0.07, 0.60, 0.9), (0.61, 0.41, 0.08, 0.61, 0.9), (0.50, 0.42, 0.07, 0.62, 0.9)]
    v = _verdicts(table_claims(_frame({"baseline": base, "ours": ours, "ours_nosync": nosync})))
    assert v["ours has a higher Interp than the baseline (Table I)"] == V.HOLDS  # clear win
    assert v["ours has a lower Stability (more stable) than the baseline (Table I)"] == V.CONTRADICTED  # clear loss
    assert v["ours has a lower Purity than the baseline (Table I)"] == V.HOLDS  # no spread, exact difference
    # "ours w/o sync has the highest Interp" is no claim of the paper's text: not judged
    assert not any("highest Interp" in c for c in v)
    assert v["synchronization raises Diversity: ours above ours w/o sync (Table I)"] == V.HOLDS
    assert v["ours' accuracy is within a point of the baseline's (Table II, non-inferiority)"] == V.HOLDS


def test_table_claims_with_a_missing_method_one_seed_and_nan():
    base = [(0.40, 0.5, 0.06, 0.8, 0.9), (0.41, 0.5, 0.06, 0.8, 0.9)]
    ours = [(0.60, 0.4, float("nan"), 0.8, 0.9), (0.61, 0.4, float("nan"), 0.8, 0.9)]
    rows = table_claims(_frame({"baseline": base, "ours": ours}, seeds=(0, 1)))
    v = _verdicts(rows)
    assert not any("w/o sync" in c for c in v)  # the missing method's claims are left out, not failed
    assert v["ours has a higher Interp than the baseline (Table I)"] == V.HOLDS
    assert v["ours has a lower Purity than the baseline (Table I)"] == V.INCONCLUSIVE  # NaN: no values
    one = _verdicts(table_claims(_frame({"baseline": base[:1], "ours": ours[:1]}, seeds=(0,))))
    assert set(one.values()) == {V.INCONCLUSIVE}
    assert table_claims(_frame({"baseline": base}, seeds=(0, 1))) == []  # no ours: no claim
    # another reading judges its own row: `ours_mean` stands in for ours
    mean = _verdicts(table_claims(_frame({"baseline": base, "ours_mean": ours}, seeds=(0, 1)), "mean"))
    assert mean["ours has a higher Interp than the baseline (Table I)"] == V.HOLDS


def test_verdict_changes_count_only_claims_both_readings_judged():
    from synclib.claims import verdict_changes

    cl = pd.DataFrame([
        {"claim": "a", "reading": "printed", "verdict": V.HOLDS}, {"claim": "a", "reading": "mean", "verdict": V.HOLDS},
        {"claim": "b", "reading": "printed", "verdict": V.CONTRADICTED}, {"claim": "b", "reading": "mean", "verdict": V.HOLDS},
        {"claim": "c", "reading": "printed", "verdict": V.INCONCLUSIVE},  # the mean reading cannot judge it
    ])
    assert verdict_changes(cl, "mean") == ["b"]
    assert verdict_changes(cl, "cells") == []
