"""The paper's method (Eq. 10): L = L_ce + λ1 L_lac + λ2 L_sync, and it without L_sync.

`ours` can run its two losses as one torch.compile'd fp32 graph, outside autocast. On the H200
(bench/results/nvidia-h200.json, 2026-12-04) that took the losses' share of a training step at
VGG16 224², batch 32, from +13.2 % to +1.7 % (ResNet18 224²: +15.5 % → +15.1 %; at 112²: VGG16
+44.5 % → +21.5 %, ResNet18 +33.6 % → +14.8 %): about 1 ms saved per step. Compiling costs
its first step 19 s in a process that finds inductor's cache cold and 5 s where it is warm
(VGG16 224², bench/results/nvidia-h200-compile-cost.json), so a gpu-profile run (250 steps)
ends 4.7 to 18.6 s later compiled than eager. The losses are therefore compiled on CUDA for
runs of at least COMPILE_MIN_STEPS steps (a cold compilation pays back after about 16,000),
the paper's scale, and eager otherwise. `SYNCLIB_COMPILE_LOSSES=1` compiles them for every run
on every device, `=0` never. Both forms compute the same terms (a test holds them to 1e-5 in
fp32; on the H200 they differed by at most 3.4e-7 in the gradient).
"""

from __future__ import annotations

import functools
import math
import os
import warnings

import torch

from ..losses import lac_loss, sync_loss
from ..models import ModelOutput
from .base import Method, register


@register
class OursNoSync(Method):
    """Cross-entropy + λ1 · local activation consistency (Eq. 3–5)."""

    name = "ours_nosync"
    in_analyses = True
    defaults = {"vgg16": {"lambda1": 0.2}, "resnet18": {"lambda1": 0.1}}

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model) -> dict[str, torch.Tensor]:
        return {"lac": self.params["lambda1"] * lac_loss(out.a.float())}


@register
class Ours(Method):
    """Cross-entropy + λ1 · L_lac + λ2 · L_sync (Eq. 10); ε is the neighbourhood radius.

    `reduction`: L_sync summed over the filters as Eq. 6 prints it ("sum", the default) or
    averaged over them ("mean"); `units`: L_sync's distances and ε in normalized image units
    ("normalized", the default) or in cells of the map ("cells"); `tau`: L_lac's softmax
    temperature (Eq. 4 prints none) in normalized image units, None for the specification's
    one cell (1 / max(H, W)); 1.0 is Eq. 4 read literally. All are readings of the paper that
    the specification had to choose between; the book's Ambiguities page measures the others.
    """

    name = "ours"
    in_analyses = True
    defaults = {
        "vgg16": {"lambda1": 0.2, "lambda2": 0.1, "eps": 0.03, "reduction": "sum", "units": "normalized", "tau": None},
        "resnet18": {"lambda1": 0.1, "lambda2": 0.05, "eps": 0.03, "reduction": "sum", "units": "normalized",
                     "tau": None},
    }

    #: Whether the losses run compiled: None until `prepare` decides from the run's device and
    #: length (`compile_losses`); True or False set beforehand decides for this instance (the
    #: bench times both).
    compile: bool | None = None

    def prepare(self, model, data):
        if data is not None and self.compile is None:
            self.compile = compile_losses(data.device, data.epochs * math.ceil(len(data.dataset) / data.batch_size))
        return model

    def extra_losses(self, out: ModelOutput, labels: torch.Tensor, model) -> dict[str, torch.Tensor]:
        a = out.a.float()
        if compile_losses(a.device) if self.compile is None else self.compile:
            with torch.autocast(a.device.type, enabled=False):
                return _compiled_terms(*(self.params[k] for k in TERM_PARAMS))(a)
        return ours_terms(a, *(self.params[k] for k in TERM_PARAMS))


#: The parameters of `ours_terms`, in its order.
TERM_PARAMS = ("lambda1", "lambda2", "eps", "reduction", "units", "tau")


def ours_terms(a: torch.Tensor, lambda1: float, lambda2: float, eps: float, reduction: str, units: str,
               tau: float | None) -> dict[str, torch.Tensor]:
    """ours' weighted terms {"lac": λ1 L_lac, "sync": λ2 L_sync} on the interpretable layer's maps a: (B, C, H, W)."""
    return {"lac": lambda1 * lac_loss(a, tau=tau),
            "sync": lambda2 * sync_loss(a, eps=eps, reduction=reduction, units=units)}


#: The shortest run whose losses are compiled on CUDA (see the module's text): a cold
#: compilation (19 s on the H200) pays back at about 1.2 ms saved per step after ~16,000 steps.
COMPILE_MIN_STEPS = 20_000


def compile_losses(device: torch.device, steps: int | None = None) -> bool:
    """Whether ours' losses run compiled for a run of `steps` optimizer steps on `device` (None:
    a length not known, as outside training): on CUDA for runs of at least COMPILE_MIN_STEPS;
    SYNCLIB_COMPILE_LOSSES=1 always, =0 never."""
    flag = os.environ.get("SYNCLIB_COMPILE_LOSSES", "auto")
    if flag not in ("auto", "0", "1"):
        raise ValueError(f"SYNCLIB_COMPILE_LOSSES={flag!r}: use 0 (eager), 1 (compiled for every run) or leave it "
                         f"unset (compiled on CUDA for runs of at least {COMPILE_MIN_STEPS} steps)")
    if flag != "auto":
        return flag == "1"
    return device.type == "cuda" and steps is not None and steps >= COMPILE_MIN_STEPS


@functools.cache
def _compiled_terms(*params) -> _CompiledTerms:
    """`ours_terms` with these parameters, compiled once per process."""
    return _CompiledTerms(params)


class _CompiledTerms:
    """`ours_terms` compiled (fp32, full graph, static shapes). Where torch.compile cannot run
    here (a GPU without Triton, a machine without a C++ compiler) its first call says so in a
    warning and the terms run eager from then on; an error of the losses themselves is raised
    again by their eager form."""

    def __init__(self, params: tuple):
        self.params = params
        self.fn = torch.compile(functools.partial(ours_terms, **dict(zip(TERM_PARAMS, params))), fullgraph=True,
                                dynamic=False)
        self.compiled_once = False

    def __call__(self, a: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.fn is None:
            return ours_terms(a, *self.params)
        if self.compiled_once:
            return self.fn(a)
        try:
            out = self.fn(a)
        except Exception as e:  # the compiler's failure: the eager terms say whether the losses fail too
            warnings.warn(f"ours' losses could not be compiled ({type(e).__name__}: {str(e)[:200]}); they run eager. "
                          "SYNCLIB_COMPILE_LOSSES=0 skips the attempt", stacklevel=2)
            self.fn = None
            return ours_terms(a, *self.params)
        self.compiled_once = True
        return out
