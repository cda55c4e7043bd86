"""`python -m bench`: what evaluation and the losses cost, beside the forward pass they serve.

For VGG16 and ResNet18 (full width, and the quick profile's narrow widths) at 112² and 224²:

- evaluation vs forward: the Table I path on the interpretable layer's maps of one batch of
  32 images (thresholds, region overlaps with 5 part masks, hits, the four metrics) against
  the forward pass that made the maps; on the CPU with one thread, as measured in the issue.
  On the CPU that path runs synclib's C kernel; its PyTorch path (a GPU's, or a machine's
  without a C compiler) is timed beside it.
  The dense path (every map upsampled, compared and intersected pixel by pixel) is timed
  beside it where it takes seconds, not minutes.
- training step with and without the losses: `ours` (L_ce + λ1 L_lac + λ2 L_sync) against
  `baseline` (L_ce), a full SGD step at the paper's batch sizes (32 for VGG16, 64 for
  ResNet18); bf16 autocast on a GPU, fp32 on the CPU. The two steps take turns, so a drift
  in the machine's speed falls on both; the two losses' forward and backward passes are also
  timed alone, on maps of the layer's shape, as a share of the baseline's step: the same
  overhead without the noise of a difference between two whole steps.

Writes bench/results/<machine>.json (committed: the book's Performance page shows every
machine's figures). Runs from the source tree with whatever torch is installed
(`PYTHONPATH=. python -m bench`), so it also runs on a GPU machine without the book's stack.

    python -m bench [--device cuda] [--quick] [--out bench/results]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
import types
from pathlib import Path

import torch

from synclib.methods import get_method
from synclib.metrics.hits import filter_thresholds, mask_hits, mask_hits_dense
from synclib.metrics.interpretability import summarize
from synclib.metrics.native import library
from synclib.models import build_model

CONFIGS = [  # (arch, width, size, label)
    ("resnet18", 1.0, 112, "ResNet18, 112²"),
    ("resnet18", 1.0, 224, "ResNet18, 224²"),
    ("vgg16", 1.0, 112, "VGG16, 112²"),
    ("vgg16", 1.0, 224, "VGG16, 224²"),
    ("resnet18", 0.25, 112, "ResNet18 ¼ width, 112² (quick)"),
    ("vgg16_bn", 0.125, 112, "VGG16-BN ⅛ width, 112² (quick)"),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` calls after `warmup` calls, in seconds."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed_interleaved(fns: dict, device: torch.device, repeats: int, warmup: int = 1) -> dict:
    """Median wall time of each fn() over `repeats` rounds, the fns taking turns within a
    round, so a drift in the machine's speed (another process, the clock) falls on all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def part_masks(b: int, k: int, size: int, seed: int = 0) -> torch.Tensor:
    """(b, k, size, size) bool: k overlapping elliptic parts per image, PartWorld-like."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.rand(b, k, 2, generator=g) * size
    r = (0.08 + 0.15 * torch.rand(b, k, 2, generator=g)) * size
    d = ((yy - c[..., 0, None, None]) / r[..., 0, None, None]) ** 2 + ((xx - c[..., 1, None, None]) / r[..., 1, None, None]) ** 2
    return d <= 1


def machine(device: torch.device) -> dict:
    d = {"torch": torch.__version__, "device": device.type, "threads": torch.get_num_threads(),
         "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    else:
        try:
            d["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return d


def _forward(model, x, device):
    @torch.no_grad()
    def forward():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return model(x).a

    return forward


def _evaluate(a, masks):
    def evaluate(hits=mask_hits):  # the Table I path on maps a: (B, N, H, W)
        t = filter_thresholds(a, 0.3)
        return summarize(hits(a, masks, t, 0.2).cpu())

    return evaluate


def _train_step(method, model, x, y, device):
    opt = torch.optim.SGD(method.param_groups(model), lr=1e-3, momentum=0.9)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = method.forward(model, x, y)
        loss = sum(method.losses(out, y, model).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_eval(device: torch.device, quick: bool) -> list[dict]:
    rows = []
    for arch, width, size, label in CONFIGS:
        if quick and size == 224:
            continue
        torch.manual_seed(0)
        model = build_model(arch, 6, width).to(device).eval()
        x = torch.rand(32, 3, size, size, device=device)
        masks = part_masks(32, 5, size).to(device)

        forward = _forward(model, x, device)
        a = forward().float()
        evaluate = _evaluate(a, masks)

        reps = 5 if device.type == "cuda" else 2
        native_used = device.type == "cpu" and library() is not None
        f = timed(forward, device, reps)
        e = timed(evaluate, device, reps)
        row = {"config": label, "arch": arch, "width": width, "size": size, "maps": list(a.shape[1:]),
               "forward_s": f, "eval_s": e, "eval_over_forward": e / f, "c_kernel": native_used}
        if native_used:  # the PyTorch path, which a GPU (or a machine without a C compiler) takes
            tp = timed(functools.partial(evaluate, functools.partial(mask_hits, native=False)), device, 1)
            row.update(torch_path_s=tp, torch_path_over_forward=tp / f)
        dense_work = a.shape[1] * size * size
        if device.type == "cuda" or dense_work <= 512 * 112 * 112:
            d = timed(functools.partial(evaluate, mask_hits_dense), device, 1, warmup=0 if device.type == "cpu" else 1)
            row.update(dense_eval_s=d, dense_over_forward=d / f)
            fast = mask_hits(a, masks, filter_thresholds(a, 0.3), 0.2)
            dense = mask_hits_dense(a, masks, filter_thresholds(a, 0.3), 0.2)
            row["hits_differing"] = [int((fast != dense).sum()), fast.numel()]  # rounding ties at the threshold
        rows.append(row)
        print(f"eval   {label:34s} maps {tuple(a.shape[1:])}  forward {f:.4f} s  eval {e:.4f} s  "
              f"ratio {e / f:.3f}" + (f"  (PyTorch path {row['torch_path_over_forward']:.2f})" if native_used else "")
              + (f"  (dense {row['dense_over_forward']:.2f})" if "dense_eval_s" in row else ""),
              flush=True)
    return rows


def _losses_alone(arch, width, size, batch, device):
    """L_lac and L_sync, forward and backward, on maps of the interpretable layer's shape: the
    part of ours' step that the baseline's lacks, timed without the noise of two whole steps."""
    method = get_method("ours", arch)
    method.compile = False  # the eager losses: what the compiled ones are measured against
    with torch.no_grad():
        shape = build_model(arch, 6, width).eval()(torch.zeros(1, 3, size, size)).a.shape[1:]
    a = torch.randn(batch, *shape, device=device, requires_grad=True)
    out = types.SimpleNamespace(a=a)

    def losses():
        sum(method.extra_losses(out, None, None).values()).backward()

    return losses


def bench_train(device: torch.device, quick: bool, compiled: bool = False) -> list[dict]:
    rows = []
    for arch, width, size, label in CONFIGS[:4]:
        if quick and size == 224:
            continue
        batch = 64 if arch.startswith("resnet") else 32
        x = torch.rand(batch, 3, size, size, device=device)
        y = torch.randint(0, 6, (batch,), device=device)
        steps = {}
        for name in ("baseline", "ours") + (("ours_compiled",) if compiled else ()):
            torch.manual_seed(0)
            method = get_method(name.removesuffix("_compiled"), arch)
            if name.startswith("ours"):  # ours' own compiled path (its default on CUDA), or eager
                method.compile = name == "ours_compiled"
            model = method.prepare(build_model(arch, 6, width), None).to(device).train()
            if device.type == "cuda":
                model = model.to(memory_format=torch.channels_last)
            steps[name] = _train_step(method, model, x, y, device)
        reps = 20 if device.type == "cuda" else (3 if size == 224 else 5)
        times = timed_interleaved(steps, device, reps, warmup=3 if device.type == "cuda" else 1)
        over = (times["ours"] - times["baseline"]) / times["baseline"]
        losses = timed(_losses_alone(arch, width, size, batch, device), device, reps)
        rows.append({"config": label, "arch": arch, "size": size, "batch": batch, "baseline_step_s": times["baseline"],
                     "ours_step_s": times["ours"], "loss_overhead": over,
                     "losses_alone_s": losses, "losses_alone_over_step": losses / times["baseline"],
                     "images_per_s_baseline": batch / times["baseline"]})
        if compiled:
            rows[-1].update(ours_compiled_step_s=times["ours_compiled"],
                            compiled_loss_overhead=(times["ours_compiled"] - times["baseline"]) / times["baseline"])
        print(f"train  {label:34s} batch {batch}  baseline {times['baseline']:.4f} s  ours {times['ours']:.4f} s  "
              f"overhead {100 * over:+.1f} %  (the losses alone: {100 * losses / times['baseline']:.1f} % of a step)",
              flush=True)
        if compiled:
            print(f"       {label}: ours with compiled losses {times['ours_compiled']:.4f} s  overhead "
                  f"{100 * rows[-1]['compiled_loss_overhead']:+.1f} %", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="112² only (a minute on the CPU)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default=None, help="the results file's name (default: the machine's)")
    ap.add_argument("--train-only", action="store_true", help="only the training steps")
    ap.add_argument("--compile-losses", action="store_true",
                    help="also time `ours` with its two losses compiled (one fp32 graph outside autocast: "
                         "what training runs on CUDA by default); `ours` is timed eager")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)  # evaluation vs forward on one thread, as the issue measured
    info = machine(device)
    print(f"bench on {info}", flush=True)
    t0 = time.perf_counter()
    ev = [] if args.train_only else bench_eval(device, args.quick)
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)  # training steps on every core
    tr = bench_train(device, args.quick, args.compile_losses)
    name = args.name or (info.get("gpu") or f"cpu-{info['cores']}core").replace(" ", "-").lower()
    if args.quick and not args.name:
        name += "-quick"  # 112² only: never in place of the machine's full figures
    out = Path(args.out) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "quick": args.quick, "seconds": round(time.perf_counter() - t0, 1),
              "when": time.strftime("%Y-%m-%d"), "eval": ev, "train": tr}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"wrote {out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
