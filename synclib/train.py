"""One training loop for every method (the method is a parameter).

The paper's schedule: SGD (lr 0.01, momentum 0.9, weight decay 5e-4), the learning rate
×0.1 at 50, 75 and 90 % of the epochs. bf16 autocast on CUDA, fp32 on the CPU; channels_last
on both (a third faster on this project's CPU). The test split is scored after the last epoch.
A checkpoint is written atomically after every epoch; a run that is killed resumes from it and
ends with the same weights as one that never stopped: each epoch's shuffling and flips come
from a generator seeded by (seed, epoch), so no random state has to survive.

RUN_DIR/ config.json, checkpoint.pt (latest epoch), model.pt (final weights), history.json
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from .data import PartDataset, collate
from .data.format import read_manifest
from .devices import pick_device
from .files import CorruptFile, atomic_write_bytes, atomic_write_text, file_lock, load_torch, read_json, remove_temp_files
from .methods import TrainData, get_method
from .models import ARCHS, build_model
from .schema import SchemaError, check_train_values

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

    def __post_init__(self):
        """Refuse what cannot train before anything is written: numbers out of range, an
        unknown method or network, a method parameter the method does not take."""

        try:
            check_train_values(dataclasses.asdict(self))
        except SchemaError as e:
            raise ValueError(f"training option {e}") from None
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {sorted(ARCHS)}")
        if not all(isinstance(f, (int, float)) and 0 < f < 1 for f in self.milestones):
            raise ValueError(f"training option milestones: fractions of the run in (0, 1), got {list(self.milestones)}")
        get_method(self.method, self.arch, **self.method_params)  # unknown method or parameter: ValueError

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
        state = load_torch(path, f"delete {path.parent} and train that run again", what="a model's weights")
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


def fit(cfg: TrainConfig, data: str | Path, out: str | Path, *, device: str | None = None,
        progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
        manifest: dict | None = None) -> dict:
    """Train `cfg` on the part dataset at `data` (train split), write the run to `out`.

    A run folder holds one run: `config.json` and every `checkpoint.pt` record its training
    config and its data's fingerprint, and a folder that holds another run's (or a checkpoint
    that records none) is refused, saying what differs, before anything is written. Resumes
    from `out/checkpoint.pt` when it is this run's. Returns the history:
    {"epochs": [{epoch, lr, loss terms..., train_acc, seconds} (+ test_acc on the last)], "test_acc": float}.
    on_epoch_end(epoch, record) is called after each epoch's checkpoint is written.
    `manifest`: the data set's manifest when the caller has read it (a job carries it).

    The method (`synclib.methods`) takes part through its hooks: `prepare(model, data)` once,
    `optimizers(model, cfg)` or else `param_groups(model)` for the optimizer,
    `on_epoch_start(model, epoch, data)` and `optimizer_index(epoch, data)`, `before_step(model,
    epoch, i)`, `forward(model, x, y)` and `losses(out, y, model)` each step, `after_step(model,
    step)` after each optimizer step, `epoch_record(model)` at each epoch's end. Its state lives
    in the model's buffers, so the checkpoint carries it; the checkpoint holds every optimizer's
    and scheduler's state (a list of them when the method owns several).
    """
    out = Path(out)
    rank, world, local_rank = _distributed()
    dev = pick_device(device)
    if world > 1:
        dev = _init_process_group(dev, local_rank)
    manifest = manifest if manifest is not None else read_manifest(data)
    # read from the splits' decoded copies (decoded once, shared by every run and evaluation), not
    # from PNGs: the same tensors, without decoding 1600 images again in each run's first epoch
    train_set = PartDataset(data, "train", cache=True, manifest=manifest, decoded=True)
    test_set = (PartDataset(data, "test", cache=True, manifest=manifest, decoded=True)
                if "test" in manifest["splits"] else None)
    config = {"train": cfg.to_dict(), "data": str(data),
              "fingerprint": manifest.get("fingerprints", {}).get("train")}
    _check_folder(out, config)  # read only: a folder of another run is refused before any write
    if rank > 0:  # rank 0 holds the folder and writes it; the others read the checkpoint it checked
        _barrier()
        return _fit(cfg, config, train_set, test_set, out, dev, _check_folder(out, config), False, None,
                    rank, world)
    out.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out):
        state = _check_folder(out, config)  # again, now that no other process writes here
        remove_temp_files(out)  # what a killed run left half-written
        cfg_path = out / "config.json"
        if not cfg_path.is_file():
            atomic_write_text(cfg_path, json.dumps(config, indent=2))
        if world > 1:
            _barrier()
        return _fit(cfg, config, train_set, test_set, out, dev, state, progress, on_epoch_end, rank, world)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _init_process_group(dev: torch.device, local_rank: int) -> torch.device:
    """Join torchrun's process group (NCCL on GPUs, gloo on the CPU); each rank on its own GPU."""

    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _identity(config: dict) -> dict:
    """What binds a run folder to its run: the training config and the training data's
    fingerprint. The run it starts from and the ImageNet checkpoint count by name (the run's
    hash, the file's name), not by where they lie, so a store mounted elsewhere resumes."""
    train = dict(config.get("train", {}))
    for k in ("init_from", "pretrained"):
        if train.get(k):
            train[k] = Path(train[k]).name
    return {"train": train, "fingerprint": config.get("fingerprint")}


