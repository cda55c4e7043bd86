"""A few of the gpu profile's training runs, timed, on whatever device is there (no book):
`PYTHONPATH=. python -m bench.gpu_runs --out DIR`. Plans configs/gpu.yaml (generating its
PartWorld), trains the VGG16 and ResNet18 backbones and one `ours` fine-tune of each, and
writes their wall times and accuracies to DIR/gpu_runs.json."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from synclib.store import RunStore, train_job
from synclib.study import Study


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".")
    ap.add_argument("--families", nargs="*", default=["vgg16", "resnet18"])
    ap.add_argument("--profile", default="gpu")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    study = Study.plan(args.profile, progress=False)
    gen = time.perf_counter() - t0
    print(f"planned the {args.profile} profile, its PartWorld ready in {gen:.0f} s", flush=True)
    store, rows = RunStore(), []
    for fam in args.families:
        ours = study.find("partworld", fam, "ours", 0)
        for run in (study.run(ours.parent), ours):
            t = time.perf_counter()
            train_job(store.write_job(run, study.datasets[run.dataset].manifest), progress=False)
            hist = json.loads((store.path(run.hash) / "history.json").read_text())
            rows.append({"run": run.label, "epochs": len(hist["epochs"]), "seconds": time.perf_counter() - t,
                         "epoch_seconds": [round(e["seconds"], 2) for e in hist["epochs"]],
                         "test_acc": hist.get("test_acc")})
            print(rows[-1], flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_runs.json").write_text(json.dumps({"generate_s": gen, "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
