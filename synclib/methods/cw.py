"""Concept Whitening (Chen, Bei & Rudin, "Concept whitening for interpretable image
recognition", Nature Machine Intelligence 2020).

Read from the authors' code (github.com/zhiCHEN96/ConceptWhitening:
`MODELS/iterative_normalization.py`, class IterNormRotation, and `train_places.py`):

- **Whitening** (their IterNorm): the batch's channels are centred, Σ = εI + X Xᵀ / m,
  normalized by its trace, and Σ_N^{-1/2} approximated by T = 10 Newton iterations
  P ← 1.5 P − 0.5 P³ Σ_N from P = I; the whitening matrix is P · √(1 / tr Σ). Running mean and
  whitening matrix (momentum 0.05) serve in eval mode. No affine (their default).
- **Rotation**: the whitened channels times an orthogonal R, so that axis k of the output is
  concept k. Before every 30th batch of an epoch (batch i with (i + 1) mod 30 = 0, counted
  within the epoch, before that batch's forward pass and optimizer step, as their
  `train_places.py`), in eval mode, one batch of each concept's images runs
  through the network; for concept k the layer keeps −(the whitened features at the maxima of
  3 × 3 max-pooling of the rotated features), averaged over the batch, in row k of a matrix G
  (a running mean, momentum 0.05; their "pool_max"). R then takes two steps of their
  curvilinear search on the Stiefel manifold: the Cayley transform Q = (I + τ/2 A)⁻¹(I − τ/2 A),
  A = G Rᵀ − R Gᵀ, with τ found by bisection (from 1000, within 500 halvings) until the
  Armijo and curvature conditions hold (c1 = 1e-4, c2 = 0.9). An epoch of fewer than 30
  batches never rotates: the count restarts with each epoch, as in their loop.
- **Concepts**: the data set's parts. A concept image is a training image cropped to that
  part's bounding box (from its mask) and resized to the input size: the "extra concept data"
  of the paper's Table II.

Where the layer goes: where their VGG16-BN script puts it (`--whitened_layers 13`,
`features[41]`): in place of the batch norm of the interpretable conv itself (conv5_3's),
and, on ResNet18, in place of layer4's last block's bn1 (the kind of layer their ResNets
whiten). `a`, the maps every metric reads, is the CW layer's output (their plots hook the
whitened output), so concept k is axis k of `a`; the classifier still reads the network's
own output. On VGG16 without batch norm it is inserted between conv5_3 and its ReLU. On a
map smaller than 3 × 3 the pooling window shrinks to the map.

Precision: the whole layer (centring, covariance, Newton iterations, rotation) runs in
float32 with autocast off: inside the loop's CUDA bf16 autocast a `.float()` alone leaves
the matrix products in bf16 (off-diagonal covariance 0.053 instead of 0.010). Their Newton
iteration (P³Σ_N, not the coupled form) is unstable in float32 on an ill-conditioned batch:
on a 1/8-width VGG16-BN fine-tuned on PartWorld, conv5_3's pre-BN covariance (256 samples,
64 channels, 8 eigenvalues of Σ_N below 1e-3) whitens to a covariance 3·10³ off I in float32,
0.04 in float64 (float64 is no cure for every case: iterated 20 times instead of 10 the same
batch diverges there too). The default, `precision="float64"`, runs the layer in float64 (at
the code's placement a 5-epoch quick-size run reaches 93.75 % test accuracy; in float32 it
diverges to 13.75 %, chance 16.7 %); `precision="float32"` is their precision.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Method, register


def whitening_matrix(xc: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """Σ^{-1/2} of centred features xc: (C, M) by `iters` Newton iterations (IterNorm)."""
    c, m = xc.shape
    eye = torch.eye(c, dtype=xc.dtype, device=xc.device)
    sigma = eps * eye + xc @ xc.t() / m
    r_tr = 1.0 / sigma.diagonal().sum()
    sigma_n = sigma * r_tr
    p = eye
    for _ in range(iters):
        p = 1.5 * p - 0.5 * torch.linalg.matrix_power(p, 3) @ sigma_n
    return p * r_tr.sqrt()


def cayley_step(g: torch.Tensor, r: torch.Tensor, max_halvings: int = 500) -> torch.Tensor:
    """One step of their curvilinear search: R ← Q R, Q the Cayley transform of A = G Rᵀ − R Gᵀ
    with the step τ bisected until the Armijo (c1 = 1e-4) and curvature (c2 = 0.9) conditions
    hold. Decreases F(R) = Σ G ∘ R; Q is orthogonal, so R stays orthogonal."""
    eye = torch.eye(r.shape[0], dtype=r.dtype, device=r.device)
    a = g @ r.t() - r @ g.t()
    df0 = -0.5 * (a ** 2).sum()
    tau, lo, hi, c1, c2 = 1000.0, 0.0, 1e8, 1e-4, 0.9
    f_x = (g * r).sum()
    for _ in range(max_halvings):
        inv = torch.linalg.inv(eye + 0.5 * tau * a)
        y = inv @ (eye - 0.5 * tau * a) @ r
        f_y = (g * y).sum()
        df_tau = -torch.trace(g.t() @ inv @ (a @ (0.5 * (r + y))))
        if f_y > f_x + c1 * tau * df0 + 1e-18:
            hi, tau = tau, (tau + lo) / 2
        elif df_tau + 1e-18 < c2 * df0:
            lo, tau = tau, (hi + tau) / 2
        else:
            break
    q = torch.linalg.inv(eye + 0.5 * tau * a) @ (eye - 0.5 * tau * a)
    return q @ r


class ConceptWhitening(nn.Module):
    """IterNorm whitening and a concept rotation, in place of a batch norm (see the module)."""

    def __init__(self, n: int, iters: int = 10, eps: float = 1e-5, momentum: float = 0.05,
                 precision: str = "float32"):
        super().__init__()
        if precision not in ("float32", "float64"):
            raise ValueError(f"CW's precision is 'float32' or 'float64', not {precision!r}")
        self.iters, self.eps, self.momentum = iters, eps, momentum
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        self.register_buffer("running_mean", torch.zeros(n, 1))
        self.register_buffer("running_wm", torch.eye(n))
        self.register_buffer("running_rot", torch.eye(n))
        self.register_buffer("sum_g", torch.zeros(n, n))
        self.register_buffer("counter", torch.full((n,), 1e-3))
        self.mode = -1  # the concept whose images are in flight, or −1

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        xf = (x if x.dtype == torch.float64 else x.float()).transpose(0, 1).reshape(c, -1)
        if self.training:
            mean = xf.mean(1, keepdim=True)
            xc = xf - mean
            wm = whitening_matrix(xc, self.iters, self.eps)
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.float())
                self.running_wm.mul_(1 - self.momentum).add_(self.momentum * wm.float())
        else:
            xc, wm = xf - self.running_mean.to(xf.dtype), self.running_wm.to(xf.dtype)
        return (wm @ xc).view(c, b, h, w).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened and rotated x; kept in `last_output` (the model's `a` reads it)."""
        with torch.autocast(x.device.type, enabled=False):  # float32 products, also under bf16 autocast
            xn = self.whiten(x if x.dtype == torch.float64 else x.to(self.dtype))
            out = torch.einsum("bchw,dc->bdhw", xn, self.running_rot.to(xn.dtype))
            if self.mode >= 0:
                with torch.no_grad():
                    self._accumulate(xn, out)
        out = out.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        out = out.contiguous(memory_format=torch.channels_last)
        self.last_output = out
        return out

    def _accumulate(self, xn: torch.Tensor, rotated: torch.Tensor) -> None:
        """Row `mode` of G: −(the whitened features at the 3 × 3 pooling maxima of the rotated ones)."""
        k = max(1, min(3, rotated.shape[2], rotated.shape[3]))
        pooled, idx = F.max_pool2d(rotated, k, k, return_indices=True)
        at_max = F.max_unpool2d(pooled, idx, k, k, output_size=rotated.shape[2:]) == rotated
        at_max = at_max.to(xn.dtype)
        grad = -((xn * at_max).sum((2, 3)) / at_max.sum((2, 3))).mean(0)
        self.sum_g[self.mode] = self.momentum * grad + (1 - self.momentum) * self.sum_g[self.mode]
        self.counter[self.mode] += 1

    @torch.no_grad()
    def update_rotation(self) -> None:
        g = self.sum_g / self.counter.view(-1, 1)
        r = self.running_rot.clone()
        for _ in range(2):
            r = cayley_step(g, r)
        self.running_rot.copy_(r)
        self.counter.fill_(1e-3)


