"""The method interface and its registry.

A training method adds its loss terms (and, if it must, a layer) to the one shared loop in
`synclib.train`; adding a method is a new file with a registered class, never a new loop.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import ModelOutput, arch_family

__all__ = ["Method", "register", "get_method", "METHODS"]

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def get_method(name: str, arch: str, **params) -> Method:
    """An instance of the registered method `name` with the paper's defaults for `arch`."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(METHODS)}")
    return METHODS[name](arch=arch, **params)


class Method:
    """Base: cross-entropy only. Subclasses add terms in `extra_losses`.

    `defaults` maps an arch to its hyperparameters (the paper's values); keyword arguments
    override them; `params` holds the result and is recorded in the run's config.
    """

    name: ClassVar[str] = "method"
    defaults: ClassVar[dict[str, dict[str, float]]] = {}

    def __init__(self, arch: str, **params):
        base = dict(self.defaults.get(arch_family(arch), {}))
        unknown = [k for k in params if k not in base]
        if unknown:
            raise ValueError(f"method {self.name!r} takes {sorted(base)}, not {unknown}")
        base.update(params)
        self.arch = arch
        self.params: dict[str, float] = base

    def prepare(self, model: nn.Module) -> nn.Module:
        """Change the model before training (a method that adds a layer does it here)."""
        return model

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Hook for methods that recompute state each epoch (e.g. icCNN's clusters)."""

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted regularization terms {name: λ·L}; the base adds none."""
        return {}

    def losses(self, out: ModelOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """All terms of the objective, each already weighted; their sum is the training loss."""
        terms = {"ce": F.cross_entropy(out.logits.float(), labels)}
        terms.update(self.extra_losses(out, labels))
        return terms
