"""The controls of the metrics: the positive control's targets, the negative controls' layers,
where a method falls between them, and a trained positive control that the metrics see."""

import math

import pandas as pd
import pytest
import torch

from synclib.controls import _altered, control_positions, part_sizes
from synclib.data import PartDataset
from synclib.evaluate import evaluate
from synclib.methods.control import mask_loss, part_targets
from synclib.metrics import filter_thresholds, mask_hits
from synclib.metrics.hits import regions
from synclib.models import build_model
from synclib.train import TrainConfig, fit, load_run


def test_part_targets_are_each_cells_coverage_by_the_filters_part():
    masks = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masks[0, 0, :, :2] = True  # part 0: the left half
    masks[0, 1, 0, 0] = True   # part 1: one pixel of the top-left cell
    t = part_targets(masks, (2, 2), channels=3)
    assert t.shape == (1, 3, 2, 2)
    assert t[0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert t[0, 1].tolist() == [[0.25, 0.0], [0.0, 0.0]]
    assert torch.equal(t[0, 2], t[0, 0])  # filter 2 takes part 2 mod 2 = 0


def test_mask_loss_is_one_minus_each_filters_correlation():
    t = torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    a = torch.stack([3 * t[0, 0] + 1, -t[0, 1]]).unsqueeze(0)  # filter 0: corr +1, filter 1: corr -1
    assert mask_loss(a, t).item() == pytest.approx((0 + 2) / 2, abs=1e-5)
    assert mask_loss(torch.stack([t[0, 0], t[0, 0]]).unsqueeze(0) * 5, t).item() == pytest.approx(0, abs=1e-5)


def test_negative_controls_keep_or_redraw_the_layer():
    torch.manual_seed(0)
    model = build_model("vgg16_bn", 3, width=0.125)
    w = model.interpretable_layer.weight.detach()
    shuffled = _altered(model, "shuffled", 0).interpretable_layer.weight.detach()
    assert torch.equal(shuffled.flatten().sort().values, w.flatten().sort().values)  # the same weights
    assert not torch.equal(shuffled, w)                                             # elsewhere
    init = _altered(model, "init", 0).interpretable_layer.weight.detach()
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert init.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)  # Kaiming normal, fan out
    assert torch.equal(model.interpretable_layer.weight.detach(), w)  # the model itself untouched
    with pytest.raises(ValueError, match="unknown control"):
        _altered(model, "zeroed", 0)


def test_a_method_is_placed_between_the_controls_per_metric():
    frame = pd.DataFrame([
        {"kind": "control", "method": "positive", "interp": 0.9, "stability": 0.1, "purity": 0.2, "diversity": 0.5},
        {"kind": "control", "method": "shuffled", "interp": 0.1, "stability": 0.5, "purity": 0.6, "diversity": 0.5},
        {"kind": "control", "method": "init", "interp": 0.2, "stability": 0.4, "purity": 0.7, "diversity": 0.6},
        {"kind": "method", "method": "ours", "interp": 0.55, "stability": 0.25, "purity": 0.4, "diversity": 0.55},
    ])
    pos, separated = control_positions(frame)
    ours = pos.set_index("method").loc["ours"]
    assert ours["interp"] == pytest.approx((0.55 - 0.2) / (0.9 - 0.2))      # the better negative: init's 0.2
    assert ours["stability"] == pytest.approx((0.25 - 0.4) / (0.1 - 0.4))   # lower is better: init's 0.4
    assert ours["purity"] == pytest.approx((0.4 - 0.6) / (0.2 - 0.6))       # shuffled's 0.6
    assert math.isnan(ours["diversity"]) and not separated  # init's 0.6 beats the positive's 0.5
    assert pos.set_index("method").loc["positive", "interp"] == pytest.approx(1.0)


def test_the_metrics_see_a_trained_positive_control(tiny_world, tmp_path):
    """Trained on the tiny PartWorld, the control's filters fire on their parts: its mask loss
    falls and its Interp beats the same network's with the layer shuffled."""
    cfg = TrainConfig(method="parts_control", arch="vgg16_bn", width=0.125, epochs=12, batch_size=16, lr=0.05)
    h = fit(cfg, tiny_world, tmp_path, progress=False)
    mask = [r["mask"] for r in h["epochs"]]  # 1 - correlation: about 1 for an untrained layer
    assert mask[0] > 0.9 and mask[-1] < 0.7
    model, _, _ = load_run(tmp_path)
    test = PartDataset(tiny_world, "test")
    trained = evaluate(model, test, test)
    shuffled = evaluate(_altered(model, "shuffled", 0), test, test)
    assert trained["interp"] > shuffled["interp"]


def test_the_oracle_is_the_instruments_ceiling_at_a_map_size():
    """Ideal filters (a part's own coverage as the map) still lose to bilinear upsampling: a part
    that fills one cell of a 2×2 map on a 4×4 image comes back as a 3×3 region (the profile
    [1, .75, .25, 0] along each axis is positive on 3 pixels), IoU 4/9; at full resolution, 1."""
    from synclib.controls import oracle_metrics

    masks = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    masks[0, 0, :2, :2] = True
    assert oracle_metrics(masks, (2, 2), phi=0.2)["interp"] == 1.0   # 4/9 > 0.2: a hit
    assert oracle_metrics(masks, (2, 2), phi=0.5)["interp"] == 0.0   # 4/9 < 0.5: none
    assert oracle_metrics(masks, (4, 4), phi=0.5)["interp"] == 1.0   # the map is the mask: IoU 1


def test_a_region_of_top_30_percent_cannot_hit_a_part_smaller_than_phi_times_top():
    """A map at the image's size (no upsampling), values 0..99 on a 10×10 image: the top 30 %
    are the last three rows (30 pixels). A part of 5 pixels inside them has IoU 5/30 < φ = 0.2:
    no hit, although the filter fires on it; a part of 8 pixels has 8/30 > 0.2: a hit. The bound
    φ · top = 6 % of the image is what `instrument_limits` compares the parts' sizes with."""
    a = torch.arange(100.0).view(1, 1, 10, 10)
    t = filter_thresholds(a, 0.3)
    assert int(regions(a, t, 10).sum()) == 30
    masks = torch.zeros(1, 2, 10, 10, dtype=torch.bool)
    masks[0, 0, 9, :5] = True   # 5 % of the image
    masks[0, 1, 9, :8] = True   # 8 % of the image
    hits = mask_hits(a.expand(1, 2, 10, 10).contiguous(), masks, t.expand(2).contiguous(), 0.2)
    assert hits[0, 0, 0].item() is False and hits[0, 1, 1].item() is True
    assert part_sizes(masks).tolist() == pytest.approx([0.05, 0.08])
