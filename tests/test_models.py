"""Backbones: shapes of the interpretable layer, ImageNet checkpoints from local files."""

import pytest
import torch
import torchvision

from synclib.models import build_model, load_pretrained


@pytest.mark.parametrize("arch,size,hw", [("vgg16", 224, 14), ("vgg16", 112, 7),
                                          ("vgg16_bn", 64, 4), ("resnet18", 224, 7),
                                          ("resnet18", 96, 3)])
def test_interpretable_layer_shape(arch, size, hw):
    m = build_model(arch, num_classes=6, width=0.125)
    out = m(torch.rand(2, 3, size, size))
    assert out.logits.shape == (2, 6)
    assert out.a.shape == (2, m.n_filters, hw, hw)
    assert (out.a >= 0).all()  # after a ReLU


def test_width_multiplier():
    assert build_model("vgg16", 3, width=0.25).n_filters == 128
    assert build_model("resnet18", 3, width=1.0).n_filters == 512


def test_resnet18_loads_a_torchvision_checkpoint(tmp_path):
    ref = torchvision.models.resnet18()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    m = build_model("resnet18", num_classes=6, pretrained=str(tmp_path / "r18.pth"))
    torch.testing.assert_close(m.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert m.interpretable_layer is m.layer4[1].conv2


def test_vgg16_loads_torchvision_feature_weights(tmp_path):
    ref = torchvision.models.vgg16().features
    torch.save({f"features.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "v.pth")
    m = build_model("vgg16", num_classes=6, pretrained=str(tmp_path / "v.pth"))
    torch.testing.assert_close(m.features[28].weight, ref[28].weight)


def test_missing_or_mismatched_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth not found"):
        build_model("resnet18", 6, pretrained=str(tmp_path / "nope.pth"))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ValueError, match="r18.pth does not fit ResNet18.*width 1.0"):
        load_pretrained(build_model("resnet18", 6, width=0.5), tmp_path / "r18.pth")
