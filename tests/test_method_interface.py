"""The method interface: a method registered here (not in synclib) that uses every hook trains,
is killed, resumes, and ends with the same weights and method state as an uninterrupted run."""

import json

import pytest
import torch
import torch.nn as nn
from conftest import Killed, kill_after_first

from synclib.methods import METHODS, Method
from synclib.train import TrainConfig, fit, load_run


class _Gate(nn.Module):
    """The layer the method puts after the interpretable one: a ← a · gate (per filter)."""

    def __init__(self, state: nn.Module):
        super().__init__()
        self.state = state

    def forward(self, a):
        return a * self.state.gate.view(1, -1, 1, 1)


class Hooked(Method):
    """A toy method with state in buffers, a parameter kept out of SGD, per-epoch statistics
    from the training set, labels in the forward pass and the model in the loss."""

    name = "test_hooked"
    defaults = {"vgg16": {"lam": 0.05, "every": 2}, "resnet18": {"lam": 0.05, "every": 2}}
    kill_at_step: int | None = None
    calls: dict = {}

    def _count(self, hook):
        Hooked.calls[hook] = Hooked.calls.get(hook, 0) + 1

    def prepare(self, model, data):
        self._count("prepare")
        state = nn.Module()
        state.register_buffer("centre", torch.zeros(model.n_filters))
        state.register_buffer("steps", torch.zeros((), dtype=torch.long))
        state.gate = nn.Parameter(torch.ones(model.n_filters))
        model.hooked = state
        model.adapter = _Gate(state)
        return model

    def param_groups(self, model):
        self._count("param_groups")
        return [{"params": [p for n, p in model.named_parameters() if not n.startswith("hooked.")]}]

    @torch.no_grad()
    def on_epoch_start(self, model, epoch, data):
        self._count("on_epoch_start")
        g = data.generator(epoch)  # seeded by the run's seed and the epoch: nothing to checkpoint
        idx = torch.randperm(len(data.dataset), generator=g)[:8].tolist()
        x = torch.stack([data.dataset[i]["image"] for i in idx]).to(data.device)
        was = model.training
        model.eval()
        model.hooked.centre.copy_(model(x).a.mean(dim=(0, 2, 3)))  # (N,) mean map per filter
        model.train(was)

    def forward(self, model, x, y):
        self._count("forward")
        out = model(x)
        out.extras["true_logit"] = out.logits.gather(1, y[:, None])[:, 0]  # (B,)
        return out

    def extra_losses(self, out, labels, model):
        self._count("losses")
        drift = (out.a.float().mean(dim=(2, 3)) - model.hooked.centre).pow(2).mean()
        return {"hook": self.params["lam"] * drift - 0.01 * out.extras["true_logit"].mean()}

    @torch.no_grad()
    def after_step(self, model, step):
        self._count("after_step")
        if Hooked.kill_at_step == step:
            raise Killed
        st = model.hooked
        st.steps += 1
        if step % self.params["every"] == 0 and st.gate.grad is not None:  # a hand-made update, out of SGD
            st.gate.sub_(0.05 * st.gate.grad.sign()).clamp_(0.5, 1.5)
        st.gate.grad = None


@pytest.fixture()
def hooked():
    METHODS[Hooked.name] = Hooked
    Hooked.calls, Hooked.kill_at_step = {}, None
    yield Hooked
    del METHODS[Hooked.name]
    Hooked.kill_at_step = None


def _weights(run):
    return torch.load(run / "model.pt", weights_only=True)


