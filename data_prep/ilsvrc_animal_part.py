"""ILSVRC 2013 DET Animal-Part (ICNN's layout) -> part dataset with landmarks.

Reads (SRC), for each of the 30 WordNet ids in WNIDS that is present:
    <wnid>_obj/img/img/%05d.jpg      the images, numbered from 1
    <wnid>_obj/img/data.mat          MATLAB v7.3 (HDF5): samples(i).obj.bndbox.{xmin,ymin,xmax,ymax}
    <wnid>/truth_part01.mat          MATLAB v7.3: truth(i).pHW_center, the head as (h, w)
                                     relative to the box (1-based pixels), empty if unannotated
    <wnid>/truth_part02.mat          the same for the frontal legs (absent for some categories)
Writes (OUT): the part-dataset format; each object cropped to its box and resized to
--size; landmarks head and front_legs normalized to the crop (invisible where not
annotated). Splits: train/test, a seeded 80/20 split of each category's images (the layout
has no split files), for classification; and parts, every image with at least one annotated
part (from train and test alike: the annotation is sparse, so, as in the paper, all of it is
used for the interpretability evaluation). No masks.

    python -m data_prep.ilsvrc_animal_part --src ILSVRC_animal_part --out data/ilsvrc_animal_part
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .common import FormatError, PartWriter, require

WNIDS = ["n01443537", "n01503061", "n01639765", "n01662784", "n01674464", "n01882714",
         "n01982650", "n02084071", "n02118333", "n02121808", "n02129165", "n02129604",
         "n02131653", "n02324045", "n02342885", "n02355227", "n02374451", "n02391049",
         "n02395003", "n02398521", "n02402425", "n02411705", "n02419796", "n02437136",
         "n02444819", "n02454379", "n02484322", "n02503517", "n02509815", "n02510455"]
PARTS = ["head", "front_legs"]
LAYOUT = __doc__.split("Writes")[0]


def _h5(path: Path):
    import h5py

    require(path, LAYOUT)
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise FormatError(f"{path}: not a MATLAB v7.3 (HDF5) file ({e})") from e


def _deref(f, x):
    """Follow MATLAB v7.3 object references until a group or a plain dataset."""
    import h5py

    while isinstance(x, h5py.Dataset) and x.dtype == h5py.ref_dtype:
        x = f[x[()].flat[0]]
    return x


def _field_refs(f, group_path: str, field: str, path: Path) -> list:
    """The references of field `field` of the struct array at `group_path`, in order."""
    try:
        ds = f[group_path][field]
    except KeyError as e:
        raise FormatError(f"{path}: no `{group_path}.{field}` ({e})") from e
    return list(np.asarray(ds[()]).flat)


def _value(f, node) -> np.ndarray | None:
    """A numeric MATLAB array, or None when it is empty (MATLAB_empty)."""
    import h5py

    if isinstance(node, h5py.Reference):
        node = f[node]
    node = _deref(f, node)
    if node.attrs.get("MATLAB_empty", 0):
        return None
    return np.asarray(node[()], dtype=np.float64).ravel()


def read_boxes(path: Path) -> list[tuple[float, float, float, float]]:
    """(xmin, ymin, xmax, ymax) of samples(i).obj.bndbox, i = 1..n."""
    with _h5(path) as f:
        boxes = []
        for ref in _field_refs(f, "samples", "obj", path):
            obj = _deref(f, f[ref])
            bb = _deref(f, obj["bndbox"])
            try:
                boxes.append(tuple(float(_value(f, bb[k])[0]) for k in ("xmin", "ymin", "xmax", "ymax")))
            except (KeyError, TypeError) as e:
                raise FormatError(f"{path}: a bndbox lacks xmin/ymin/xmax/ymax ({e})") from e
        return boxes


def read_centres(path: Path) -> list[np.ndarray | None]:
    """truth(i).pHW_center as (h, w), or None where it is empty."""
    with _h5(path) as f:
        return [_value(f, ref) for ref in _field_refs(f, "truth", "pHW_center", path)]


def convert(src: str | Path, out: str | Path, size: int = 224, seed: int = 0,
            progress: bool = True) -> dict:
    src = Path(src)
    wnids = [w for w in WNIDS if (src / f"{w}_obj").is_dir()]
    if not wnids:
        raise FormatError(f"{src} holds none of the 30 categories (e.g. {WNIDS[0]}_obj/). "
                          f"Expected layout:\n{LAYOUT}")
    w = PartWriter(out, "ilsvrc_animal_part", wnids, PARTS, size, has_masks=False,
                   has_landmarks=True, source={"converter": "data_prep.ilsvrc_animal_part",
                                               "seed": seed, "test_fraction": 0.2})
    for label, wnid in enumerate(tqdm(wnids, desc="ILSVRC Animal-Part", disable=not progress)):
        boxes = read_boxes(src / f"{wnid}_obj" / "img" / "data.mat")
        centres = []
        for k in range(len(PARTS)):
            p = src / wnid / f"truth_part{k + 1:02d}.mat"
            c = read_centres(p) if p.is_file() else [None] * len(boxes)
            if len(c) != len(boxes):
                raise FormatError(f"{p} has {len(c)} entries, {wnid}_obj/img/data.mat {len(boxes)}")
            centres.append(c)
        perm = np.random.default_rng([seed, label]).permutation(len(boxes))
        is_test = np.zeros(len(boxes), bool)
        is_test[perm[: int(round(0.2 * len(boxes)))]] = True
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            bw, bh = x1 - x0 + 1, y1 - y0 + 1
            lms = []
            for k in range(len(PARTS)):
                c = centres[k][i]
                lms.append((0.0, 0.0, 0.0) if c is None else
                           ((c[1] - 0.5) / bw, (c[0] - 0.5) / bh, 1.0))
            item = f"{wnid}_{i + 1:05d}"
            splits = ["test" if is_test[i] else "train"] + (["parts"] if any(v for _, _, v in lms) else [])
            for sp in splits:
                crop = None
                if not w.has(sp, item):
                    p = require(src / f"{wnid}_obj" / "img" / "img" / f"{i + 1:05d}.jpg", LAYOUT)
                    crop = Image.open(p).convert("RGB").crop((int(x0) - 1, int(y0) - 1, int(x1), int(y1)))
                w.add(sp, item, label, crop, None, lms)
    return w.finish()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.size, a.seed)


if __name__ == "__main__":
    main()
