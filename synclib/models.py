"""Backbones with a named interpretable layer: VGG16 and ResNet18 (torchvision's definitions).

`forward(x)` returns a `ModelOutput` with the logits and `a`, the activations of the
interpretable layer (B, N, H, W): for VGG16 the ReLU after the last conv (14×14 at 224²),
for ResNet18 the output of layer4 (7×7 at 224²). The classifier is one fully connected
layer on the global average of `a`, as in the paper. No hooks, nothing global.

`width` scales every conv's channels (1.0 = the paper's network) so that CPU profiles stay
small; any input size works. ImageNet weights come from a local torchvision checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, conv1x1
from torchvision.models.vgg import cfgs as vgg_cfgs
from torchvision.models.vgg import make_layers

from .files import load_torch

__all__ = ["ModelOutput", "VGG16", "ResNet18", "build_model", "ARCHS", "arch_family", "load_pretrained"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, C)
    a: torch.Tensor  # (B, N, H, W) activations of the interpretable layer
    extras: dict = field(default_factory=dict)  # what a method's forward adds for its loss (gates, routes)


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class _Backbone(nn.Module):
    """Shared parts: input normalization, the pooled linear head, the interpretable layer.

    Where a method may change the network: `interpretable_layer_name` names the conv whose
    ReLU'd output is `a` (a method may replace it, or the batch norm before it, with
    `set_submodule`); `adapter` (identity by default) runs on the trunk's output and its
    result is `a`, so a method that adds a layer after the interpretable one makes that layer
    the interpretable one; `pre_head` (identity by default) runs on `a` before the pooled
    classifier only, so a method that gates or masks what the classifier sees (CSGCNN's class
    gates, ICNN's templates) leaves `a`, the maps every metric reads, as the filters made them.
    `a_from` (None by default) names a submodule whose `last_output` is `a` instead of the
    trunk's output, while the classifier still reads the trunk's: CW's metrics read its
    whitened, rotated axes, as its authors' plots hook them, not the layers after it.
    """

    n_filters: int

    def _init_head(self, num_classes: int) -> None:
        self.a_from: str | None = None
        self.adapter: nn.Module = nn.Identity()
        self.pre_head: nn.Module = nn.Identity()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.fc = nn.Linear(self.n_filters, num_classes)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, a: torch.Tensor) -> torch.Tensor:
        """Logits (B, C) from the interpretable layer's activations a: (B, N, H, W)."""
        return self.fc(self.pre_head(a).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        """x: (B, 3, S, S) images in [0, 1]."""
        z = self.adapter(self.trunk((x - self.mean) / self.std))  # (B, N, H, W)
        a = z if self.a_from is None else self.get_submodule(self.a_from).last_output
        return ModelOutput(self.head(z), a)

    @property
    def interpretable_layer_name(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def interpretable_layer(self) -> nn.Module:
        return self.get_submodule(self.interpretable_layer_name)


class VGG16(_Backbone):
    """torchvision's VGG16 (configuration "D", no batch norm) up to the ReLU after conv5_3."""

    def __init__(self, num_classes: int, width: float = 1.0, batch_norm: bool = False):
        super().__init__()
        self.width = width
        cfg = [v if v == "M" else _ch(v, width) for v in vgg_cfgs["D"]]
        features = make_layers(cfg, batch_norm=batch_norm)
        self.features = nn.Sequential(*list(features)[:-1])  # drop the last max-pool
        self.n_filters = cfg[-2]
        self._init_head(num_classes)
        for m in self.modules():  # torchvision's VGG initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @property
    def interpretable_layer_name(self) -> str:
        last = [i for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)][-1]
        return f"features.{last}"


class ResNet18(_Backbone):
    """torchvision's ResNet18 (BasicBlock, [2, 2, 2, 2]) with a width multiplier.

    Attribute names follow torchvision's, so its checkpoints load into width 1.0.
    """

    def __init__(self, num_classes: int, width: float = 1.0):
        super().__init__()
        self.width = width
        planes = [_ch(c, width) for c in (64, 128, 256, 512)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(planes[0], 2, 1)
        self.layer2 = self._make_layer(planes[1], 2, 2)
        self.layer3 = self._make_layer(planes[2], 2, 2)
        self.layer4 = self._make_layer(planes[3], 2, 2)
        self.n_filters = planes[3]
        self._init_head(num_classes)
        for m in self.modules():  # torchvision's ResNet initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    @property
    def interpretable_layer_name(self) -> str:
        return f"layer4.{len(self.layer4) - 1}.conv2"


class VGG16BN(VGG16):
    """torchvision's VGG16 with batch norm (vgg16_bn): trains from scratch, for CPU profiles."""

    def __init__(self, num_classes: int, width: float = 1.0):
        super().__init__(num_classes, width, batch_norm=True)


ARCHS = {"vgg16": VGG16, "vgg16_bn": VGG16BN, "resnet18": ResNet18}


def arch_family(arch: str) -> str:
    """The paper's architecture an arch belongs to ("vgg16_bn" -> "vgg16"): its λ defaults."""
    return arch.split("_")[0]


def build_model(arch: str, num_classes: int, width: float = 1.0, pretrained: str | None = None,
                **kwargs) -> _Backbone:
    """A backbone by name; `pretrained` is a local torchvision ImageNet checkpoint (or None)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    model = ARCHS[arch](num_classes=num_classes, width=width, **kwargs)
    if pretrained:
        load_pretrained(model, pretrained)
    return model


def load_pretrained(model: _Backbone, path: str | Path) -> None:
    """Load a torchvision ImageNet checkpoint (e.g. vgg16-397923af.pth) into the trunk.

    The classifier is new (its classes differ); every trunk tensor must be in the file with
    the same shape, else a ValueError names the file and what is wrong. Nothing is downloaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} not found: download torchvision's ImageNet checkpoint "
            f"for {type(model).__name__} (e.g. vgg16-397923af.pth, resnet18-f37072fd.pth) on a "
            "machine with internet and give its local path"
        )

    state = load_torch(path, "download torchvision's ImageNet checkpoint again and give its local path",
                       what="a torchvision checkpoint")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in own if k not in state]
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or wrong:
        raise ValueError(
            f"{path} does not fit {type(model).__name__}(width={model.width}): "
            f"{len(missing)} missing tensors {missing[:3]}, {len(wrong)} of another shape "
            f"{wrong[:3]}. ImageNet weights need width 1.0 and torchvision's checkpoint format."
        )
    model.load_state_dict({k: state[k] for k in own}, strict=False)
