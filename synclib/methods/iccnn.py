"""icCNN: filters clustered into groups whose maps correlate within and not between
(Shen et al., "Interpretable compositional convolutional neural networks", IJCAI 2021).

Read from the authors' code (github.com/ada-shen/icCNN: `*_iccnn_multi_train.py`,
`SpectralClustering.py`, `Similar_Mask_Generate.py`, `utils/utils.py`), the multi-category
setting, which is the one a data set of several classes takes:

- **Groups.** Over the whole training set (eval mode), each filter's map is taken as a vector
  of its H·W positions; cov[i, j] is the mean over images of the (map − mean map) products,
  and the affinity is cov / (√(diag · diagᵀ) + 1e-5) + 1, in [0, 2]. scikit-learn's spectral
  clustering on that precomputed affinity (random_state 21, as the code) puts the N filters
  into `groups` (16) groups. It runs before every training epoch (`every` = 1) until `stop`
  of the run has passed: the code alternates a clustering epoch and a training epoch (T = 2,
  "do sc each epoch") for its first 200 epochs, so its first 100 of 2900 training epochs
  each follow a fresh clustering (`stop` = 100 / 2900; epoch 0 always clusters).
- **Cluster loss** (λ1 = 0.1): per image, the correlation of every pair of filters over the
  positions, (a − m)(a − m)ᵀ normalized by the diagonal (its square roots floored at 1e-6,
  and + 1e-5, which the code lacks: a dead filter's map would give 0/0), + 1, where m is a running mean map
  (an exponential average over batches, decay 0.95, its first value the first batch's mean).
  The code keeps that map as (H·W, N) and subtracts it through `.view(1, N, H·W)`, which
  reinterprets the memory: channel c at position p is centred on the true mean of channel
  (c·H·W + p) mod N at position ⌊(c·H·W + p) / N⌋, a mix of other channels' means.
  `mean_layout="code"` (the default) trains so; `mean_layout="channel"` subtracts each
  channel's own mean (the corrected reading).
  For each group g: the sum of the correlations of g's filters with g's filters over the sum
  of their correlations with all filters; the loss is minus the sum over groups (batch-
  averaged), so it raises within-group and lowers between-group correlation.
- **Multi-class loss** (λ2 = 0.1): each image's vector of group activations (a group's mean
  map, scaled as the code's masked product does), L2-normalized over the groups; the cosine
  between images, summed over pairs of one class over pairs from that class to any, minus
  the sum over classes.

Differences from the code, said on the Ambiguities page: the code spends each clustering
epoch on clustering alone, ours clusters and then trains the epoch (every method gets the
same number of training epochs; with T = 2 this is the code's order, a clustering before each
training epoch); the stop is a fraction of the run's training epochs; the loop's SGD
replaces the code's Adam at 1e-5; the loss is on our interpretable layer (the code's ResNet18
takes layer3's output, its VGG the last conv's).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from sklearn.cluster import SpectralClustering

from ..probe import activations
from .base import Method, register


def filter_correlation(maps: torch.Tensor) -> torch.Tensor:
    """The code's affinity between filters over a set of images: (N, N) in [0, 2].

    maps: (I, N, P) each filter's map over P positions. cov = mean over images of
    (maps − mean map)(maps − mean map)ᵀ; affinity = cov / (√(diag diagᵀ) + 1e-5) + 1.
    """
    x = maps.double()
    d = x - x.mean(0, keepdim=True)
    cov = torch.einsum("inp,imp->nm", d, d) / x.shape[0]
    diag = cov.diagonal().view(-1, 1)
    return (cov / ((diag @ diag.t()).sqrt() + 1e-5) + 1).float()


def spectral_groups(affinity: torch.Tensor, groups: int, seed: int = 21) -> torch.Tensor:
    """Group ids (N,) int64 by scikit-learn's spectral clustering of a precomputed affinity."""

    sc = SpectralClustering(n_clusters=groups, affinity="precomputed", random_state=seed)
    return torch.from_numpy(sc.fit_predict(affinity.double().numpy()).astype(np.int64))


def sample_correlation(a: torch.Tensor, mean_map: torch.Tensor) -> torch.Tensor:
    """Per image, the correlation of every pair of filters over positions, + 1: (B, N, N).

    a: (B, N, H, W); mean_map: (N, H·W), the running mean map subtracted first.
    """
    x = a.flatten(2) - mean_map.unsqueeze(0)  # (B, N, P)
    local = x @ x.transpose(1, 2)  # (B, N, N)
    std = local.diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt().unsqueeze(2)  # (B, N, 1)
    return local / (std @ std.transpose(1, 2) + 1e-5) + 1  # a dead filter's map would be 0/0 without the guards


def code_layout(mean_map: torch.Tensor) -> torch.Tensor:
    """The code's reinterpretation of a running mean map: the true per-channel means
    mean_map (N, P), stored position-major as (P, N), read back as (N, P) by `.view`."""
    n, p = mean_map.shape
    return mean_map.t().reshape(n, p)


