"""Decoup's gates, losses and gate positions against answers worked out by hand from the
authors' code (AD_Block, semhash, train_architecture_decouple), on 2 images × 4 channels."""

import pytest
import torch

from synclib.methods import get_method
from synclib.methods.decoup import ADBlock, ad_blocks, eval_gate, kl_term, sparsity_term, train_gate
from synclib.models import build_model

# g = y + noise = [[0, -1, 3, -3], [0.5, 2, -0.5, -3]]: σ(3) > 11/12 and σ(-3) < 1/12, so the
# soft gate 1.2 σ(g) − 0.1 is clamped to 1 and to 0 there
Y = torch.tensor([[0.5, 1.0, 2.0, -1.0], [-1.0, 1.0, 0.5, 0.0]])
NOISE = torch.tensor([[-0.5, -2.0, 1.0, -2.0], [1.5, 1.0, -1.0, -3.0]])
# 1.2 σ(g) − 0.1 by hand: σ(0) = 0.5 → 0.5; σ(-1) = 0.268941 → 0.222730; σ(0.5) = 0.622459 → 0.646951;
# σ(2) = 0.880797 → 0.956956; σ(-0.5) = 0.377541 → 0.353049
SOFT = torch.tensor([[0.5, 0.2227297, 1.0, 0.0], [0.6469512, 0.9569565, 0.3530488, 0.0]])
HARD = torch.tensor([[0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # 1[g > 0]
# d soft / dy = 1.2 σ(g)(1 − σ(g)) where unclamped, 0 where clamped
DSOFT = torch.tensor([[0.3, 0.2359343, 0.0, 0.0], [0.2820045, 0.1259923, 0.2820045, 0.0]])


def test_training_gate_takes_the_hard_value_on_the_drawn_channels_of_every_image():
    y = Y.clone().requires_grad_()
    gate = train_gate(y, NOISE, torch.tensor([1, 3]))
    expect = SOFT.clone()
    expect[:, [1, 3]] = HARD[:, [1, 3]]  # channel axis (their 2019 code), the same channels for both images
    torch.testing.assert_close(gate, expect, atol=1e-6, rtol=0)
    assert gate[0, 1] == 0.0 and gate[1, 1] == 1.0  # hard: soft would be 0.2227 and 0.9570


def test_gradient_is_the_soft_gates_on_hard_channels_too():
    y = Y.clone().requires_grad_()
    train_gate(y, NOISE, torch.tensor([1, 3])).sum().backward()
    torch.testing.assert_close(y.grad, DSOFT, atol=1e-6, rtol=0)
    assert y.grad[0, 1] > 0.2  # the hard value 0 there passes the soft gate's gradient (straight-through)


def test_drawn_channels_may_repeat_and_work_with_more_channels_than_images():
    """Their draw is C/2 indices with replacement; on the channel axis it also works when C
    exceeds the batch (the 2020 code's batch-axis v1[index] would index past the batch)."""
    gate = train_gate(Y, NOISE, torch.tensor([3, 3]))
    expect = SOFT.clone()
    expect[:, 3] = HARD[:, 3]
    torch.testing.assert_close(gate, expect, atol=1e-6, rtol=0)
    wide = train_gate(torch.zeros(2, 16), torch.zeros(2, 16), torch.tensor([0, 9, 15, 15, 2, 2, 7, 11]))
    assert wide.shape == (2, 16) and set(wide[0].tolist()) == {0.0, 0.5}  # hard 1[0 > 0] = 0 or soft 0.5


def test_test_gate_is_hard_and_noise_free():
    torch.testing.assert_close(eval_gate(Y), torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]))


def test_module_starts_as_their_init_and_gates_the_output():
    """fc1 weights 0, bias 1: fc1 gives 1s whatever the input, so y = fc2's row sums + 1."""
    torch.manual_seed(0)
    ad = ADBlock(8, 4, n_classes=3)
    assert ad.fc1.out_features == 2 and ad.fc_class.bias is None
    assert (ad.fc1.weight == 0).all() and (ad.fc1.bias == 1).all() and (ad.fc2.bias == 1).all()
    y = ad.encoding(torch.rand(2, 8, 5, 5))
    torch.testing.assert_close(y, (ad.fc2.weight.sum(1) + 1).expand(2, 4))
    ad.eval()
    out = torch.rand(2, 4, 3, 3)
    gated = ad(torch.rand(2, 8, 5, 5), out)
    open_ = (y > 0).float()
    torch.testing.assert_close(gated, out * open_[:, :, None, None])
    torch.testing.assert_close(ad.last[1], out.mean((2, 3)))  # the ungated output, pooled, for the KL term
    ad.train()
    with pytest.raises(RuntimeError, match="Decoup.forward"):
        ad(torch.rand(2, 8, 5, 5), out)


G = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.5, 1.0, 0.0, 0.0]])  # gates of 2 images
P = torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 3.0, 1.0]])  # pooled outputs


