"""The paper's two interpretability losses (Eq. 3–9), as pure functions.

Every function takes `a`, the activation maps of the interpretable layer, of shape
(B, N, H, W): B samples, N filters, an H×W map each. Positions are the cell centres in
normalized image coordinates (row, col) ∈ (0, 1)² (see the book's Specification page, `book/specification.md`, "Coordinates").
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

__all__ = ["cell_centres", "focus", "lac_loss", "lac_loss_at", "sync_loss", "pairwise_dist", "REDUCTIONS", "UNITS"]


def cell_centres(h: int, w: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Centres of the cells of an h×w map: (h*w, 2) as (row, col), row-major.

    Cell (i, j) sits at ((i + 0.5) / h, (j + 0.5) / w).
    """
    rows = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    cols = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)  # (h, w, 2)
    return grid.reshape(h * w, 2)


def focus(a: torch.Tensor) -> torch.Tensor:
    """The focus point x̄(f) of every filter in every sample (Eq. 3 and 5).

    `q_m = softmax_m(a_m)` over the H·W positions; `x̄ = Σ_m q_m x_m`.

    a: (B, N, H, W) activations. Returns (B, N, 2) as (row, col) in normalized units.
    """
    b, n, h, w = a.shape
    q = torch.softmax(a.reshape(b, n, h * w), dim=-1)  # (B, N, H*W)
    x = cell_centres(h, w, device=a.device, dtype=q.dtype)  # (H*W, 2)
    return q @ x  # (B, N, 2)


def pairwise_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the points of x (..., P, 2) and y (..., Q, 2): (..., P, Q).

    Differentiable everywhere: where two points coincide the distance is 0 and its
    gradient 0 (the subgradient), never NaN.
    """
    sq = (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)  # (..., P, Q)
    pos = sq > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), 0.0 * sq)


def lac_loss(a: torch.Tensor, tau: float | None = None) -> torch.Tensor:
    """Local activation consistency loss L_lac (Eq. 3–5).

    The target `p_m = softmax_m(-dist(x_m, x̄) / τ)` centres on the map's own focus point
    x̄ (held constant: gradient stopped); the loss is the cross-entropy of the activation
    distribution `q_m = softmax_m(a_m)` against it, averaged over filters and samples.

    a: (B, N, H, W) activations. tau: temperature in normalized units; None means one
    cell, 1 / max(H, W). Returns a scalar.
    """
    if tau is None:
        tau = 1.0 / max(a.shape[-2:])
    return lac_loss_at(a, focus(a).detach(), tau)


def lac_loss_at(a: torch.Tensor, xbar: torch.Tensor, tau: float) -> torch.Tensor:
    """L_lac with the target centred on given points: a (B, N, H, W), xbar (B, N, 2).

    `lac_loss(a)` is `lac_loss_at(a, focus(a).detach(), tau)`; this form has a true gradient
    (the one L_lac uses), so it is what gradcheck verifies.
    """
    b, n, h, w = a.shape
    logq = torch.log_softmax(a.reshape(b, n, h * w), dim=-1)  # (B, N, H*W)
    x = cell_centres(h, w, device=a.device, dtype=logq.dtype)  # (H*W, 2)
    d = pairwise_dist(xbar.to(logq.dtype), x)  # (B, N, H*W)
    p = torch.softmax(-d / tau, dim=-1)  # (B, N, H*W)
    return -(p * logq).sum(-1).mean()


#: How `sync_loss` combines its filters: summed as Eq. 6 prints it, or averaged.
REDUCTIONS = ("sum", "mean")
#: The units of `sync_loss`'s distances and ε: normalized image coordinates, or map cells.
UNITS = ("normalized", "cells")


def sync_loss(a: torch.Tensor, eps: float = 0.03, reduction: str = "sum", units: str = "normalized") -> torch.Tensor:
    """Synchronization loss L_sync (Eq. 6–9), on the filters' focus points.

    Per sample: `d_ij = dist(x̄_i, x̄_j)`; the ε-neighbourhood `Nb(i) = {j : d_ij ≤ ε}`
    (i included) is a hard choice made on the current positions; `p(j|i) = 1/|Nb(i)|`,
    `q(j|i) = softmax_j(-d_ij)` over all N filters; the loss is
    `Σ_{j∈Nb(i)} -p(j|i) log q(j|i)` summed over the filters i (Eq. 6 and 9 as printed,
    `reduction="sum"`) or averaged over them (`reduction="mean"`, N times weaker), and
    averaged over the samples.

    a: (B, N, H, W) activations. eps: neighbourhood radius. units: "normalized" (SPEC: the
    image side is 1, so 0.03 is 3 % of it) or "cells" (distances, the softmax and ε in cells
    of the H×W map: the other reading of the paper). Returns a scalar.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, not {units!r}")
    if not eps >= 0:
        raise ValueError(f"eps is a radius: it must be 0 or more, not {eps!r}")
    xbar = focus(a)  # (B, N, 2)
    if units == "cells":
        h, w = a.shape[-2:]
        xbar = xbar * torch.tensor([h, w], device=xbar.device, dtype=xbar.dtype)
    per_filter = _SyncPerFilter.apply(xbar, float(eps))  # (B, N)
    return (per_filter.sum(-1) if reduction == "sum" else per_filter.mean(-1)).mean()


