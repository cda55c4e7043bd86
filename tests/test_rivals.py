"""The comparison methods' cores on hand-made cases with known answers."""

import pytest
import torch

from synclib.methods.csgcnn import ClassGates, csg_epoch
from synclib.methods.iccnn import cluster_loss, filter_correlation, multiclass_loss, sample_correlation, spectral_groups
from synclib.methods.icnn import centroids, filter_loss, gradient_edits, templates

# --- CSGCNN -----------------------------------------------------------------------------


def test_gate_hinge_is_the_l1_excess_over_the_density_target():
    g = ClassGates(4, 2)  # 8 gates of 0.5: ‖G‖₁ = 4, the target 0.2 · 8 = 1.6
    assert g.hinge(0.2).item() == pytest.approx(2.4)
    assert g.density().item() == pytest.approx(0.5)
    with torch.no_grad():
        g.gate.zero_()
        g.gate[0, 1] = 1.0  # ‖G‖₁ = 1 < 1.6: no penalty
    assert g.hinge(0.2).item() == 0.0


def test_gates_are_rescaled_by_each_filters_largest_and_clamped():
    g = ClassGates(2, 2)
    with torch.no_grad():
        g.gate.copy_(torch.tensor([[0.2, 0.4], [1.5, -0.3]]))
    g.rescale()
    torch.testing.assert_close(g.gate.data, torch.tensor([[0.5, 1.0], [1.0, 0.0]]))


def test_gates_multiply_each_sample_by_its_class_column_in_training_only():
    g = ClassGates(3, 2)
    with torch.no_grad():
        g.gate.copy_(torch.tensor([[1.0, 0.0], [0.5, 1.0], [0.0, 0.25]]))
    a = torch.ones(2, 3, 2, 2)
    g.active, g.labels = True, torch.tensor([1, 0])
    out = g.train()(a)
    assert out[0, :, 0, 0].tolist() == [0.0, 1.0, 0.25] and out[1, :, 0, 0].tolist() == [1.0, 0.5, 0.0]
    assert torch.equal(g.eval()(a), a)  # at test time the network is the standard path


def test_csg_schedule_is_the_codes():
    # run.py: 150 epochs, warm-up 10, epoch mod 3 >= 2
    csg = [e for e in range(30) if csg_epoch(e, 150, 3, 2, 10 / 150)]
    assert csg == [11, 14, 17, 20, 23, 26, 29]
    assert [e for e in range(5) if csg_epoch(e, 5, 3, 2, 10 / 150)] == [2]


def test_csgcnn_optimizers_are_the_codes_two_adams_over_its_parameter_sets():
    """train.py / run.py: gated epochs step Adam(lr 1e-3) over layer4, fc and the gates;
    standard epochs Adam(lr 1e-5) over layer3, layer4 and fc (and the gates, which get no
    gradient there); lower layers frozen; no weight decay; each MultiStepLR at 0.4, 0.6, 0.8
    of the run (60, 90, 120 of 150 epochs) in its own steps."""
    from types import SimpleNamespace

    from synclib.methods import get_method
    from synclib.models import build_model

    method = get_method("csgcnn", "resnet18")
    model = method.prepare(build_model("resnet18", 4, 0.125), None)
    (std, std_sched), (csg, csg_sched) = method.optimizers(model, SimpleNamespace(epochs=150))
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    layer3, layer4, fc = (ids(m.parameters()) for m in (model.layer3, model.layer4, model.fc))
    gate = {id(model.pre_head.gate)}
    assert isinstance(std, torch.optim.Adam) and isinstance(csg, torch.optim.Adam)
    assert ids(std.param_groups[0]["params"]) == layer3 | layer4 | fc | gate
    assert ids(csg.param_groups[0]["params"]) == layer4 | fc | gate
    assert [g["lr"] for g in std.param_groups] == [1e-5] and [g["lr"] for g in csg.param_groups] == [1e-3]
    assert std.param_groups[0]["weight_decay"] == 0 and csg.param_groups[0]["betas"] == (0.9, 0.999)
    assert not any(p.requires_grad for p in model.layer2.parameters()) and not model.conv1.weight.requires_grad
    assert sorted(std_sched.milestones) == [60, 90, 120] and sorted(csg_sched.milestones) == [60, 90, 120]
    data = SimpleNamespace(epochs=150)
    assert [e for e in range(15) if method.optimizer_index(e, data) == 1] == [11, 14]  # the gated epochs


