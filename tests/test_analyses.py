"""Module metrics, Taylor pruning, loss landscapes and border shares on hand-made inputs with known
answers."""

import math
import threading
import time
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

from synclib.analysis.maps import border_share
from synclib.analysis.runs import cached
from synclib.methods import METHODS, get_method
from synclib.metrics.landscape import filter_normalized_direction, loss_landscape, orthogonal_directions, roughness, split_forward
from synclib.metrics.modules import filter_similarity, module_consistency, module_labels, module_part_alignment, part_labels
from synclib.metrics.pruning import taylor_pruning_curve, taylor_scores
from synclib.models import build_model


def blocks(i_images=6, shift=False):
    """4 filters on a 4x4 map: 0 and 1 fire top-left, 2 and 3 bottom-right (swapped if shift)."""
    a = torch.zeros(i_images, 4, 4, 4)
    a[:, 0, :2, :2] = a[:, 1, :2, :2] = 1.0
    a[:, 2, 2:, 2:] = a[:, 3, 2:, 2:] = 1.0
    if shift:
        a[::2, 1] = 0.0
        a[::2, 1, 2:, 2:] = 1.0  # every other image, filter 1 joins 2 and 3
    return a


def test_similarity_is_cosine_and_zero_maps_stay_zero():
    a = blocks(1)
    a[0, 3] = 0.0
    s = filter_similarity(a)[0]
    assert s[0, 1].item() == 1.0 and s[0, 2].item() == 0.0
    assert s[3].abs().sum().item() == 0.0


def test_consistent_modules_have_zero_consistency():
    assert module_consistency(blocks(6), k=2) == 0.0


def test_a_filter_that_switches_module_raises_consistency():
    # filter 1 is with 0 in half the images and with 2, 3 in the other half: its three pairs
    # with 0, 2, 3 each have std 0.5 -> mean over the 6 pairs = 3 * 0.5 / 6 = 0.25
    assert math.isclose(module_consistency(blocks(6, shift=True), k=2), 0.25)


def test_module_labels_and_alignment_with_parts():
    modules = module_labels(blocks(4), k=2)
    assert modules[0] == modules[1] != modules[2] == modules[3]
    hits = torch.zeros(3, 4, 2, dtype=torch.bool)
    hits[:, 0, 0] = hits[:, 1, 0] = hits[:, 2, 1] = hits[:, 3, 1] = True
    parts, active = part_labels(hits)
    assert parts.tolist() == [0, 0, 1, 1] and active.all()
    al = module_part_alignment(modules, parts, active)
    assert al == {"nmi": 1.0, "ari": 1.0, "avi": 1.0}
    bad = module_part_alignment(np.array([0, 1, 0, 1]), parts)
    assert bad["nmi"] == 0.0 and bad["ari"] < 0


