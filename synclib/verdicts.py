"""Verdicts on the paper's claims, decided by tests over the profile's seeds.

Every claim compares groups of per-seed values (one value per seed: the seed varies
everything random in fine-tuning; the seeds share the pretrained backbone, as the paper's
runs share ImageNet weights). Three verdicts, at α = 0.05:

- *holds*: the difference has the paper's sign and Welch's two-sided t-test rejects "no
  difference";
- *contradicted*: the test rejects, with the opposite sign;
- *inconclusive*: otherwise, and whenever a group has fewer than two finite values.

Non-inferiority ("accuracy within a point") holds when the one-sided Welch test rejects
"ours − baseline ≤ −margin" at α, is contradicted when the 95 % interval lies below −margin. A ranking holds only if every
step holds; it is contradicted if a step is. Trends over a sweep (one run per setting) are
tested on the slope (or the curvature) of a least-squares fit.

Each function returns a `Verdict`: effect (difference of means, slope or curvature), its 95 %
interval, the p-value and the verdict. Across the claims of one reading the p-values are
adjusted by Holm's step-down (`holm`) and each verdict is re-decided from its adjusted p
(`Verdict.adjusted`); a non-inferiority claim enters the family with the one-sided p of
H0 "a − b ≤ −margin". `detectable_effect` is the smallest difference of means the two-sided
Welch test detects with 80 % power given the groups' measured spreads and sizes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import optimize, stats

__all__ = ["Verdict", "ALPHA", "HOLDS", "CONTRADICTED", "INCONCLUSIVE", "welch", "compare", "noninferior",
           "ranking", "all_of", "slope", "peak", "holm", "detectable_effect"]

ALPHA = 0.05
HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    effect: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    note: str = ""
    #: "test": holds/contradicted need p < α; "noninferior": holds needs p < α (one-sided p),
    #: contradicted is decided by the interval alone
    kind: str = "test"
    p_adjusted: float = math.nan
    detectable: float = math.nan

    def adjusted(self, p_adj: float) -> Verdict:
        """This verdict re-decided from its Holm-adjusted p (≥ p): a verdict that rested on
        p < α becomes inconclusive when the adjusted p is not below α."""
        v = self.verdict
        if not (p_adj < ALPHA) and (v == HOLDS or (v == CONTRADICTED and self.kind == "test")):
            v = INCONCLUSIVE
        return replace(self, verdict=v, p_adjusted=p_adj)

    def as_dict(self) -> dict:
        return asdict(self)

    def interval(self, fmt: str = ".3g") -> str:
        if math.isnan(self.lo) or math.isnan(self.hi):
            return "n/a"
        return f"[{self.lo:{fmt}}, {self.hi:{fmt}}]"


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float).ravel()
    return x[np.isfinite(x)]


def welch(a, b, level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(a) − mean(b), interval low, interval high, two-sided p) of Welch's t-test.

    NaNs are dropped; a group with fewer than two values gives a NaN interval and p. When both
    groups have no spread the difference is exact: p is 0 (1 if the means are equal).
    """
    a, b = _finite(a), _finite(b)
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan, math.nan
    effect = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return effect, math.nan, math.nan, math.nan
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        return effect, effect, effect, (1.0 if effect == 0 else 0.0)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    return effect, float(ci.low), float(ci.high), float(res.pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values: the k-th smallest of m is
    multiplied by m − k + 1, made monotone (running maximum) and capped at 1. NaNs stay NaN
    and do not count in m."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def detectable_effect(a, b, power: float = 0.8, alpha: float = ALPHA) -> float:
    """The smallest |mean(a) − mean(b)| that a two-sided Welch test at `alpha` detects with
    probability `power`, given the groups' sizes and sample standard deviations (taken as the
    true ones): the noncentral t with the Welch-Satterthwaite degrees of freedom and
    noncentrality d / se. NaN when a group has fewer than two finite values; 0 when neither
    group has any spread (every difference is then exact)."""
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    crit = stats.t.ppf(1 - alpha / 2, df)

    def short(d: float) -> float:
        nc = d / se
        got = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
        if not math.isfinite(got):  # the noncentral t's tails fail far out: all or nothing there
            got = 1.0 if nc > crit else 0.0
        return got - power

    hi = se
    while short(hi) < 0:
        hi *= 2
    return float(optimize.brentq(short, 0.0, hi, xtol=1e-12 * hi))


def _decide(effect: float, p: float, sign: int) -> str:
    if math.isnan(p) or p >= ALPHA or effect == 0:
        return INCONCLUSIVE
    return HOLDS if np.sign(effect) == sign else CONTRADICTED


def compare(a, b, expect: str) -> Verdict:
    """The paper says a > b (`expect="greater"`) or a < b (`"less"`); effect = mean(a) − mean(b)."""
    if expect not in ("greater", "less"):
        raise ValueError(f"expect must be 'greater' or 'less', not {expect!r}")
    effect, lo, hi, p = welch(a, b)
    na, nb = len(_finite(a)), len(_finite(b))
    note = "" if min(na, nb) >= 2 else f"{min(na, nb)} seed(s) in a group: no test"
    return Verdict(_decide(effect, p, 1 if expect == "greater" else -1), effect, lo, hi, p, note,
                   detectable=detectable_effect(a, b))


def noninferior(a, b, margin: float) -> Verdict:
    """a is no worse than b by more than `margin`: the one-sided Welch test of H0
    "a − b ≤ −margin"; holds if it rejects at α (p < 0.05; after Holm, the adjusted p),
    contradicted if the 95 % interval of a − b lies wholly below −margin, inconclusive
    otherwise. p is that one-sided p."""
    effect, lo, hi, _ = welch(a, b)
    fa, fb = _finite(a), _finite(b)
    if math.isnan(lo):
        return Verdict(INCONCLUSIVE, effect, lo, hi, math.nan, "fewer than two seeds in a group: no interval",
                       kind="noninferior")
    if fa.var(ddof=1) == 0 and fb.var(ddof=1) == 0:
        p = 0.0 if effect > -margin else 1.0
    else:
        p = float(stats.ttest_ind(fa + margin, fb, equal_var=False, alternative="greater").pvalue)
    v = HOLDS if p < ALPHA else CONTRADICTED if hi < -margin else INCONCLUSIVE
    return Verdict(v, effect, lo, hi, p, f"margin {margin:g}; p one-sided, H0: difference ≤ −{margin:g}",
                   kind="noninferior", detectable=detectable_effect(a, b))


def all_of(steps: list[Verdict]) -> str:
    """A conjunction (a ranking, or a claim on several metrics): holds only if every step
    holds, contradicted if any step is, inconclusive otherwise."""
    if not steps:
        return INCONCLUSIVE
    if any(s.verdict == CONTRADICTED for s in steps):
        return CONTRADICTED
    return HOLDS if all(s.verdict == HOLDS for s in steps) else INCONCLUSIVE


ranking = all_of


def slope(x, y, expect: str) -> Verdict:
    """y rises (`expect="greater"`) or falls (`"less"`) with x: the least-squares slope and
    its t-test (n − 2 degrees of freedom)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0:
        return Verdict(INCONCLUSIVE, note="fewer than three settings")
    r = stats.linregress(x, y)
    if not np.isfinite(r.stderr) or r.stderr == 0:
        p = 1.0 if r.slope == 0 else 0.0
        return Verdict(_decide(r.slope, p, 1 if expect == "greater" else -1), r.slope, r.slope, r.slope, p)
    half = float(stats.t.ppf(0.975, len(x) - 2) * r.stderr)
    return Verdict(_decide(r.slope, r.pvalue, 1 if expect == "greater" else -1), float(r.slope),
                   float(r.slope - half), float(r.slope + half), float(r.pvalue))


def peak(x, y) -> Verdict:
    """y rises with x and then falls ("until too much makes it collapse"): the curvature c of
    the least-squares fit y = a + b·x + c·x² is negative (t-test, n − 3 degrees of freedom)
    and the fit's vertex −b / 2c lies inside the swept range. Contradicted when the fit is
    significantly convex; the effect is c."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 4 or len(np.unique(x)) < 3:
        return Verdict(INCONCLUSIVE, note="fewer than four settings")
    X = np.stack([np.ones(n), x, x * x], axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = n - 3
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(X.T @ X)
    c, se = float(coef[2]), math.sqrt(max(cov[2, 2], 0.0))
    if se == 0:
        p = 1.0 if c == 0 else 0.0
        lo = hi = c
    else:
        p = float(2 * stats.t.sf(abs(c / se), dof))
        half = float(stats.t.ppf(0.975, dof) * se)
        lo, hi = c - half, c + half
    vertex = -coef[1] / (2 * c) if c != 0 else math.nan
    inside = bool(np.isfinite(vertex) and x.min() < vertex < x.max())
    v = _decide(c, p, -1)
    note = f"vertex at {vertex:.3g}" if np.isfinite(vertex) else ""
    if v == HOLDS and not inside:
        v, note = INCONCLUSIVE, note + " (outside the swept range: no fall seen)"
    return Verdict(v, c, lo, hi, p, note)
