"""Interpretability metrics and hits on hand-made inputs with known answers (Eq. 11–14)."""

import math

import pytest
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


def _dense_counts(a, masks, t):
    from synclib.metrics.hits import regions

    reg = regions(a, t, masks.shape[-1])
    inter = (reg.flatten(2).float() @ masks.flatten(2).float().transpose(1, 2)).long()
    return inter, reg.flatten(2).sum(-1), torch.nn.functional.interpolate(
        a, size=masks.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("native", [True, False], ids=["c-kernel", "torch"])
@pytest.mark.parametrize("h, size", [(4, 112), (7, 112), (7, 224), (14, 224), (3, 64), (5, 50)])
def test_analytic_overlaps_equal_the_upsampled_ones_away_from_rounding_ties(h, size, native):
    """region_overlaps counts what upsampling every map would count, except where an upsampled
    value lies within float rounding (2e-6 relative) of the threshold: such (image, filter)
    pairs are set aside, and they must be rare."""
    from synclib.metrics.hits import filter_thresholds, mask_hits, mask_hits_dense, region_overlaps

    g = torch.Generator().manual_seed(h * 1000 + size)
    a = torch.relu(torch.randn(6, 40, h, h, generator=g))
    a[:, :5] = 0.0  # dead filters: threshold 0, an empty region
    a[:, 5, :, 0] = 1.0  # a constant column: flat segments
    masks = torch.rand(6, 4, size, size, generator=g) > 0.6
    masks[:, 3] = False  # an absent part
    t = filter_thresholds(a, 0.3)
    inter, area = region_overlaps(a, masks, t, native=native)
    ref_inter, ref_area, up = _dense_counts(a, masks, t)
    tt = t.view(1, -1, 1, 1)
    near = (((up - tt).abs() <= 2e-6 * tt) & (tt > 0)).flatten(2).any(-1)  # a dead filter (T = 0) is never near
    far = ~near  # (B, N)
    assert far.float().mean() > 0.75
    assert torch.equal(inter[far], ref_inter[far]) and torch.equal(area[far], ref_area[far])
    assert torch.equal(mask_hits(a, masks, t, 0.2)[far], mask_hits_dense(a, masks, t, 0.2)[far])
    assert inter[:, :, 3].sum() == 0 and area[:, :5].sum() == 0


@pytest.mark.parametrize("native", [True, False], ids=["c-kernel", "torch"])
def test_analytic_overlaps_on_a_hand_made_map(native):
    """A 2x2 map with one hot cell upsampled to 8x8: the region is the top-left block where the
    bilinear value exceeds the threshold; counts checked against the upsampled map."""
    from synclib.metrics.hits import region_overlaps

    a = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0] = 1.0
    masks = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, :4, :2] = True  # the left half of the top-left quadrant
    inter, area = region_overlaps(a, masks, torch.tensor([0.5]), native=native)
    # upsampled values along each axis: 1, 1, 0.875, 0.625, 0.375, 0.125, 0, 0; their products
    # exceed 0.5 on rows 0-1 in 4 columns, row 2 in 4 (0.875 * 0.625 = 0.547) and row 3 in 3
    # (0.625 * 0.875 = 0.547, 0.625² = 0.39): 15 pixels, 8 of them in the mask
    up = torch.nn.functional.interpolate(a, size=(8, 8), mode="bilinear", align_corners=False)[0, 0]
    assert area.item() == int((up > 0.5).sum()) == 15
    assert inter.item() == int(((up > 0.5) & masks[0, 0]).sum()) == 8


def test_c_kernel_and_torch_path_count_alike_on_non_square_cells():
    """Maps of 3x5 on 64x64 masks (cells of unequal sizes in each direction, flat borders, a
    filter constant along rows): the C kernel's counts equal the PyTorch path's wherever no
    upsampled value lies within rounding of the threshold."""
    from synclib.metrics.hits import region_overlaps

    g = torch.Generator().manual_seed(7)
    a = torch.relu(torch.randn(3, 12, 3, 5, generator=g))
    a[:, 0] = torch.arange(5.0)  # rises along each row, the same on every row
    masks = torch.rand(3, 3, 64, 64, generator=g) > 0.5
    t = torch.quantile(a.transpose(0, 1).flatten(1), 0.7, dim=1)
    up = torch.nn.functional.interpolate(a, size=(64, 64), mode="bilinear", align_corners=False)
    far = ~(((up - t.view(1, -1, 1, 1)).abs() <= 2e-6 * t.view(1, -1, 1, 1).abs().clamp_min(1e-6)).flatten(2).any(-1))
    c_inter, c_area = region_overlaps(a, masks, t, native=True)
    t_inter, t_area = region_overlaps(a, masks, t, native=False)
    reg = up > t.view(1, -1, 1, 1)
    assert far.float().mean() > 0.75
    assert torch.equal(c_area[far], reg.flatten(2).sum(-1)[far]) and torch.equal(c_area[far], t_area[far])
    assert torch.equal(c_inter[far], t_inter[far])
    # filter 0: the columns above T (the 70th percentile of 0..4) are those where x·5/64 − 0.5 > T
    assert c_area[0, 0].item() == 64 * int(((torch.arange(64) + 0.5) * 5 / 64 - 0.5 > t[0]).sum())


