"""A few of the gpu profile's training runs, timed, on whatever device is there (no book):
`PYTHONPATH=. python -m bench.gpu_runs --out DIR [--methods ...] [--jobs N]`. Plans
configs/gpu.yaml (generating its PartWorld), trains the VGG16 and ResNet18 backbones and a
seed-0 fine-tune of each method named (default: ours), and writes their times and accuracies
to DIR/<machine>-gpu-runs.json. `--jobs 1` trains them one after another in this process;
`--jobs N` runs them as `synclib reproduce --jobs N` does (N processes at once, each
fine-tune once its backbone is done) and records the wall time of the whole batch too, the
date, and the PartWorld difficulty the runs trained on (the book marks figures whose data is
not the profile's current one).

`--all` plans every run of the profile (the whole book's training, all seeds and the
sensitivity sweep) instead of seed 0 of the methods named. `--collect --wall-s S` trains
nothing: it reports the runs of that plan already in the store, for a batch that a time limit
stopped (`timeout S python -m bench.gpu_runs --all ...`), so a device session with less time
than the whole profile still measures how far it got and at what rate."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from synclib.executors import LocalExecutor
from synclib.store import RunStore, train_job
from synclib.study import Study


def _row(store: RunStore, run, seconds: float | None = None) -> dict:
    hist = json.loads((store.path(run.hash) / "history.json").read_text())
    epochs = [round(e["seconds"], 2) for e in hist["epochs"]]
    return {"run": run.label, "epochs": len(epochs), "seconds": seconds if seconds is not None else sum(epochs),
            "epoch_seconds": epochs, "test_acc": hist.get("test_acc")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_runs", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".")
    ap.add_argument("--families", nargs="*", default=["vgg16", "resnet18"])
    ap.add_argument("--methods", nargs="*", default=["ours"])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--profile", default="gpu")
    ap.add_argument("--name", default=None, help="the results file's name (default: the GPU's, else the CPU's)")
    ap.add_argument("--all", action="store_true", help="every run of the profile, not seed 0 of --methods")
    ap.add_argument("--collect", action="store_true", help="train nothing; report the planned runs already done")
    ap.add_argument("--wall-s", type=float, default=None, help="with --collect: the stopped batch's wall time")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    study = Study.plan(args.profile, progress=False)
    gen = time.perf_counter() - t0
    print(f"planned the {args.profile} profile, its PartWorld ready in {gen:.0f} s", flush=True)
    store, rows, runs = RunStore(), [], []
    ds = study.main_dataset
    for fam in ([] if args.all else args.families):
        for m in args.methods:
            if not study.supports(m, ds, fam):
                print(f"{m} is not run on {fam} in this profile: left out", flush=True)
                continue
            run = study.find(ds, fam, m, 0)
            runs += [r for r in (study.run(run.parent), run) if r not in runs]
    if args.all:
        runs = study.runs_for(*study.artifacts)
    t1 = time.perf_counter()
    if args.collect:
        rows = [_row(store, r) for r in runs if store.is_done(r.hash)]
        failed = []
    elif args.jobs == 1:
        for run in runs:
            t = time.perf_counter()
            train_job(store.write_job(run, study.datasets[run.dataset].manifest), progress=False)
            rows.append(_row(store, run, time.perf_counter() - t))
            print(rows[-1], flush=True)
        failed = []
    else:
        failed = LocalExecutor(args.jobs).run(study, runs, store)
        rows = [_row(store, r) for r in runs if store.is_done(r.hash)]
        for r in rows:
            print(r, flush=True)
    wall = args.wall_s if args.collect else time.perf_counter() - t1
    print(f"{len(rows)} of {len(runs)} planned runs done in {wall or 0:.0f} s of wall time, {args.jobs} at a time; "
          f"failed: {failed or 'none'}", flush=True)
    name = args.name or (torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu-{os.cpu_count()}core")
    suffix = "-all" if args.all else ""
    out = Path(args.out) / f"{name.replace(' ', '-').lower()}-gpu-runs{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    difficulty = study.datasets[ds].spec.get("generate", {}).get("difficulty") if ds else None
    out.write_text(json.dumps({"profile": args.profile, "when": datetime.date.today().isoformat(),
                               "difficulty": difficulty, "generate_s": gen, "jobs": args.jobs, "wall_s": wall,
                               "planned": len(runs), "done": len(rows), "stopped": bool(args.collect) and len(rows) < len(runs),
                               "failed": failed, "runs": rows}, indent=2))
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
