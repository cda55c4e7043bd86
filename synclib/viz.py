"""Shared plotting helpers: one theme for the book (seaborn's, at a size where a figure's text
is at least the body's), overlays of activation maps on images, saving figures atomically as
PNG and as vector PDF (for a reader's own paper).

Sizes: the book's text column is about 730 px wide and its body text 16 px. A figure at most
`FULL_WIDTH` inches wide, drawn at `DPI`, shows at about its natural size, so 12 pt text is
12 / 72 · DPI ≈ 17 px, never smaller than the body.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F

from .files import atomic_write_bytes

__all__ = ["overlay", "upsample", "save_figure", "theme", "METHOD_COLOURS", "FULL_WIDTH", "DPI"]

FULL_WIDTH = 7.2  # inches: the book's text column at DPI
DPI = 100

#: One colour per method in every figure: the Okabe-Ito palette (distinct under the common colour
#: vision deficiencies), with Tol's wine and indigo for the two extra readings of ours.
METHOD_COLOURS = {"baseline": "#999999", "ours_nosync": "#0072B2", "ours": "#D55E00", "ours_mean": "#E69F00",
                  "ours_cells": "#882255", "ours_tau1": "#332288", "csgcnn": "#56B4E9", "decoup": "#000000",
                  "cw": "#CC79A7", "iccnn": "#009E73", "icnn": "#F0E442"}


def theme() -> None:
    """The book's one look: seaborn's whitegrid theme, 12 pt text, the figure DPI above."""

    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0,
                  rc={"font.size": 12, "axes.titlesize": 12, "axes.labelsize": 12, "xtick.labelsize": 11,
                      "ytick.labelsize": 11, "legend.fontsize": 11, "legend.title_fontsize": 11,
                      "figure.dpi": DPI, "savefig.dpi": DPI, "pdf.fonttype": 42})


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
        ax.set_title(title)


def save_figure(fig, path: str | Path, dpi: int = 2 * DPI) -> Path:
    """Save a figure atomically as PNG at `path` and as vector PDF beside it (`fig7.png`,
    `fig7.pdf`); the book shows it inline as well. Returns the PNG's path."""
    path = Path(path)
    for fmt, kw in (("png", {"dpi": dpi}), ("pdf", {})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight", **kw)
        atomic_write_bytes(path.with_suffix(f".{fmt}"), buf.getvalue())
    return path