def cluster_loss(corr: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """−Σ_g Σ_{i∈g, j∈g} C̄[i, j] / (Σ_{i∈g, all j} C̄[i, j] + 1e-5), C̄ the batch mean of
    `corr` (B, N, N); `group` (N,) the filters' group ids."""
    c = corr.mean(0)  # (N, N)
    onehot = nn.functional.one_hot(group, n_groups).to(c.dtype)  # (N, G)
    within = torch.einsum("ig,ij,jg->g", onehot, c, onehot)
    total = onehot.t() @ c.sum(1)  # (G,)
    return -(within / (total + 1e-5)).sum()


def multiclass_loss(a: torch.Tensor, group: torch.Tensor, n_groups: int, labels: torch.Tensor,
                    n_classes: int) -> torch.Tensor:
    """The code's multi-class term: images' group-activation profiles alike within a class.

    Group g's activation in image b is |g| · Σ_{j∈g} mean_pos(a[b, j]) / N (the mean of the
    code's masked product); each image's vector over groups is L2-normalized; D = the images'
    cosines; −Σ_c mean(D on (class c, class c) pairs) / mean(D on (class c, any)).
    """
    n = a.shape[1]
    onehot = nn.functional.one_hot(group, n_groups).to(a.dtype)  # (N, G)
    size = onehot.sum(0)  # (G,)
    act = a.mean((2, 3)) @ onehot * size / n  # (B, G)
    act = act / (act.norm(dim=1, keepdim=True) + 1e-5)
    d = act @ act.t()  # (B, B)
    ly = nn.functional.one_hot(labels, n_classes).to(a.dtype)  # (B, C)
    num = torch.einsum("bc,bd,dc->c", ly, d, ly) / d.numel()
    den = (ly.t() @ d).sum(1) / d.numel()
    return -(num / (den + 1e-5)).sum()


class ICState(nn.Module):
    """The groups (N,) and the running mean map (N, H·W), in buffers: a checkpoint holds them.
    The mean map's size is the maps' (known after the first batch); loading resizes it."""

    def __init__(self, n_filters: int):
        super().__init__()
        self.register_buffer("group", torch.zeros(n_filters, dtype=torch.long))
        self.register_buffer("mean_map", torch.zeros(n_filters, 0))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "mean_map"
        if key in state_dict and state_dict[key].shape != self.mean_map.shape:
            self.mean_map = torch.zeros_like(state_dict[key], device=self.mean_map.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def update_mean(self, a: torch.Tensor, decay: float) -> torch.Tensor:
        m = a.detach().float().flatten(2).mean(0)  # (N, P)
        if not bool(self.started) or self.mean_map.shape != m.shape:
            self.mean_map = m.clone()
            self.started.fill_(True)
        else:
            self.mean_map.mul_(decay).add_((1 - decay) * m)
        return self.mean_map


@register
class ICCNN(Method):
    """Spectral groups of filters and the losses that make them cohere (see the module's docstring)."""

    in_analyses = True  # Figures 9-10 and Tables III-IV show it
    name = "iccnn"
    _p = {"lambda1": 0.1, "lambda2": 0.1, "groups": 16, "every": 1, "stop": 100 / 2900, "decay": 0.95,
          "mean_layout": "code"}
    defaults = {"vgg16": dict(_p), "resnet18": dict(_p)}

    def prepare(self, model: nn.Module, data) -> nn.Module:
        if self.params["mean_layout"] not in ("code", "channel"):
            raise ValueError(f"iccnn's mean_layout is 'code' or 'channel', not {self.params['mean_layout']!r}")
        model.iccnn = ICState(model.n_filters)
        return model

    def _groups(self, model: nn.Module) -> int:
        return min(self.params["groups"], model.n_filters)

    @torch.no_grad()
    def on_epoch_start(self, model: nn.Module, epoch: int, data) -> None:
        p = self.params
        if epoch % p["every"] or (epoch > 0 and epoch >= p["stop"] * data.epochs):
            return

        was = model.training
        maps = activations(model, data.dataset, device=data.device).a.flatten(2)  # (I, N, H·W), eval mode
        model.train(was)
        groups = spectral_groups(filter_correlation(maps), self._groups(model))
        model.iccnn.group.copy_(groups.to(model.iccnn.group.device))

    def extra_losses(self, out, labels, model) -> dict[str, torch.Tensor]:
        a = out.a.float()
        state = model.iccnn
        mean_map = state.update_mean(a, self.params["decay"])
        if self.params["mean_layout"] == "code":
            mean_map = code_layout(mean_map)
        g = self._groups(model)
        corr = sample_correlation(a, mean_map)
        return {"cluster": self.params["lambda1"] * cluster_loss(corr, state.group, g),
                "multiclass": self.params["lambda2"] * multiclass_loss(a, state.group, g, labels, model.fc.out_features)}
