"""ICNN: one part per filter by templates and hand-edited gradients (Zhang, Wu & Zhu,
"Interpretable convolutional neural networks", CVPR 2018).

Read from the authors' MatConvNet code (github.com/zqs1022/interpretableCNN:
`code/tool/main/our_vl_simplenn.m` ('conv_mask' forward and backward), `getMu.m`,
`getMask.m`, `our_cnn_train.m`, `basic_net_functions/add_block_mask.m`, `nets/vgg_vd_16.m`).
Where the code and its paper differ, this follows the code; each difference is said on the
book's Ambiguities page.

- **Template (mask)** per filter f and image: μ is the filter's activation-weighted centroid
  on the map, rounded to a cell (the paper says the arg-max; the code's `getMu` has
  IsUseMax = false), positions on a [−1, 1] grid, and mask = max(1 − τ_f (|x − μ_x| +
  |y − μ_y|), −1). τ_f starts at 2 and is pulled towards clamp(β / σ̄_f, 1.5, 3) with β = 3,
  σ̄_f the strength-weighted spread of f's maps around μ over the images of f's class; when
  the batch holds no image of f's class σ̄_f is 0/0 and, as MATLAB's min skips NaN, the
  target is 3.
- **Masked maps**: the classifier sees a · max(mask, 0) (the code's max(a · mask, 0) for
  a ≥ 0, with the mask taken as a constant in the backward pass). The maps every metric reads
  are a itself: the seed paper evaluates ICNN's maps without the mask.
- **Filter loss**: the code has no loss; its backward pass edits the gradient of a. For the
  images of f's class (f's class: the arg-max over classes of a running mean, decay 0.9, of
  f's largest activation per class, `sliceMag`) it subtracts mask · s⁺ · 1e-5 · w⁺, and for
  the other images it adds s⁻ · 1e-5 · w⁻ at every position; s⁺ = e^{m/α}(m − α log Z⁺ + α),
  m the mean of a · mask, s⁻ = e^{−n/α}(−n − α log Z⁻ + α), n the mean of a, α = 0.5, each
  divided by its mean over the batch's images of that kind and by 10 · epoch; log Z⁺ and
  log Z⁻ the batch's log-mean-exp of m (with the mask of the filter and image taken in
  reverse order, as the code indexes it) and of −n; w⁺ = 0.5 / (the class's share of the
  training set), w⁻ = 0.5 / (1 − that share). `filter_loss` is Σ c · a with those edits as
  the constant c, so its gradient is the code's edit exactly (tested against a literal
  transcription); its value is that surrogate, not a mutual information.

Scale with softmax (`edit_scale="code"`): the code's multi-class run takes mag × 0.2 (mag / 50
above 10 classes, where it also weights every class as 1/C instead of its share) and multiplies
the softmax gradient by C; our cross-entropy keeps the loop's weight, so the edits use
mag × 0.2 / C (mag / 50 / C): their ratio to the classification gradient is the code's (without
it they were 30 times the code's at 6 classes, 1500 times at 30). Order within a step, as the
code: the edits and τ use the class magnitudes of the batches before; the magnitudes take this
batch afterwards; the first batch, before any magnitude, takes the code's single-group path.

Kept out: the code's two new conv layers above conv5_3 (our head is the paper's pooled
linear classifier on the interpretable layer); its logistic loss per class (ours is softmax
cross-entropy, the batch mean: the edits are divided by the batch size with it). VGG16 only,
as in the seed paper (the MATLAB code has no ResNet).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import Method, register

ALPHA = 0.5


def centroids(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each map's activation-weighted centroid, rounded to a cell, as (row, col) indices, and
    the weighted spread around it in cells (the code's getMu). a: (B, N, H, W) ≥ 0.
    Returns (mu (B, N, 2) long, sqrtvar (B, N))."""
    b, n, h, w = a.shape
    rows = torch.arange(h, dtype=a.dtype, device=a.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=a.dtype, device=a.device).view(1, 1, 1, w)
    total = a.sum((2, 3)).clamp_min(1e-9)
    r = ((a * rows).sum((2, 3)) / total).round().clamp(0, h - 1)
    c = ((a * cols).sum((2, 3)) / total).round().clamp(0, w - 1)
    var = (a * ((rows - r[..., None, None]) ** 2 + (cols - c[..., None, None]) ** 2)).sum((2, 3)) / total
    return torch.stack([r, c], -1).long(), var.sqrt()


