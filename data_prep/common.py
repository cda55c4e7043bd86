"""What every converter shares: checked inputs, a resumable writer, the final verification.

A converter writes into a work folder beside its output (`OUT.partial/`, kept when it stops,
so a second run resumes) and renames it to OUT only once every item, the CSVs and the
manifest are written: no partial data set can ever be read as a whole one.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from synclib.data.format import FormatError, write_manifest, write_split_csv
from synclib.files import atomic_write_bytes

__all__ = ["require", "PartWriter", "FormatError", "crop_box", "open_image", "read_lines", "converter_parser"]


def converter_parser(doc: str, src_help: str | None = None) -> argparse.ArgumentParser:
    """The command line every converter shares: --src (the original data set), --out (the
    part-dataset folder to write) and --size (the side images are resized to, 224 as the paper);
    a converter adds its own options."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--src", required=True, help=src_help)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=224)
    return ap


def open_image(path: Path, layout: str = "", mode: str | None = "RGB") -> Image.Image:
    """The decoded image at `path`; a missing, truncated or corrupt file is a FormatError that
    names it (PIL's own message names no file)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} not found" + (f". Expected layout:\n{layout}" if layout else ""))
    try:
        img = Image.open(path)
        img.load()  # decode now: a truncated JPEG fails here, not in the middle of training
    except (OSError, ValueError, SyntaxError) as e:
        raise FormatError(f"{path}: cannot decode the image ({e}); the file is damaged or incomplete, "
                          "copy it again from the original data set") from e
    return img.convert(mode) if mode else img


def read_lines(path: Path, layout: str = "") -> list[tuple[int, str]]:
    """(line number, text) of the non-empty lines of a text file that must exist."""
    require(path, layout)
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as e:
        raise FormatError(f"{path}: not a text file ({e})") from e
    return [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]


def require(path: Path, layout: str) -> Path:
    """`path` must exist, else a FormatError naming it and the layout the converter expects."""
    if not Path(path).exists():
        raise FormatError(f"{path} not found. Expected layout:\n{layout}")
    return Path(path)


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """A (left, top, right, bottom) pixel box clipped to the image, right/bottom exclusive."""
    l, t, r, b = box
    l, t = max(0, int(round(l))), max(0, int(round(t)))
    r, b = min(width, int(round(r))), min(height, int(round(b)))
    if r <= l or b <= t:
        raise ValueError(f"empty box {box} in a {width}x{height} image")
    return l, t, r, b


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


class PartWriter:
    """Writes one part dataset, resumably: an image already in the work folder is not written
    again; `finish` renames the work folder into place.

    size: images (and masks) are resized to size×size (None: images are linked, not copied).
    """

    def __init__(self, out: str | Path, name: str, classes: list[str], parts: list[str],
                 size: int | None, has_masks: bool, has_landmarks: bool, source: dict):
        self.final = Path(out)
        self.out = self.final.with_name(self.final.name + ".partial")  # the work folder
        self.out.mkdir(parents=True, exist_ok=True)
        self.name, self.classes, self.parts = name, classes, parts
        self.size, self.has_masks, self.has_landmarks = size, has_masks, has_landmarks
        self.source = source
        self.rows: dict[str, list[dict]] = {}
        self.written = 0
        self.skipped = 0
        if has_masks and len(parts) > 254:
            raise ValueError(f"{len(parts)} parts do not fit an 8-bit index mask (at most 254)")

    def _rel(self, kind: str, split: str, item_id: str, ext: str) -> str:
        return f"{kind}/{split}/{item_id}.{ext}"

    def has(self, split: str, item_id: str) -> bool:
        img = self.out / self._rel("images", split, item_id, "png")
        ok = img.is_file()
        if self.has_masks:
            ok = ok and (self.out / self._rel("masks", split, item_id, "png")).is_file()
        return ok

    def add(self, split: str, item_id: str, label: int, image=None, mask: np.ndarray | None = None,
            landmarks: list[tuple[float, float, float]] | None = None) -> None:
        """Add an item. image: a PIL image (None when `has` says it is written already);
        mask: (H, W) uint8 index map (0 = background, k+1 = part k) of the image's size, or
        (L, H, W) index layers (L <= 4) where parts overlap (`format.pack_layers` makes them);
        landmarks: per part (x, y, visible), normalized to the image."""
        img_rel = self._rel("images", split, item_id, "png")
        mask_rel = self._rel("masks", split, item_id, "png") if self.has_masks else ""
        if image is not None:
            s = self.size
            im = image.convert("RGB")
            if s:
                im = im.resize((s, s), Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            atomic_write_bytes(self.out / img_rel, buf.getvalue())
            if self.has_masks:
                layers = np.asarray(mask, dtype=np.uint8)
                layers = layers[None] if layers.ndim == 2 else layers
                if not 1 <= len(layers) <= 4:
                    raise ValueError(f"{item_id}: a mask has 1 to 4 layers, not {len(layers)}")
                if s:
                    layers = np.stack([np.asarray(Image.fromarray(x).resize((s, s), Image.NEAREST)) for x in layers])
                if len(layers) == 1:
                    png = _png(layers[0])
                else:  # L layers as the channels of an LA / RGB / RGBA PNG
                    pad = {2: 2, 3: 3, 4: 4}[len(layers)]
                    png = _png(np.moveaxis(layers[:pad], 0, -1))
                atomic_write_bytes(self.out / mask_rel, png)
            self.written += 1
        else:
            self.skipped += 1
        self._row(split, item_id, img_rel, label, mask_rel, landmarks)

    def link(self, split: str, item_id: str, label: int, src: Path) -> None:
        """Add an image by a symbolic link to the original file (labels-only data sets)."""
        rel = f"images/{split}/{item_id}{src.suffix.lower()}"
        dst = self.out / rel
        if not dst.is_symlink() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src.resolve(), dst)
            self.written += 1
        else:
            self.skipped += 1
        self._row(split, item_id, rel, label, "", None)

    def _row(self, split, item_id, img_rel, label, mask_rel, landmarks) -> None:
        row = {"id": item_id, "image": img_rel, "label": int(label), "mask": mask_rel}
        if self.has_landmarks:
            if landmarks is None or len(landmarks) != len(self.parts):
                raise ValueError(f"{item_id}: need {len(self.parts)} landmarks, got {landmarks}")
            for p, (x, y, v) in zip(self.parts, landmarks):
                row.update({f"{p}_x": f"{x:.6f}", f"{p}_y": f"{y:.6f}", f"{p}_v": int(v)})
        self.rows.setdefault(split, []).append(row)

    def finish(self, expected: dict[str, int] | None = None) -> dict:
        """Write the CSVs and the manifest (with fingerprints); verify the counts per split."""
        for split, rows in self.rows.items():
            write_split_csv(self.out, split, rows, self.parts, self.has_landmarks)
        counts = {s: len(r) for s, r in self.rows.items()}
        if expected is not None and counts != expected:
            raise FormatError(f"{self.out}: wrote {counts} items per split, expected {expected}")
        for split, rows in self.rows.items():
            missing = [r["image"] for r in rows if not (self.out / r["image"]).exists()]
            if missing:
                raise FormatError(f"{self.out}: {len(missing)} images of {split} missing, e.g. {missing[0]}")
        size = self.size or 224
        m = write_manifest(self.out, {
            "name": self.name, "classes": self.classes, "parts": self.parts, "image_size": size,
            "splits": counts, "has_masks": self.has_masks, "has_landmarks": self.has_landmarks,
            "source": self.source})
        old = None
        if self.final.exists():  # a previous conversion: set aside, replaced, then removed
            old = self.final.with_name(f"{self.final.name}.old-{int(time.time())}")
            os.replace(self.final, old)
        os.replace(self.out, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        print(f"{self.name}: {counts} (written {self.written}, already there {self.skipped}) -> {self.final}")
        return m
