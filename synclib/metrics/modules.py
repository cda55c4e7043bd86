"""Functional modules (Section IV-E): filter similarity, module consistency, and the
alignment of modules with semantic parts (Tables III and IV). Pure functions."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

__all__ = ["filter_similarity", "spectral_modules", "module_consistency", "module_labels",
           "part_labels", "module_part_alignment"]


def filter_similarity(a: torch.Tensor) -> torch.Tensor:
    """S = A Aᵀ per image, A_f the flattened map scaled to unit L2 norm (a zero map stays 0).

    a: (I, N, H, W) activations. Returns (I, N, N), ≥ 0 for post-ReLU maps.
    """
    i, n = a.shape[:2]
    flat = a.reshape(i, n, -1).double()  # (I, N, H*W)
    norm = flat.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > 0, flat / norm.clamp_min(1e-12), torch.zeros_like(flat))
    return unit @ unit.transpose(1, 2)  # (I, N, N)


def spectral_modules(s: np.ndarray | torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """Spectral clustering of one N×N affinity into k modules (fixed seed). Returns (N,) labels."""
    s = np.asarray(s, dtype=np.float64)
    s = np.clip((s + s.T) / 2, 0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "graph is not fully connected" for silent filters
        return SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                  assign_labels="kmeans").fit_predict(s)


def module_consistency(a: torch.Tensor, k: int, seed: int = 0) -> float:
    """Mean over filter pairs i < j of the population std over images of C_ij = [same module].

    a: (I, N, H, W). Lower is better (Table III).
    """
    s = filter_similarity(a).numpy()
    n = s.shape[1]
    iu = np.triu_indices(n, k=1)
    conn = np.stack([(lab[:, None] == lab[None, :])[iu]
                     for lab in (spectral_modules(si, k, seed) for si in s)]).astype(np.float64)
    return float(conn.std(axis=0).mean())  # (I, pairs) -> std over images -> mean over pairs


def module_labels(a: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """Filter -> module: spectral clustering of the image-mean similarity. a: (I, N, H, W) -> (N,)."""
    return spectral_modules(filter_similarity(a).mean(0).numpy(), k, seed)


def part_labels(hits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Filter -> part: argmax_k mean_I hit[I, f, k]. hits: (I, N, K) bool.

    Returns (labels (N,), active (N,) bool: the filters that hit something).
    """
    rate = torch.as_tensor(hits).double().mean(0)  # (N, K)
    return rate.argmax(-1).numpy(), (rate.sum(-1) > 0).numpy()


def module_part_alignment(modules: np.ndarray, parts: np.ndarray, active: np.ndarray | None = None) -> dict:
    """NMI, ARI and AVI (= AMI with arithmetic normalization) between two labelings of the
    filters, over the active filters. Table IV."""
    if active is not None:
        modules, parts = np.asarray(modules)[active], np.asarray(parts)[active]
    if len(modules) < 2:
        return {"nmi": float("nan"), "ari": float("nan"), "avi": float("nan")}
    return {"nmi": float(normalized_mutual_info_score(parts, modules)),
            "ari": float(adjusted_rand_score(parts, modules)),
            "avi": float(adjusted_mutual_info_score(parts, modules, average_method="arithmetic"))}