def test_kl_direction_per_arch_and_the_elementwise_mean():
    """VGG16's script: kl_div(log_softmax(out), softmax(mask)) = KL(softmax gate ‖ softmax out);
    ResNet18's: kl_div(log_softmax(mask), softmax(out)) = KL(softmax out ‖ softmax gate);
    both divided by B·C = 8 (kl_div's 'mean'). Summed over the two images by hand: 1.8720, 1.7692."""
    torch.testing.assert_close(kl_term(G, P, "vgg16"), torch.tensor(0.2340034), atol=1e-6, rtol=0)
    torch.testing.assert_close(kl_term(G, P, "resnet18"), torch.tensor(0.2211462), atol=1e-6, rtol=0)


def test_sparsity_is_the_distance_of_the_mean_l1_from_the_target_count():
    # ‖g‖₁ = 2 and 1.5, mean 1.75; target 0.5 · 4 channels = 2
    assert sparsity_term(G, 0.5).item() == pytest.approx(0.25)
    assert sparsity_term(G, 0.25).item() == pytest.approx(0.75)


def test_weighted_terms_sum_over_the_gated_layers():
    """Classifier rows e0, e1: logits (1, 0) and (0.5, 1); labels 0, 1: cross-entropies
    log(1 + e^-1) = 0.31326 and log(1 + e^-0.5) = 0.47408, mean 0.39367; two identical layers
    double every term before the λs weigh them."""
    method = get_method("decoup", "vgg16", lambda_m=0.1, lambda_k=2.0, lambda_s=0.5, target=0.5)
    ad = ADBlock(4, 4, n_classes=2)
    with torch.no_grad():
        ad.fc_class.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    out = build_model("vgg16", 2, 0.125)(torch.rand(2, 3, 32, 32))
    out.extras["decoup"] = [(ad, G, P), (ad, G, P)]
    terms = method.losses(out, torch.tensor([0, 1]), None)
    assert set(terms) == {"ce", "mi", "kl", "sparse"}
    assert terms["mi"].item() == pytest.approx(0.1 * 2 * 0.3936693, abs=1e-6)
    assert terms["kl"].item() == pytest.approx(2.0 * 2 * 0.2340034, abs=1e-6)
    assert terms["sparse"].item() == pytest.approx(0.5 * 2 * 0.25, abs=1e-6)


def test_paper_setting_is_the_default_and_their_imagenet_lambdas():
    assert get_method("decoup", "vgg16_bn").params == {
        "lambda_k": 1.0, "lambda_m": 0.01, "lambda_s": 0.0, "target": 0.5, "layers": "target"}
    assert get_method("decoup", "resnet18").params == {
        "lambda_k": 1.0, "lambda_m": 0.005, "lambda_s": 0.0, "target": 0.6, "layers": "target"}
    with pytest.raises(ValueError, match="layers"):
        get_method("decoup", "vgg16", layers="every")


@pytest.mark.parametrize("arch, layers, count", [("vgg16_bn", "all", 12), ("vgg16", "all", 12), ("resnet18", "all", 19),
                                                 ("vgg16_bn", "target", 1), ("resnet18", "target", 1)])
def test_gated_layer_count(arch, layers, count):
    """Their code: VGG16 every conv but the first (13 − 1); ResNet18 two per BasicBlock (8 × 2)
    and the three downsample branches (layer2-4); the paper's comparison: the target layer only."""
    model = get_method("decoup", arch, layers=layers).prepare(build_model(arch, 4, width=0.125), None)
    assert len(ad_blocks(model)) == count
    if arch == "resnet18":
        per_block = [[b.ad1 is not None, b.ad2 is not None, b.ad3 is not None]
                     for s in (model.layer1, model.layer2, model.layer3, model.layer4) for b in s]
        if layers == "all":
            assert per_block == [[True, True, False]] * 2 + [[True, True, True], [True, True, False]] * 3
        else:
            assert per_block == [[False, False, False]] * 7 + [[False, True, False]]  # layer4.1 after bn2
    elif layers == "all":
        assert "0" not in model.decoup and len(model.decoup) == 12  # the first conv is not gated


@pytest.mark.parametrize("arch", ["vgg16_bn", "vgg16"])
def test_vgg_gate_multiplies_the_interpretable_layers_relu_output(arch):
    """Routing only re-wires: the checkpoint names stay, and the maps the metrics read are the
    ungated network's times the test-time gate, 1[y > 0] per image and filter."""
    torch.manual_seed(0)
    plain = build_model(arch, 4, width=0.125).eval()
    routed = build_model(arch, 4, width=0.125)
    routed.load_state_dict(plain.state_dict())
    get_method("decoup", arch).prepare(routed, None)
    routed.eval()
    assert set(plain.state_dict()) <= set(routed.state_dict())
    assert routed.interpretable_layer_name == plain.interpretable_layer_name
    (ad,) = ad_blocks(routed)
    with torch.no_grad():
        ad.fc2.bias.copy_(torch.where(torch.arange(ad.fc2.out_features) % 2 == 0, 1e6, -1e6))  # even open, odd shut
    x = torch.rand(2, 3, 32, 32)
    a_plain, a = plain(x).a, routed(x).a
    torch.testing.assert_close(a[:, 0::2], a_plain[:, 0::2])
    assert (a[:, 1::2] == 0).all() and (a_plain[:, 1::2] > 0).any()
