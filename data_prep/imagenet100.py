"""ImageNet-100 -> part dataset of labels only (images linked, not copied).

Reads (SRC, an ImageNet-style tree):
    train/<wnid>/*.JPEG, val/<wnid>/*.JPEG   the images, one folder per class
    --wnids FILE                              the 100 WordNet ids to keep, one per line, in
                                              label order
Writes (OUT): the part-dataset format with splits train/test (ImageNet's val); each image is
a symbolic link to the original (PartDataset resizes on load), or, with --resize S, a PNG
resized to S×S. No parts.

The usual ImageNet-100 of iCaRL's lineage is drawn by shuffling the 1,000 sorted wnids with
NumPy's seed 1993 and keeping the first 100; `--draw-seed 1993` writes that list to
OUT/wnids.txt when no --wnids file is given.

    python -m data_prep.imagenet100 --src ILSVRC2012 --wnids imagenet100.txt --out data/imagenet100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synclib.files import atomic_write_text

from .common import FormatError, PartWriter, open_image, require

LAYOUT = __doc__.split("Writes")[0]
EXTS = {".jpeg", ".jpg", ".png"}


def draw_wnids(train_dir: Path, seed: int = 1993, n: int = 100) -> list[str]:
    """iCaRL's convention: shuffle the sorted class folders with NumPy's `seed`, keep n."""
    wnids = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    order = np.arange(len(wnids))
    np.random.seed(seed)
    np.random.shuffle(order)
    return [wnids[i] for i in order[:n]]


def convert(src: str | Path, out: str | Path, wnids_file: str | Path | None = None,
            resize: int | None = None, draw_seed: int | None = None, progress: bool = True) -> dict:
    src = Path(src)
    train_dir = require(src / "train", LAYOUT)
    require(src / "val", LAYOUT)
    if wnids_file:
        wnids = [ln.split()[0] for ln in require(Path(wnids_file), LAYOUT).read_text().splitlines()
                 if ln.strip()]
    elif draw_seed is not None:
        wnids = draw_wnids(train_dir, draw_seed)
    else:
        raise FormatError("give --wnids FILE (the 100 classes) or --draw-seed 1993")
    if len(set(wnids)) != len(wnids):
        raise FormatError(f"{wnids_file} lists a wnid twice")
    w = PartWriter(out, "imagenet100", wnids, [], resize, has_masks=False, has_landmarks=False,
                   source={"converter": "data_prep.imagenet100", "wnids": wnids})
    if not wnids_file:  # the drawn list, beside the data set it made (in the work folder until done)
        atomic_write_text(w.out / "wnids.txt", "\n".join(wnids) + "\n")
    for split, theirs in (("train", "train"), ("test", "val")):
        for label, wnid in enumerate(tqdm(wnids, desc=f"ImageNet-100 {split}", disable=not progress)):
            folder = src / theirs / wnid
            if not folder.is_dir():
                raise FormatError(f"{folder} not found: wnid {wnid} of the list is not in {src / theirs}")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS)
            if not files:
                raise FormatError(f"{folder} holds no image ({', '.join(sorted(EXTS))}): copy the class again")
            for f in files:
                item = f"{wnid}/{f.stem}"
                if resize:
                    img = None if w.has(split, item) else open_image(f, LAYOUT)
                    w.add(split, item, label, img)
                else:
                    if not (w.out / f"images/{split}/{item}{f.suffix.lower()}").is_symlink():
                        open_image(f, LAYOUT)  # linked, not copied: but decodable, or named now
                    w.link(split, item, label, f)
    return w.finish()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--wnids", default=None)
    ap.add_argument("--resize", type=int, default=None)
    ap.add_argument("--draw-seed", type=int, default=None)
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.wnids, a.resize, a.draw_seed)


if __name__ == "__main__":
    main()
