"""Analytic checks of focus, L_lac and L_sync (the book's specification page, Eq. 3–9)."""

import math
import types

import pytest
import torch
import torch.nn.functional as F

from synclib.losses import cell_centres, focus, lac_loss, lac_loss_at, pairwise_dist, sync_loss
from synclib.methods import TrainData, get_method
from synclib.methods.ours import COMPILE_MIN_STEPS, TERM_PARAMS, _compiled_terms, compile_losses


def hot(h, w, cells, value=60.0, n=None):
    """A (1, len(cells), h, w) map, each filter with one very hot cell."""
    a = torch.zeros(1, len(cells), h, w, dtype=torch.float64)
    for f, (i, j) in enumerate(cells):
        a[0, f, i, j] = value
    return a


def test_cell_centres_are_normalized_cell_midpoints():
    x = cell_centres(2, 4, dtype=torch.float64)
    torch.testing.assert_close(x[0], torch.tensor([0.25, 0.125], dtype=torch.float64))
    torch.testing.assert_close(x[-1], torch.tensor([0.75, 0.875], dtype=torch.float64))
    assert x.shape == (8, 2)


def test_single_hot_cell_puts_focus_at_its_centre():
    a = hot(7, 7, [(2, 5), (0, 0)])
    torch.testing.assert_close(focus(a)[0], torch.tensor([[2.5 / 7, 5.5 / 7], [0.5 / 7, 0.5 / 7]],
                                                          dtype=torch.float64))


def test_uniform_map_focuses_at_the_image_centre():
    a = torch.full((3, 4, 5, 9), 1.7)
    torch.testing.assert_close(focus(a), torch.full((3, 4, 2), 0.5))


def test_lac_equals_cross_entropy_with_the_closed_form_target():
    # uniform map on a 3x3 grid: q = 1/9 everywhere, so L = -Σ p log(1/9) = log 9 for any p
    a = torch.zeros(2, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(lac_loss(a), torch.tensor(math.log(9), dtype=torch.float64))


def test_lac_is_minimal_when_the_map_is_its_own_target():
    # logits -dist/τ around the centre cell of a 5x5 grid: focus = that cell, q = p, so the
    # loss is the entropy of p (Gibbs), and any perturbation raises it
    x = cell_centres(5, 5, dtype=torch.float64)
    d = torch.linalg.norm(x - torch.tensor([0.5, 0.5], dtype=torch.float64), dim=1)
    a = (-d / 0.2).view(1, 1, 5, 5)
    p = torch.softmax(-d / 0.2, 0)
    torch.testing.assert_close(lac_loss(a), -(p * p.log()).sum())
    noise = 0.5 * torch.randn(1, 1, 5, 5, generator=torch.Generator().manual_seed(0)).double()
    assert lac_loss(a + noise) > lac_loss(a)


def test_lac_target_matches_hand_computation():
    a = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    a[0, 0, 0, 0] = math.log(3.0)  # q = (3/4, 1/4); focus col = 3/4*0.25 + 1/4*0.75 = 0.375
    tau = 0.5
    d = torch.tensor([0.125, 0.375], dtype=torch.float64)  # col distances to the focus
    p = torch.softmax(-d / tau, 0)
    expected = -(p * torch.log(torch.tensor([0.75, 0.25], dtype=torch.float64))).sum()
    torch.testing.assert_close(lac_loss(a, tau=tau), expected)


def test_sync_loss_closed_form_two_far_filters():
    # two filters far apart (> eps): each one's neighbourhood is itself; q(i|i) = 1/(1+e^-d);
    # Eq. 6 as printed sums the two filters' terms, the mean reading averages them
    a = hot(10, 10, [(0, 0), (9, 9)], value=80.0)
    d = math.dist((0.05, 0.05), (0.95, 0.95))
    per_filter = math.log(1 + math.exp(-d))
    torch.testing.assert_close(sync_loss(a, eps=0.03), torch.tensor(2 * per_filter, dtype=torch.float64))
    torch.testing.assert_close(sync_loss(a, eps=0.03, reduction="mean"), torch.tensor(per_filter, dtype=torch.float64))


def test_sync_loss_closed_form_two_neighbours():
    # two filters at the same cell: Nb = both, d = 0 -> q = 1/2 each -> log 2 per filter
    a = hot(4, 4, [(1, 1), (1, 1)])
    torch.testing.assert_close(sync_loss(a, eps=0.03), torch.tensor(2 * math.log(2), dtype=torch.float64))
    torch.testing.assert_close(sync_loss(a, eps=0.03, reduction="mean"), torch.tensor(math.log(2), dtype=torch.float64))


def test_sync_loss_sum_is_n_times_the_mean():
    a = torch.randn(3, 7, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sync_loss(a, eps=0.2), 7 * sync_loss(a, eps=0.2, reduction="mean"))


def test_sync_loss_in_map_cells():
    # filters at cells (0, 0) and (0, 1) of a 4x4 map: 1 cell apart, 0.25 in normalized units.
    a = hot(4, 4, [(0, 0), (0, 1)], value=80.0)
    # normalized, eps 0.3: neighbours; q(j|i) = softmax over (0, -0.25)
    q_far = math.exp(-0.25) / (1 + math.exp(-0.25))
    expected = -(0.5 * math.log(1 - q_far) + 0.5 * math.log(q_far))
    torch.testing.assert_close(sync_loss(a, eps=0.3, reduction="mean"), torch.tensor(expected, dtype=torch.float64))
    # in cells, eps 0.03 taken literally: each filter is alone; q(i|i) = 1 / (1 + e^-1)
    cells = math.log(1 + math.exp(-1.0))
    torch.testing.assert_close(sync_loss(a, eps=0.03, reduction="mean", units="cells"),
                               torch.tensor(cells, dtype=torch.float64))
    # in cells, eps 1.5: neighbours again, with the sharper softmax over (0, -1)
    q1 = math.exp(-1.0) / (1 + math.exp(-1.0))
    torch.testing.assert_close(sync_loss(a, eps=1.5, reduction="mean", units="cells"),
                               torch.tensor(-(0.5 * math.log(1 - q1) + 0.5 * math.log(q1)), dtype=torch.float64))


def test_sync_loss_rejects_unknown_readings():
    a = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match="reduction"):
        sync_loss(a, reduction="avg")
    with pytest.raises(ValueError, match="units"):
        sync_loss(a, units="pixels")
    with pytest.raises(ValueError, match="radius"):
        sync_loss(a, eps=-0.1)