def part_boxes(dataset) -> list[list[tuple[int, int, int, int, int]]]:
    """Per part k: (image index, y0, y1, x0, x1) of every training image where part k shows."""
    boxes: list[list] = [[] for _ in dataset.parts]
    for i in range(len(dataset)):
        masks = dataset[i]["masks"]  # (K, S, S) bool
        for k in range(masks.shape[0]):
            ys, xs = masks[k].nonzero(as_tuple=True)
            if len(ys):
                boxes[k].append((i, int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1))
    return boxes


def concept_batch(dataset, boxes: list, n: int, generator: torch.Generator) -> torch.Tensor:
    """n concept images of one part: training images cropped to its box, resized to the input size."""
    pick = torch.randint(len(boxes), (n,), generator=generator).tolist()
    out = []
    for j in pick:
        i, y0, y1, x0, x1 = boxes[j]
        img = dataset[i]["image"]
        crop = img[:, y0:y1, x0:x1].unsqueeze(0)
        out.append(F.interpolate(crop, size=img.shape[-2:], mode="bilinear", align_corners=False)[0])
    return torch.stack(out)


def _insert(model: nn.Module, layer: nn.Module) -> None:
    """Put the CW layer where their code whitens (see the module) and make its output `a`:
    VGG16-BN: in place of conv5_3's batch norm; VGG16: between conv5_3 and its ReLU;
    ResNet18: in place of layer4's last block's bn1."""
    if hasattr(model, "layer4"):
        block = model.layer4[-1]
        block.bn1 = layer
        block.relu.inplace = False  # the ReLU after it would overwrite `a` (the same maps after the sum)
        model.a_from = f"layer4.{len(model.layer4) - 1}.bn1"
        return
    feats = model.features
    last = [i for i, m in enumerate(feats) if isinstance(m, nn.Conv2d)][-1]
    if isinstance(feats[last + 1], nn.BatchNorm2d):
        feats[last + 1] = layer
        feats[last + 2].inplace = False  # its ReLU would overwrite `a`
        model.a_from = f"features.{last + 1}"
    else:  # VGG16 without batch norm: between conv5_3 and its ReLU
        feats[last + 1].inplace = False
        feats[last + 1] = nn.Sequential(layer, feats[last + 1])
        model.a_from = f"features.{last + 1}.0"


