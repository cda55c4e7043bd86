"""Redundancy by Taylor pruning of the interpretable layer (Fig. 9; Molchanov et al. 2017).

The interpretable layer feeds the head directly, so pruning a filter is masking its channel of
`a`; the trunk's activations are computed once and every step works on them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["taylor_scores", "taylor_pruning_curve", "pruning_auc"]


def taylor_scores(head, a: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per filter: mean over examples of abs(mean over positions of a_f · ∂L/∂a_f), divided by the
    L2 norm of these values over the layer.

    head: maps (B, N, H, W) to logits; a: (I, N, H, W); labels: (I,); mask: (N,) 0/1.
    Returns (N,).
    """
    a = (a * mask.view(1, -1, 1, 1)).detach().requires_grad_(True)
    loss = F.cross_entropy(head(a), labels, reduction="sum")  # per-example gradients stay apart
    (g,) = torch.autograd.grad(loss, a)
    crit = (a * g).mean(dim=(2, 3)).abs().mean(0)  # (N,)
    return crit / crit.norm().clamp_min(1e-12)


@torch.no_grad()
def _accuracy(head, a, labels, mask) -> float:
    return (head(a * mask.view(1, -1, 1, 1)).argmax(1) == labels).double().mean().item()


def taylor_pruning_curve(head, a: torch.Tensor, labels: torch.Tensor, step: int = 1,
                         a_test: torch.Tensor | None = None, labels_test: torch.Tensor | None = None
                         ) -> tuple[list[int], list[float]]:
    """Accuracy against filters removed: mask the `step` filters with the smallest Taylor
    score, re-measure accuracy, re-rank, repeat until every filter is gone.

    Filters are ranked on (a, labels) (training images); accuracy is measured on (a_test,
    labels_test) (test images), or on (a, labels) when none are given. The head must be on
    the activations' device.

    Returns (removed counts, accuracies), both starting at 0 removed.
    """
    if a_test is None:
        a_test, labels_test = a, labels
    n = a.shape[1]
    mask = torch.ones(n, dtype=a.dtype, device=a.device)
    removed, acc = [0], [_accuracy(head, a_test, labels_test, mask)]
    while mask.sum() > 0:
        with torch.enable_grad():
            s = taylor_scores(head, a, labels, mask)
        s[mask == 0] = float("inf")
        k = min(step, int(mask.sum().item()))
        mask[s.argsort()[:k]] = 0
        removed.append(n - int(mask.sum().item()))
        acc.append(_accuracy(head, a_test, labels_test, mask))
    return removed, acc


def pruning_auc(removed: list[int], accuracy: list[float], n: int) -> float:
    """The accuracy a model keeps under pruning, relative to its own start: the area under
    accuracy / accuracy before pruning, against the fraction of filters removed, divided by
    the fraction range (1 = nothing lost along the whole curve). A model that starts higher
    gains nothing by it; one that degrades more slowly does (the paper's point, Fig. 9)."""

    frac = np.asarray(removed, float) / n
    acc = np.asarray(accuracy, float)
    if len(frac) < 2 or acc[0] <= 0 or frac[-1] == frac[0]:
        return float("nan")
    rel = acc / acc[0]
    return float(np.sum((rel[1:] + rel[:-1]) / 2 * np.diff(frac)) / (frac[-1] - frac[0]))