def _differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row and column differences x_i - x_j between the points x (B, N, 2), and their distances,
    each (B, N, N): the distances as `pairwise_dist(x, x)` computes them, to the bit."""
    dr = x[..., :, None, 0] - x[..., None, :, 0]
    dc = x[..., :, None, 1] - x[..., None, :, 1]
    return dr, dc, torch.sqrt(dr * dr + dc * dc)


def _chunks(b: int, n: int, device: torch.device) -> int:
    """How many samples one pass of `_SyncPerFilter` takes: all on a GPU (fewest kernels), on the
    CPU as many as keep each (n, n) intermediate within about 1 MiB, so passes stay in cache."""
    return b if device.type != "cpu" else max(1, min(b, (1 << 18) // max(1, n * n)))


class _SyncPerFilter(torch.autograd.Function):
    """Per-filter L_sync, `Σ_{j∈Nb(i)} -p(j|i) log q(j|i)` for every sample and filter i: (B, N),
    from the focus points x (B, N, 2), with its gradient written out.

    With Σ_j p(j|i) = 1, the term is `Σ_j p(j|i) d_ij + log Σ_k exp(-d_ik)`; its derivative in
    d_ij is `p(j|i) - q(j|i)` (p is a hard choice: constant), and d_ij moves with both x̄_i and
    x̄_j, so `∂/∂x̄_i = Σ_j W_ij (x̄_i - x̄_j)` (summed as written: `x̄_i Σ_j W_ij - W x̄`
    cancels, 5× less accurate in float32) with `W_ij = (G_ij + G_ji) / d_ij` (0 where two
    points coincide, the subgradient `pairwise_dist` takes), G the incoming gradient times
    (p - q). The same values as autograd through the formula (tested), in a handful of passes
    over the (B, N, N) distances instead of some forty, and without keeping them for the
    backward pass: they are recomputed from x.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        b, n, _ = x.shape
        step = _chunks(b, n, x.device)
        out, lses, counts = [], [], []
        for xs in x.split(step):
            d = _differences(xs)[2]
            nb = d <= eps  # the diagonal always in
            count = nb.sum(-1).to(x.dtype)
            lse = torch.logsumexp(-d, dim=-1)
            out.append(torch.where(nb, d, 0.0).sum(-1) / count + lse)
            lses.append(lse)
            counts.append(count)
        ctx.save_for_backward(x, torch.cat(lses), torch.cat(counts))
        ctx.eps = eps
        return torch.cat(out)

    @staticmethod
    @once_differentiable  # its gradient has no gradient of its own: say so rather than be wrong
    def backward(ctx, g: torch.Tensor):
        x, lse, count = ctx.saved_tensors
        b, n, _ = x.shape
        step = _chunks(b, n, x.device)
        grads = []
        for xs, ls, cs, gs in zip(x.split(step), lse.split(step), count.split(step), g.split(step)):
            dr, dc, d = _differences(xs)
            p = torch.where(d <= ctx.eps, 1.0 / cs[..., None], 0.0)
            big_g = gs[..., None] * (p - torch.exp(-d - ls[..., None]))  # ∂L/∂d_ij
            w = torch.where(d > 0, (big_g + big_g.mT) / torch.where(d > 0, d, 1.0), 0.0)
            grads.append(torch.stack([(w * dr).sum(-1), (w * dc).sum(-1)], dim=-1))
        return torch.cat(grads), None
