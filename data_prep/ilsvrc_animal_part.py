"""ILSVRC 2013 DET Animal-Part -> part dataset with landmarks, ICNN's protocol.

The data set is two repositories, whose folders SRC must combine:
    <wnid>_obj/img/img/%05d.jpg      zqs1022/detanimalpart: the whole ILSVRC images of a
                                     category, numbered from 1
    <wnid>_obj/img/data.mat          zqs1022/detanimalpart: `samples(i).obj.bndbox.{xmin,
                                     ymin, xmax, ymax}`, one per image (1-based pixels); the
                                     image list (MATLAB 7.3, or 5)
    <wnid>/truth_part01.mat          ICNN's code/data_input/data_input_DET-2015-subset-
                                     ILSVRC2013train/<wnid>/: `truth(i).pHW_center`, the head,
                                     2×n as rows (h, w) in pixels of the object's box resized
                                     to 224×224; empty where not annotated; n > 1: several
                                     instances (MATLAB 7.3 or 5: both occur)
    <wnid>/truth_part02.mat          the same for the front legs (absent for some categories)
Writes (OUT): the part-dataset format; each object cropped to its box (clipped to the image,
as ICNN's `getI.m`) and resized to --size; landmarks head and front_legs at (w/224, h/224),
normalized to the crop; invisible where not annotated, and where an entry has several
instances (ICNN's `getDistSqrtVar.m` uses none of them). Objects whose box has an area under
50² pixels are dropped (`readAnnotation.m`). Splits: train, ICNN's 90 % of each category
(`getImdb.m`: images round(linspace(1, n, round(0.9 n)))), test, the other 10 %; and parts,
every kept image with at least one annotated part (train and test alike: the annotation is
sparse, so, as in the paper, all of it is used for the interpretability evaluation). No masks.

    python -m data_prep.ilsvrc_animal_part --src ILSVRC_animal_part --out data/ilsvrc_animal_part
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from .common import FormatError, PartWriter, converter_parser, open_image, require

WNIDS = ["n01443537", "n01503061", "n01639765", "n01662784", "n01674464", "n01882714",
         "n01982650", "n02084071", "n02118333", "n02121808", "n02129165", "n02129604",
         "n02131653", "n02324045", "n02342885", "n02355227", "n02374451", "n02391049",
         "n02395003", "n02398521", "n02402425", "n02411705", "n02419796", "n02437136",
         "n02444819", "n02454379", "n02484322", "n02503517", "n02509815", "n02510455"]
PARTS = ["head", "front_legs"]
CROP = 224  # the side of the resized box that pHW_center is measured in
MIN_AREA = 50 * 50
TRAIN_RATE = 0.9
LAYOUT = __doc__.split("Writes")[0]


# ---------------------------------------------------------------- MATLAB files, both versions
def mat_version(path: Path) -> str:
    """'7.3' (HDF5) or '5' from a MAT-file's header; a FormatError for anything else."""
    require(path, LAYOUT)
    head = Path(path).read_bytes()[:128]
    if head.startswith(b"MATLAB 7.3"):
        return "7.3"
    if head.startswith(b"MATLAB 5.0"):
        return "5"
    raise FormatError(f"{path}: not a MATLAB file (neither v5 nor v7.3: the header reads {head[:20]!r}); "
                      "copy it again from its repository")


def _struct_field_v5(path: Path, var: str, field: str) -> list:
    from scipy.io import loadmat

    try:
        arr = loadmat(path, squeeze_me=False, struct_as_record=False)[var]
    except KeyError as e:
        raise FormatError(f"{path}: no variable `{var}`") from e
    except Exception as e:  # noqa: BLE001 - scipy raises several types on bad files
        raise FormatError(f"{path}: cannot read the MATLAB v5 file ({e})") from e
    out = []
    for el in np.asarray(arr).ravel(order="F"):  # MATLAB's element order
        if not hasattr(el, field):
            raise FormatError(f"{path}: `{var}` has no field `{field}`")
        out.append(getattr(el, field))
    return out


def _el(x):
    """The struct inside a v5 (1, 1) cell of structs, or the struct itself."""
    return np.asarray(x).flat[0] if isinstance(x, np.ndarray) else x


def _h5_node(f, x):
    """Follow MATLAB v7.3 object references until a group or a plain dataset."""
    import h5py

    if isinstance(x, h5py.Reference):
        x = f[x]
    while isinstance(x, h5py.Dataset) and x.dtype == h5py.ref_dtype:
        x = f[x[()].flat[0]]
    return x


def _h5_array(f, node) -> np.ndarray:
    """A numeric v7.3 array in MATLAB's orientation (HDF5 stores it transposed); (0, 0) if empty."""
    node = _h5_node(f, node)
    if node.attrs.get("MATLAB_empty", 0):
        return np.zeros((0, 0))
    return np.asarray(node[()], dtype=np.float64).T