def _differences(old: dict, new: dict) -> str:
    a, b = _identity(old), _identity(new)
    out = [f"{k}: {a['train'].get(k)!r} there, {b['train'].get(k)!r} now"
           for k in sorted(set(a["train"]) | set(b["train"])) if a["train"].get(k) != b["train"].get(k)]
    if a["fingerprint"] != b["fingerprint"]:
        out.append(f"training data: fingerprint {str(a['fingerprint'])[:12]} ({old.get('data')}) there, "
                   f"{str(b['fingerprint'])[:12]} ({new.get('data')}) now")
    return "; ".join(out)


def _check_folder(out: Path, config: dict) -> dict | None:
    """The checkpoint to resume from (None: start afresh), after checking that everything in
    `out` belongs to the run `config` describes. Raises ValueError saying what differs."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file, not a run folder; choose another --out")
    afresh = f"give another --out, or delete {out} to start afresh"
    cfg_path, ckpt = out / "config.json", out / "checkpoint.pt"
    if cfg_path.is_file():
        there = read_json(cfg_path, f"delete {out} to train the run afresh", keys=("train",),
                          what="a run's config")
        if _identity(there) != _identity(config):
            raise ValueError(f"{cfg_path} holds another run's config ({_differences(there, config)}); {afresh}")
    elif any((out / f).is_file() for f in ("model.pt", "history.json")):
        raise ValueError(f"{out} holds a run's files but no config.json, so they cannot be told to be this run's; "
                         f"{afresh}")
    if not ckpt.is_file():
        return None
    fix = f"delete it to train the run from its first epoch (or delete {out} to start afresh)"
    state = load_torch(ckpt, fix, keys=("model", "optimizer", "scheduler", "epoch", "history"))
    if "config" not in state:
        raise ValueError(f"{ckpt} records no config (written by an older synclib, or copied from elsewhere), "
                         f"so it cannot be resumed as this run; {fix}")
    if _identity(state["config"]) != _identity(config):
        raise ValueError(f"{ckpt} is another run's checkpoint ({_differences(state['config'], config)}); {afresh}")
    return state


def _folder_lock(out: Path):
    """Hold out/.lock: two processes never train one folder at once (the second resumes
    from what the first finished, and so trains nothing more)."""
    return file_lock(out / ".lock")


def _fit(cfg: TrainConfig, config: dict, train_set, test_set, out: Path, dev, state: dict | None,
         progress: bool, on_epoch_end, rank: int = 0, world: int = 1) -> dict:
    """The loop. With world > 1 (torchrun), this process trains its share of each global batch
    (`TrainData.epoch_batches`) through DistributedDataParallel, which averages the gradients:
    the losses are per sample, so the step is that of one process on the whole batch. Batch
    norm keeps per-process statistics (no SyncBatchNorm, as torchvision's reference training
    without --sync-bn). Rank 0 alone writes checkpoints, the model and the history."""
    torch.manual_seed(cfg.seed)
    tdata = TrainData(train_set, cfg.seed, cfg.batch_size, dev, rank, world, cfg.epochs)
    method = get_method(cfg.method, cfg.arch, **cfg.method_params)
    model = method.prepare(_model_for(cfg, len(train_set.classes)), tdata).to(dev)
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on GPUs and CPUs alike
    own = method.optimizers(model, cfg)  # before DDP wraps the model: a method may freeze layers
    net = model  # what the method's forward runs: the model, or its DistributedDataParallel wrapper
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if own is None:  # the default path: one SGD and one MultiStepLR from the run's config
        groups = method.param_groups(model)
        for g in groups:  # a group may ask for a multiple of the run's learning rate
            if "lr_scale" in g:
                g["lr"] = cfg.lr * g["lr_scale"]
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        milestones = lr_milestones(cfg.epochs, cfg.milestones)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        opts, scheds = [opt], [sched]
    else:
        opts, scheds = [o for o, _ in own], [s for _, s in own]
    history: dict = {"epochs": [], "method_params": method.params}
    start = 0
    ckpt = out / "checkpoint.pt"
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            _load_states(opts, state["optimizer"])
            _load_states(scheds, state["scheduler"])
            history = json.loads(state["history"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise CorruptFile(ckpt, f"does not fit this run's model and optimizer ({type(e).__name__}: {e})",
                              "delete it to train the run from its first epoch") from None
        start = int(state["epoch"])

    steps_per_epoch = -(-len(train_set) // cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        batches, flips = tdata.epoch_batches(epoch)
        method.on_epoch_start(model, epoch, tdata)
        active = method.optimizer_index(epoch, tdata)  # the optimizer (and scheduler) of this epoch
        model.train()
        sums: dict[str, float] = {}
        correct, seen = 0, 0
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                                             generator=torch.Generator())  # leaves the global RNG alone
        bar = tqdm(loader, desc=f"{cfg.method}/{cfg.arch} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False, unit="batch")
        for i, batch in enumerate(bar):
            method.before_step(model, epoch, i)
            x, y = batch["image"], batch["label"]
            if cfg.flip:
                f = flips[batch["index"]]
                x = torch.where(f.view(-1, 1, 1, 1), x.flip(-1), x)
            x, y = x.to(dev), y.to(dev)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                out_ = method.forward(net, x, y)
            terms = method.losses(out_, y, model)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1} ({ {k: v.item() for k, v in terms.items()} }); "
                    "lower the learning rate or the λ of the method"
                )
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            opts[active].step()
            method.after_step(model, epoch * steps_per_epoch + i)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(y)
            correct += (out_.logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if world > 1:  # the epoch's sums over every process's samples
            sums, correct, seen = _all_reduce_sums(sums, correct, seen, dev)
        record = {"epoch": epoch + 1, "lr": opts[active].param_groups[0]["lr"]}
        record.update({k: v / seen for k, v in sums.items()})
        record["loss"] = sum(v / seen for v in sums.values())
        record["train_acc"] = correct / seen
        record.update(method.epoch_record(model))
        scheds[active].step()
        if test_set is not None and rank == 0 and epoch == cfg.epochs - 1:  # the run's accuracy, once
            record["test_acc"] = evaluate_accuracy(model, test_set, device=dev)
        record["seconds"] = time.perf_counter() - t0
        history["epochs"].append(record)
        if rank == 0:
            _save({"model": model.state_dict(), "optimizer": _states(opts),
                   "scheduler": _states(scheds), "epoch": epoch + 1,
                   "history": json.dumps(history), "config": config}, ckpt)
        if world > 1:
            _barrier()  # no process runs ahead of the checkpoint it would resume from
        if progress:
            tqdm.write(f"[{cfg.method}/{cfg.arch}] epoch {epoch + 1}/{cfg.epochs} "
                       f"loss {record['loss']:.3f} train {record['train_acc']:.3f} "
                       f"test {record.get('test_acc', float('nan')):.3f} ({record['seconds']:.1f} s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    if history["epochs"]:
        history["test_acc"] = history["epochs"][-1].get("test_acc")
    if rank == 0:
        model_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _save(model_state, out / "model.pt")
        atomic_write_text(out / "history.json", json.dumps(history, indent=2))
    if world > 1:
        _barrier()
    return history


def _states(objs: list) -> dict | list[dict]:
    """The state of the run's optimizers (or schedulers) for the checkpoint: one state dict on
    the default path (the format a single optimizer always had), a list when a method has several."""
    return objs[0].state_dict() if len(objs) == 1 else [o.state_dict() for o in objs]


def _load_states(objs: list, saved) -> None:
    """Restore what `_states` saved; a checkpoint with another number of them does not fit."""
    saved = [saved] if isinstance(saved, dict) else list(saved)
    if len(saved) != len(objs):
        raise ValueError(f"{len(saved)} saved states for {len(objs)} optimizers or schedulers")
    for o, st in zip(objs, saved):
        o.load_state_dict(st)


def _all_reduce_sums(sums: dict[str, float], correct: int, seen: int, dev) -> tuple[dict[str, float], int, int]:
    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys] + [correct, seen], dtype=torch.float64,
                     device=dev if dev.type == "cuda" else "cpu")
    dist.all_reduce(t)
    vals = t.tolist()
    return dict(zip(keys, vals[:-2])), int(vals[-2]), int(vals[-1])


def load_run(run_dir: str | Path, device: str | None = None):
    """(model in eval mode, TrainConfig, num_classes) of a finished run."""
    run_dir = Path(run_dir)
    for f in ("config.json", "model.pt"):
        if not (run_dir / f).is_file():
            raise FileNotFoundError(f"{run_dir / f} not found: is {run_dir} a finished run? "
                                    "(train it with `synclib train ... --out DIR`)")
    retrain = f"delete {run_dir} and train the run again"
    config = read_json(run_dir / "config.json", retrain, keys=("train",), what="a run's config")
    try:
        cfg = TrainConfig.from_dict(config["train"])
    except (TypeError, ValueError) as e:
        raise CorruptFile(run_dir / "config.json", f"holds no valid training config ({e})", retrain) from None
    state = load_torch(run_dir / "model.pt", retrain, keys=("fc.weight",), what="a synclib model's weights")
    num_classes = state["fc.weight"].shape[0]
    model = get_method(cfg.method, cfg.arch, **cfg.method_params).prepare(
        build_model(cfg.arch, num_classes, cfg.width), None)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CorruptFile(run_dir / "model.pt", f"does not hold the weights of the network its config.json "
                                                f"describes ({e})", retrain) from None
    return model.eval().to(pick_device(device)), cfg, num_classes
