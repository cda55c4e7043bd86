"""One training loop for every method (the method is a parameter).

The paper's schedule: SGD (lr 0.01, momentum 0.9, weight decay 5e-4), the learning rate
×0.1 at 50, 75 and 90 % of the epochs. bf16 autocast and channels_last on CUDA, fp32 on
the CPU. A checkpoint is written atomically after every epoch; a run that is killed resumes
from it and ends with the same weights as one that never stopped: each epoch's shuffling and
flips come from a generator seeded by (seed, epoch), so no random state has to survive.

RUN_DIR/ config.json, checkpoint.pt (latest epoch), model.pt (final weights), history.json
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .data import PartDataset, collate
from .data.format import atomic_write_bytes, atomic_write_text, read_manifest
from .methods import get_method
from .models import build_model

__all__ = ["TrainConfig", "TrainData", "fit", "load_run", "evaluate_accuracy", "pick_device", "lr_milestones"]


@dataclass
class TrainConfig:
    method: str = "ours"
    arch: str = "vgg16"
    width: float = 1.0
    epochs: int = 100
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    seed: int = 0
    pretrained: str | None = None
    init_from: str | None = None  # a run dir whose final weights start this run (not its fc)
    method_params: dict = field(default_factory=dict)
    flip: bool = True

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["milestones"] = tuple(d.get("milestones", (0.5, 0.75, 0.9)))
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(names)}")
        return cls(**d)


def lr_milestones(epochs: int, fractions: tuple[float, ...] = (0.5, 0.75, 0.9)) -> list[int]:
    """The epochs (0-based, where the learning rate is ×0.1 from on) for decays at `fractions`
    of the run: each rounded, then pushed apart so that every decay is distinct and takes
    effect before the run ends (any epoch count ≥ len(fractions) + 1 keeps them all; 5 epochs
    give 2, 3, 4 where plain rounding would merge 0.75 and 0.9 into 4)."""
    n = len(fractions)
    hi = epochs - 1  # the last epoch a decay can still act on
    if hi < 1:
        return []
    ms = [min(max(1, round(f * epochs)), hi) for f in sorted(fractions)]
    for i in range(n - 2, -1, -1):  # from the end: each strictly before the next
        ms[i] = min(ms[i], ms[i + 1] - 1)
    for i in range(n):  # from the start: at least 1, strictly after the previous
        ms[i] = max(ms[i], 1 if i == 0 else ms[i - 1] + 1)
    return sorted({m for m in ms if m <= hi})


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _model_for(cfg: TrainConfig, num_classes: int):
    model = build_model(cfg.arch, num_classes, cfg.width, cfg.pretrained)
    if cfg.init_from:
        path = Path(cfg.init_from) / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run to start from is not finished")
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = model.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fits, strict=False)  # the classifier too, when the classes match
    return model


@torch.no_grad()
def evaluate_accuracy(model, dataset, batch_size: int = 64, device=None) -> float:
    """Top-1 accuracy of `model` on `dataset` (a PartDataset split)."""
    device = pick_device(device)
    model.eval().to(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    correct = 0
    for batch in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch["image"].to(device)).logits
        correct += (logits.argmax(1).cpu() == batch["label"]).sum().item()
    return correct / len(dataset)


@dataclass
class TrainData:
    """What a method's hooks get to see of the training: the training split, the run's seed,
    the batch size, the device, and this process's rank among `world_size` (1 on one device).

    A method that needs randomness draws it from `generator(...)`, seeded by the run's seed and
    the numbers it passes (epoch, step): nothing random has to survive a resume.
    """

    dataset: PartDataset
    seed: int
    batch_size: int
    device: torch.device
    rank: int = 0
    world_size: int = 1

    def generator(self, *salt: int) -> torch.Generator:
        digest = hashlib.sha256(repr((self.seed, *salt)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    def epoch_batches(self, epoch: int) -> tuple[list[list[int]], torch.Tensor]:
        """This rank's batches of an epoch (lists of indices) and every image's flip (n,) bool.

        One permutation and one coin per image, from a generator seeded by (seed, epoch); a
        global batch of `batch_size` is split across ranks by stride.
        """
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        batches = [order[s:s + self.batch_size][self.rank::self.world_size].tolist()
                   for s in range(0, n, self.batch_size)]
        return [b for b in batches if b], flips


def fit(cfg: TrainConfig, data: str | Path, out: str | Path, *, device: str | None = None,
        progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
        manifest: dict | None = None) -> dict:
    """Train `cfg` on the part dataset at `data` (train split), write the run to `out`.

    Resumes from `out/checkpoint.pt` when it exists with the same config. Returns the history:
    {"epochs": [{epoch, lr, loss terms..., train_acc, test_acc, seconds}], "test_acc": float}.
    on_epoch_end(epoch, record) is called after each epoch's checkpoint is written.
    `manifest`: the data set's manifest when the caller has read it (a job carries it).

    The method (`synclib.methods`) takes part through its hooks: `prepare(model, data)` once,
    `param_groups(model)` for the optimizer, `on_epoch_start(model, epoch, data)`,
    `forward(model, x, y)` and `losses(out, y, model)` each step, `after_step(model, step)`
    after each optimizer step. Its state lives in the model's buffers, so the checkpoint
    carries it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    manifest = manifest if manifest is not None else read_manifest(data)
    train_set = PartDataset(data, "train", cache=True, manifest=manifest)
    test_set = PartDataset(data, "test", cache=True, manifest=manifest) if "test" in manifest["splits"] else None
    config = {"train": cfg.to_dict(), "data": str(data),
              "fingerprint": manifest.get("fingerprints", {}).get("train")}
    cfg_path = out / "config.json"
    if cfg_path.is_file() and json.loads(cfg_path.read_text())["train"] != config["train"]:
        raise ValueError(f"{cfg_path} holds another run's config; choose a new --out directory")
    atomic_write_text(cfg_path, json.dumps(config, indent=2))

    torch.manual_seed(cfg.seed)
    tdata = TrainData(train_set, cfg.seed, cfg.batch_size, dev)
    method = get_method(cfg.method, cfg.arch, **cfg.method_params)
    model = method.prepare(_model_for(cfg, len(train_set.classes)), tdata).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(method.param_groups(model), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    milestones = lr_milestones(cfg.epochs, cfg.milestones)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    history: dict = {"epochs": [], "method_params": method.params}
    start = 0
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = json.loads(state["history"])
        start = state["epoch"]

    steps_per_epoch = -(-len(train_set) // cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        batches, flips = tdata.epoch_batches(epoch)
        method.on_epoch_start(model, epoch, tdata)
        model.train()
        sums: dict[str, float] = {}
        correct, seen = 0, 0
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                                             generator=torch.Generator())  # leaves the global RNG alone
        bar = tqdm(loader, desc=f"{cfg.method}/{cfg.arch} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for i, batch in enumerate(bar):
            x, y = batch["image"], batch["label"]
            if cfg.flip:
                f = flips[batch["index"]]
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
            x, y = x.to(dev), y.to(dev)
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out_ = method.forward(model, x, y)
            terms = method.losses(out_, y, model)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1} ({ {k: v.item() for k, v in terms.items()} }); "
                    "lower the learning rate or the λ of the method"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.after_step(model, epoch * steps_per_epoch + i)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(y)
            correct += (out_.logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
        record.update({k: v / seen for k, v in sums.items()})
        record["loss"] = sum(v / seen for v in sums.values())
        record["train_acc"] = correct / seen
        sched.step()
        if test_set is not None:
            record["test_acc"] = evaluate_accuracy(model, test_set, device=dev)
        record["seconds"] = time.perf_counter() - t0
        history["epochs"].append(record)
        _save({"model": model.state_dict(), "optimizer": opt.state_dict(),
               "scheduler": sched.state_dict(), "epoch": epoch + 1,
               "history": json.dumps(history)}, ckpt)
        if progress:
            tqdm.write(f"[{cfg.method}/{cfg.arch}] epoch {epoch + 1}/{cfg.epochs} "
                       f"loss {record['loss']:.3f} train {record['train_acc']:.3f} "
                       f"test {record.get('test_acc', float('nan')):.3f} ({record['seconds']:.1f} s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    if history["epochs"]:
        history["test_acc"] = history["epochs"][-1].get("test_acc")
    model_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _save(model_state, out / "model.pt")
    atomic_write_text(out / "history.json", json.dumps(history, indent=2))
    return history


def load_run(run_dir: str | Path, device: str | None = None):
    """(model in eval mode, TrainConfig, num_classes) of a finished run."""
    run_dir = Path(run_dir)
    for f in ("config.json", "model.pt"):
        if not (run_dir / f).is_file():
            raise FileNotFoundError(f"{run_dir / f} not found: is {run_dir} a finished run? "
                                    "(train it with `synclib train ... --out DIR`)")
    config = json.loads((run_dir / "config.json").read_text())
    cfg = TrainConfig.from_dict(config["train"])
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    num_classes = state["fc.weight"].shape[0]
    model = get_method(cfg.method, cfg.arch, **cfg.method_params).prepare(
        build_model(cfg.arch, num_classes, cfg.width), None)
    model.load_state_dict(state)
    return model.eval().to(pick_device(device)), cfg, num_classes
