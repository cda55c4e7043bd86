"""`python -m bench.decoded`: one run's evaluation (the Table I and II path) reading the test
split's files against reading its decoded copy, on a profile's main data set.

Three timings, each the median of `--repeat` evaluations in this process:
- files: every evaluation decodes the split's PNG images and masks again (before the copy);
- decoded, first: the first evaluation that asks for the copy, which decodes the split once and
  writes it (what the first page of a build pays);
- decoded: every later evaluation, in any process, reads the memory-mapped copy.
The evaluation itself (the forward pass, the hits, the metrics) is the same in all three, so the
difference is the decoding. Writes bench/results/<machine>-decoded.json.

    python -m bench.decoded --profile quick [--arch vgg16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch

from synclib.data import PartDataset
from synclib.evaluate import evaluate
from synclib.files import atomic_write_text
from synclib.store import RunStore
from synclib.study import Study
from synclib.train import load_run


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.decoded", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--arch", default="vgg16", help="the paper's architecture (a key of the profile's archs)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    study = Study.plan(args.profile)
    ds = study.datasets[study.main_dataset]
    run = study.find_row(ds.name, args.arch, "baseline")
    store = RunStore()
    store.ensure(study, run)
    model, _, _ = load_run(store.path(run.hash))
    top, phi = ds.spec.get("top", 0.3), ds.spec.get("phi", 0.2)

    def once(decoded: bool) -> None:
        test = PartDataset(ds.root, "test", manifest=ds.manifest, decoded=decoded)
        evaluate(model, test, test, top, phi)

    files = [_timed(lambda: once(False)) for _ in range(args.repeat)]
    folder = PartDataset(ds.root, "test", manifest=ds.manifest).decoded_folder()
    shutil.rmtree(folder, ignore_errors=True)  # the first decoded evaluation makes the copy
    first = _timed(lambda: once(True))
    again = [_timed(lambda: once(True)) for _ in range(args.repeat)]
    out = {"profile": study.name, "arch": args.arch, "run": run.hash, "images": ds.manifest["splits"]["test"],
           "image_size": ds.manifest["image_size"], "threads": 1, "cpu": platform.processor() or platform.machine(),
           "date": time.strftime("%Y-%m-%d"),
           "files_s": round(statistics.median(files), 3), "decoded_first_s": round(first, 3),
           "decoded_s": round(statistics.median(again), 3)}
    name = f"{'cpu' if not torch.cuda.is_available() else 'gpu'}-{torch.get_num_threads()}thread-decoded.json"
    atomic_write_text(Path(args.out) / name, json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
