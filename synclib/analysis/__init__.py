"""What the figure and module notebooks compute (Figures 4-10, Tables III-IV), one room per
artifact of the paper, each with its own cache:

    runs.py         a run loaded with its probe; the cache every analysis uses
    maps.py         Figures 4-5: filters' maps, mean maps, where filters fire near the border
    curves.py       Figure 6: metric-pair curves on landmarks, read at equal Interp
    sensitivity.py  Figures 7-8: the hyperparameter sweep
    pruning.py      Figure 9: Taylor pruning curves
    landscape.py    Figure 10: loss landscapes
    modules.py      Tables III-IV: module consistency and alignment
    variants.py     the Ambiguities page: Table I's metrics under their other readings

Every function takes a `Study` and returns plain data: the notebooks only plot and glue it.
Runs missing from the store are trained on the way (seconds on smoke). What is costly per run
(module tables, pruning curves, loss landscapes) is cached in the run's folder, keyed by its
arguments, the evaluated split's fingerprint and the source of its room, so the claims
(`synclib.claims`) read what Tables III-IV and Figures 9-10 computed instead of recomputing it.
"""

from .curves import at_equal_interp, landmark_curves
from .landscape import landscape, landscape_table, landscapes
from .maps import border_focus, border_share, filter_examples, mean_maps
from .modules import module_row, module_tables
from .pruning import pruning_curve, pruning_curves
from .runs import LoadedRun, load
from .sensitivity import sensitivity_maps, sensitivity_table
from .variants import metric_variants, variants_table

__all__ = ["LoadedRun", "load", "filter_examples", "mean_maps", "border_share", "border_focus", "landmark_curves", "at_equal_interp",
           "sensitivity_table", "sensitivity_maps", "pruning_curve", "pruning_curves", "landscape", "landscapes",
           "landscape_table", "module_row", "module_tables", "metric_variants", "variants_table"]
