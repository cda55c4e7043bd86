"""The baseline: the backbone trained with cross-entropy alone (the paper's "Baseline").

A file of its own, so that a run's source hash (`provenance.training_source`) ties the
baseline to nothing but the shared training code: editing another method retrains no baseline.
"""

from __future__ import annotations

from .base import Method, register


@register
class Baseline(Method):
    """The backbone trained with cross-entropy alone."""

    in_analyses = True  # Figures 9-10 and Tables III-IV show it
    name = "baseline"
