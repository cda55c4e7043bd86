"""Calibrate PartWorld's difficulty on the baseline's test accuracy alone.

For a difficulty setting, generate the quick profile's PartWorld, train each backbone as the
quick profile does (the baseline for `pretrain.epochs`, then the baseline fine-tuned for
`train.epochs` from it, once per seed of the profile) and print the baseline's test accuracy,
per seed and its mean. Threads as `make book` gives each run (SYNCLIB_THREADS, default 1:
two jobs on two cores), since this small training is not bitwise the same across thread
counts, and its outcome differs by more than the target's width. No other method is trained
and no claim is looked at: the target is the paper's VOC Part baseline range, 85-95 %.

    python -m bench.calibrate_partworld --swap 0.1 --texture-mix 0.2 --occlusion 0.3 --clutter 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from synclib.data.partworld import generate
from synclib.profile import profile_path
from synclib.study import load_profile
from synclib.train import TrainConfig, fit


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--swap", type=float, default=0.0)
    ap.add_argument("--texture-mix", type=float, default=0.0)
    ap.add_argument("--occlusion", type=float, default=0.0)
    ap.add_argument("--clutter", type=int, default=0)
    ap.add_argument("--work", default="/tmp/pw-calibration")
    ap.add_argument("--archs", nargs="*", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("SYNCLIB_THREADS", "1")))
    prof = load_profile(profile_path(args.profile))
    ds = next(d for d in prof["datasets"].values() if d.get("kind") == "partworld")
    gen = {k: v for k, v in ds["generate"].items() if k != "difficulty"}
    diff = {"swap": args.swap, "texture_mix": args.texture_mix, "occlusion": args.occlusion, "clutter": args.clutter}
    tag = "-".join(f"{k}{v}" for k, v in diff.items())
    root = Path(args.work) / f"{tag}-t{os.environ.get('SYNCLIB_THREADS', '1')}"
    t0 = time.perf_counter()
    generate(root / "data", progress=False, difficulty=diff, **gen)
    result = {"difficulty": diff, "generate_s": round(time.perf_counter() - t0, 1)}
    for fam in args.archs or list(prof["archs"]):
        a, t = prof["archs"][fam], prof["train"]
        common = dict(arch=a["arch"], width=float(a.get("width", 1.0)), batch_size=int(a["batch_size"]),
                      lr=float(t["lr"]), momentum=float(t["momentum"]), weight_decay=float(t["weight_decay"]))
        t0 = time.perf_counter()
        bb = fit(TrainConfig(method="baseline", epochs=int(prof["pretrain"]["epochs"]), seed=0, **common),
                 root / "data", root / f"{fam}-backbone", progress=False)
        accs = []
        for seed in prof["seeds"]:
            ft = fit(TrainConfig(method="baseline", epochs=int(t["epochs"]), seed=int(seed),
                                 init_from=str(root / f"{fam}-backbone"), **common),
                     root / "data", root / f"{fam}-baseline-s{seed}", progress=False)
            accs.append(ft["test_acc"])
        result[fam] = {"backbone_test": bb["test_acc"], "baseline_test": accs,
                       "baseline_mean": sum(accs) / len(accs), "seconds": round(time.perf_counter() - t0, 1),
                       "threads": torch.get_num_threads()}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
