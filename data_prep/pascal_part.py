"""PASCAL-Part (VOC2010) -> part dataset, the ICNN protocol (its `getPart.m`, category by category).

Reads (SRC, the VOC2010 folder):
    JPEGImages/<name>.jpg                  VOC2010 images
    Annotations/<name>.xml                 VOC's objects: `name` and `bndbox` (1-based pixels)
    Annotations_Part/<name>.mat            PASCAL-Part: `anno.objects(i)` with `class`,
                                           `class_ind`, `mask`, and `parts(j)` with
                                           `part_name` and `mask`
    ImageSets/Main/train.txt, val.txt      VOC2010's official split (not needed with
                                           --split csgcnn)
Writes (OUT): the part-dataset format with splits train/test: one item per VOC object of the
six animal categories (bird, cat, cow, dog, horse, sheep) whose box has an area of at least
50² pixels ((xmax − xmin + 1)·(ymax − ymin + 1), ICNN's `minArea`), cropped to its VOC box.
Inside the box, every pixel of the object's class that carries one of a merged part's fine
part indices (PASCAL-Part's `part2ind`) belongs to that part (`getPart_one`); the merged parts
are painted in ICNN's order, a later one over an earlier one; the mask is resized to --size by
nearest neighbour at round(linspace(1, side, size)) (`getPart_cate`). Parts: head, torso,
front legs, back legs, tail; a bird's legs are its front legs (ICNN's third slot); cows,
sheep and horses have no tail in ICNN's protocol (their tail mask is empty). Masks only.
--split voc (default): VOC2010 train -> train, val -> test; --split csgcnn: CSGCNN's seeded
70/30 split of the annotated images.

    python -m data_prep.pascal_part --src VOCdevkit/VOC2010 --out data/voc_part
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from tqdm import tqdm

from .common import FormatError, PartWriter, converter_parser, open_image, read_lines, require

CLASSES = ["bird", "cat", "cow", "dog", "horse", "sheep"]
PARTS = ["head", "torso", "front_legs", "back_legs", "tail"]
VOC_CLASS_IND = {"bird": 3, "cat": 8, "cow": 10, "dog": 12, "horse": 13, "sheep": 17}

# PASCAL-Part's part indices (`part2ind.m`) for the six categories
_CAT = {"head": 1, "leye": 2, "reye": 3, "lear": 4, "rear": 5, "nose": 6, "torso": 7, "neck": 8,
        "lfleg": 9, "lfpa": 10, "rfleg": 11, "rfpa": 12, "lbleg": 13, "lbpa": 14, "rbleg": 15,
        "rbpa": 16, "tail": 17}
_COW = {"head": 1, "leye": 2, "reye": 3, "lear": 4, "rear": 5, "muzzle": 6, "lhorn": 7, "rhorn": 8,
        "torso": 9, "neck": 10, "lfuleg": 11, "lflleg": 12, "rfuleg": 13, "rflleg": 14, "lbuleg": 15,
        "lblleg": 16, "rbuleg": 17, "rblleg": 18, "tail": 19}
PART_INDEX = {
    "bird": {"head": 1, "leye": 2, "reye": 3, "beak": 4, "torso": 5, "neck": 6, "lwing": 7, "rwing": 8,
             "lleg": 9, "lfoot": 10, "rleg": 11, "rfoot": 12, "tail": 13},
    "cat": _CAT,
    "dog": {**_CAT, "muzzle": 20},
    "cow": _COW,
    "sheep": dict(_COW),
    "horse": {**{k: v for k, v in _COW.items() if k not in ("lhorn", "rhorn")},
              "lfho": 30, "rfho": 31, "lbho": 32, "rbho": 33},
}
# `getPart_cate`: per category, (our part, the fine part indices merged into it), in ICNN's
# painting order (a later part is painted over an earlier one)
MERGES = {
    "bird": [("head", [1, 2, 3, 4]), ("torso", [5, 6, 7, 8]), ("front_legs", [9, 10, 11, 12]), ("tail", [13])],
    "cat": [("head", [1, 2, 3, 4, 5, 6]), ("torso", [7, 8]), ("front_legs", [9, 10, 11, 12]),
            ("back_legs", [13, 14, 15, 16]), ("tail", [17])],
    "cow": [("head", [1, 2, 3, 4, 5, 6, 7, 8]), ("torso", [9, 10]), ("front_legs", [11, 12, 13, 14]),
            ("back_legs", [15, 16, 17, 18])],
    "dog": [("head", [1, 2, 3, 4, 5, 6, 20]), ("torso", [7, 8]), ("front_legs", [9, 10, 11, 12]),
            ("back_legs", [13, 14, 15, 16]), ("tail", [17])],
    "horse": [("head", [1, 2, 3, 4, 5, 6]), ("torso", [9, 10]), ("front_legs", [11, 12, 13, 14, 30, 31]),
              ("back_legs", [15, 16, 17, 18, 32, 33])],
    "sheep": [("head", [1, 2, 3, 4, 5, 6, 7, 8]), ("torso", [9, 10]), ("front_legs", [11, 12, 13, 14]),
              ("back_legs", [15, 16, 17, 18])],
}
MIN_AREA = 50 * 50
LAYOUT = __doc__.split("Writes")[0]


def merge_table() -> dict[str, dict[str, list[str]]]:
    """Per category, our part -> the fine PASCAL-Part names merged into it (for the book)."""
    out = {}
    for cls, merges in MERGES.items():
        names = {v: k for k, v in PART_INDEX[cls].items()}
        out[cls] = {part: [names[i] for i in ids] for part, ids in merges}
    return out


def _objects(path: Path) -> list:
    try:
        anno = loadmat(path, squeeze_me=True, struct_as_record=False)["anno"]
    except Exception as e:  # noqa: BLE001 - scipy raises several types on bad files
        raise FormatError(f"{path}: not a PASCAL-Part annotation ({e}); expected a .mat with "
                          "`anno.objects`") from e
    return list(np.atleast_1d(anno.objects)) if hasattr(anno, "objects") else []


def voc_objects(path: Path) -> list[tuple[str, tuple[int, int, int, int]]]:
    """(class, (xmin, ymin, xmax, ymax) 1-based inclusive) of every object of a VOC XML file."""
    require(path, LAYOUT)
    try:
        root = ET.parse(path).getroot()
        out = []
        for i, obj in enumerate(root.iter("object"), start=1):
            name = obj.findtext("name", "").strip()
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"object {i} has no bndbox")
            out.append((name, tuple(int(round(float(box.findtext(k)))) for k in ("xmin", "ymin", "xmax", "ymax"))))
    except (ET.ParseError, ValueError, TypeError) as e:
        raise FormatError(f"{path}: not a VOC annotation ({e})") from e
    return out


def label_maps(objs: list, shape: tuple[int, int], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PASCAL-Part's `mat2map`: the class map and the part-index map of an image, objects painted
    in order (a later one occludes an earlier one), each part by its `part2ind` index."""
    cls_map = np.zeros(shape, np.int32)
    part_map = np.zeros(shape, np.int32)
    for oi, obj in enumerate(objs, start=1):
        silh = np.asarray(obj.mask) > 0
        if silh.shape != shape:
            raise FormatError(f"{path}: object {oi}'s mask is {silh.shape[::-1]}, the image {shape[::-1]}")
        cls_ind = int(obj.class_ind)
        cls_map[silh] = cls_ind
        cls = next((c for c, i in VOC_CLASS_IND.items() if i == cls_ind), None)
        if cls is None:
            continue  # not an animal: its parts never carry an animal's class
        for part in np.atleast_1d(getattr(obj, "parts", [])):
            if not hasattr(part, "part_name"):
                continue
            name = str(part.part_name)
            if name not in PART_INDEX[cls]:
                raise FormatError(f"{path}: object {oi} ({cls}) has a part {name!r} that PASCAL-Part's "
                                  f"part2ind does not define for {cls}")
            part_map[np.asarray(part.mask) > 0] = PART_INDEX[cls][name]
    return cls_map, part_map


