"""PASCAL-Part (VOC2010) -> part dataset, the ICNN protocol.

Reads (SRC):
    JPEGImages/<name>.jpg                  VOC2010 images
    Annotations_Part/<name>.mat            PASCAL-Part: `anno.objects(i)` with `class`,
                                           `class_ind`, `mask`, and `parts(j)` with
                                           `part_name` and `mask`
    ImageSets/Main/train.txt, val.txt      VOC2010's official split (not needed with
                                           --split csgcnn)
Writes (OUT): the part-dataset format (see synclib.data.format) with splits train/test:
one item per object of the six animal categories (bird, cat, cow, dog, horse, sheep) whose
box (of its object mask) is at least 50×50, cropped to the box and resized to --size; the
fine parts merged into five coarse parts by PART_MAP (as ICNN's getPart.m does); masks only.
--split voc (default): VOC2010 train -> train, val -> test; --split csgcnn: CSGCNN's seeded
70/30 split of all annotated images.

    python -m data_prep.pascal_part --src VOCdevkit/VOC2010 --out data/voc_part
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat
from tqdm import tqdm

from .common import FormatError, PartWriter, require

CLASSES = ["bird", "cat", "cow", "dog", "horse", "sheep"]
PARTS = ["head", "torso", "front_legs", "back_legs", "tail"]
# coarse part -> fine PASCAL-Part names; `bird:` entries apply to birds only
PART_MAP = {
    "head": ["head", "leye", "reye", "lear", "rear", "nose", "muzzle", "beak", "lhorn", "rhorn"],
    "torso": ["torso", "neck", "bird:lwing", "bird:rwing"],
    "front_legs": ["lfleg", "lfpa", "rfleg", "rfpa", "lfho", "rfho",
                   "bird:lleg", "bird:lfoot", "bird:rleg", "bird:rfoot"],
    "back_legs": ["lbleg", "lbpa", "rbleg", "rbpa", "lbho", "rbho"],
    "tail": ["tail"],
}
MIN_SIDE = 50
LAYOUT = __doc__.split("Writes")[0]


def coarse_part(cls: str, fine: str) -> int | None:
    """Index (in PARTS) of the coarse part a fine part of class `cls` belongs to, or None."""
    for k, part in enumerate(PARTS):
        for name in PART_MAP[part]:
            if name == fine or (name.startswith("bird:") and cls == "bird" and name[5:] == fine):
                return k
    return None


def _objects(path: Path) -> list:
    try:
        anno = loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
    except Exception as e:  # noqa: BLE001 - scipy raises several types on bad files
        raise FormatError(f"{path}: not a PASCAL-Part annotation ({e}); expected a .mat with "
                          "`anno.objects`") from e
    return list(np.atleast_1d(anno.objects)) if hasattr(anno, "objects") else []


def convert(src: str | Path, out: str | Path, size: int = 224, split: str = "voc",
            seed: int = 0, progress: bool = True) -> dict:
    src = Path(src)
    ann_dir = require(src / "Annotations_Part", LAYOUT)
    img_dir = require(src / "JPEGImages", LAYOUT)
    names = sorted(p.stem for p in ann_dir.glob("*.mat"))
    if not names:
        raise FormatError(f"{ann_dir} holds no .mat files. Expected layout:\n{LAYOUT}")
    if split == "voc":
        sets = {}
        for ours, theirs in (("train", "train"), ("test", "val")):
            f = require(src / "ImageSets" / "Main" / f"{theirs}.txt", LAYOUT)
            sets[ours] = [ln.split()[0] for ln in f.read_text().splitlines() if ln.strip()]
        have = set(names)
        assign = {n: s for s, lst in sets.items() for n in lst if n in have}
    elif split == "csgcnn":
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(names))
        n_train = int(round(0.7 * len(names)))
        assign = {names[i]: ("train" if r < n_train else "test") for r, i in enumerate(perm)}
    else:
        raise ValueError(f"--split is voc or csgcnn, not {split!r}")

    w = PartWriter(out, "voc_part", CLASSES, PARTS, size, has_masks=True, has_landmarks=False,
                   source={"converter": "data_prep.pascal_part", "split": split, "seed": seed,
                           "part_map": PART_MAP, "min_side": MIN_SIDE})
    for name in tqdm(sorted(assign), desc="PASCAL-Part", disable=not progress, unit="img"):
        objs = _objects(ann_dir / f"{name}.mat")
        image = None
        for oi, obj in enumerate(objs):
            cls = str(obj.__dict__.get("class", ""))
            if cls not in CLASSES:
                continue
            omask = np.asarray(obj.mask) > 0
            rows, cols = np.nonzero(omask)
            if len(rows) == 0:
                continue
            t, b, l, r = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            if (b - t) < MIN_SIDE or (r - l) < MIN_SIDE:
                continue
            item = f"{name}_{oi}"
            mask = np.zeros(omask.shape, np.uint8)
            for part in np.atleast_1d(getattr(obj, "parts", [])):
                if not hasattr(part, "part_name"):
                    continue
                k = coarse_part(cls, str(part.part_name))
                if k is not None:
                    mask[np.asarray(part.mask) > 0] = k + 1
            crop = None
            if not w.has(assign[name], item):
                if image is None:
                    p = require(img_dir / f"{name}.jpg", LAYOUT)
                    image = Image.open(p)
                    image.load()
                    if image.size != omask.shape[::-1]:
                        raise FormatError(f"{p} is {image.size}, its annotation {omask.shape[::-1]}")
                crop = image.crop((l, t, r, b))
            w.add(assign[name], item, CLASSES.index(cls), crop, mask[t:b, l:r])
    return w.finish()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="the VOC2010 folder with Annotations_Part/ in it")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--split", choices=["voc", "csgcnn"], default="voc")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.size, a.split, a.seed)


if __name__ == "__main__":
    main()
