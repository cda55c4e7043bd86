"""The part-based interpretability metrics (Eq. 11–14), on a boolean hits array.

`hits[I, f, k]` says whether filter f hits part k in image I (shape (I, N, K)); see
`synclib.metrics.hits` for how hits come from masks or landmarks. Entropies are natural-log,
computed on the vector divided by its sum and then divided by log K, so they lie in [0, 1];
K = 1 gives 0. The figure a table shows is the NaN-skipping mean over filters (or images).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["interpretability", "stability", "purity", "diversity", "normalized_entropy",
           "summarize", "summarize_variants"]


def _as_hits(hits) -> torch.Tensor:
    h = torch.as_tensor(np.asarray(hits) if not isinstance(hits, torch.Tensor) else hits)
    if h.dim() != 3:
        raise ValueError(f"hits must have shape (I, N, K), got {tuple(h.shape)}")
    return h.bool()


def normalized_entropy(v: torch.Tensor) -> torch.Tensor:
    """Ĥ(v) = H(v / Σv) / log K over the last dim (K); NaN where Σv = 0; 0 when K = 1.

    v: (..., K) non-negative. Returns (...,) in float64.
    """
    v = v.double()
    k = v.shape[-1]
    total = v.sum(-1, keepdim=True)  # (..., 1)
    p = v / total
    h = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(-1)  # (...,)
    h = h / math.log(k) if k > 1 else torch.zeros_like(h)
    return torch.where(total.squeeze(-1) > 0, h, torch.full_like(h, float("nan")))


def interpretability(hits) -> torch.Tensor:
    """Interp(f) = max_k mean_I hit[I, f, k] (Eq. 11). hits: (I, N, K) bool -> (N,)."""
    h = _as_hits(hits)
    return h.double().mean(0).max(-1).values


def stability(hits) -> torch.Tensor:
    """Stability(f) = Ĥ_k(mean_I hit[I, f, k]) (Eq. 12), lower is better; NaN for a filter
    that hits nothing. hits: (I, N, K) bool -> (N,)."""
    return normalized_entropy(_as_hits(hits).double().mean(0))


def purity(hits) -> torch.Tensor:
    """Purity(f) = mean over the images where f hits ≥ 1 part of Ĥ_k(hit[I, f, :]) (Eq. 13),
    lower is better; NaN for a filter that never hits. hits: (I, N, K) bool -> (N,)."""
    e = normalized_entropy(_as_hits(hits).double())  # (I, N), NaN where no hit
    return torch.nanmean(e, dim=0)


def diversity(hits) -> torch.Tensor:
    """Diversity(I) = Ĥ_k(max_f hit[I, f, k]) (Eq. 14), higher is better; 0 for an image
    where no part is hit. hits: (I, N, K) bool -> (I,)."""
    e = normalized_entropy(_as_hits(hits).any(1).double())  # (I,)
    return torch.nan_to_num(e, nan=0.0)


def summarize(hits) -> dict[str, float]:
    """A Table I row: the NaN-skipping means of the four metrics."""
    def m(t):
        return float(torch.nanmean(t)) if torch.isfinite(t).any() else float("nan")

    return {"interp": m(interpretability(hits)), "stability": m(stability(hits)),
            "purity": m(purity(hits)), "diversity": m(diversity(hits))}


def summarize_variants(hits) -> dict[str, float]:
    """Table I's row under the other readings of Eq. 11–14 the specification chose between:

    - `purity_all`: Eq. 13 averaged over every image, as the paper prints it, an image where
      the filter hits nothing counting 0 (the specification: over the images it hits);
    - `interp_hit`, `diversity_hit`: no-hit cases skipped everywhere, as Stability and Purity
      skip a filter that never hits: Interp over the filters that hit at least once, Diversity
      over the images where some filter hits (the specification counts them as 0).

    Beside them, the specification's four (`summarize`)."""
    h = _as_hits(hits)
    row = summarize(h)
    e = torch.nan_to_num(normalized_entropy(h.double()), nan=0.0)  # (I, N): 0 where f hits nothing
    alive = h.any(-1).any(0)  # (N,) filters that hit at least once
    purity_all = e.mean(0)[alive]  # a filter that never hits stays out, as in Purity
    row["purity_all"] = float(purity_all.mean()) if len(purity_all) else float("nan")
    interp = interpretability(h)[alive]
    row["interp_hit"] = float(interp.mean()) if len(interp) else float("nan")
    seen = h.any(1).any(-1)  # (I,) images where some filter hits
    div = normalized_entropy(h.any(1).double())[seen]
    row["diversity_hit"] = float(div.mean()) if len(div) else float("nan")
    return row