def object_mask(cls: str, box: tuple[int, int, int, int], cls_map: np.ndarray, part_map: np.ndarray,
                size: int) -> np.ndarray:
    """The (size, size) part-index mask of one object, as ICNN's `getPart_cate` computes it."""
    xmin, ymin, xmax, ymax = box
    keep = np.zeros(cls_map.shape, bool)
    keep[ymin:ymax - 1, xmin:xmax - 1] = True  # 1-based rows ymin+1..ymax-1: getPart_one zeroes the box's edges
    of_class = keep & (cls_map == VOC_CLASS_IND[cls])
    mask = np.zeros(cls_map.shape, np.uint8)
    for part, ids in MERGES[cls]:
        mask[of_class & np.isin(part_map, ids)] = PARTS.index(part) + 1
    crop = mask[ymin - 1:ymax, xmin - 1:xmax]
    return crop[np.ix_(_matlab_pick(crop.shape[0], size), _matlab_pick(crop.shape[1], size))]


def _matlab_pick(n: int, size: int) -> np.ndarray:
    """0-based rows of MATLAB's round(linspace(1, n, size)) (round half away from zero)."""
    return np.floor(np.linspace(1, n, size) + 0.5).astype(int) - 1


def convert(src: str | Path, out: str | Path, size: int = 224, split: str = "voc",
            seed: int = 0, progress: bool = True) -> dict:
    src = Path(src)
    ann_dir = require(src / "Annotations_Part", LAYOUT)
    xml_dir = require(src / "Annotations", LAYOUT)
    img_dir = require(src / "JPEGImages", LAYOUT)
    names = sorted(p.stem for p in ann_dir.glob("*.mat"))
    if not names:
        raise FormatError(f"{ann_dir} holds no .mat files. Expected layout:\n{LAYOUT}")
    if split == "voc":
        sets = {}
        for ours, theirs in (("train", "train"), ("test", "val")):
            f = src / "ImageSets" / "Main" / f"{theirs}.txt"
            sets[ours] = [ln.split()[0] for _, ln in read_lines(f, LAYOUT)]
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
                           "merges": merge_table(), "min_area": MIN_AREA})
    expected: dict[str, int] = {}
    for name in tqdm(sorted(assign), desc="PASCAL-Part", disable=not progress, unit="img"):
        objects = [(c, b) for c, b in voc_objects(xml_dir / f"{name}.xml") if c in CLASSES]
        objects = [(i, c, b) for i, (c, b) in enumerate(objects)
                   if (b[2] - b[0] + 1) * (b[3] - b[1] + 1) >= MIN_AREA]
        if not objects:
            continue
        image = open_image(img_dir / f"{name}.jpg", LAYOUT)
        mat = ann_dir / f"{name}.mat"
        cls_map, part_map = label_maps(_objects(mat), image.size[::-1], mat)
        for i, cls, box in objects:
            x0, y0, x1, y1 = box
            if not (1 <= x0 <= x1 <= image.size[0] and 1 <= y0 <= y1 <= image.size[1]):
                raise FormatError(f"{xml_dir / f'{name}.xml'}: the box {box} of a {cls} lies outside the "
                                  f"{image.size[0]}x{image.size[1]} image")
            item = f"{name}_{i}"
            expected[assign[name]] = expected.get(assign[name], 0) + 1
            crop = None if w.has(assign[name], item) else image.crop((x0 - 1, y0 - 1, x1, y1))
            w.add(assign[name], item, CLASSES.index(cls), crop, object_mask(cls, box, cls_map, part_map, size))
    if not expected:
        raise FormatError(f"{src}: no object of {CLASSES} with a box of at least {MIN_AREA} pixels")
    return w.finish(expected=expected)


def main(argv: list[str] | None = None) -> None:
    ap = converter_parser(__doc__, "the VOC2010 folder with Annotations_Part/ in it")
    ap.add_argument("--split", choices=["voc", "csgcnn"], default="voc")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.size, a.split, a.seed)


if __name__ == "__main__":
    main()
