"""CUB-200-2011 -> part dataset with landmarks (head, back, tail), the ICNN protocol.

Reads (SRC, the CUB_200_2011 folder):
    images.txt                  <image_id> <path under images/>
    images/<path>               the JPEG images
    image_class_labels.txt      <image_id> <class_id, 1-based>
    classes.txt                 <class_id> <name>   (optional; names default to the ids)
    train_test_split.txt        <image_id> <1 = train, 0 = test>
    bounding_boxes.txt          <image_id> <x> <y> <width> <height>
    parts/part_locs.txt         <image_id> <part_id> <x> <y> <visible>: exactly 15 rows
                                per image, one per part id 1..15
Writes (OUT): the part-dataset format, splits train/test (the official split), each bird
cropped to its bounding box and resized to --size; landmarks head (part 6, forehead), back
(part 1) and tail (part 14), normalized to the crop; a landmark that is invisible or outside
the box is marked invisible. No masks.

    python -m data_prep.cub200 --src CUB_200_2011 --out data/cub200
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from .common import FormatError, PartWriter, converter_parser, open_image, read_lines

PARTS = ["head", "back", "tail"]
PART_IDS = {"head": 6, "back": 1, "tail": 14}
N_PARTS = 15
LAYOUT = __doc__.split("Writes")[0]


def _table(path: Path, ncols: int, cast=str) -> dict[int, list]:
    out = {}
    for i, line in read_lines(path, LAYOUT):
        f = line.split(maxsplit=ncols - 1) if cast is str else line.split()
        if len(f) < ncols:
            raise FormatError(f"{path} line {i}: expected {ncols} columns, got {line!r}")
        try:
            out[int(f[0])] = [cast(x) for x in f[1:ncols]]
        except ValueError as e:
            raise FormatError(f"{path} line {i}: malformed value ({e})") from e
    return out


def convert(src: str | Path, out: str | Path, size: int = 224, progress: bool = True) -> dict:
    src = Path(src)
    images = _table(src / "images.txt", 2)
    labels = _table(src / "image_class_labels.txt", 2, int)
    split = _table(src / "train_test_split.txt", 2, int)
    boxes = _table(src / "bounding_boxes.txt", 5, float)
    locs: dict[int, dict[int, list[float]]] = {}
    path = src / "parts" / "part_locs.txt"
    for i, line in read_lines(path, LAYOUT):
        f = line.split()
        if len(f) != 5:
            raise FormatError(f"{path} line {i}: expected `image part x y visible`, got {line!r}")
        try:
            iid, pid = int(f[0]), int(f[1])
            vals = [float(x) for x in f[2:]]
        except ValueError as e:
            raise FormatError(f"{path} line {i}: malformed value ({e})") from e
        if not 1 <= pid <= N_PARTS:
            raise FormatError(f"{path} line {i}: part id {pid} is not in 1..{N_PARTS}")
        if pid in locs.setdefault(iid, {}):
            raise FormatError(f"{path} line {i}: image {iid} has part {pid} twice")
        locs[iid][pid] = vals
    for iid in images:  # CUB has 15 parts: a truncated file would read as invisible landmarks
        have = len(locs.get(iid, {}))
        if have != N_PARTS:
            raise FormatError(f"{path}: image {iid} has {have} rows, CUB-200-2011 has {N_PARTS} per image "
                              "(is the file truncated? copy it again from the original archive)")
    stray = sorted(set(locs) - set(images))
    if stray:
        raise FormatError(f"{path}: rows for image {stray[0]}, which images.txt does not list")
    n_classes = max(v[0] for v in labels.values())
    class_file = src / "classes.txt"
    names = {k: v[0] for k, v in _table(class_file, 2).items()} if class_file.is_file() else {}
    classes = [names.get(c, str(c)) for c in range(1, n_classes + 1)]

    w = PartWriter(out, "cub200", classes, PARTS, size, has_masks=False, has_landmarks=True,
                   source={"converter": "data_prep.cub200", "part_ids": PART_IDS})
    for iid in tqdm(sorted(images), desc="CUB-200", disable=not progress, unit="img"):
        for table, name in ((labels, "image_class_labels.txt"), (split, "train_test_split.txt"),
                            (boxes, "bounding_boxes.txt")):
            if iid not in table:
                raise FormatError(f"{src / name} has no row for image {iid}")
        x, y, bw, bh = boxes[iid]
        lms = []
        for part in PARTS:
            px, py, vis = locs[iid][PART_IDS[part]]
            u, v = (px - x) / bw, (py - y) / bh  # CUB's coordinates are pixel positions
            inside = vis > 0 and 0 <= u <= 1 and 0 <= v <= 1
            lms.append((u, v, 1.0) if inside else (0.0, 0.0, 0.0))
        sp = "train" if split[iid][0] == 1 else "test"
        item = f"{iid:05d}"
        crop = None
        if not w.has(sp, item):
            crop = open_image(src / "images" / images[iid][0], LAYOUT).crop(
                (int(x), int(y), int(round(x + bw)), int(round(y + bh))))
        w.add(sp, item, labels[iid][0] - 1, crop, None, lms)
    n_train = sum(1 for i in images if split[i][0] == 1)
    return w.finish(expected={"train": n_train, "test": len(images) - n_train})


def main(argv: list[str] | None = None) -> None:
    a = converter_parser(__doc__, "the CUB_200_2011 folder").parse_args(argv)
    convert(a.src, a.out, a.size)


if __name__ == "__main__":
    main()