def read_boxes(path: Path) -> list[tuple[float, float, float, float]]:
    """(xmin, ymin, xmax, ymax) of samples(i).obj.bndbox, i = 1..n: the category's image list."""
    keys = ("xmin", "ymin", "xmax", "ymax")
    if mat_version(path) == "5":
        objs = _struct_field_v5(path, "samples", "obj")
        try:
            return [tuple(float(np.asarray(getattr(_el(_el(o).bndbox), k)).ravel()[0]) for k in keys) for o in objs]
        except (AttributeError, IndexError, ValueError) as e:
            raise FormatError(f"{path}: a samples(i).obj.bndbox lacks xmin/ymin/xmax/ymax ({e})") from e
    import h5py

    try:
        with h5py.File(path, "r") as f:
            refs = np.asarray(f["samples"]["obj"][()]).ravel()
            boxes = []
            for i, ref in enumerate(refs, start=1):
                bb = _h5_node(f, f[ref]["bndbox"])
                try:
                    boxes.append(tuple(float(_h5_array(f, bb[k]).ravel()[0]) for k in keys))
                except (KeyError, IndexError) as e:
                    raise FormatError(f"{path}: samples({i}).obj.bndbox lacks xmin/ymin/xmax/ymax ({e})") from e
            return boxes
    except (OSError, KeyError) as e:
        raise FormatError(f"{path}: not ICNN's data.mat (`samples(i).obj.bndbox`): {e}") from e


def read_centres(path: Path) -> list[np.ndarray]:
    """truth(i).pHW_center of a truth file, each 2×n (rows h, w; n instances, 0 if unannotated)."""
    if mat_version(path) == "5":
        vals = _struct_field_v5(path, "truth", "pHW_center")
        out = []
        for v in vals:
            a = np.asarray(v, dtype=np.float64)
            out.append(np.zeros((2, 0)) if a.size == 0 else a.reshape(2, -1, order="F"))
        return out
    import h5py

    try:
        with h5py.File(path, "r") as f:
            refs = np.asarray(f["truth"]["pHW_center"][()]).ravel()
            out = []
            for r in refs:
                a = _h5_array(f, r)
                out.append(np.zeros((2, 0)) if a.size == 0 else a.reshape(2, -1))
            return out
    except (OSError, KeyError) as e:
        raise FormatError(f"{path}: not an ICNN truth file (`truth(i).pHW_center`): {e}") from e


def landmark(c: np.ndarray) -> tuple[float, float, float]:
    """(x, y, visible) of one truth entry: one instance at (w/224, h/224); none, or several
    (ICNN skips them), invisible."""
    if c.shape[1] != 1:
        return (0.0, 0.0, 0.0)
    h, w = float(c[0, 0]), float(c[1, 0])
    return (w / CROP, h / CROP, 1.0)


def icnn_train(n: int) -> set[int]:
    """The 1-based images ICNN trains on: round(linspace(1, n, round(0.9 n))) (getImdb.m)."""
    k = int(np.floor(n * TRAIN_RATE + 0.5))
    return {int(v) for v in np.floor(np.linspace(1, n, k) + 0.5)} if k else set()


def convert(src: str | Path, out: str | Path, size: int = 224, progress: bool = True) -> dict:
    src = Path(src)
    wnids = [w for w in WNIDS if (src / f"{w}_obj").is_dir()]
    if not wnids:
        raise FormatError(f"{src} holds none of the 30 categories (e.g. {WNIDS[0]}_obj/). "
                          f"Expected layout:\n{LAYOUT}")
    w = PartWriter(out, "ilsvrc_animal_part", wnids, PARTS, size, has_masks=False,
                   has_landmarks=True, source={"converter": "data_prep.ilsvrc_animal_part",
                                               "train_rate": TRAIN_RATE, "min_area": MIN_AREA, "crop": CROP})
    expected: dict[str, int] = {}
    for label, wnid in enumerate(tqdm(wnids, desc="ILSVRC Animal-Part", disable=not progress)):
        data = src / f"{wnid}_obj" / "img" / "data.mat"
        boxes = read_boxes(data)
        if not (src / wnid).is_dir():
            raise FormatError(f"{src / wnid} not found: the truth files come from ICNN's repository "
                              f"(code/data_input/data_input_DET-2015-subset-ILSVRC2013train/{wnid}/). "
                              f"Expected layout:\n{LAYOUT}")
        centres = []
        for k in range(len(PARTS)):
            p = src / wnid / f"truth_part{k + 1:02d}.mat"
            c = read_centres(p) if p.is_file() else [np.zeros((2, 0))] * len(boxes)
            if len(c) != len(boxes):
                raise FormatError(f"{p} has {len(c)} entries; {data} lists {len(boxes)} images")
            centres.append(c)
        train = icnn_train(len(boxes))
        for i, (x0, y0, x1, y1) in enumerate(boxes, start=1):
            if (x1 - x0 + 1) * (y1 - y0 + 1) < MIN_AREA:
                continue
            lms = [landmark(centres[k][i - 1]) for k in range(len(PARTS))]
            item = f"{wnid}_{i:05d}"
            splits = ["train" if i in train else "test"] + (["parts"] if any(v for *_, v in lms) else [])
            img = None
            for sp in splits:
                expected[sp] = expected.get(sp, 0) + 1
                crop = None
                if not w.has(sp, item):
                    if img is None:
                        img = open_image(src / f"{wnid}_obj" / "img" / "img" / f"{i:05d}.jpg", LAYOUT)
                    wd, ht = img.size
                    l, t = max(int(x0), 1), max(int(y0), 1)
                    r, b = min(int(x1), wd), min(int(y1), ht)
                    if r < l or b < t:
                        raise FormatError(f"{data}: samples({i})'s box {(x0, y0, x1, y1)} misses the {wd}x{ht} image")
                    crop = img.crop((l - 1, t - 1, r, b))
                w.add(sp, item, label, crop, None, lms)
    return w.finish(expected=expected)


def main(argv: list[str] | None = None) -> None:
    a = converter_parser(__doc__, "a folder combining detanimalpart's <wnid>_obj/ and ICNN's <wnid>/").parse_args(argv)
    convert(a.src, a.out, a.size)


if __name__ == "__main__":
    main()