@register
class CW(Method):
    """Concept whitening on the interpretable layer, concepts from the data set's part masks."""

    name = "cw"
    needs_masks = True  # its concept images are cut out by the part masks
    _p = {"iters": 10, "momentum": 0.05, "every": 30, "precision": "float64"}
    defaults = {"vgg16": dict(_p), "resnet18": dict(_p)}

    def prepare(self, model: nn.Module, data) -> nn.Module:
        self.cw = ConceptWhitening(model.n_filters, self.params["iters"], momentum=self.params["momentum"],
                                   precision=self.params["precision"])
        _insert(model, self.cw)
        self._data, self._boxes = data, None
        if data is not None:
            n_parts = len(data.dataset.parts)
            if n_parts > model.n_filters:
                raise ValueError(f"CW aligns one axis per part: {data.dataset.root} has {n_parts} parts, more than "
                                 f"the {model.n_filters} channels of the layer it whitens; train a wider network "
                                 "(--width) or a data set with fewer parts")
        return model

    def before_step(self, model: nn.Module, epoch: int, i: int) -> None:
        """Before batch i of an epoch with (i + 1) mod `every` = 0: the concept batches and
        two steps of the rotation (their train_places.py's placement and count)."""
        if self._data is None or (i + 1) % self.params["every"]:
            return
        step = (epoch, i)
        data = self._data
        if self._boxes is None:
            self._boxes = part_boxes(data.dataset)
        was = model.training
        model.eval()
        with torch.no_grad():
            for k, boxes in enumerate(self._boxes):
                if not boxes:
                    continue
                x = concept_batch(data.dataset, boxes, data.batch_size, data.generator(*step, k)).to(data.device)
                self.cw.mode = k
                model(x.contiguous(memory_format=torch.channels_last))
            self.cw.mode = -1
            self.cw.update_rotation()
        model.train(was)
