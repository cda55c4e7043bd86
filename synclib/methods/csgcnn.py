"""CSGCNN: class-specific gates on the interpretable layer (Liang et al., ECCV 2020).

Read from the authors' code (github.com/hyliang96/CSGCNN, `VOCPart/train/resnet_std.py`,
`train.py` and `run.py`): a gate matrix G (N filters × C classes), a parameter initialized to
0.5. Training alternates two paths by epoch. The standard path (STD) is the plain network.
The class-specific gated path (CSG) multiplies each training sample's maps by its class's gate
column G[:, y] before the classifier, adds λ · relu(‖G‖₁ − density · N · C) (an L1 hinge that
lets at most the target density of gate mass through), and after every step rescales each
filter's row of G by its largest entry and clamps it to [0, 1]. An epoch takes the CSG path
when epoch mod period ≥ csg_from and the warm-up is over; the code's run.py has period 3,
csg_from 2, a warm-up of 10 of its 150 epochs, λ = 1e-3, density 0.2, and a learning rate
of the gates 100 times the network's (lr_reg 1e-3 against lr 1e-5). At test time the gates
are off: the network is the STD path, and the metrics read its maps.

Differences from the code, each said on the Ambiguities page: one SGD optimizer (the loop's)
instead of two Adam optimizers, the gate's rate kept at the code's ratio to the network's
(`gate_lr`); every layer trains on both paths (the code freezes all but the top stages of an
ImageNet ResNet152, which our runs do not start from); the warm-up scales with the run's
length (10/150 of the epochs).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Method, register


class ClassGates(nn.Module):
    """G (N, C) and the labels of the batch in flight; applied to what the classifier sees.

    `active` is set by the method for CSG epochs in training mode only; `labels` for the batch
    about to run. Off (or in eval mode) it passes the maps through.
    """

    def __init__(self, n_filters: int, n_classes: int):
        super().__init__()
        self.gate = nn.Parameter(torch.full((n_filters, n_classes), 0.5))
        self.active = False
        self.labels: torch.Tensor | None = None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if not (self.active and self.training) or self.labels is None:
            return a
        g = self.gate[:, self.labels].t()  # (B, N): each sample's class column
        return a * g.to(a.dtype)[:, :, None, None]

    def density(self) -> torch.Tensor:
        """‖G‖₁ / (N·C), the share of gate mass let through."""
        return self.gate.abs().sum() / self.gate.numel()

    def hinge(self, density: float) -> torch.Tensor:
        """relu(‖G‖₁ − density · N·C): zero while the gates are sparse enough."""
        return torch.relu(self.gate.abs().sum() - density * self.gate.numel())

    @torch.no_grad()
    def rescale(self) -> None:
        """Each filter's row divided by its largest entry, then clamped to [0, 1]."""
        g = self.gate / self.gate.max(dim=1, keepdim=True).values
        self.gate.copy_(g.clamp(0.0, 1.0))


def csg_epoch(epoch: int, epochs: int, period: int, csg_from: int, warmup: float) -> bool:
    """Whether `epoch` (0-based) takes the gated path: past the warm-up (a fraction of the
    run's epochs, rounded) and epoch mod period ≥ csg_from, as the code's train.py decides."""
    return epoch >= round(warmup * epochs) and epoch % period >= csg_from


@register
class CSGCNN(Method):
    """Class-specific gates, alternating with the standard path (see the module's docstring)."""

    name = "csgcnn"
    _p = {"lambda_reg": 1e-3, "density": 0.2, "period": 3, "csg_from": 2, "warmup": 10 / 150, "gate_lr": 100.0}
    defaults = {"vgg16": dict(_p), "resnet18": dict(_p)}

    def prepare(self, model: nn.Module, data) -> nn.Module:
        model.pre_head = ClassGates(model.n_filters, model.fc.out_features)
        self._csg = False
        return model

    def param_groups(self, model: nn.Module) -> list[dict]:
        gate = model.pre_head.gate
        rest = [p for p in model.parameters() if p.requires_grad and p is not gate]
        # the gates are not weight-decayed: their code's Adam for them had weight_decay 0
        return [{"params": rest}, {"params": [gate], "lr_scale": self.params["gate_lr"], "weight_decay": 0.0}]

    def on_epoch_start(self, model: nn.Module, epoch: int, data) -> None:
        p = self.params
        self._csg = csg_epoch(epoch, data.epochs, p["period"], p["csg_from"], p["warmup"])
        model.pre_head.active = self._csg

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        gates = (model.module if hasattr(model, "module") else model).pre_head
        gates.labels = y
        try:
            return model(x)
        finally:
            gates.labels = None

    def extra_losses(self, out, labels, model) -> dict[str, torch.Tensor]:
        hinge = model.pre_head.hinge(self.params["density"])
        if not self._csg:  # the term is off on the standard path (kept at 0 so every epoch logs it)
            return {"gate": hinge.detach() * 0.0}
        return {"gate": self.params["lambda_reg"] * hinge}

    def after_step(self, model: nn.Module, step: int) -> None:
        if self._csg:
            model.pre_head.rescale()
