"""Probe the interpretable layer: stream its activations over a data set, then turn them
into hits in four visible stages (extract, threshold, tally, report)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
from tqdm import tqdm

from .data import PartDataset, collate
from .devices import pick_device
from .metrics.hits import filter_thresholds, landmark_hits, mask_hits
from .models import ModelOutput

__all__ = ["Probe", "LayerProbe", "activations", "mask_hits_for", "landmark_hits_for"]


@dataclass
class Probe:
    """What the interpretable layer did on a data set.

    a: (I, N, H, W) activations (float32, CPU); logits: (I, C); labels: (I,).
    """

    a: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        return (self.logits.argmax(1) == self.labels).double().mean().item()


class LayerProbe(torch.nn.Module):
    """Any network as synclib's probe sees it: `forward(x)` returns `ModelOutput(logits, a)`,
    `a` the output of the node `layer` (a node name as torchvision's feature extraction
    understands it: `get_graph_node_names(model)`, e.g. "layer4" of a torchvision ResNet18,
    or "layer4.1.relu_1"). The network's input is what it expects: put its normalization in
    `preprocess` (synclib's own models normalize inside)."""

    def __init__(self, model: torch.nn.Module, layer: str, preprocess=None):
        super().__init__()

        nodes = get_graph_node_names(model.eval())[1]
        if layer not in nodes and not any(n.startswith(layer + ".") for n in nodes):  # a module: its output
            near = [n for n in nodes if n.startswith(layer.split(".")[0])][:8]
            raise ValueError(f"{type(model).__name__} has no node {layer!r}; nodes like it: {near} "
                             "(all: torchvision.models.feature_extraction.get_graph_node_names(model)[1])")
        self.layer = layer
        self.extractor = create_feature_extractor(model, return_nodes={layer: "a", nodes[-1]: "logits"})
        self.preprocess = preprocess

    def forward(self, x: torch.Tensor):
        out = self.extractor(self.preprocess(x) if self.preprocess is not None else x)
        a = out["a"]
        if a.dim() != 4:
            raise ValueError(f"node {self.layer!r} gives a {tuple(a.shape)} tensor; the metrics need (B, N, H, W) maps")
        return ModelOutput(out["logits"], a)


@torch.no_grad()
def activations(model, dataset, batch_size: int = 64, device=None, progress: bool = False,
                layer: str | None = None, preprocess=None) -> Probe:
    """Run `model` over `dataset` and keep the interpretable layer's maps (not upsampled).

    `model` is a synclib model (its forward returns `ModelOutput`), or, with `layer`, any
    `nn.Module`: the maps are then those of that node (see `LayerProbe`), and `preprocess`
    maps synclib's [0, 1] images to the network's input (e.g. ImageNet normalization).

    Memory: I·N·H·W·4 bytes (1,000 images × 512 filters × 14² ≈ 400 MB at the paper's size).
    Always float32, on any device (training may use bf16 autocast; measuring does not: a
    bf16 map moves the thresholds and breaks their ties differently from the CPU's).
    """
    device = pick_device(device)
    if layer is not None:
        model = LayerProbe(model, layer, preprocess)
    model.eval().to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    acts, logits, labels = [], [], []
    for batch in tqdm(loader, desc="probe", disable=not progress, leave=False):
        with torch.autocast(device.type, enabled=False):
            out = model(batch["image"].to(device).float())
        acts.append(out.a.float().cpu())
        logits.append(out.logits.float().cpu())
        labels.append(batch["label"])
    return Probe(torch.cat(acts), torch.cat(logits), torch.cat(labels))


def mask_hits_for(p: Probe, dataset: PartDataset, top: float = 0.3, phi: float = 0.2,
                  batch_size: int = 32) -> torch.Tensor:
    """Mask hits (I, N, K) of a probe on the data set it was made on (needs masks)."""
    if not dataset.has_masks:
        raise ValueError(f"{dataset.root} has no part masks; use landmark hits")
    t = filter_thresholds(p.a, top)  # (N,)
    out = []
    for s in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(s, min(s + batch_size, len(dataset)))]
        masks = torch.stack([it["masks"] for it in items])  # (B, K, S, S)
        out.append(mask_hits(p.a[s:s + len(items)], masks, t, phi))
    return torch.cat(out)


def landmark_hits_for(p: Probe, dataset: PartDataset, r: float) -> torch.Tensor:
    """Landmark hits (I, N, K) at radius r (normalized image units)."""
    if not dataset.has_landmarks:
        raise ValueError(f"{dataset.root} has no landmarks")
    lm = torch.stack([torch.tensor(row["landmarks"], dtype=torch.float32) for row in dataset.rows])
    return landmark_hits(p.a, lm, r)
