"""What compiling ours' losses costs and saves over one whole run of the gpu profile:
`PYTHONPATH=. python -m bench.compile_cost --out DIR [--device cuda]`.

`python -m bench --compile-losses` times one training step after warm-up; a run also pays
for the compilation, once per process. Here, for VGG16-BN (batch 32) and ResNet18 (batch 64)
at 224², full width, on random images: the steps of one gpu-profile fine-tune (its epochs of
its training images, read from configs/gpu.yaml: 250 and 125 steps), once with the losses
eager and once compiled, the compiled run's first step (where the compilation happens) timed
apart. Two processes run one after the
other: the first finds inductor's on-disk cache cold, as a build's first run of `ours` does;
the second finds it warm, as every later run does. Writes DIR/<machine>-compile-cost.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from synclib.methods import get_method
from synclib.models import build_model
from synclib.profile import read_profile

from .__main__ import _sync, _train_step, machine


def gpu_run_configs(profile: str = "gpu") -> list[tuple[str, int, int]]:
    """(arch, batch, steps of one fine-tune) for each network of the profile, from its YAML:
    its epochs of its main data set's generated training images in its batches."""
    prof = read_profile(profile)
    n_train = next(d["generate"]["n_train"] for d in prof["datasets"].values() if d.get("train"))
    epochs = prof["train"]["epochs"]
    return [(a["arch"], a["batch_size"], epochs * math.ceil(n_train / a["batch_size"])) for a in prof["archs"].values()]


def run_steps(arch: str, batch: int, steps: int, compiled: bool, device: torch.device, size: int = 224) -> dict:
    """One run's `steps` SGD steps of ours (eager or compiled losses) on random size² images."""
    torch.manual_seed(0)
    method = get_method("ours", arch)
    method.compile = compiled
    model = method.prepare(build_model(arch, 6, 1.0), None).to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, 6, (batch,), device=device)
    step = _train_step(method, model, x, y, device)
    _sync(device)
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(steps - 1):
        step()
    _sync(device)
    return {"first_step_s": first, "total_s": time.perf_counter() - t0}


def agreement(arch: str, batch: int, device: torch.device, size: int = 224) -> dict:
    """The largest differences between ours' compiled and eager terms (and their gradients) in
    fp32 on this device, on random maps of the interpretable layer's shape."""
    with torch.no_grad():
        shape = build_model(arch, 6, 1.0).eval()(torch.zeros(1, 3, size, size)).a.shape[1:]
    a = 3 * torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    method = get_method("ours", arch)
    out = {}
    for compiled in (True, False):
        method.compile = compiled
        x = a.clone().requires_grad_(True)
        terms = method.extra_losses(types.SimpleNamespace(a=x), None, None)
        sum(terms.values()).backward()
        out[compiled] = ({k: v.detach() for k, v in terms.items()}, x.grad)
    return {"max_abs_diff": {k: float((out[True][0][k] - out[False][0][k]).abs().max()) for k in out[False][0]},
            "grad_max_abs_diff": float((out[True][1] - out[False][1]).abs().max())}


def child(device: str, size: int = 224, steps: int | None = None) -> dict:
    dev = torch.device(device)
    rows = []
    for arch, batch, run_len in gpu_run_configs():
        n = steps or run_len
        run_steps(arch, batch, 3, False, dev, size)  # cuDNN's and the allocator's warm-up, on neither side
        eager = run_steps(arch, batch, n, False, dev, size)
        comp = run_steps(arch, batch, n, True, dev, size)
        rows.append({"arch": arch, "batch": batch, "size": size, "steps": n, "eager_s": eager["total_s"],
                     "compiled_s": comp["total_s"], "compiled_first_step_s": comp["first_step_s"],
                     "eager_first_step_s": eager["first_step_s"], "saved_s": eager["total_s"] - comp["total_s"],
                     "fp32_agreement": agreement(arch, batch, dev, size)})
        print(f"{arch:9s} {n} steps: eager {eager['total_s']:.2f} s, compiled {comp['total_s']:.2f} s "
              f"(its first step {comp['first_step_s']:.2f} s)", file=sys.stderr, flush=True)
    return {"machine": machine(dev), "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compile_cost", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=".")
    ap.add_argument("--size", type=int, default=224, help="image size (224: the gpu profile's)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default: a gpu-profile run's)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.device, args.size, args.steps)))
        return 0
    procs = {}
    for cache in ("cold", "warm"):
        cmd = [sys.executable, "-m", "bench.compile_cost", "--child", "--device", args.device, "--size", str(args.size)]
        out = subprocess.run(cmd + (["--steps", str(args.steps)] if args.steps else []),
                             stdout=subprocess.PIPE, text=True, check=True)
        procs[cache] = json.loads(out.stdout.strip().splitlines()[-1])
    info = procs["cold"]["machine"]
    name = (info.get("gpu") or f"cpu-{info['cores']}core").replace(" ", "-").lower()
    path = Path(args.out) / f"{name}-compile-cost.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"when": datetime.date.today().isoformat(), "machine": info,
                                "cold": procs["cold"]["rows"], "warm": procs["warm"]["rows"]}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
