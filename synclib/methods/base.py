"""The method interface and its registry.

A training method takes part in the one shared loop of `synclib.train.fit` through a few
hooks, each with a default that does nothing; adding a method is a new file with a
registered class, never a new loop:

    prepare(model, data)             change the model once (replace or add a layer, attach
                                     modules that hold the method's state as buffers); `data`
                                     is a `TrainData`, or None when a finished run is loaded
    param_groups(model)              what the optimizer updates (parameters kept out of SGD
                                     are simply left out and updated in `after_step`); a
                                     group's "lr_scale" multiplies the run's learning rate
    on_epoch_start(model, epoch, data)  recompute state from the training set (icCNN's clusters)
    forward(model, x, y)             the training forward pass; the labels are there for
                                     methods that need them (CSGCNN's class gates)
    losses(out, y, model)            every weighted term of the objective
    before_step(model, epoch, i)     before batch i (0-based, counted within the epoch) runs
                                     (CW's concept rotation, which their code runs there)
    after_step(model, step)          after each optimizer step (clamping)
    optimizers(model, cfg)           None (the loop's one SGD and MultiStepLR), or the method's
                                     own [(optimizer, scheduler), ...] (CSGCNN's two Adams)
    optimizer_index(epoch, data)     which of those steps in `epoch`; only its scheduler steps
                                     at the epoch's end
    epoch_record(model)              numbers added to the epoch's history record (gate values)

State lives in buffers of modules the method attaches in `prepare`: the checkpoint, resume
and a multi-process broadcast carry it with no extra code. Randomness comes from
`data.generator(epoch, ...)`, never from the global generator, so a resumed run ends where an
uninterrupted one does. Hyperparameters keep their types (an int stays an int) and are
recorded in the run's config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import PartDataset
from ..models import ModelOutput, arch_family

__all__ = ["Method", "TrainData", "register", "get_method", "METHODS"]


@dataclass
class TrainData:
    """What a method's hooks get to see of the training: the training split, the run's seed,
    the batch size, the device, and this process's rank among `world_size` (1 on one device).

    A method that needs randomness draws it from `generator(...)`, seeded by the run's seed and
    the numbers it passes (epoch, step): nothing random has to survive a resume.
    """

    dataset: PartDataset
    seed: int
    batch_size: int
    device: torch.device
    rank: int = 0
    world_size: int = 1
    epochs: int = 1  # the run's length, for schedules given as fractions of it (CSGCNN's warm-up)

    def generator(self, *salt: int) -> torch.Generator:
        digest = hashlib.sha256(repr((self.seed, *salt)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def epoch_batches(self, epoch: int) -> tuple[list[list[int]], torch.Tensor]:
        """This rank's batches of an epoch (lists of indices) and every image's flip (n,) bool.

        One permutation and one coin per image, from a generator seeded by (seed, epoch); a
        global batch of `batch_size` is split across ranks by stride.
        """
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        batches = [order[s:s + self.batch_size][self.rank::self.world_size].tolist()
                   for s in range(0, n, self.batch_size)]
        return [b for b in batches if b], flips

#: The registered methods by name (`baseline`, `ours_nosync`, `ours`, ...).
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a `Method` subclass trainable by its `name` (`get_method(name, arch)`)."""
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, arch: str, **params) -> Method:
    """An instance of the registered method `name` with the paper's defaults for `arch`."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    return METHODS[name](arch=arch, **params)


class Method:
    """Base: cross-entropy only. Subclasses override the hooks they need.

    `defaults` maps an arch family (vgg16, resnet18) to its hyperparameters (the original
    paper's values); keyword arguments override them; `params` holds the result.
    """

    name: ClassVar[str] = "method"
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: The paper's data sets the method is compared on (None: all); a study leaves it out of
    #: the others, as the paper does (ICNN: VOC Part and ILSVRC Part only).
    paper_datasets: ClassVar[tuple[str, ...] | None] = None
    #: Whether the paper's analyses beyond Tables I-II (pruning, landscapes, modules) show it.
    in_analyses: ClassVar[bool] = False
    #: Whether it needs the data set's part masks to train (CW's concept images).
    needs_masks: ClassVar[bool] = False

    @classmethod
    def takes_arch(cls, arch: str) -> bool:
        """Whether the method is defined for `arch` (ICNN: VGG16 only); a method without
        per-arch defaults takes every arch."""
        return not cls.defaults or arch_family(arch) in cls.defaults

    def __init__(self, arch: str, **params):
        if not self.takes_arch(arch):
            raise ValueError(f"method {self.name!r} is defined for {sorted(self.defaults)} only, not {arch!r} "
                             "(as in the paper that compares it)")
        base = dict(self.defaults.get(arch_family(arch), {}))
        unknown = [k for k in params if k not in base]
        if unknown:
            raise ValueError(f"method {self.name!r} takes {sorted(base)}, not {unknown}")
        base.update(params)
        self.arch = arch
        self.params: dict[str, Any] = base

    def prepare(self, model: nn.Module, data: TrainData | None) -> nn.Module:
        """Change the model before training or loading; return it."""
        return model

    def param_groups(self, model: nn.Module) -> list[dict]:
        """The optimizer's parameter groups; the default: every parameter that needs a gradient."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def on_epoch_start(self, model: nn.Module, epoch: int, data: TrainData) -> None:
        """Before each epoch (0-based), in train or eval mode as the method needs."""

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> ModelOutput:
        """The training forward pass of images x: (B, 3, S, S) with labels y: (B,)."""
        return model(x)

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
        """Weighted regularization terms {name: λ·L}; the base adds none."""
        return {}

    def losses(self, out: ModelOutput, labels: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
        """All terms of the objective, each already weighted; their sum is the training loss."""
        terms = {"ce": F.cross_entropy(out.logits.float(), labels)}
        terms.update(self.extra_losses(out, labels, model))
        return terms

    def before_step(self, model: nn.Module, epoch: int, i: int) -> None:
        """Before batch `i` of `epoch` (both 0-based; i counted within the epoch) runs forward."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """After optimizer step `step` (0-based, counted over the whole run)."""

    def optimizers(self, model: nn.Module, cfg: Any) -> list[tuple[torch.optim.Optimizer, Any]] | None:
        """The method's own optimizers, each with its scheduler, or None for the loop's default
        (SGD over `param_groups` with the run's lr, momentum and weight decay, and MultiStepLR
        at the run's milestones). `cfg` is the run's TrainConfig. A method that returns them
        also says, in `optimizer_index`, which one steps in an epoch; the checkpoint carries
        every optimizer's and scheduler's state."""
        return None

    def optimizer_index(self, epoch: int, data: TrainData) -> int:
        """Which of `optimizers(...)` steps in `epoch` (0-based); its scheduler alone steps at
        the epoch's end. The default: the first (the only one of the default path)."""
        return 0

    def epoch_record(self, model: nn.Module) -> dict[str, float]:
        """Numbers to add to the epoch's history record after its last step (JSON scalars)."""
        return {}
