"""Shared plotting helpers: overlays of activation maps on images, saving figures atomically."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt  # headless, matplotlib falls back to Agg; in a notebook, inline
import numpy as np
import torch
import torch.nn.functional as F

from .data.format import atomic_write_bytes

__all__ = ["overlay", "upsample", "save_figure", "METHOD_COLOURS"]

METHOD_COLOURS = {"baseline": "#7f7f7f", "ours_nosync": "#1f77b4", "ours": "#d62728", "ours_mean": "#ff7f0e",
                  "ours_cells": "#9467bd"}


def upsample(a: torch.Tensor, size: int) -> np.ndarray:
    """A map (H, W) bilinearly upsampled to size×size (as the region of a filter is)."""
    return F.interpolate(a[None, None].float(), size=(size, size), mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def overlay(ax, image: torch.Tensor, heat: torch.Tensor, title: str | None = None, alpha: float = 0.55) -> None:
    """Draw image (3, S, S) in [0, 1] with a map (H, W) upsampled over it, normalized to [0, 1]."""
    s = image.shape[-1]
    h = upsample(heat, s)
    h = (h - h.min()) / (h.max() - h.min() + 1e-12)
    ax.imshow(image.permute(1, 2, 0).numpy())
    ax.imshow(h, cmap="jet", alpha=alpha, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save a figure as PNG atomically (the book shows it inline as well)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


plt.rcParams.update({"figure.dpi": 90, "font.size": 9})
