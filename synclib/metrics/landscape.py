"""Loss landscape of the interpretable layer (Fig. 10; Li et al. 2018).

Two random directions over the interpretable conv's weights, orthogonal (the paper's "two
orthogonal directions") and filter-normalized: each output filter of the second Gaussian draw
loses its component along the first's (Gram–Schmidt, filter by filter), then each output filter
of a direction is scaled to the norm of the weight filter it perturbs. Rescaling a filter keeps
it orthogonal to its partner, so the two directions stay exactly orthogonal. The test loss is
measured at θ + α d1 + β d2 on a grid; the weights are restored afterwards.

Only the interpretable layer's weights move, so what the network computes before that layer
is the same at every grid point: it is computed once (`split_forward`), and each point runs
the rest of the network alone (for VGG16 the layer, its batch norm and ReLU and the head; for
ResNet18 the last block and the head). The losses are the full forward pass's (a test holds
them equal); a network that cannot be split there runs whole at every point.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import VGG16, ResNet18

__all__ = ["filter_normalized_direction", "orthogonal_directions", "split_forward", "loss_landscape", "roughness"]


def _filter_normalized(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """d (out, ...) with each output filter rescaled to the norm of w's."""
    dn = d.flatten(1).norm(dim=1).view(-1, *[1] * (w.dim() - 1))
    wn = w.detach().cpu().flatten(1).norm(dim=1).view(-1, *[1] * (w.dim() - 1))
    return (d / dn.clamp_min(1e-12) * wn).to(w.device)


def filter_normalized_direction(w: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian direction like w (out, in, kh, kw) with each output filter's norm equal to w's."""
    return _filter_normalized(torch.randn(w.shape, generator=generator, dtype=w.dtype), w)


def orthogonal_directions(w: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two filter-normalized Gaussian directions like w, orthogonal filter by filter (so also as
    whole vectors): the second draw's filters lose their component along the first's."""
    d1 = torch.randn(w.shape, generator=generator, dtype=w.dtype)
    d2 = torch.randn(w.shape, generator=generator, dtype=w.dtype)
    a, b = d1.flatten(1), d2.flatten(1)
    b = b - (b * a).sum(1, keepdim=True) / (a * a).sum(1, keepdim=True).clamp_min(1e-30) * a
    return _filter_normalized(d1, w), _filter_normalized(b.view_as(d2), w)


def split_forward(model) -> tuple[Callable, Callable] | None:
    """(before, after) with after(before(x)) = model(x).logits, split where the interpretable
    layer's weights first matter: VGG16 at the layer's input (`features[k:]` after it),
    ResNet18 at the last block's input. None for a network of another kind, or one whose
    interpretable layer a method moved out of that place."""
    name = model.interpretable_layer_name
    norm = lambda x: (x - model.mean) / model.std  # noqa: E731  (as _Backbone.forward)
    logits = lambda z: model.head(model.adapter(z))  # noqa: E731
    if {"trunk", "forward", "head"} & set(vars(model)):  # an instance's own forward: not split
        return None
    if isinstance(model, VGG16) and type(model.features) is nn.Sequential and name.startswith("features.") \
            and name.count(".") == 1:
        k = int(name.split(".")[1])
        return (lambda x: model.features[:k](norm(x))), (lambda h: logits(model.features[k:](h)))
    if isinstance(model, ResNet18) and type(model.layer4) is nn.Sequential \
            and name.startswith(f"layer4.{len(model.layer4) - 1}."):
        def before(x):
            x = model.maxpool(model.relu(model.bn1(model.conv1(norm(x)))))
            return model.layer4[:-1](model.layer3(model.layer2(model.layer1(x))))

        return before, (lambda h: logits(model.layer4[-1](h)))
    return None


@torch.no_grad()
def loss_landscape(model, images: torch.Tensor, labels: torch.Tensor, span: float = 1.0,
                   points: int = 9, seed: int = 0, orthogonal: bool = True,
                   split: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Test loss on a points×points grid of (α, β) in [-span, span]².

    `split=False` runs the whole network at every point (what `split_forward` spares).
    `orthogonal=False` draws the two directions independently (nearly, not exactly, orthogonal
    in high dimension), as before the paper's "orthogonal" was followed.
    Returns (coords (points,), loss (points, points) indexed [α, β]).
    """
    layer = model.interpretable_layer
    w0 = layer.weight.detach().clone()
    g = torch.Generator().manual_seed(seed)
    if orthogonal:
        d1, d2 = orthogonal_directions(w0, g)
    else:
        d1, d2 = filter_normalized_direction(w0, g), filter_normalized_direction(w0, g)
    coords = torch.linspace(-span, span, points)
    out = torch.empty(points, points)
    model.eval()
    split = split_forward(model) if split else None
    if split:
        before, after = split
        h = before(images)
    try:
        for i, alpha in enumerate(coords):
            for j, beta in enumerate(coords):
                layer.weight.copy_(w0 + alpha * d1 + beta * d2)
                logits = after(h) if split else model(images).logits
                out[i, j] = F.cross_entropy(logits.float(), labels).item()
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
