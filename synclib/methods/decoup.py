"""Decoup: interpretable neural network decoupling by architecture-controlling modules
(Li et al., "Interpretable neural network decoupling", ECCV 2020).

Read from the authors' PyTorch code (github.com/lliai/CVPR2020_1413, and its 2019 version
github.com/anonymoustowho/Dynamic-Neural-Network-Decoupling: `utils/utils.py` (AD_Block,
semhash), `utils/base.py` (train_architecture_decouple), `train.py`, `model/vgg16_ad.py`,
`model/resnet_imagenet_ad.py`):

- **Architecture-controlling module** (their AD_Block), one per gated conv layer: the global
  average of the layer's *input* → FC(C_in → C_in/4) → ReLU → FC(→ C_out) = y, the
  architecture encoding; fc1's weights 0 and bias 1, fc2 Kaiming-normal (fan-in) and bias 1.
  The layer's output is multiplied by the gate vector.
- **Gate** in training: g = y + ε, ε ~ N(0, 1); soft v1 = clamp(1.2 σ(g) − 0.1, 0, 1),
  hard v2 = 1[g > 0]; C/2 channel indices drawn with replacement take the hard value, and
  the gradient is the soft one's everywhere (their semhash: straight-through). At test time
  the gate is 1[y > 0], with no noise.
- **Losses**, each summed over the gated layers: a bias-free linear classifier on the gate
  (fc_class, Kaiming-normal) with cross-entropy against the label, ×λ_m (their stand-in for
  mutual information); a KL divergence between the softmax of the gate and the softmax of
  the layer's pooled, ungated output, ×λ_k, as F.kl_div's default reduction (the mean over
  batch × channels) computes it, in the direction each of their scripts has it: VGG16
  KL(softmax gate ‖ softmax output) (`kl_div(log_softmax(out), softmax(mask))`), ResNet18
  KL(softmax output ‖ softmax gate) (`kl_div(log_softmax(mask), softmax(out))`); and the
  sparsity |mean over images of ‖gate‖₁ − target · C|, ×λ_s.
- **Where** (`layers="all"`, their code): VGG16 every conv but the first, the gate on the
  output after its ReLU (on VGG16-BN: after conv → batch norm → ReLU, the same point of the
  stage); ResNet18 each BasicBlock after conv1's ReLU, after conv2's batch norm (before the
  residual add) and on the downsample branch's output; the stem is not gated: 12 gated layers
  on VGG16, 19 on ResNet18.

The paper compared against (its Section IV-A) says "the hard routing layer of Decoup is only
applied to the target layer" and "we set [the sparse constraint's] balance coefficient to 0",
so the defaults are `layers="target"` (one module: VGG16's last conv, after its ReLU;
ResNet18's last block's conv2, after its batch norm, before the add) and λ_s = 0; λ_k, λ_m
and the target are the code's ImageNet settings (VGG16: 1, 0.01, 0.5; ResNet18: 1, 0.005,
0.6); `layers="all", lambda_s=0.01` is the authors' own ImageNet run.

Differences from their code, each said on the book's Ambiguities page: the random half is
drawn along the channel axis, as the 2019 code has it (`v1[:, index]`), not the batch axis of
the 2020 code (`v1[index]`, which fails whenever the layer has more channels than the batch
has images, and gates whole images otherwise); the noise and the drawn channels come from
generators seeded by (run seed, epoch, batch, rank), not the global generator; the run's
optimizer settings (the paper trains every method with one setting) instead of their
weight decay 1e-4. The metrics read the interpretable layer's output as the routed network
computes it at test time (gated by 1[y > 0]).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models import ModelOutput, arch_family
from .base import Method, register


class ADBlock(nn.Module):
    """One architecture-controlling module: the gate of a layer's C_out channels from the
    global average of its input's C_in channels, and the classifier of that gate.

    `ad(inp, out)` returns out · gate (B, C_out, 1, 1). In training mode it needs `noise`
    (B, C_out) and `hard` (C/2 channel indices) set before the call (the method's forward draws
    them); it keeps `last` = (gate (B, C_out), pooled ungated output (B, C_out)) for the loss.
    """

    def __init__(self, c_in: int, c_out: int, n_classes: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(c_in, max(1, c_in // reduction))
        self.fc2 = nn.Linear(max(1, c_in // reduction), c_out)
        self.fc_class = nn.Linear(c_out, n_classes, bias=False)
        nn.init.zeros_(self.fc1.weight)
        nn.init.ones_(self.fc1.bias)
        nn.init.kaiming_normal_(self.fc2.weight)
        nn.init.ones_(self.fc2.bias)
        nn.init.kaiming_normal_(self.fc_class.weight)
        self.noise: torch.Tensor | None = None
        self.hard: torch.Tensor | None = None
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None

    def encoding(self, inp: torch.Tensor) -> torch.Tensor:
        """y (B, C_out): fc2(relu(fc1(the spatial mean of inp))), in float32."""
        pooled = inp.float().mean((2, 3))
        return self.fc2(F.relu(self.fc1(pooled))).float()

    def forward(self, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        y = self.encoding(inp)
        if self.training:
            if self.noise is None or self.hard is None:
                raise RuntimeError("a Decoup gate in training mode needs the noise its method draws: "
                                   "train through Decoup.forward")
            gate = train_gate(y, self.noise.to(y.device), self.hard.to(y.device))
            self.noise = self.hard = None
        else:
            gate = eval_gate(y)
        self.last = (gate, out.float().mean((2, 3)))
        return out * gate.to(out.dtype)[:, :, None, None]


class _StraightThrough(torch.autograd.Function):
    """Forward: the soft gate with the channels `hard` replaced by the hard gate's values;
    backward: the gradient passes to the soft gate unchanged (their semhash)."""

    @staticmethod
    def forward(ctx, soft: torch.Tensor, hard_value: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        mixed = soft.clone()
        mixed[:, hard] = hard_value[:, hard]
        return mixed

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None


def train_gate(y: torch.Tensor, noise: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
    """The training gate (B, C) of encodings y with noise ε: g = y + ε, soft clamp(1.2 σ(g) −
    0.1, 0, 1), hard 1[g > 0] on the channels `hard`, the soft gradient everywhere."""
    g = y + noise
    soft = torch.clamp(1.2 * torch.sigmoid(g) - 0.1, 0.0, 1.0)
    return _StraightThrough.apply(soft, (g > 0).to(soft.dtype), hard)


def eval_gate(y: torch.Tensor) -> torch.Tensor:
    """The test-time gate 1[y > 0]: hard, no noise."""
    return (y > 0).to(y.dtype)


def kl_term(gate: torch.Tensor, pooled: torch.Tensor, family: str) -> torch.Tensor:
    """F.kl_div's default ('mean' over every element) between the softmaxes of the gate and of
    the pooled output, in the direction of their script for the arch family: VGG16
    KL(softmax gate ‖ softmax output), ResNet18 KL(softmax output ‖ softmax gate)."""
    if family == "vgg16":
        kl = F.kl_div(F.log_softmax(pooled, 1), F.softmax(gate, 1), reduction="none")
    else:
        kl = F.kl_div(F.log_softmax(gate, 1), F.softmax(pooled, 1), reduction="none")
    return kl.mean()  # their 'mean' (PyTorch warns on it each call: the elementwise mean, said here)


def sparsity_term(gate: torch.Tensor, target: float) -> torch.Tensor:
    """|mean over images of ‖gate‖₁ − target · C|."""
    return torch.abs(gate.abs().sum(1).mean() - target * gate.shape[1])


class RoutedFeatures(nn.Sequential):
    """VGG's `features` with gates: the same children (so the same names and indices), each
    gated conv's ADBlock (in `gates`, keyed by the conv's index) fed the conv's input and
    applied to the output of the ReLU that closes the conv's stage (on VGG16-BN the stage is
    conv → batch norm → ReLU, so the gate sits where their BN-free VGG16 has it: after the ReLU).

    `gates` is registered on the model (`model.decoup`), not here: held here outside the
    module tree, it is one copy in the state dict.
    """

    def __init__(self, features: nn.Sequential, gates: nn.ModuleDict):
        super().__init__(*features)
        object.__setattr__(self, "_gates", gates)
        self._close = {int(k): next(j for j in range(int(k) + 1, len(self)) if isinstance(self[j], nn.ReLU))
                       for k in gates}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        closes: dict[int, tuple[ADBlock, torch.Tensor]] = {}
        for i, m in enumerate(self):
            if i in self._close:
                closes[self._close[i]] = (self._gates[str(i)], x)
            x = m(x)
            if i in closes:
                ad, inp = closes.pop(i)
                x = ad(inp, x)
        return x


class RoutedBlock(nn.Module):
    """A torchvision BasicBlock with their gates: `ad1` after conv1's ReLU, `ad2` after conv2's
    batch norm (before the add), `ad3` on the downsample branch; a gate left out is None. The
    block's own modules keep their names, so checkpoints and `layer4.1.conv2` still resolve."""

    def __init__(self, block: nn.Module, gates: tuple[bool, bool, bool], n_classes: int):
        super().__init__()
        self.conv1, self.bn1, self.relu = block.conv1, block.bn1, block.relu
        self.conv2, self.bn2, self.downsample = block.conv2, block.bn2, block.downsample
        c_in, c = block.conv1.in_channels, block.conv1.out_channels
        self.ad1 = ADBlock(c_in, c, n_classes) if gates[0] else None
        self.ad2 = ADBlock(c, c, n_classes) if gates[1] else None
        self.ad3 = ADBlock(c_in, c, n_classes) if gates[2] and block.downsample is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        if self.ad1 is not None:
            out = self.ad1(x, out)
        mid = out
        out = self.bn2(self.conv2(mid))
        if self.ad2 is not None:
            out = self.ad2(mid, out)
        identity = x
        if self.downsample is not None:
            identity = self.downsample(x)
            if self.ad3 is not None:
                identity = self.ad3(x, identity)
        return self.relu(out + identity)