# --- icCNN ------------------------------------------------------------------------------


def test_filter_correlation_of_identical_orthogonal_and_opposite_channels():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 1, 9, generator=g)
    other = torch.randn(200, 1, 9, generator=g)
    maps = torch.cat([base, base, -base, other], 1)  # (I, 4, P)
    c = filter_correlation(maps)
    assert c[0, 1].item() == pytest.approx(2.0, abs=1e-4)  # identical: correlation 1, + 1
    assert c[0, 2].item() == pytest.approx(0.0, abs=1e-4)  # opposite: −1 + 1
    assert c[0, 3].item() == pytest.approx(1.0, abs=0.15)  # independent: about 0 + 1


def test_sample_correlation_and_the_cluster_loss_on_two_blocks():
    x = torch.tensor([1.0, -1.0, 2.0, 0.0]).view(1, 1, 2, 2)
    y = torch.tensor([0.0, 3.0, -1.0, 1.0]).view(1, 1, 2, 2)
    a = torch.cat([x, 2 * x, y, y], 1)  # filters 0, 1 alike; 2, 3 alike
    corr = sample_correlation(a, torch.zeros(4, 4))
    assert corr[0, 0, 1].item() == pytest.approx(2.0, abs=1e-5) and corr[0, 2, 3].item() == pytest.approx(2.0, abs=1e-5)
    groups = torch.tensor([0, 0, 1, 1])
    # perfect blocks (2 within, 0 between): each group's share is 1, the loss −2
    ideal = torch.tensor([[2.0, 2, 0, 0], [2, 2, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]).unsqueeze(0)
    assert cluster_loss(ideal, groups, 2).item() == pytest.approx(-2.0, abs=1e-5)
    # uniform correlation 1 everywhere: each group holds half of its filters' correlation mass
    assert cluster_loss(torch.ones(1, 4, 4), groups, 2).item() == pytest.approx(-1.0, abs=1e-5)


def test_spectral_clustering_finds_the_blocks():
    aff = torch.full((6, 6), 0.05)
    aff[:3, :3] = aff[3:, 3:] = 1.9
    ids = spectral_groups(aff, 2)
    assert len(set(ids[:3].tolist())) == 1 and len(set(ids[3:].tolist())) == 1 and ids[0] != ids[3]


def test_multiclass_loss_is_lowest_when_classes_share_their_group_profile():
    groups = torch.tensor([0, 1])
    labels = torch.tensor([0, 0, 1, 1])
    a = torch.zeros(4, 2, 1, 1)
    a[:2, 0] = 1.0  # class 0 fires group 0, class 1 group 1: each class alike, unlike the other
    a[2:, 1] = 1.0
    sorted_ = multiclass_loss(a, groups, 2, labels, 2).item()
    a_mixed = torch.zeros(4, 2, 1, 1)
    a_mixed[[0, 2], 0] = 1.0
    a_mixed[[1, 3], 1] = 1.0
    mixed = multiclass_loss(a_mixed, groups, 2, labels, 2).item()
    assert sorted_ == pytest.approx(-2.0, abs=1e-4)  # within-class cosine 1 over a class row mean of 1/2 each
    assert mixed > sorted_


def test_mean_map_centring_is_the_codes_reinterpretation():
    """Two channels on 2 × 2 maps with true means ch0 = [1, 2, 3, 4], ch1 = [10, 20, 30, 40]:
    the code stores the map position-major, (P, N) = [[1, 10], [2, 20], [3, 30], [4, 40]], and
    `.view(1, N, P)` reads its memory 1, 10, 2, 20 | 3, 30, 4, 40 as channel 0 | channel 1."""
    from synclib.methods import get_method
    from synclib.methods.iccnn import ICState, code_layout

    true = torch.tensor([[1.0, 2, 3, 4], [10, 20, 30, 40]])
    assert code_layout(true).tolist() == [[1, 10, 2, 20], [3, 30, 4, 40]]
    method = get_method("iccnn", "vgg16")
    assert method.params["mean_layout"] == "code" and method.params["every"] == 1
    model = torch.nn.Module()
    model.iccnn, model.fc = ICState(2), torch.nn.Linear(2, 2)
    a = true.view(1, 2, 2, 2)  # one image equal to the mean: the running mean map is `true`
    model.n_filters = 2
    model.iccnn.group.copy_(torch.tensor([0, 1]))
    out = type("Out", (), {"a": a})()
    loss_code = method.extra_losses(out, torch.tensor([0]), model)["cluster"]
    centred = (a.flatten(2) - torch.tensor([[1.0, 10, 2, 20], [3, 30, 4, 40]])).view(1, 2, 2, 2)
    expect = 0.1 * cluster_loss(sample_correlation(centred, torch.zeros(2, 4)), torch.tensor([0, 1]), 2)
    torch.testing.assert_close(loss_code, expect)


# --- ICNN -------------------------------------------------------------------------------


def test_template_peaks_at_the_centroid_and_falls_by_tau_per_grid_unit():
    a = torch.zeros(1, 1, 5, 5)
    a[0, 0, 1, 3] = 2.0
    mu, spread = centroids(a)
    assert mu.tolist() == [[[1, 3]]] and spread.item() == 0.0
    t = templates(mu, torch.tensor([2.0]), 5, 5)[0, 0]  # grid step 0.5 on [−1, 1]
    assert t.shape == (5, 5) and t[1, 3].item() == 1.0
    assert t[1, 4].item() == pytest.approx(0.0) and t[2, 4].item() == pytest.approx(-1.0)  # 1 − 2·0.5, 1 − 2·1
    assert t.min().item() == -1.0  # floored


def _edits_as_the_code_writes_them(a, mask, labels, filter_class, share, epoch, mag=0.1):
    """A literal transcription of the 'conv_mask' backward of our_vl_simplenn.m (loops over
    classes, filters and images), for the equality test."""
    b, n, h, w = a.shape
    alpha = 0.5
    strength = (a * mask).mean((2, 3)).t()  # (N, B): l.strength(depth, batch)
    rev = (a * mask.flip(0, 1)).mean((2, 3)).t()
    logz_pos = alpha * torch.log(torch.exp(rev / alpha).mean(1))
    logz_neg = alpha * torch.log(torch.exp((-a).mean((2, 3)).t() / alpha).mean(1))
    dzdx = torch.zeros_like(a)
    magm = torch.full((n, b), epoch / mag)
    for lab in range(len(share)):
        w_pos, w_neg = 0.5 / share[lab].item(), 0.5 / (1 - share[lab].item())
        dlist = [d for d in range(n) if filter_class[d] == lab]
        pos = [i for i in range(b) if labels[i] == lab]
        neg = [i for i in range(b) if labels[i] != lab]
        for d in dlist:
            if pos:
                s = torch.stack([torch.exp(strength[d, i] / alpha) * (strength[d, i] - logz_pos[d] + alpha) for i in pos])
                s = s / (s.mean() * magm[d, pos])
                for k, i in enumerate(pos):
                    dzdx[i, d] -= mask[i, d] * s[k] * (0.00001 * w_pos)
            if neg:
                s = torch.stack([(-a[i, d]).mean() for i in neg])
                s = torch.exp(s / alpha) * (s - logz_neg[d] + alpha)
                s = s / (s.mean() * magm[d, neg])
                for k, i in enumerate(neg):
                    dzdx[i, d] += s[k] * (0.00001 * w_neg)
    return dzdx


def test_filter_loss_gradient_equals_the_codes_hand_edits():
    g = torch.Generator().manual_seed(3)
    a = torch.relu(torch.randn(6, 4, 5, 5, generator=g)).double()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    filter_class = torch.tensor([0, 2, 1, 0])
    share = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    mu, _ = centroids(a)
    mask = templates(mu, torch.tensor([2.0, 1.5, 3.0, 2.5]), 5, 5).double()
    edits = gradient_edits(a, mask, labels, filter_class, share, epoch=3)
    torch.testing.assert_close(edits, _edits_as_the_code_writes_them(a, mask, labels, filter_class, share, 3))
    x = a.clone().requires_grad_(True)
    filter_loss(x, edits).backward()
    torch.testing.assert_close(x.grad, edits / a.shape[0], rtol=1e-12, atol=0)  # equal to double rounding


def test_a_map_shaped_like_its_template_is_pushed_towards_it():
    """One filter, one image of its class: the loss's gradient is −c · mask (c > 0), so a
    descent step raises the map where the template is positive and lowers it where negative."""
    mu = torch.tensor([[[2, 2]]])
    mask = templates(mu, torch.tensor([2.0]), 5, 5)
    a = mask.clamp_min(0)  # a map that equals its template's positive part
    edits = gradient_edits(a, mask, torch.tensor([0]), torch.tensor([0]), torch.tensor([0.5, 0.5]), epoch=1)
    ratio = edits / -mask
    c = ratio[mask != 0]
    assert (c > 0).all() and torch.allclose(c, c[0].expand_as(c))  # exactly proportional to −mask
    assert c[0].item() == pytest.approx(1e-5 * (0.5 / 0.5) * 0.1)  # s normalized to 1, divided by 10 · epoch


def test_tau_of_a_filter_whose_class_is_absent_is_pulled_towards_3():
    """Filter 0 (class 0) sees one image of its class: two equal cells 2 apart on a row,
    so σ̄ = 2 cells and τ moves 0.1 of the way to β/σ̄ = 1.5 (0.5 → 0.6). Filter 1's class
    is absent: the code's σ̄ is 0/0 = NaN, MATLAB's min(NaN, 3) = 3, so τ moves towards 3
    (2 → 2.1) instead of staying."""
    from synclib.methods.icnn import ICNNState

    state = ICNNState(2, 2, 2.0)
    state.tau.copy_(torch.tensor([0.5, 2.0]))
    state.slice_mag.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # filter f serves class f
    a = torch.zeros(1, 2, 5, 5)
    a[0, :, 2, 0] = a[0, :, 2, 4] = 1.0
    state(a)  # the masks
    state.update_tau(a, torch.tensor([0]), beta=3.0, rate=0.1)
    torch.testing.assert_close(state.tau, torch.tensor([0.6, 2.1]))


def test_a_zero_class_magnitude_is_filled_from_class_0_and_every_infinity_repaired():
    """our_cnn_train.m: `meantmp(meantmp==0) = sliceMag(meantmp==0)` reads column 1 of the
    (N, C) matrix; our_vl_simplenn.m sets +inf and −inf alike to the largest finite value."""
    from synclib.methods.icnn import ICNNState, _finite

    state = ICNNState(2, 2, 2.0)
    state.slice_mag.copy_(torch.tensor([[5.0, 1.0], [7.0, 1.0]]))
    a = torch.zeros(1, 2, 2, 2)
    a[0, 1] = 2.0  # filter 0's peak is 0 in this class-1 image, filter 1's is 2
    state.update_slice_mag(a, torch.tensor([1]))
    torch.testing.assert_close(state.slice_mag[:, 1], torch.tensor([0.9 + 0.1 * 5.0, 0.9 + 0.1 * 2.0]))
    assert _finite(torch.tensor([1.0, float("inf"), -float("inf"), float("nan")])).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_icnn_edit_scale_with_softmax_is_the_codes():
    """learn_icnn_multiclass.m: mag × 0.2 (mag / 50 above 10 classes); our_vl_simplenn.m
    multiplies the softmax gradient by the number of classes: relative to the classification
    gradient the edits are 1/30 of mag's at 6 classes (VOC Part), 1/1500 at 30 (ILSVRC Part)."""
    from synclib.methods import get_method

    m = get_method("icnn", "vgg16")
    assert m.edit_mag(6) == pytest.approx(0.1 / 30) and m.edit_mag(30) == pytest.approx(0.1 / 1500)
    assert get_method("icnn", "vgg16", edit_scale="unscaled").edit_mag(6) == 0.1


# --- Concept Whitening ------------------------------------------------------------------


def test_whitened_batch_has_identity_covariance_with_the_codes_ten_iterations():
    from synclib.methods.cw import ConceptWhitening

    g = torch.Generator().manual_seed(0)
    mix = torch.linalg.qr(torch.randn(8, 8, generator=g))[0] @ torch.diag(torch.linspace(0.5, 2.0, 8))
    x = (mix @ torch.randn(8, 64 * 25, generator=g)).view(8, 64, 5, 5).transpose(0, 1)  # (B, C, H, W), correlated
    cw = ConceptWhitening(8).train()  # T = 10, their default
    y = cw.whiten(x.double())
    f = y.transpose(0, 1).reshape(8, -1)
    cov = f @ f.t() / f.shape[1]
    assert (cov - torch.eye(8, dtype=cov.dtype)).abs().max() < 1e-3  # (in float32, 3e-3 at this conditioning)
    assert f.mean(1).abs().max() < 1e-6  # centred


def test_rotation_stays_orthogonal_and_lowers_the_objective():
    from synclib.methods.cw import ConceptWhitening, cayley_step

    g = torch.Generator().manual_seed(1)
    grad = torch.randn(6, 6, generator=g)
    r = torch.linalg.qr(torch.randn(6, 6, generator=g))[0]
    r2 = cayley_step(grad, r)
    assert (r2 @ r2.t() - torch.eye(6)).abs().max() < 1e-5
    assert (grad * r2).sum() < (grad * r).sum()  # F(R) = Σ G ∘ R decreases
    cw = ConceptWhitening(6)
    cw.sum_g.copy_(grad)
    cw.counter.fill_(1.0)
    cw.update_rotation()
    rot = cw.running_rot
    assert (rot @ rot.t() - torch.eye(6)).abs().max() < 1e-5 and cw.counter.max().item() == pytest.approx(1e-3)


def test_concept_rows_collect_the_features_at_the_rotated_maxima():
    """Concept 1 in flight: row 1 of G becomes −momentum × the whitened features at the
    positions where each rotated channel peaks in its 3 × 3 window (R = I: the same channel)."""
    from synclib.methods.cw import ConceptWhitening

    cw = ConceptWhitening(2).eval()  # eval: running mean 0 and whitening matrix I, so xn = x
    x = torch.ones(1, 2, 3, 3)
    x[0, 0, 1, 1] = 4.0  # channel 0 peaks at the centre
    x[0, 1] = -1.0
    x[0, 1, 0, 2] = 2.0  # channel 1 peaks at a corner
    cw.mode = 1
    cw(x)
    torch.testing.assert_close(cw.sum_g[1], torch.tensor([-0.05 * 4.0, -0.05 * 2.0]))
    assert cw.sum_g[0].abs().sum() == 0 and cw.counter[1].item() == pytest.approx(1.001)


def test_cw_whitens_conv5_3s_own_batch_norm_and_a_is_its_output():
    """Their VGG16-BN script whitens features[41] (--whitened_layers 13), conv5_3's own batch
    norm, and their plots hook the whitened output: `a` is the CW layer's output there, and on
    ResNet18 the output of the CW layer in layer4's last block (bn1)."""
    from synclib.methods import get_method
    from synclib.methods.cw import ConceptWhitening
    from synclib.models import build_model

    for arch in ("vgg16_bn", "vgg16", "resnet18"):
        m = get_method("cw", arch).prepare(build_model(arch, 3, 0.125), None)
        kinds = [type(x).__name__ for x in m.modules()]
        assert kinds.count("ConceptWhitening") == 1, arch
        out = m.eval()(torch.rand(2, 3, 64, 64))
        cw = next(x for x in m.modules() if isinstance(x, ConceptWhitening))
        assert out.a is cw.last_output and out.a.shape[1] == m.n_filters, arch
        assert (out.a < 0).any() and torch.isfinite(out.logits).all()  # before the ReLU, not overwritten by it
    m = get_method("cw", "resnet18").prepare(build_model("resnet18", 3, 0.125), None)
    assert isinstance(m.layer4[-1].bn1, ConceptWhitening)
    m = get_method("cw", "vgg16_bn").prepare(build_model("vgg16_bn", 3, 1.0), None)
    assert isinstance(m.features[41], ConceptWhitening)  # their index, at the paper's width
    assert isinstance(m.features[40], torch.nn.Conv2d) and isinstance(m.features[42], torch.nn.ReLU)
    assert isinstance(m.features[38], torch.nn.BatchNorm2d)  # conv5_2 keeps its batch norm


def test_concept_rows_pair_with_the_rotated_axes():
    """R swaps the two axes: rotated axis 0 is whitened channel 1 and axis 1 is channel 0.
    Row `mode` of G takes, for each axis d, −(whitened channel d at axis d's pooling maximum),
    as their IterNormRotation does: axis 0 peaks at the corner (channel 1's 2), where channel
    0 is 1; axis 1 peaks at the centre (channel 0's 4), where channel 1 is −1."""
    from synclib.methods.cw import ConceptWhitening

    cw = ConceptWhitening(2).eval()  # running mean 0, whitening matrix I: xn = x
    cw.running_rot.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    x = torch.ones(1, 2, 3, 3)
    x[0, 0, 1, 1] = 4.0
    x[0, 1] = -1.0
    x[0, 1, 0, 2] = 2.0
    cw.mode = 0
    out = cw(x)
    torch.testing.assert_close(out[0, 0], x[0, 1])
    torch.testing.assert_close(out[0, 1], x[0, 0])
    torch.testing.assert_close(cw.sum_g[0], torch.tensor([-0.05 * 1.0, -0.05 * -1.0]))


def test_whitening_is_float32_under_bf16_autocast():
    """Under torch.autocast(bfloat16) the layer turns autocast off: the whitened batch's
    covariance is within 1e-3 of I. The same Newton iterations left inside autocast miss by
    far more (bf16 products), which is what the training loop's CUDA autocast did."""
    from synclib.methods.cw import ConceptWhitening, whitening_matrix

    g = torch.Generator().manual_seed(0)
    mix = torch.linalg.qr(torch.randn(8, 8, generator=g))[0] @ torch.diag(torch.linspace(0.8, 1.2, 8))
    x = (mix @ torch.randn(8, 64 * 25, generator=g)).view(8, 64, 5, 5).transpose(0, 1).contiguous()
    cw = ConceptWhitening(8).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = cw(x)
        xc = x.transpose(0, 1).reshape(8, -1)
        xc = xc - xc.mean(1, keepdim=True)
        wm_bf16 = whitening_matrix(xc, 10, 1e-5)
    f = y.float().transpose(0, 1).reshape(8, -1)
    cov = f @ f.t() / f.shape[1]
    assert y.dtype == torch.float32 and (cov - torch.eye(8)).abs().max() < 1e-3
    fb = wm_bf16.float() @ xc
    assert ((fb @ fb.t() / fb.shape[1]) - torch.eye(8)).abs().max() > 5e-3


def test_cw_refuses_more_parts_than_channels_naming_the_data_set():
    from types import SimpleNamespace

    from synclib.methods import get_method
    from synclib.models import build_model

    data = SimpleNamespace(dataset=SimpleNamespace(parts=[f"p{i}" for i in range(80)], root="/data/many-parts"))
    with pytest.raises(ValueError, match=r"/data/many-parts has 80 parts, more than the 64 channels.*--width"):
        get_method("cw", "vgg16_bn").prepare(build_model("vgg16_bn", 3, 0.125), data)


def test_cw_newton_iteration_is_unstable_in_float32_on_a_badly_conditioned_batch():
    """Their uncoupled Newton iteration (P ← 1.5P − 0.5P³Σ_N, T = 10) on channel scales from
    0.1 to 1: in float32 (their precision) the whitened covariance ends hundreds
    off I; with precision="float64" (our default) within 1e-3. The conv5_3 placement's divergence on the
    CPU (no autocast there) is this, not bf16."""
    from synclib.methods import get_method
    from synclib.methods.cw import ConceptWhitening

    g = torch.Generator().manual_seed(0)
    mix = torch.linalg.qr(torch.randn(8, 8, generator=g))[0] @ torch.diag(torch.logspace(-1, 0, 8))
    x = (mix @ torch.randn(8, 64 * 25, generator=g)).view(8, 64, 5, 5).transpose(0, 1).contiguous()
    err = {}
    for precision in ("float32", "float64"):
        y = ConceptWhitening(8, precision=precision).train()(x)
        assert y.dtype == torch.float32
        f = y.double().transpose(0, 1).reshape(8, -1)
        err[precision] = ((f @ f.t() / f.shape[1]) - torch.eye(8, dtype=torch.float64)).abs().max().item()
    assert err["float64"] < 1e-3 and err["float32"] > 10
    assert get_method("cw", "vgg16").params["precision"] == "float64"
    with pytest.raises(ValueError, match="precision"):
        ConceptWhitening(8, precision="bfloat16")
