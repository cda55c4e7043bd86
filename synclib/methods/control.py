"""The positive control of the interpretability metrics: a network taught where its parts are.

Not a method of the paper. It answers "can the metrics see an interpretable filter at all?":
filter f of the interpretable layer is trained, beside the cross-entropy, to fire on part
k = f mod K of the training masks (K part classes) and nowhere else. Its Interp should then be
near 1 and its Stability near 0; a network with the same layer shuffled (the negative
control, `synclib.analysis.controls`) should sit near chance. If the two do not separate, the
metrics or the evaluation have a defect.

The mask loss asks each filter's activations to correlate with its part's coverage of each
map cell (the part mask average-pooled to the map's size, flipped as the batch's image is),
over the batch's images and cells:

    L_mask = mean over filters f of 1 − corr(a_f, cover_{f mod K})

The batch's masks come from the same `TrainData.epoch_batches` the loop draws the batch from
(`before_step` knows the epoch and the batch's position), so a resumed run reads the same masks.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import ModelOutput
from .base import Method, TrainData, register

__all__ = ["PartsControl", "part_targets", "mask_loss"]


def part_targets(masks: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(B, C, h, w): for each filter f < C the coverage of part f mod K in each map cell, from
    masks (B, K, S, S) bool; a cell's coverage is the fraction of its pixels inside the part."""
    cover = F.adaptive_avg_pool2d(masks.float(), size)  # (B, K, h, w)
    k = cover.shape[1]
    return cover[:, torch.arange(channels) % k]


def mask_loss(a: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − the Pearson correlation between each filter's activations and its part's coverage
    over the batch's images and map cells (B, C, h, w), averaged over the filters: 0 when every
    filter's map is an increasing linear function of its part's coverage. Scale-free, so a
    silent layer does not satisfy it (a squared error toward the mostly-zero coverage does)."""
    x = a.transpose(0, 1).flatten(1)
    t = target.transpose(0, 1).flatten(1)
    x = x - x.mean(1, keepdim=True)
    t = t - t.mean(1, keepdim=True)
    corr = (x * t).sum(1) / (x.norm(dim=1) * t.norm(dim=1) + eps)
    return (1 - corr).mean()


@register
class PartsControl(Method):
    """Cross-entropy plus λ·L_mask on the interpretable layer (see the module docstring)."""

    name: ClassVar[str] = "parts_control"
    defaults: ClassVar[dict] = {"vgg16": {"lambda_mask": 1.0}, "resnet18": {"lambda_mask": 1.0}}
    needs_masks: ClassVar[bool] = True

    def __init__(self, arch: str, **params):
        super().__init__(arch, **params)
        self._data: TrainData | None = None
        self._batches: list[list[int]] = []
        self._flips: torch.Tensor | None = None
        self._masks: torch.Tensor | None = None
        self._flip = True

    def optimizers(self, model: nn.Module, cfg) -> None:
        """The loop's own optimizer; read whether the loop flips the images it marks (the run's
        `flip`), which the masks must follow. The loop calls this once, before training."""
        self._flip = bool(cfg.flip)
        return None

    def on_epoch_start(self, model: nn.Module, epoch: int, data: TrainData) -> None:
        if not data.dataset.has_masks:
            raise ValueError(f"{data.dataset.root}: the positive control needs part masks, and this data set "
                             "has none; run it on a data set with masks (PartWorld, VOC Part)")
        self._data = data
        self._batches, self._flips = data.epoch_batches(epoch)

    def before_step(self, model: nn.Module, epoch: int, i: int) -> None:
        idx = self._batches[i]
        masks = torch.stack([self._data.dataset[j]["masks"] for j in idx])  # (B, K, S, S) bool
        if self._flip:
            masks = torch.where(self._flips[idx].view(-1, 1, 1, 1), masks.flip(-1), masks)
        self._masks = masks

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
        if self._masks is None:  # a forward outside the training loop
            return {}
        a = out.a.float()
        target = part_targets(self._masks, tuple(a.shape[-2:]), a.shape[1]).to(a.device)
        return {"mask": self.params["lambda_mask"] * mask_loss(a, target)}
