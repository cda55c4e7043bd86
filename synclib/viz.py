"""Shared plotting helpers: one theme for the book (seaborn's, at a size where a figure's text
is at least the body's), overlays of activation maps on images, saving figures atomically as
PNG and as vector PDF (for a reader's own paper), with what `figure_checks` finds wrong in the
figure (text that overlaps, a drawn method no legend names) recorded in the PNG.

Sizes: the book's text column is about 730 px wide and its body text 16 px. A figure at most
`FULL_WIDTH` inches wide, drawn at `DPI`, shows at about its natural size, so 12 pt text is
12 / 72 · DPI ≈ 17 px, never smaller than the body.
"""

from __future__ import annotations

import io
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F
from PIL import Image

from .files import atomic_write_bytes

__all__ = ["overlay", "upsample", "save_figure", "figure_checks", "read_figure_checks", "theme", "METHOD_COLOURS", "FULL_WIDTH", "DPI"]

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
    `fig7.pdf`); the book shows it inline as well. The PNG records `figure_checks(fig)` in its
    text chunk "synclib-checks" (`read_figure_checks`), which the book's test reads. Returns the
    PNG's path."""
    path = Path(path)
    checks = json.dumps(figure_checks(fig))
    for fmt, kw in (("png", {"dpi": dpi, "metadata": {CHECKS_KEY: checks}}), ("pdf", {})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight", **kw)
        atomic_write_bytes(path.with_suffix(f".{fmt}"), buf.getvalue())
    return path


CHECKS_KEY = "synclib-checks"


def _drawn_ticklabels(axis, coord: int) -> list:
    """The tick labels of `axis` that are drawn: those inside its view interval (matplotlib
    keeps labels for ticks outside it, which it does not draw)."""
    lo, hi = sorted(axis.get_view_interval())
    span = 1e-9 * max(1.0, abs(hi - lo))
    return [t for t in axis.get_ticklabels() if lo - span <= t.get_position()[coord] <= hi + span]


def _texts(fig) -> list:
    """Every visible, non-empty text of the figure: tick labels, axis labels, titles, texts in
    the axes, legends' entries, the figure's own texts."""
    out = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        out.append(fig._suptitle)
    for leg in fig.legends:
        out += leg.get_texts()
    for ax in fig.axes:
        out += _drawn_ticklabels(ax.xaxis, 0) + _drawn_ticklabels(ax.yaxis, 1)
        out += [ax.xaxis.label, ax.yaxis.label, ax.title, ax._left_title, ax._right_title] + list(ax.texts)
        if ax.get_legend():
            out += ax.get_legend().get_texts()
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def figure_checks(fig) -> dict:
    """What a reader would see wrong in `fig`, as drawn:
    - "overlaps": pairs of texts whose boxes overlap by more than a pixel each way (tick labels
      that collide, a title over a neighbour's labels);
    - "unlabelled": labels of drawn lines, markers and patches that no legend of the figure names
      (an artist whose label starts with "_" is not meant for a legend).
    Returns {"overlaps": [[text, text], ...], "unlabelled": [label, ...]}."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in _texts(fig):
        b = t.get_window_extent(renderer)
        if b.width > 0 and b.height > 0:
            boxes.append((t.get_text(), b))
    overlaps = []
    for (ta, a), (tb, b) in combinations(boxes, 2):
        if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
            overlaps.append([ta, tb])
    named = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    named |= {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
    drawn = {str(h.get_label()) for ax in fig.axes for h in ax.lines + ax.collections + ax.patches}
    unlabelled = sorted(label for label in drawn if label and not label.startswith("_") and label not in named)
    return {"overlaps": overlaps, "unlabelled": unlabelled}


def read_figure_checks(png: str | Path) -> dict | None:
    """The `figure_checks` a PNG written by `save_figure` records, or None for another PNG."""
    with Image.open(png) as im:
        raw = im.text.get(CHECKS_KEY)
    return None if raw is None else json.loads(raw)