def test_every_hook_resumes_to_the_same_weights_and_state(hooked, tiny_world, tmp_path):
    cfg = TrainConfig(method=Hooked.name, arch="resnet18", width=0.125, epochs=3, batch_size=16,
                      method_params={"every": 2})
    fit(cfg, tiny_world, tmp_path / "straight", progress=False)
    assert set(Hooked.calls) == {"prepare", "param_groups", "on_epoch_start", "forward", "losses", "after_step"}
    straight = _weights(tmp_path / "straight")
    steps = 3 * 3  # 48 images, batch 16, 3 epochs
    assert straight["hooked.steps"].item() == steps
    assert not torch.equal(straight["hooked.gate"], torch.ones_like(straight["hooked.gate"]))  # updated by hand
    assert straight["hooked.centre"].abs().sum() > 0

    # killed in the middle of the second epoch (after its first step), then resumed
    Hooked.kill_at_step = 4
    with pytest.raises(Killed):
        fit(cfg, tiny_world, tmp_path / "mid", progress=False)
    Hooked.kill_at_step = None
    fit(cfg, tiny_world, tmp_path / "mid", progress=False)

    # killed right after the first epoch's checkpoint, then resumed
    with pytest.raises(Killed):
        fit(cfg, tiny_world, tmp_path / "between", progress=False, on_epoch_end=kill_after_first)
    fit(cfg, tiny_world, tmp_path / "between", progress=False)

    for name in ("mid", "between"):
        resumed = _weights(tmp_path / name)
        assert resumed.keys() == straight.keys()
        for k in straight:
            torch.testing.assert_close(resumed[k], straight[k], rtol=0, atol=0, msg=f"{name}: {k}")

    hist = json.loads((tmp_path / "mid/history.json").read_text())
    assert hist["method_params"] == {"lam": 0.05, "every": 2} and isinstance(hist["method_params"]["every"], int)
    assert "hook" in hist["epochs"][0]
    model, cfg2, _ = load_run(tmp_path / "mid")  # loading re-attaches the method's modules
    assert cfg2 == cfg and torch.equal(model.hooked.gate.detach(), straight["hooked.gate"])


class TwoOptimizers(Method):
    """A toy method that owns its optimizers: SGD in even epochs, Adam over the classifier in
    odd ones, each with its own scheduler; a counter bumped in `before_step`; an epoch record."""

    name = "test_two_optimizers"
    defaults = {"resnet18": {}}
    kill_at_step: int | None = None

    def prepare(self, model, data):
        state = nn.Module()
        state.register_buffer("before", torch.zeros((), dtype=torch.long))
        model.two = state
        return model

    def optimizers(self, model, cfg):
        sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        adam = torch.optim.Adam(model.fc.parameters(), lr=1e-3)
        return [(sgd, torch.optim.lr_scheduler.StepLR(sgd, 1, gamma=0.5)),
                (adam, torch.optim.lr_scheduler.StepLR(adam, 1, gamma=0.1))]

    def optimizer_index(self, epoch, data):
        return epoch % 2

    def before_step(self, model, epoch, i):
        model.two.before += 1

    def after_step(self, model, step):
        if TwoOptimizers.kill_at_step == step:
            raise Killed

    def epoch_record(self, model):
        return {"before": int(model.two.before)}


def test_a_method_owning_two_optimizers_resumes_to_the_same_weights(tiny_world, tmp_path):
    """Each optimizer steps and each scheduler decays only in its own epochs; a run killed
    mid-epoch resumes with every optimizer's and scheduler's state to the uninterrupted weights."""
    METHODS[TwoOptimizers.name] = TwoOptimizers
    try:
        cfg = TrainConfig(method=TwoOptimizers.name, arch="resnet18", width=0.125, epochs=4, batch_size=16)
        h = fit(cfg, tiny_world, tmp_path / "straight", progress=False)
        assert [r["lr"] for r in h["epochs"]] == pytest.approx([0.01, 1e-3, 0.005, 1e-4])
        assert [r["before"] for r in h["epochs"]] == [3, 6, 9, 12]  # before each of 3 batches an epoch
        TwoOptimizers.kill_at_step = 7  # in the third epoch, after both optimizers have stepped
        with pytest.raises(Killed):
            fit(cfg, tiny_world, tmp_path / "mid", progress=False)
        TwoOptimizers.kill_at_step = None
        fit(cfg, tiny_world, tmp_path / "mid", progress=False)
        a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "mid")
        for k in a:
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
        state = torch.load(tmp_path / "mid/checkpoint.pt", weights_only=False)
        assert len(state["optimizer"]) == 2 and len(state["scheduler"]) == 2
    finally:
        del METHODS[TwoOptimizers.name]
        TwoOptimizers.kill_at_step = None
