"""The paper's measurements of a CNN's filters.

- `hits`: a filter's region on an image (its map upsampled and thresholded at its top
  activations) and whether it hits a part (mask IoU above φ, or a landmark within r).
- `interpretability`: Interp, Stability, Purity and Diversity (Eq. 11–14) from the hits.
- `modules`: functional modules by spectral clustering of filter similarity (Tables III–IV).
- `pruning`: Taylor pruning curves (Figure 9); `landscape`: loss landscapes (Figure 10).
"""

from .hits import filter_thresholds, landmark_distances, landmark_hits, mask_hits, mask_hits_dense, mask_iou, region_overlaps, regions
from .interpretability import diversity, interpretability, normalized_entropy, purity, stability, summarize, summarize_variants
from .landscape import filter_normalized_direction, loss_landscape, roughness
from .modules import filter_similarity, module_consistency, module_labels, module_part_alignment, part_labels, spectral_modules
from .pruning import pruning_auc, taylor_pruning_curve, taylor_scores

__all__ = [
    # hits
    "filter_thresholds", "regions", "mask_iou", "region_overlaps", "mask_hits", "mask_hits_dense",
    "landmark_hits", "landmark_distances",
    # Table I
    "interpretability", "stability", "purity", "diversity", "normalized_entropy", "summarize", "summarize_variants",
    # Tables III-IV
    "filter_similarity", "spectral_modules", "module_consistency", "module_labels", "part_labels",
    "module_part_alignment",
    # Figures 9-10
    "taylor_scores", "taylor_pruning_curve", "pruning_auc", "filter_normalized_direction", "loss_landscape",
    "roughness",
]