def sync_loss_as_printed(a, eps=0.03, reduction="sum", units="normalized"):
    """SPEC's L_sync transcribed line by line, with autograd through every step."""
    xbar = focus(a)
    if units == "cells":
        xbar = xbar * torch.tensor(a.shape[-2:], dtype=xbar.dtype)
    d = pairwise_dist(xbar, xbar)
    nb = (d.detach() <= eps).to(d.dtype)
    p = nb / nb.sum(-1, keepdim=True)
    per_filter = -(p * F.log_softmax(-d, dim=-1)).sum(-1)
    return (per_filter.sum(-1) if reduction == "sum" else per_filter.mean(-1)).mean()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape, kw", [
    ((3, 7, 4, 4), {"eps": 0.3}),
    ((5, 40, 7, 7), {"eps": 0.03, "reduction": "mean"}),
    ((4, 64, 2, 3), {"eps": 1.5, "units": "cells"}),
    ((3, 600, 4, 4), {"eps": 0.1}),  # 600² > the CPU's chunk: one sample per pass
])
def test_sync_loss_and_its_written_out_gradient_equal_autograd_through_spec(shape, kw, dtype, tol):
    a = 3 * torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(5))
    a[:, 1] = a[:, 0]  # two filters with the same focus point: distance 0, subgradient 0
    a1, a2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    fast, printed = sync_loss(a1, **kw), sync_loss_as_printed(a2, **kw)
    fast.backward()
    printed.backward()
    torch.testing.assert_close(fast, printed, rtol=tol, atol=0)
    torch.testing.assert_close(a1.grad, a2.grad, rtol=tol, atol=tol * a2.grad.abs().max().item())


def test_pairwise_dist_has_no_nan_gradient_at_zero():
    x = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    pairwise_dist(x, x).sum().backward()
    assert torch.isfinite(x.grad).all()


XBAR = torch.rand(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("loss", [lambda a: lac_loss_at(a, XBAR, 0.25), lambda a: sync_loss(a, eps=0.3)])
def test_gradcheck_float64(loss):
    a = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a.requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (a,), eps=1e-6, atol=1e-5)


def test_lac_gradient_stops_at_the_focus():
    a = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a1, a2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    lac_loss(a1).backward()
    lac_loss_at(a2, focus(a).detach(), 1 / 5).backward()
    torch.testing.assert_close(a1.grad, a2.grad)


