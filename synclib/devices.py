"""Where computation runs: the one rule for choosing a device, shared by training, probing and
the analyses (a floor of its own, so that a probe needs no training loop to pick its device)."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(device: str | None = None) -> torch.device:
    """`device` when given (e.g. "cuda:1"), else the first GPU if there is one, else the CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
