"""CSGCNN: class-specific gates on the interpretable layer (Liang et al., ECCV 2020).

Read from the authors' code (github.com/hyliang96/CSGCNN, `VOCPart/train/resnet_std.py`,
`train.py` and `run.py`): a gate matrix G (N filters × C classes), a parameter initialized to
0.5. Training alternates two paths by epoch. The standard path (STD) is the plain network.
The class-specific gated path (CSG) multiplies each training sample's maps by its class's gate
column G[:, y] before the classifier, adds λ · relu(‖G‖₁ − density · N · C) (an L1 hinge that
lets at most the target density of gate mass through), and after every step rescales each
filter's row of G by its largest entry and clamps it to [0, 1]. An epoch takes the CSG path
when epoch mod period ≥ csg_from and the warm-up is over; the code's run.py has period 3,
csg_from 2, a warm-up of 10 of its 150 epochs, λ = 1e-3, density 0.2. At test time the gates
are off: the network is the STD path, and the metrics read its maps.

Optimizers, as train.py and run.py: two Adams (betas 0.9/0.999, eps 1e-8, no weight decay),
each stepping only in its own kind of epoch. Gated epochs: Adam at `lr_csg` (1e-3) over the
top 4 children of their ResNet (layer4, avgpool, fc, the gates); standard epochs: Adam at
`lr_std` (1e-5) over the top 5 (layer3 too; the gates there get no gradient). Every lower
layer is frozen (`requires_grad` off, their --frozen True). The "100×" of the paper is gated
epochs against standard ones, not the gates against the network. On VGG16 layer4 and layer3
are read as the last two stages (conv5_x and conv4_x with their batch norms). Each of the two
MultiStepLR schedulers (×0.1) steps once at the end of each epoch of its own kind, with
milestones at 0.4, 0.6, 0.8 of the run's epochs counted in its own steps (the code's
epoch · 0.4/0.6/0.8 = 60/90/120 of 150): scaled to the run's length as the warm-up is (a
fraction of the epochs, rounded). The run's lr, momentum, weight decay and milestones do not
apply to this method.

The per-epoch history also records whether the epoch was gated and the gates' mean, min,
max and density, and the hinge, so that what the gates did is on the record.
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


def top_stages(model: nn.Module, n: int) -> list[nn.Module]:
    """The last n stages of the backbone: ResNet's layer4, layer3, ...; VGG's conv blocks
    (split at its max-pools: conv5_x, conv4_x, ...)."""
    if hasattr(model, "layer4"):
        return [getattr(model, f"layer{4 - j}") for j in range(n)]
    feats = list(model.features)
    cuts = [i for i, m in enumerate(feats) if isinstance(m, nn.MaxPool2d)]
    bounds = [0, *[c + 1 for c in cuts], len(feats)]
    return [nn.Sequential(*feats[bounds[-2 - j]:bounds[-1 - j]]) for j in range(n)]


def scheduler_milestones(epochs: int, fractions=(0.4, 0.6, 0.8)) -> list[int]:
    """The code's milestones (epoch · 0.4, 0.6, 0.8) for a run of `epochs`, each rounded and
    at least 1; counted in the steps of the one scheduler they belong to."""
    return [max(1, round(f * epochs)) for f in fractions]


@register
class CSGCNN(Method):
    """Class-specific gates, alternating with the standard path (see the module's docstring)."""

    name = "csgcnn"
    _p = {"lambda_reg": 1e-3, "density": 0.2, "period": 3, "csg_from": 2, "warmup": 10 / 150,
          "lr_std": 1e-5, "lr_csg": 1e-3}
    defaults = {"vgg16": dict(_p), "resnet18": dict(_p)}

    def prepare(self, model: nn.Module, data) -> nn.Module:
        model.pre_head = ClassGates(model.n_filters, model.fc.out_features)
        self._csg = False
        return model

    def param_groups(self, model: nn.Module) -> list[dict]:
        """(The loop's SGD path, used only by code that builds its own optimizer.)"""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def parameter_sets(self, model: nn.Module) -> tuple[list, list]:
        """(standard-epoch parameters, gated-epoch parameters), in the code's order: the top
        5 and top 4 children of their ResNet (layer3, layer4, fc, gates / layer4, fc, gates)."""
        s4, s3 = top_stages(model, 2)
        gate = model.pre_head.gate
        csg = [*s4.parameters(), *model.fc.parameters(), gate]
        std = [*s3.parameters(), *csg]
        return std, csg

    def optimizers(self, model: nn.Module, cfg) -> list:
        """[(Adam lr_std, its MultiStepLR), (Adam lr_csg, its MultiStepLR)]; every other
        parameter frozen."""
        std, csg = self.parameter_sets(model)
        keep = {id(p) for p in std}
        for p in model.parameters():
            p.requires_grad_(id(p) in keep)
        ms = scheduler_milestones(cfg.epochs)
        out = []
        for params, lr in ((std, self.params["lr_std"]), (csg, self.params["lr_csg"])):
            opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
            out.append((opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=ms, gamma=0.1)))
        return out

    def on_epoch_start(self, model: nn.Module, epoch: int, data) -> None:
        p = self.params
        self._csg = csg_epoch(epoch, data.epochs, p["period"], p["csg_from"], p["warmup"])
        model.pre_head.active = self._csg

    def optimizer_index(self, epoch: int, data) -> int:
        p = self.params
        return int(csg_epoch(epoch, data.epochs, p["period"], p["csg_from"], p["warmup"]))

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

    @torch.no_grad()
    def epoch_record(self, model: nn.Module) -> dict[str, float]:
        g = model.pre_head
        return {"gated": self._csg, "gate_mean": g.gate.mean().item(), "gate_min": g.gate.min().item(),
                "gate_max": g.gate.max().item(), "gate_density": g.density().item(),
                "hinge": g.hinge(self.params["density"]).item()}