@pytest.mark.parametrize("loss", [lac_loss, sync_loss])
def test_float32_matches_float64(loss):
    a = torch.randn(4, 6, 7, 7, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(loss(a).double(), loss(a.double()), rtol=1e-5, atol=1e-5)


def test_sync_pulls_neighbours_together():
    # a gradient step on L_sync moves two nearby focus points closer
    a = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    a[0, 0, 3, 3] = a[0, 1, 3, 4] = 4.0
    a.requires_grad_(True)
    before = torch.dist(*focus(a)[0])
    sync_loss(a, eps=0.3).backward()
    after = torch.dist(*focus(a - 5.0 * a.grad)[0])
    assert after < before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    a = torch.randn(2, 8, 7, 7)
    for loss in (lac_loss, sync_loss):
        torch.testing.assert_close(loss(a.cuda()).cpu(), loss(a), rtol=1e-4, atol=1e-5)


def test_the_losses_trace_as_one_graph_for_torch_compile():
    # `python -m bench --compile-losses` compiles L_lac + L_sync with fullgraph=True; the
    # aot_eager backend traces them as inductor would (dynamo, then AOTAutograd), without codegen
    a = torch.randn(2, 9, 5, 5, generator=torch.Generator().manual_seed(6))
    f = lambda a: lac_loss(a) + sync_loss(a, eps=0.2)  # noqa: E731
    a1, a2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    traced = torch.compile(f, fullgraph=True, backend="aot_eager")(a1)
    traced.backward()
    f(a2).backward()
    torch.testing.assert_close(traced, f(a2))
    torch.testing.assert_close(a1.grad, a2.grad)


@pytest.mark.parametrize("params", [
    {},  # the specification's reading: Eq. 6 summed, normalized units, one-cell temperature
    {"reduction": "mean", "units": "cells", "eps": 1.5, "tau": 1.0},
])
def test_ours_compiled_losses_equal_the_eager_ones_to_1e_5_in_fp32(params, monkeypatch):
    # long CUDA runs of `ours` run its two losses compiled (inductor, one fp32 graph); here the
    # same path is forced on the CPU: its values and its gradients are the eager ones'
    a = 3 * torch.randn(4, 16, 7, 7, generator=torch.Generator().manual_seed(11))
    method = get_method("ours", "vgg16", **params)
    grads, values = [], []
    for flag in ("1", "0"):
        monkeypatch.setenv("SYNCLIB_COMPILE_LOSSES", flag)
        x = a.clone().requires_grad_(True)
        terms = method.extra_losses(types.SimpleNamespace(a=x), None, None)
        sum(terms.values()).backward()
        values.append({k: v.detach() for k, v in terms.items()})
        grads.append(x.grad)
    compiled = _compiled_terms(*(method.params[k] for k in TERM_PARAMS))
    assert compiled.fn is not None and compiled.compiled_once  # compiled, not the eager fallback
    assert set(values[0]) == {"lac", "sync"}
    for k in values[1]:
        torch.testing.assert_close(values[0][k], values[1][k], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_losses_compile_for_long_cuda_runs_unless_told(monkeypatch):
    monkeypatch.delenv("SYNCLIB_COMPILE_LOSSES", raising=False)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert compile_losses(cuda, COMPILE_MIN_STEPS) and not compile_losses(cuda, COMPILE_MIN_STEPS - 1)
    assert not compile_losses(cpu, 10 * COMPILE_MIN_STEPS) and not compile_losses(cuda)  # length unknown
    # prepare decides from the run: 1600 images in batches of 32 are 50 steps an epoch
    for epochs, expected in ((5, False), (400, True)):  # 250 steps (the gpu profile's run); 20,000
        method = get_method("ours", "vgg16")
        method.prepare(None, TrainData(list(range(1600)), 0, 32, cuda, epochs=epochs))
        assert method.compile is expected
    monkeypatch.setenv("SYNCLIB_COMPILE_LOSSES", "1")
    assert compile_losses(cpu, 1)
    monkeypatch.setenv("SYNCLIB_COMPILE_LOSSES", "0")
    assert not compile_losses(cuda, 10 * COMPILE_MIN_STEPS)
    monkeypatch.setenv("SYNCLIB_COMPILE_LOSSES", "yes")
    with pytest.raises(ValueError, match="SYNCLIB_COMPILE_LOSSES='yes'"):
        compile_losses(cpu, 1)
