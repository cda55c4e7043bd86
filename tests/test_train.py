"""The training loop: every method trains, a killed run resumes to the same weights."""

import json
import math

import pytest
import torch
from conftest import Killed, kill_after_first

from synclib.methods import METHODS, get_method
from synclib.models import build_model
from synclib.train import TrainConfig, fit, load_run


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_every_method_trains_a_step_without_nan(name, arch):
    if not METHODS[name].takes_arch(arch):
        with pytest.raises(ValueError, match="defined for"):
            get_method(name, arch)
        return
    torch.manual_seed(0)
    method = get_method(name, arch)
    model = method.prepare(build_model(arch, 4, width=0.125), None)
    opt = torch.optim.SGD(method.param_groups(model), lr=0.01)
    y = torch.tensor([0, 1, 2, 3])
    out = method.forward(model, torch.rand(4, 3, 64, 64), y)
    terms = method.losses(out, y, model)
    loss = sum(terms.values())
    loss.backward()
    assert math.isfinite(loss.item())
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads)  # CSGCNN's gates sit out the standard path
    assert model.interpretable_layer.weight.grad is not None and model.fc.weight.grad is not None
    opt.step()


def test_paper_defaults_per_arch():
    printed = {"reduction": "sum", "units": "normalized", "tau": None}  # Eq. 6 as printed, the specification's units, τ one cell
    assert get_method("ours", "vgg16").params == {"lambda1": 0.2, "lambda2": 0.1, "eps": 0.03, **printed}
    assert get_method("ours", "resnet18").params == {"lambda1": 0.1, "lambda2": 0.05, "eps": 0.03, **printed}
    assert get_method("ours", "vgg16_bn", lambda2=0.3).params["lambda2"] == 0.3
    model = build_model("vgg16", 2, 0.125)
    assert set(get_method("ours", "vgg16").losses(model(torch.rand(1, 3, 32, 32)), torch.tensor([0]), model)) == {
        "ce", "lac", "sync"}
    with pytest.raises(ValueError, match="takes"):
        get_method("ours", "vgg16", gamma=1.0)




@pytest.mark.parametrize("method, arch", [("ours", "resnet18"), ("csgcnn", "resnet18"), ("iccnn", "vgg16"),
                                          ("icnn", "vgg16"), ("cw", "resnet18"), ("decoup", "vgg16_bn"),
                                          ("decoup", "resnet18"), ("parts_control", "vgg16")])
