"""The paper's method (Eq. 10): L = L_ce + λ1 L_lac + λ2 L_sync, and it without L_sync."""

from __future__ import annotations

import torch

from ..losses import lac_loss, sync_loss
from ..models import ModelOutput
from .base import Method, register


@register
class OursNoSync(Method):
    """Cross-entropy + λ1 · local activation consistency (Eq. 3–5)."""

    name = "ours_nosync"
    in_analyses = True
    defaults = {"vgg16": {"lambda1": 0.2}, "resnet18": {"lambda1": 0.1}}

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model) -> dict[str, torch.Tensor]:
        return {"lac": self.params["lambda1"] * lac_loss(out.a.float())}


@register
class Ours(Method):
    """Cross-entropy + λ1 · L_lac + λ2 · L_sync (Eq. 10); ε is the neighbourhood radius.

    `reduction`: L_sync summed over the filters as Eq. 6 prints it ("sum", the default) or
    averaged over them ("mean"); `units`: L_sync's distances and ε in normalized image units
    ("normalized", the default) or in cells of the map ("cells"); `tau`: L_lac's softmax
    temperature (Eq. 4 prints none) in normalized image units, None for the specification's
    one cell (1 / max(H, W)); 1.0 is Eq. 4 read literally. All are readings of the paper that
    the specification had to choose between; the book's Ambiguities page measures the others.
    """

    name = "ours"
    in_analyses = True
    defaults = {
        "vgg16": {"lambda1": 0.2, "lambda2": 0.1, "eps": 0.03, "reduction": "sum", "units": "normalized", "tau": None},
        "resnet18": {"lambda1": 0.1, "lambda2": 0.05, "eps": 0.03, "reduction": "sum", "units": "normalized",
                     "tau": None},
    }

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model) -> dict[str, torch.Tensor]:
        a = out.a.float()
        return {
            "lac": self.params["lambda1"] * lac_loss(a, tau=self.params["tau"]),
            "sync": self.params["lambda2"] * sync_loss(a, eps=self.params["eps"], reduction=self.params["reduction"],
                                                       units=self.params["units"]),
        }