def route(model: nn.Module, layers: str) -> nn.Module:
    """Put the gates into `model` where their code has them (`layers="all"`) or at the
    interpretable layer only (`"target"`); return the model."""
    n_classes = model.fc.out_features
    if hasattr(model, "layer4"):
        for name in ("layer1", "layer2", "layer3", "layer4"):
            stage = getattr(model, name)
            for j in range(len(stage)):
                last = name == "layer4" and j == len(stage) - 1
                gates = (True, True, True) if layers == "all" else (False, last, False)
                stage[j] = RoutedBlock(stage[j], gates, n_classes)
        return model
    convs = {i: m for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)}
    gated = list(convs)[1:] if layers == "all" else list(convs)[-1:]
    model.decoup = nn.ModuleDict({str(i): ADBlock(convs[i].in_channels, convs[i].out_channels, n_classes)
                                  for i in gated})
    model.features = RoutedFeatures(model.features, model.decoup)
    return model


def ad_blocks(model: nn.Module) -> list[ADBlock]:
    """The model's architecture-controlling modules in forward order."""
    return [m for m in model.modules() if isinstance(m, ADBlock)]


@register
class Decoup(Method):
    """Architecture-controlling gates and their three losses (see the module's docstring)."""

    name = "decoup"
    defaults = {
        "vgg16": {"lambda_k": 1.0, "lambda_m": 0.01, "lambda_s": 0.0, "target": 0.5, "layers": "target"},
        "resnet18": {"lambda_k": 1.0, "lambda_m": 0.005, "lambda_s": 0.0, "target": 0.6, "layers": "target"},
    }

    def __init__(self, arch: str, **params):
        super().__init__(arch, **params)
        if self.params["layers"] not in ("target", "all"):
            raise ValueError(f"method 'decoup': layers is 'target' (the paper's comparison) or 'all' (their code), "
                             f"not {self.params['layers']!r}")

    def prepare(self, model: nn.Module, data) -> nn.Module:
        route(model, self.params["layers"])
        self._data, self._epoch, self._batch = data, 0, 0
        return model

    def on_epoch_start(self, model: nn.Module, epoch: int, data) -> None:
        self._epoch, self._batch = epoch, 0

    def _generator(self) -> torch.Generator:
        """Seeded by (run seed, epoch, batch of the epoch, rank): a resumed epoch draws what an
        uninterrupted one drew. Without a TrainData (a lone step), by the batch count."""
        if self._data is None:
            return torch.Generator().manual_seed(self._batch)
        return self._data.generator(self._epoch, self._batch, self._data.rank)

    def forward(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> ModelOutput:
        blocks = ad_blocks(model.module if hasattr(model, "module") else model)
        g = self._generator()
        self._batch += 1
        for ad in blocks:
            c = ad.fc2.out_features
            ad.noise = torch.randn(x.shape[0], c, generator=g).to(x.device)
            ad.hard = torch.randint(0, c, (c // 2,), generator=g).to(x.device)
        out = model(x)
        out.extras["decoup"] = []
        for ad in blocks:
            out.extras["decoup"].append((ad, *ad.last))
            ad.last = None
        return out

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
        p, family = self.params, arch_family(self.arch)
        zero = out.logits.new_zeros((), dtype=torch.float32)
        m_loss, kl, sparse = zero, zero, zero
        for ad, gate, pooled in out.extras.get("decoup", []):
            m_loss = m_loss + F.cross_entropy(ad.fc_class(gate), labels)
            kl = kl + kl_term(gate, pooled, family)
            sparse = sparse + sparsity_term(gate, p["target"])
        return {"mi": p["lambda_m"] * m_loss, "kl": p["lambda_k"] * kl, "sparse": p["lambda_s"] * sparse}