def test_resume_equals_uninterrupted(tiny_world, tmp_path, method, arch):
    """Killed after epoch 1 and resumed, a run ends with the weights and the method state
    (CSGCNN's gates, icCNN's groups and running mean map, ICNN's τ and class magnitudes,
    Decoup's gate modules, whose noise is drawn per (epoch, batch)) of an uninterrupted one;
    for CSGCNN epoch 3 is a gated one."""
    extra = {"every": 2} if method == "cw" else {}  # CW's concept rotation every 2 batches instead of 30
    cfg = TrainConfig(method=method, arch=arch, width=0.125, epochs=3, batch_size=16, method_params=extra)
    fit(cfg, tiny_world, tmp_path / "straight", progress=False)

    with pytest.raises(Killed):
        fit(cfg, tiny_world, tmp_path / "resumed", progress=False, on_epoch_end=kill_after_first)
    assert not (tmp_path / "resumed/model.pt").exists()
    h = fit(cfg, tiny_world, tmp_path / "resumed", progress=False)
    a = torch.load(tmp_path / "straight/model.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed/model.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert [r["epoch"] for r in h["epochs"]] == [1, 2, 3]
    hist = json.loads((tmp_path / "resumed/history.json").read_text())
    terms = {"ours": {"lac", "sync"}, "csgcnn": {"gate"}, "iccnn": {"cluster", "multiclass"}, "icnn": {"filter"},
             "cw": set(), "decoup": {"mi", "kl", "sparse"}, "parts_control": {"mask"}}[method]
    assert {"ce", "train_acc"} | terms <= set(hist["epochs"][0]) and "test_acc" in hist["epochs"][-1]
    assert hist["test_acc"] == hist["epochs"][-1]["test_acc"]
    assert all(math.isfinite(r["loss"]) for r in hist["epochs"])
    model, cfg2, n_classes = load_run(tmp_path / "resumed")
    assert cfg2 == cfg and n_classes == 6
    if method == "csgcnn":
        assert [r["gate"] > 0 for r in hist["epochs"]] == [False, False, True]  # epoch 3 took the gated path
        assert [r["lr"] for r in hist["epochs"]] == pytest.approx([1e-5, 1e-6, 1e-3])  # its two Adams' own schedules
        g = model.pre_head.gate
        assert g.min() >= 0 and torch.allclose(g.max(1).values, torch.ones(g.shape[0]))  # rescaled, clamped
    if method == "cw":  # 3 batches an epoch, the rotation updated before each epoch's 2nd: turned, still orthogonal
        rot = model.layer4[-1].bn1.running_rot
        assert torch.allclose(rot @ rot.t(), torch.eye(rot.shape[0]), atol=1e-5)
        assert not torch.allclose(rot, torch.eye(rot.shape[0]), atol=1e-3)


def test_lr_schedule_drops_at_50_75_90_percent(tiny_world, tmp_path):
    cfg = TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=4, batch_size=48,
                      milestones=(0.5, 0.75))
    h = fit(cfg, tiny_world, tmp_path, progress=False)
    assert [round(r["lr"], 6) for r in h["epochs"]] == [0.01, 0.01, 0.001, 0.0001]


def test_another_config_in_the_same_dir_is_refused(tiny_world, tmp_path):
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=48),
        tiny_world, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another run's config"):
        fit(TrainConfig(method="ours", arch="resnet18", width=0.125, epochs=1, batch_size=48),
            tiny_world, tmp_path, progress=False)