def test_without_a_c_compiler_the_torch_path_counts_and_says_so(tmp_path, monkeypatch):
    """CC pointing nowhere: a warning names the kernel and the fix, and mask_hits still answers
    (by the PyTorch path) with the same hits."""
    from synclib.metrics import native
    from synclib.metrics.hits import mask_hits

    a = torch.zeros(1, 1, 2, 2)
    a[0, 0, 0, 0] = 1.0
    masks = torch.zeros(1, 2, 8, 8, dtype=torch.bool)
    masks[0, 0, :4, :4] = True
    monkeypatch.setenv("SYNCLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    native.library.cache_clear()
    try:
        with pytest.warns(UserWarning, match="_overlaps.c.*slower PyTorch path.*C compiler"):
            assert native.library() is None
        assert mask_hits(a, masks, torch.tensor([0.5])).tolist() == [[[True, False]]]
        assert not list(tmp_path.rglob("*.so*"))  # nothing half-written left behind
    finally:
        native.library.cache_clear()


def test_probe_any_network_at_any_node(tiny_world):
    """A torchvision ResNet18, not a synclib model: the probe takes its `layer3` / `layer4`
    maps by node name, with the input normalization the network needs, and gives the metrics."""
    import torchvision

    from synclib.data import PartDataset
    from synclib.metrics.interpretability import summarize
    from synclib.probe import LayerProbe, activations, mask_hits_for

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=6).eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    norm = lambda x: (x - mean) / std  # noqa: E731 - the network's own preprocessing, written out
    ds = PartDataset(tiny_world, "test")
    p4 = activations(net, ds, device="cpu", layer="layer4", preprocess=norm)
    p3 = activations(net, ds, device="cpu", layer="layer3", preprocess=norm)
    assert p4.a.shape == (len(ds), 512, 2, 2) and p3.a.shape == (len(ds), 256, 4, 4)  # 64² images
    assert p4.logits.shape == (len(ds), 6)
    seen = {}
    handle = net.layer4.register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    x = torch.stack([ds[i]["image"] for i in range(len(ds))])
    with torch.no_grad():
        logits = net(norm(x))
    handle.remove()
    torch.testing.assert_close(p4.a, seen["a"])  # exactly the node's output ...
    torch.testing.assert_close(p4.logits, logits)  # ... and the network's own logits
    met = summarize(mask_hits_for(p4, ds))
    assert all(0 <= met[k] <= 1 for k in ("interp", "stability", "diversity"))
    with pytest.raises(ValueError, match="has no node 'layer9'"):
        LayerProbe(net, "layer9")


def test_cli_evaluates_a_torchvision_network_from_its_state_dict(tiny_world, tmp_path, capsys):
    """`synclib evaluate --torchvision NAME --weights FILE --layer NODE` prints the same row as
    the library's evaluate on that node, with ImageNet normalization written out."""
    import json

    import torchvision

    from synclib.cli import main
    from synclib.data import PartDataset
    from synclib.evaluate import evaluate, imagenet_normalize
    from synclib.probe import LayerProbe

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=6).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    assert main(["evaluate", "--torchvision", "resnet18", "--weights", str(tmp_path / "r18.pt"), "--layer", "layer3",
                 "--data", str(tiny_world), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ds = PartDataset(tiny_world, "test")
    want = evaluate(LayerProbe(net, "layer3", imagenet_normalize), ds, ds)
    assert row == pytest.approx(want, abs=1e-9) and set(row) == {"accuracy", "interp", "stability", "purity", "diversity"}
    (tmp_path / "bad.pt").write_bytes(b"")
    assert main(["evaluate", "--torchvision", "resnet18", "--weights", str(tmp_path / "bad.pt"), "--layer", "layer4",
                 "--data", str(tiny_world)]) == 2
    assert "bad.pt: is empty" in capsys.readouterr().err


def test_every_command_shows_an_example_in_its_help(capsys):
    from synclib.cli import main

    for cmd in ("train", "evaluate", "reproduce"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert f"synclib {cmd} " in capsys.readouterr().out.split("example")[-1]


def test_metric_variants_on_hand_made_hits():
    """Purity over every image, and no-hit cases skipped everywhere, by hand."""
    from synclib.metrics import summarize_variants

    h = torch.zeros(4, 3, 2, dtype=torch.bool)  # 4 images, 3 filters, 2 parts
    h[0, 0] = torch.tensor([True, True])   # filter 0, image 0: both parts, entropy 1
    h[1, 0] = torch.tensor([True, False])  # filter 0, image 1: one part, entropy 0
    h[2, 1] = torch.tensor([False, True])  # filter 1, image 2: one part; filter 2 never hits
    row = summarize_variants(h)
    # the specification: Purity over the images a filter hits: filter 0 (1 + 0) / 2, filter 1 0
    assert row["purity"] == pytest.approx((0.5 + 0.0) / 2)
    # the paper's Eq. 13 over all 4 images: filter 0 (1 + 0 + 0 + 0) / 4, filter 1 0
    assert row["purity_all"] == pytest.approx((0.25 + 0.0) / 2)
    # Interp: filter 0 max(2/4, 1/4), filter 1 1/4, filter 2 0; skipping the dead filter 2
    assert row["interp"] == pytest.approx((0.5 + 0.25 + 0) / 3)
    assert row["interp_hit"] == pytest.approx((0.5 + 0.25) / 2)
    # Diversity: image 0 entropy 1, images 1 and 2 one part each (0), image 3 no hit (0 or skipped)
    assert row["diversity"] == pytest.approx(1 / 4)
    assert row["diversity_hit"] == pytest.approx(1 / 3)
