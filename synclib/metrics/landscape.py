"""Loss landscape of the interpretable layer (Fig. 10; Li et al. 2018).

Two random directions over the interpretable conv's weights, filter-normalized: each output
filter of a direction is scaled to the norm of the weight filter it perturbs. The test loss is
measured at θ + α d1 + β d2 on a grid; the weights are restored afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["filter_normalized_direction", "loss_landscape", "roughness"]


def filter_normalized_direction(w: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian direction like w (out, in, kh, kw) with each output filter's norm equal to w's."""
    d = torch.randn(w.shape, generator=generator, dtype=w.dtype)
    dn = d.flatten(1).norm(dim=1).view(-1, *[1] * (w.dim() - 1))
    wn = w.detach().cpu().flatten(1).norm(dim=1).view(-1, *[1] * (w.dim() - 1))
    return (d / dn.clamp_min(1e-12) * wn).to(w.device)


@torch.no_grad()
def loss_landscape(model, images: torch.Tensor, labels: torch.Tensor, span: float = 1.0,
                   points: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Test loss on a points×points grid of (α, β) in [-span, span]².

    Returns (coords (points,), loss (points, points) indexed [α, β]).
    """
    layer = model.interpretable_layer
    w0 = layer.weight.detach().clone()
    g = torch.Generator().manual_seed(seed)
    d1, d2 = filter_normalized_direction(w0, g), filter_normalized_direction(w0, g)
    coords = torch.linspace(-span, span, points)
    out = torch.empty(points, points)
    model.eval()
    try:
        for i, alpha in enumerate(coords):
            for j, beta in enumerate(coords):
                layer.weight.copy_(w0 + alpha * d1 + beta * d2)
                out[i, j] = F.cross_entropy(model(images).logits.float(), labels).item()
    finally:
        layer.weight.copy_(w0)
    return coords, out


def roughness(loss: torch.Tensor) -> float:
    """How rough a loss grid (P, P) is, scale-free: the mean absolute discrete Laplacian over
    the interior points (4 neighbours), divided by the grid's mean loss. 0 for a plane."""
    g = torch.as_tensor(loss, dtype=torch.float64)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return float("nan")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.abs().mean() / g.mean())
