"""Decoup's remaining differences from its authors' code, measured on the comparison methods'
short CPU setting (the Ambiguities page, section 5): a PartWorld of 480 training and 240 test
images at 64² (swap 0.03, occlusion 0.1, seed 0), VGG16-BN at 1/8 width, batch 16, 5 epochs of
each variant from one baseline trained 25 epochs, seed 0, one thread.

    PYTHONPATH=. python -m bench.decoup_placement --work DIR [--out bench/results]

trains what DIR lacks (runs are kept there and reused) and writes
`<out>/decoup-placement.json`: per variant, its method parameters, test accuracy and Table I's
four metrics, and the date. The Ambiguities page reads that file."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from synclib.data import PartDataset
from synclib.data.partworld import generate
from synclib.evaluate import evaluate
from synclib.files import atomic_write_text
from synclib.train import TrainConfig, fit, load_run

#: name -> (method, method parameters): the compared paper's placement (ours), the authors'
#: sparsity weight, the authors' placement (every conv gated), and both (their ImageNet run).
VARIANTS = {
    "baseline, 5 more epochs": ("baseline", {}),
    "Decoup at the target layer, λ_s 0 (ours)": ("decoup", {}),
    "Decoup at the target layer, λ_s 0.01": ("decoup", {"lambda_s": 0.01}),
    "Decoup on every conv, λ_s 0": ("decoup", {"layers": "all"}),
    "Decoup on every conv, λ_s 0.01 (their code)": ("decoup", {"layers": "all", "lambda_s": 0.01}),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="where the data set and the runs are kept")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = Path(args.work)
    data = root / "pw"
    generate(data, n_train=480, n_test=240, size=64, seed=0, progress=False,
             difficulty={"swap": 0.03, "occlusion": 0.1})
    common = dict(arch="vgg16_bn", width=0.125, batch_size=16, seed=0)
    base = root / "base"
    if not (base / "model.pt").is_file():
        fit(TrainConfig(method="baseline", epochs=25, **common), data, base, progress=False)
    test = PartDataset(data, "test")
    rows = []
    for i, (name, (method, params)) in enumerate(VARIANTS.items()):
        d = root / f"variant{i}"
        if not (d / "model.pt").is_file():
            fit(TrainConfig(method=method, epochs=5, init_from=str(base), method_params=params, **common), data, d,
                progress=False)
        model, _, _ = load_run(d)
        rows.append({"variant": name, "method": method, "params": params, **evaluate(model, test, test, 0.3, 0.2)})
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    out = Path(args.out) / "decoup-placement.json"
    atomic_write_text(out, json.dumps({"measured": datetime.date.today().isoformat(), "test_images": len(test),
                                       "rows": rows}, indent=1, ensure_ascii=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
