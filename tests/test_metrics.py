"""Interpretability metrics and hits on hand-made inputs with known answers (Eq. 11–14)."""

import math

import torch

from synclib.metrics.hits import filter_thresholds, landmark_hits, mask_hits, mask_iou
from synclib.metrics.interpretability import (
    diversity,
    interpretability,
    normalized_entropy,
    purity,
    stability,
    summarize,
)


def test_filter_always_hitting_one_part():
    hits = torch.zeros(5, 1, 4, dtype=torch.bool)
    hits[:, 0, 2] = True
    assert interpretability(hits).item() == 1.0
    assert stability(hits).item() == 0.0
    assert purity(hits).item() == 0.0
    assert torch.allclose(diversity(hits), torch.zeros(5, dtype=torch.float64))


def test_filter_hitting_every_part_everywhere():
    hits = torch.ones(3, 1, 4, dtype=torch.bool)
    assert interpretability(hits).item() == 1.0
    assert math.isclose(stability(hits).item(), 1.0)
    assert math.isclose(purity(hits).item(), 1.0)
    assert torch.allclose(diversity(hits), torch.ones(3, dtype=torch.float64))


def test_filter_alternating_between_two_parts():
    # images 0,1 hit part 0; images 2,3 hit part 1 (K = 4): Interp 1/2, Stability log2/log4
    hits = torch.zeros(4, 1, 4, dtype=torch.bool)
    hits[:2, 0, 0] = True
    hits[2:, 0, 1] = True
    assert interpretability(hits).item() == 0.5
    assert math.isclose(stability(hits).item(), 0.5)
    assert purity(hits).item() == 0.0  # one part per image


def test_silent_filter_is_nan_and_skipped_in_the_summary():
    hits = torch.zeros(2, 2, 3, dtype=torch.bool)
    hits[:, 0, 1] = True
    assert math.isnan(stability(hits)[1].item()) and math.isnan(purity(hits)[1].item())
    assert interpretability(hits)[1].item() == 0.0
    s = summarize(hits)
    assert s["interp"] == 0.5 and s["stability"] == 0.0 and s["purity"] == 0.0
    assert s["diversity"] == 0.0  # one part of three hit per image -> entropy 0


def test_diversity_two_of_four_parts():
    hits = torch.zeros(1, 3, 4, dtype=torch.bool)
    hits[0, 0, 0] = hits[0, 2, 3] = True
    assert math.isclose(diversity(hits).item(), 0.5)


def test_single_part_entropy_is_zero():
    assert normalized_entropy(torch.tensor([[3.0]])).item() == 0.0


def test_metrics_accept_numpy():
    import numpy as np

    h = np.zeros((2, 1, 2), bool)
    h[:, 0, 0] = True
    assert interpretability(h).item() == 1.0


def test_thresholds_take_the_top_fraction():
    a = torch.arange(100.0).view(1, 1, 10, 10).repeat(1, 2, 1, 1)
    a[0, 1] *= 2
    t = filter_thresholds(a, top=0.3)
    # 30 values lie above the 70th smallest (value 69 for filter 0)
    assert (a[0, 0] > t[0]).sum() == 30 and (a[0, 1] > t[1]).sum() == 30


def test_iou_of_known_squares():
    region = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    region[0, 0, :2, :2] = True  # 4 pixels
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :] = True  # 8 pixels, overlap 4 -> IoU 0.5
    iou = mask_iou(region, masks)
    torch.testing.assert_close(iou, torch.tensor([[[0.5, 0.0]]]))


def test_mask_hits_from_activations():
    a = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0] = 1.0  # top-left cell hot
    masks = torch.zeros(1, 2, 8, 8, dtype=torch.bool)
    masks[0, 0, :4, :4] = True  # top-left quadrant
    masks[0, 1, 4:, 4:] = True
    t = torch.tensor([0.5])
    hits = mask_hits(a, masks, t, phi=0.2)
    assert hits.tolist() == [[[True, False]]]


def test_landmark_hits_use_x_as_column():
    a = torch.zeros(1, 1, 4, 4)
    a[0, 0, 0, 3] = 100.0  # row 0, col 3 -> focus (row 0.125, col 0.875)
    lm = torch.tensor([[[0.875, 0.125, 1.0], [0.125, 0.875, 1.0], [0.875, 0.125, 0.0]]])
    assert landmark_hits(a, lm, r=0.05).tolist() == [[[True, False, False]]]