def templates(mu: torch.Tensor, tau: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The masks: max(1 − τ_f (|y − μ_y| + |x − μ_x|), −1) on a [−1, 1] grid of h × w.
    mu: (B, N, 2) cell indices (row, col); tau: (N,). Returns (B, N, h, w)."""
    gy = torch.linspace(-1, 1, h, device=tau.device)
    gx = torch.linspace(-1, 1, w, device=tau.device)
    my, mx = gy[mu[..., 0]], gx[mu[..., 1]]  # (B, N)
    d = (gy.view(1, 1, h, 1) - my[..., None, None]).abs() + (gx.view(1, 1, 1, w) - mx[..., None, None]).abs()
    return torch.clamp(1 - tau.view(1, -1, 1, 1) * d, min=-1.0)


def _finite(t: torch.Tensor) -> torch.Tensor:
    """The code's repair: every infinity (+ and −, as its `x(isinf(x)) = max(x(~isinf(x)))`)
    → the largest finite value, NaN → 0."""
    fin = t[torch.isfinite(t)]
    big = fin.max() if fin.numel() else torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.nan_to_num(torch.where(torch.isinf(t), big, t), nan=0.0)


@torch.no_grad()
def gradient_edits(a: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, filter_class: torch.Tensor,
                   share: torch.Tensor, epoch: int, mag: float = 0.1) -> torch.Tensor:
    """The code's additions to ∂L/∂a (B, N, H, W) for a batch, per image (not divided by B).

    a: maps (B, N, H, W); mask: their templates; labels (B,); filter_class (N,) the class each
    filter serves; share (C,) each class's share of the training images; epoch: 1-based.
    """
    b, n, h, w = a.shape
    m = (a * mask).mean((2, 3))  # (B, N): the code's l.strength
    m_rev = (a * mask.flip(0, 1)).mean((2, 3))  # the code's mask(:, :, end:-1:1, end:-1:1)
    neg_mean = (-a).mean((2, 3))
    logz_pos = _finite(ALPHA * torch.log(torch.exp(m_rev / ALPHA).mean(0)))  # (N,)
    logz_neg = _finite(ALPHA * torch.log(torch.exp(neg_mean / ALPHA).mean(0)))
    scale = 1.0 / (epoch / mag)  # the code's ones ./ (1 / iter) ./ l.mag, inverted
    edit = torch.zeros_like(a)
    for c in range(len(share)):
        fl = (filter_class == c).nonzero().flatten()
        if not len(fl):
            continue
        pos = labels == c
        w_pos, w_neg = 0.5 / share[c].item(), 0.5 / (1 - share[c].item())
        if pos.any():
            s = m[pos][:, fl]  # (P, F)
            st = _finite(torch.exp(s / ALPHA) * (s - logz_pos[fl] + ALPHA))
            st = _finite(st / st.mean(0, keepdim=True) * scale)
            idx = pos.nonzero().flatten()
            edit[idx[:, None], fl] -= mask[idx[:, None], fl] * st[..., None, None] * (1e-5 * w_pos)
        if (~pos).any():
            s = -a[~pos][:, fl].mean((2, 3))
            st = _finite(torch.exp(s / ALPHA) * (s - logz_neg[fl] + ALPHA))
            st = _finite(st / st.mean(0, keepdim=True) * scale)
            idx = (~pos).nonzero().flatten()
            edit[idx[:, None], fl] += st[..., None, None] * (1e-5 * w_neg)
    return edit


def filter_loss(a: torch.Tensor, edits: torch.Tensor) -> torch.Tensor:
    """Σ edits · a / B: its gradient with respect to a is the code's edits (divided by the
    batch size, as our cross-entropy is a batch mean where the code's is a sum)."""
    return (edits.detach() * a).sum() / a.shape[0]


class ICNNState(nn.Module):
    """τ (N,), each filter's per-class running magnitude (`slice_mag`, (N, C)), each class's
    share of the training images, and the masks of the batch in flight; applied before the
    classifier (train and eval, as the code's network always masks)."""

    def __init__(self, n_filters: int, n_classes: int, tau0: float):
        super().__init__()
        self.register_buffer("tau", torch.full((n_filters,), tau0))
        self.register_buffer("slice_mag", torch.zeros(n_filters, n_classes))
        self.register_buffer("share", torch.full((n_classes,), 1.0 / n_classes))
        self.mask: torch.Tensor | None = None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mu, _ = centroids(a.detach().float())
            self.mask = templates(mu, self.tau, a.shape[2], a.shape[3])
        return a * self.mask.clamp_min(0).to(a.dtype)

    def filter_class(self) -> torch.Tensor:
        return self.slice_mag.argmax(1)

    @torch.no_grad()
    def update_slice_mag(self, a: torch.Tensor, labels: torch.Tensor, decay: float = 0.9) -> None:
        """The code's sliceMag: per class, the batch mean of each filter's largest activation,
        its first value floored at 0.1, then a running mean (0.9); classes absent from the
        batch are left as they are. A zero mean takes class 0's magnitude, as the code's
        `meantmp(meantmp==0) = sliceMag(meantmp==0)` indexes the (N, C) matrix by an N-long
        mask, which reads its first column."""
        peak = a.detach().float().amax((2, 3))  # (B, N)
        for c in labels.unique().tolist():
            mean = peak[labels == c].mean(0)
            col = self.slice_mag[:, c]
            if col.sum() == 0:
                col.copy_(mean.clamp_min(0.1))
            else:
                mean = torch.where(mean == 0, self.slice_mag[:, 0], mean)
                col.mul_(decay).add_((1 - decay) * mean)

    @torch.no_grad()
    def update_tau(self, a: torch.Tensor, labels: torch.Tensor, beta: float, rate: float,
                   filter_class: torch.Tensor | None = None) -> None:
        """τ moves by `rate` towards max(min(β / σ̄, 3), 1.5), σ̄ the strength-weighted spread
        of each filter's maps over the images of its class. As in the code, a filter whose
        class has no image in the batch (σ̄ = 0/0, NaN, which MATLAB's min skips) or whose
        spread is 0 (β/0 = ∞) is pulled towards 3."""
        _, spread = centroids(a.detach().float())
        strength = (a.detach().float() * self.mask).mean((2, 3))  # (B, N)
        fc = self.filter_class() if filter_class is None else filter_class
        mine = labels.view(-1, 1) == fc.view(1, -1)  # (B, N): image of the filter's class
        sigma = (strength * spread * mine).sum(0) / (strength * mine).sum(0)
        target = torch.nan_to_num(beta / sigma, nan=3.0).clamp(1.5, 3.0)
        self.tau.add_(rate * (target - self.tau))


@register
class ICNN(Method):
    """Templates on the interpretable layer and the code's gradient edits as a loss."""

    name = "icnn"
    paper_datasets = ("voc_part", "ilsvrc_part")  # its MATLAB code has no multi-category CUB or ImageNet setting
    defaults = {"vgg16": {"tau0": 2.0, "beta": 3.0, "mag": 0.1, "tau_rate": 0.1, "edit_scale": "code"}}

    def prepare(self, model: nn.Module, data) -> nn.Module:
        if self.params["edit_scale"] not in ("code", "unscaled"):
            raise ValueError(f"icnn's edit_scale is 'code' or 'unscaled', not {self.params['edit_scale']!r}")
        n_classes = model.fc.out_features
        model.pre_head = ICNNState(model.n_filters, n_classes, self.params["tau0"])
        if data is not None and n_classes <= 10:  # above 10 classes the code weights them uniformly
            counts = torch.bincount(data.dataset.labels, minlength=n_classes)
            model.pre_head.share.copy_(counts.float() / counts.sum())
        self._epoch = 1
        return model

    def on_epoch_start(self, model: nn.Module, epoch: int, data) -> None:
        self._epoch = epoch + 1  # the code's iter: its 1-based epoch

    def edit_mag(self, n_classes: int) -> float:
        """The `mag` the edits use: with softmax the code (learn_icnn_multiclass.m) takes
        mag × 0.2 (mag / 50 above 10 classes), and its backward multiplies the softmax
        gradient by the number of classes C (our_vl_simplenn.m, 'ourloss_softmaxlog'). Our
        cross-entropy keeps the loop's weight, so the edits are divided by C instead: their
        ratio to the classification gradient is the code's. `edit_scale="unscaled"` keeps mag."""
        mag = self.params["mag"]
        if self.params["edit_scale"] == "unscaled":
            return mag
        return mag * (0.2 if n_classes <= 10 else 1 / 50) / n_classes

    def extra_losses(self, out, labels, model) -> dict[str, torch.Tensor]:
        """The edits of this batch, then τ, then the class magnitudes, in the code's order
        (its sliceMag is updated after the backward pass). On the first batch, before any
        magnitude exists, the code's single-group path: every filter, every image positive,
        w⁺ = w⁻ = 1 (a single class of share 0.5 gives those weights)."""
        state = model.pre_head
        a = out.a.float()
        mag = self.edit_mag(state.share.numel())
        if state.slice_mag.abs().sum() == 0:  # the code's empty sliceMag: one group
            zeros = torch.zeros_like(labels)
            fc = torch.zeros(a.shape[1], dtype=torch.long, device=a.device)
            edits = gradient_edits(a.detach(), state.mask, zeros, fc, torch.tensor([0.5]), self._epoch, mag)
            state.update_tau(a, zeros, self.params["beta"], self.params["tau_rate"], fc)
        else:
            edits = gradient_edits(a.detach(), state.mask, labels, state.filter_class(), state.share,
                                   self._epoch, mag)
            state.update_tau(a, labels, self.params["beta"], self.params["tau_rate"])
        state.update_slice_mag(a, labels)
        return {"filter": filter_loss(a, edits)}

