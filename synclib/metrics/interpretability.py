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
           "summarize"]


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