def test_cli_train_then_evaluate_prints_the_table_rows(tiny_world, tmp_path, capsys):
    from synclib.cli import main

    assert main(["train", "--method", "ours", "--arch", "resnet18", "--width", "0.125", "--data",
                 str(tiny_world), "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "run")]) == 0
    assert main(["evaluate", str(tmp_path / "run"), "--data", str(tiny_world)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("Table I  interp ") and "diversity" in out[-2]
    assert out[-1].startswith("Table II accuracy ")


def test_a_second_top_is_measured_in_the_same_pass_and_read_from_its_own_file(tiny_world, tmp_path, monkeypatch):
    """evaluate_run(top=0.3, also_tops=(0.1,)) writes one cached row per top; the row for 0.1 is
    then read without loading the network, and equals evaluate() run with top 0.1 alone."""
    from synclib import evaluate as ev
    from synclib.data import PartDataset
    from synclib.train import TrainConfig, fit, load_run

    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=16),
        tiny_world, tmp_path / "run", progress=False)
    test = PartDataset(tiny_world, "test")
    row3 = ev.evaluate_run(tmp_path / "run", test, test, top=0.3, also_tops=(0.1,))
    assert len(list((tmp_path / "run").glob("eval-*.json"))) == 2
    model, _, _ = load_run(tmp_path / "run")
    alone = ev.evaluate(model, test, test, top=0.1)

    def no_load(*a, **k):
        raise AssertionError("the network was loaded although its row was cached")

    monkeypatch.setattr(ev, "load_run", no_load)
    row1 = ev.evaluate_run(tmp_path / "run", test, test, top=0.1)
    assert row1 == pytest.approx(alone) and row1["accuracy"] == row3["accuracy"]
    assert row1 != row3  # a smaller region: other hits


def test_a_runs_test_split_probe_is_kept_and_read_back(tiny_world, tmp_path, monkeypatch):
    """run_probe keeps the test split's probe in the run's folder: read back equal, shared by
    the evaluation, probed again once the weights change; a training split is never kept."""
    import os

    from synclib import evaluate as ev
    from synclib.data import PartDataset
    from synclib.probe import activations

    run = tmp_path / "run"
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=16), tiny_world, run,
        progress=False)
    test = PartDataset(tiny_world, "test")
    direct = activations(load_run(run)[0], test)
    ev.run_probe(run, test)
    assert len(list(run.glob("probe-*.pt"))) == 1
    calls = []
    monkeypatch.setattr(ev, "activations", lambda *a, **k: calls.append(1) or activations(*a, **k))
    again = ev.run_probe(run, test)
    assert calls == []  # read, not computed
    assert torch.equal(again.a, direct.a) and torch.equal(again.logits, direct.logits)
    assert torch.equal(again.labels, direct.labels)
    ev.evaluate_run(run, test, test)  # no evaluation cached yet: it reads the probe
    assert calls == []
    st = (run / "model.pt").stat()
    os.utime(run / "model.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a retrained run's
    ev.run_probe(run, test)
    assert calls == [1] and len(list(run.glob("probe-*.pt"))) == 2
    ev.run_probe(run, PartDataset(tiny_world, "train"))
    assert calls == [1, 1] and len(list(run.glob("probe-*.pt"))) == 2


@pytest.mark.parametrize("epochs", [4, 5, 6, 7, 10, 20, 100])
def test_three_distinct_decays_for_any_epoch_count_from_4(epochs):
    from synclib.train import lr_milestones

    ms = lr_milestones(epochs)
    assert len(ms) == 3 and len(set(ms)) == 3 and ms == sorted(ms)
    assert 1 <= ms[0] and ms[-1] <= epochs - 1  # each decay acts on at least one epoch


def test_milestones_keep_the_paper_schedule_and_fix_rounding():
    from synclib.train import lr_milestones

    assert lr_milestones(100) == [50, 75, 90]
    assert lr_milestones(5) == [2, 3, 4]  # round() gave 2, 4, 4: one decay lost
    assert lr_milestones(3) == [1, 2]
    assert lr_milestones(1) == []


def test_five_epochs_decay_three_times(tmp_path):
    from synclib.data.partworld import generate
    from synclib.train import TrainConfig, fit

    generate(tmp_path / "d", n_train=8, n_test=4, size=32, progress=False)
    h = fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=5, batch_size=8),
            tmp_path / "d", tmp_path / "r", progress=False)
    lrs = [e["lr"] for e in h["epochs"]]
    assert lrs == pytest.approx([0.01, 0.01, 1e-3, 1e-4, 1e-5])


def test_two_processes_train_the_run_one_process_trains(tiny_world, tmp_path):
    """`--nproc 2` (DistributedDataParallel, gloo on the CPU, two processes of 8 images each)
    ends at the weights of one process on the whole batch of 16, within 1e-5; run again on
    the finished folder, it resumes from rank 0's checkpoint and trains nothing more."""
    import os
    import subprocess
    import sys

    args = ["-m", "synclib.cli", "train", "--method", "ours", "--arch", "vgg16", "--width", "0.125",
            "--epochs", "2", "--batch-size", "16", "--data", str(tiny_world)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for out, extra in (("one", []), ("two", ["--nproc", "2"])):
        r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / out), *extra], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    one = torch.load(tmp_path / "one/model.pt", weights_only=True)
    two = torch.load(tmp_path / "two/model.pt", weights_only=True)
    worst = max((one[k].float() - two[k].float()).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert [e["train_acc"] for e in h1["epochs"]] == [e["train_acc"] for e in h2["epochs"]]  # over both ranks
    before = (tmp_path / "two/model.pt").read_bytes()
    r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "two"), "--nproc", "2"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "two/history.json").read_text())["epochs"] == h2["epochs"]
    two_again = torch.load(tmp_path / "two/model.pt", weights_only=True)
    assert all(torch.equal(two_again[k], two[k]) for k in two) and len(before) > 0
    print(f"largest weight difference, 2 processes vs 1: {worst:.2e}")
