"""Broden (Network Dissection) -> part dataset of part concepts, for evaluation only.

Reads (SRC, e.g. broden1_224):
    index.csv     columns image, split, ih, iw, sh, sw, ..., part: the image path under
                  images/, and `part` the ';'-separated part-mask PNGs of that image
    label.csv     number, name, category, ... (the global label numbers)
    c_part.csv    code, number, name, ...: the part concepts and their global numbers
    images/...    the images and the mask PNGs (label number = R + 256·G)
Writes (OUT): the part-dataset format with one split, test (every image with a part mask;
--split val keeps Broden's val images only); one part per part concept of c_part.csv; masks
resized to --size with nearest neighbour. Every part layer of an image (`…_part_1.png;
…_part_2.png`, up to four) is kept as a layer of its own, as Network Dissection reads each
layer as its own channel: a second-level part inside a first-level one belongs to both. One
class, "none" (Broden has no classification labels). Evaluate with φ = 0.04 and top = 0.005.

    python -m data_prep.broden --src broden1_224 --out data/broden
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from synclib.data.format import checked_reader

from .common import FormatError, PartWriter, converter_parser, open_image, require

LAYOUT = __doc__.split("Writes")[0]


def _csv(path: Path, need: list[str]) -> list[dict]:
    """The rows of a CSV with the columns `need`; a short row is an error naming its line."""
    require(path, LAYOUT)
    with open(path, newline="") as f:
        r = checked_reader(f, path, need, f". Expected layout:\n{LAYOUT}")
        rows = []
        for row in r:
            short = [c for c in need if row.get(c) is None]
            if short or None in row:
                raise FormatError(f"{path} line {r.line_num}: expected {len(r.fieldnames)} columns "
                                  f"({', '.join(r.fieldnames)}), got {sum(v is not None for k, v in row.items() if k is not None)}" +
                                  (f"; {short} missing" if short else "; too many values"))
            rows.append(row)
        return rows


def decode_mask(path: Path) -> np.ndarray:
    """Global label numbers of a Broden mask PNG: R + 256·G, (H, W) int."""
    rgb = np.asarray(open_image(path, LAYOUT, "RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1]


def convert(src: str | Path, out: str | Path, size: int = 224, split: str = "all",
            progress: bool = True) -> dict:
    src = Path(src)
    index = _csv(src / "index.csv", ["image", "split", "part"])
    _csv(src / "label.csv", ["number", "name"])
    cparts = _csv(src / "c_part.csv", ["code", "number", "name"])
    try:
        numbers = [int(r["number"]) for r in cparts]
    except ValueError as e:
        raise FormatError(f"{src / 'c_part.csv'}: malformed number ({e})") from e
    parts = [r["name"] for r in cparts]
    to_part = np.zeros(max(numbers) + 1, np.uint8)  # global number -> mask index (0: not a part)
    to_part[numbers] = np.arange(1, len(numbers) + 1)
    rows = [r for r in index if r["part"].strip() and (split == "all" or r["split"] == split)]
    if not rows:
        raise FormatError(f"{src / 'index.csv'} lists no image with a part mask (split {split!r})")
    w = PartWriter(out, "broden", ["none"], parts, size, has_masks=True, has_landmarks=False,
                   source={"converter": "data_prep.broden", "split": split, "layers": "kept"})
    for r in tqdm(rows, desc="Broden", disable=not progress, unit="img"):
        item = Path(r["image"]).with_suffix("").as_posix().replace("/", "__")
        if w.has("test", item):
            w.add("test", item, 0)
            continue
        img = open_image(src / "images" / r["image"], LAYOUT)
        files = [p for p in r["part"].split(";") if p.strip()]
        if len(files) > 4:
            raise FormatError(f"{src / 'index.csv'}: {r['image']} has {len(files)} part layers; a mask holds 4")
        layers = []
        for mp in files:  # one layer per part level: a pixel may belong to a part on each
            labels = decode_mask(src / "images" / mp)
            if labels.shape != (img.size[1], img.size[0]):
                labels = np.asarray(Image.fromarray(labels.astype(np.int32)).resize(
                    img.size, Image.NEAREST), dtype=np.int64)
            layer = np.zeros(labels.shape, np.uint8)
            known = labels < len(to_part)
            layer[known] = to_part[labels[known]]
            layers.append(layer)
        w.add("test", item, 0, img, np.stack(layers))
    return w.finish()


def main(argv: list[str] | None = None) -> None:
    ap = converter_parser(__doc__, "the broden1_224 folder")
    ap.add_argument("--split", choices=["all", "train", "val"], default="all")
    a = ap.parse_args(argv)
    convert(a.src, a.out, a.size, a.split)


if __name__ == "__main__":
    main()