class LinearHead(nn.Module):
    """Pooled linear head with fixed weights: logits = W · mean(a)."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, a):
        return a.mean(dim=(2, 3)) @ self.w.T


def test_taylor_scores_match_hand_computation():
    # one example, 1x1 maps a = (2, 3), label 0, W = [[1, 1], [0, 0]]: both filters feed logit 0
    # with dL/da_f = -(1 - p0) for both, so |a_f dL/da_f| ∝ (2, 3) -> normalized (2, 3) / √13
    a = torch.tensor([[[[2.0]], [[3.0]]]])
    head = LinearHead(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    s = taylor_scores(head, a, torch.tensor([0]), torch.ones(2))
    torch.testing.assert_close(s, torch.tensor([2.0, 3.0]) / math.sqrt(13))
    # a filter with no path to the loss scores 0
    idle = LinearHead(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    s = taylor_scores(idle, a, torch.tensor([0]), torch.ones(2))
    assert s.tolist() == [1.0, 0.0]


def test_pruning_removes_the_useless_filter_first():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40,), generator=g)
    a = 0.1 * torch.rand(40, 3, 2, 2, generator=g)
    a[:, 0] += labels.view(-1, 1, 1) * 2.0  # filter 0 votes for class 1, filter 1 for class 0
    a[:, 1] += (1 - labels).view(-1, 1, 1) * 2.0
    w = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # filter 2 is idle
    removed, acc = taylor_pruning_curve(LinearHead(w), a, labels)
    assert removed == [0, 1, 2, 3]
    assert acc[0] == acc[1] == 1.0  # the idle filter goes first, at no cost
    assert acc[3] == (labels == 0).double().mean().item()  # all gone: logits 0, argmax 0


def test_filter_normalized_direction_and_landscape_centre():
    torch.manual_seed(0)
    model = build_model("resnet18", 3, width=0.125).eval()
    w = model.interpretable_layer.weight
    d = filter_normalized_direction(w, torch.Generator().manual_seed(1))
    torch.testing.assert_close(d.flatten(1).norm(dim=1), w.detach().flatten(1).norm(dim=1))
    before = w.detach().clone()
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    coords, loss = loss_landscape(model, x, y, span=1.0, points=3)
    assert torch.equal(model.interpretable_layer.weight, before)  # restored
    with torch.no_grad():
        centre = nn.functional.cross_entropy(model(x).logits, y).item()
    assert coords.tolist() == [-1.0, 0.0, 1.0] and math.isclose(loss[1, 1].item(), centre, rel_tol=1e-5)


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18"])
def test_split_forward_is_the_forward_for_every_method(arch):
    # the landscape computes what comes before the interpretable layer once: for each method's
    # network (its prepare may add an adapter, gates, a replaced layer) the two halves must give
    # the whole forward's logits; a method whose network cannot be split there runs whole
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    split_ones = set()
    for name in sorted(METHODS):
        if not METHODS[name].takes_arch(arch):
            continue
        torch.manual_seed(0)
        model = get_method(name, arch).prepare(build_model(arch, 4, width=0.125), None).eval()
        split = split_forward(model)
        if split is None:
            continue
        split_ones.add(name)
        before, after = split
        with torch.no_grad():
            torch.testing.assert_close(after(before(x)), model(x).logits, rtol=1e-5, atol=1e-5, msg=name)
    assert {"baseline", "ours", "ours_nosync", "iccnn"} <= split_ones  # Fig. 10's networks are split


@pytest.mark.parametrize("arch", ["vgg16_bn", "resnet18"])
def test_split_landscape_equals_the_whole_forward_one(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3, width=0.125).eval()
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    c1, fast = loss_landscape(model, x, y, span=1.0, points=3)
    c2, whole = loss_landscape(model, x, y, span=1.0, points=3, split=False)
    assert torch.equal(c1, c2)
    torch.testing.assert_close(fast, whole, rtol=1e-5, atol=1e-6)
    assert fast.std() > 0  # the directions do move the loss: the comparison is not of constants


def test_landscape_directions_are_orthogonal_and_filter_normalized():
    # a hand-made layer: 2 filters of 2 weights; the second draw keeps only what is orthogonal
    w = torch.tensor([[[[3.0]], [[4.0]]], [[[0.0]], [[2.0]]]])  # filter norms 5 and 2
    d1, d2 = orthogonal_directions(w, torch.Generator().manual_seed(0))
    torch.testing.assert_close(d1.flatten(1).norm(dim=1), torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(d2.flatten(1).norm(dim=1), torch.tensor([5.0, 2.0]))
    # in two dimensions the orthogonal complement is one line: d2's filter is ±d1's turned 90°
    for f in range(2):
        a, b = d1[f].flatten(), d2[f].flatten()
        assert abs(float(a @ b)) < 1e-5
        assert torch.allclose(b.abs(), a.flip(0).abs(), atol=1e-5)
    # on a real layer the whole vectors are orthogonal too
    model = build_model("resnet18", 3, width=0.125)
    d1, d2 = orthogonal_directions(model.interpretable_layer.weight.detach(), torch.Generator().manual_seed(1))
    cos = float((d1.flatten() @ d2.flatten()) / (d1.norm() * d2.norm()))
    assert abs(cos) < 1e-6


def test_pruning_auc_is_relative_to_the_start():
    from synclib.metrics.pruning import pruning_auc

    # two models that lose accuracy the same way, relative to their start, score the same
    assert pruning_auc([0, 2, 4], [0.9, 0.9, 0.45], 4) == pytest.approx(pruning_auc([0, 2, 4], [0.6, 0.6, 0.3], 4))
    assert pruning_auc([0, 2, 4], [0.8, 0.8, 0.8], 4) == pytest.approx(1.0)
    # trapezoid by hand: relative (1, 0.5, 0.25) over fractions (0, 0.5, 1): (0.75 + 0.375) / 2
    assert pruning_auc([0, 2, 4], [0.8, 0.4, 0.2], 4) == pytest.approx(0.5625)


def test_roughness_is_zero_on_a_plane_and_scale_free():

    i, j = torch.meshgrid(torch.arange(5.0, dtype=torch.float64), torch.arange(5.0, dtype=torch.float64), indexing="ij")
    assert roughness(1 + 0.3 * i + 0.2 * j) == pytest.approx(0.0, abs=1e-12)
    bowl = 1 + (i - 2) ** 2 + (j - 2) ** 2  # Laplacian 4 everywhere inside
    assert roughness(bowl) == pytest.approx(4 / float(bowl.mean()))
    assert roughness(10 * bowl) == pytest.approx(roughness(bowl))


def test_tables_lay_ours_beside_the_paper_and_bold_each_columns_best():
    """Per metric, ours then the paper's under one header with its direction; the best of each
    column per data set × arch in bold (the highest Interp, the lowest Stability); no index."""
    import pandas as pd

    from synclib.tables import side_by_side

    df = pd.DataFrame({"dataset": ["partworld"] * 3 + ["other"], "arch": ["vgg16"] * 4,
                       "method": ["baseline", "ours", "ours_mean", "ours"],
                       "interp": [0.4, 0.6, 0.5, 0.1], "paper_interp": [0.46, 0.64, 0.64, None],
                       "stability": [0.5, 0.4, 0.45, 0.9], "paper_stability": [0.55, 0.43, 0.43, None],
                       "n_seeds": [3, 3, 3, 2]})
    st = side_by_side(df, ["interp", "stability"])
    assert list(st.data.columns) == [("", "data set, network"), ("", "method"), ("Interp ↑", "ours"),
                                     ("Interp ↑", "paper"), ("Stability ↓", "ours"), ("Stability ↓", "paper"),
                                     ("", "seeds")]
    assert st.data.iloc[1, 2] == "0.6000" and st.data.iloc[3, 3] == "–" and st.data.iloc[0, 0] == "partworld, VGG16"
    ctx = st._compute().ctx
    bold = sorted((r, c) for (r, c), props in ctx.items() if ("font-weight", "bold") in props)
    # Interp: ours row 1 (0.6) and the lone row 3; paper: rows 1 and 2 (a tie); Stability: ours row 1 and row 3
    assert bold == [(1, 2), (1, 3), (1, 4), (1, 5), (2, 3), (2, 5), (3, 2), (3, 4)]
    assert "<th" not in st.to_html().split("<tbody>")[1].split("</tr>")[0]  # no index column


def test_a_method_the_study_does_not_run_shows_the_papers_values_in_the_papers_place():
    """A profile may leave a method out (here Decoup) and a method may not run on a data set
    (CW without masks): Tables I-II still show every published row, with an empty "ours",
    where the paper puts it."""
    from types import SimpleNamespace

    import pandas as pd

    from synclib.paper_values import TABLE2
    from synclib.tables import side_by_side, with_paper

    study = SimpleNamespace(datasets={"partworld": SimpleNamespace(spec={"paper_dataset": "voc_part"})},
                            methods=["baseline", "csgcnn", "cw", "iccnn", "icnn", "ours_nosync", "ours"],
                            row_spec=lambda m: (m, ()), families=["vgg16"], arch_label=lambda f: "VGG16-BN ⅛")
    df = pd.DataFrame({"dataset": ["partworld"] * 3, "arch": ["vgg16"] * 3, "method": ["baseline", "cw", "ours"],
                       "accuracy": [0.9, 0.8, 0.91], "n_seeds": [3, 3, 3]})
    out = with_paper(df, study, "table2")
    assert list(out["method"]) == ["baseline", "csgcnn", "decoup", "cw", "iccnn", "icnn", "ours_nosync", "ours"]
    assert out.loc[2, "paper_accuracy"] == TABLE2[("voc_part", "vgg16", "decoup")] and out["accuracy"].isna()[2]
    assert out.loc[3, "accuracy"] == 0.8  # measured rows keep their values
    shown = side_by_side(out, ["accuracy"], percent=True).data
    assert list(shown.iloc[2]) == ["partworld, VGG16-BN ⅛", "Decoup", "–", "91.43", "–"]  # the width named
    assert ("Accuracy ↑ (%)", "paper (VOC Part)") in shown.columns  # the paper's data set named


def test_border_share_counts_focus_points_and_peaks_at_the_maps_edge():
    """A 4x4 map, cells 1/4 wide: a peak at (0, 0) has its focus at (1/8, 1/8), within one cell
    of the border; a peak at (1, 1) has it at (3/8, 3/8), not; a peak at (2, 3) has it at
    (5/8, 7/8), 1/8 from the right edge. Peaks in the outer ring: (0, 0) and (2, 3). The ring
    holds 12 of the 16 cells."""
    a = torch.zeros(1, 3, 4, 4)
    a[0, 0, 0, 0] = a[0, 1, 1, 1] = a[0, 2, 2, 3] = 100.0
    s = border_share(a)
    assert s["focus"] == pytest.approx(2 / 3)
    assert s["peak"] == pytest.approx(2 / 3)
    assert s["ring"] == pytest.approx(12 / 16)


def test_two_pages_asking_for_one_analysis_at_once_compute_it_once(tmp_path, monkeypatch):
    """Pages built at once (`--jobs`) share the analysis cache: the second caller waits on the
    cache's lock while the first computes, then reads its value."""
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    (tmp_path / "runs" / "abc").mkdir(parents=True)
    study = types.SimpleNamespace(datasets={"d": types.SimpleNamespace(fingerprint=lambda split: "fp")})
    run = types.SimpleNamespace(dataset="d", hash="abc")
    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.5)  # long enough for the other thread to arrive while this one computes
        return {"value": 42}

    got = []
    threads = [threading.Thread(target=lambda: got.append(cached(study, run, "demo", {"k": 1}, compute,
                                                                  "analysis/maps.py")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and got == [{"value": 42}, {"value": 42}]
    assert len(list((tmp_path / "runs" / "abc").glob("analysis-demo-*.json"))) == 1


def test_train_times_average_each_methods_runs_and_keep_the_backbones_apart(tmp_path, monkeypatch):
    """Table II's training times from the runs' provenance: mean and sample spread per method,
    backbones on a row of their own, a run not yet done left out."""
    import json

    from synclib.tables import train_times

    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    runs = []
    for h, row, backbone, seconds in [("b0", "baseline", True, 100.0), ("b1", "baseline", True, 120.0),
                                      ("o0", "ours", False, 40.0), ("o1", "ours", False, 50.0),
                                      ("o2", "ours", False, None)]:  # o2 is not done
        runs.append(types.SimpleNamespace(hash=h, dataset="pw", family="vgg16", row=row, backbone=backbone,
                                          train={"epochs": 10 if backbone else 5}))
        if seconds is not None:
            d = tmp_path / "runs" / h
            d.mkdir(parents=True)
            (d / "DONE").write_text("")
            (d / "provenance.json").write_text(json.dumps({"seconds": seconds, "processes": 1}))
    study = types.SimpleNamespace(runs_for=lambda artifact: runs)
    t = train_times(study).set_index("method")
    assert t.loc["backbone", "seconds"] == 110.0 and t.loc["backbone", "epochs"] == 10
    assert t.loc["backbone", "seconds_std"] == pytest.approx(math.sqrt(200.0))  # ddof 1: (10² + 10²) / 1
    assert t.loc["ours", "seconds"] == 45.0 and t.loc["ours", "n_seeds"] == 2 and t.loc["ours", "epochs"] == 5
