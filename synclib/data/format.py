"""The part-dataset format: one on-disk layout that every converter and PartWorld write.

```
ROOT/
  manifest.json        name, classes, parts, image_size, splits {split: count},
                       has_masks, has_landmarks, fingerprints {split: sha256}, source
  <split>.csv          one row per image: id, image, label, mask, then <part>_x, <part>_y,
                       <part>_v for each part when the set has landmarks
  images/<split>/...   RGB images (any format PIL reads; PNG or JPEG)
  masks/<split>/...    part masks as 8-bit PNGs of 1 to 4 channels (L, LA, RGB, RGBA), each
                       channel an index map (0 none, k+1 = part k): a pixel belongs to part
                       k if any channel holds k+1, so parts may overlap (a second-level part
                       inside a first-level one lies on another channel)
```
Landmarks are normalized image coordinates: x = column / width, y = row / height, in [0, 1],
v = 1 if visible. The fingerprint of a split is the sha256 over its CSV and the sha256 of
every image it names, so a run records exactly what it trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .. import trace
from ..files import CorruptFile, atomic_write_text, read_json

__all__ = ["write_manifest", "read_manifest", "write_split_csv", "split_fingerprint", "checked_reader", "FormatError", "MANIFEST_KEYS",
           "MASK_FORMAT", "pack_layers", "unpack_layers"]

MANIFEST_KEYS = ("name", "classes", "parts", "image_size", "splits", "has_masks", "has_landmarks")
MASK_FORMAT = 2  # masks whose parts may overlap (layered index maps); 1: one label per pixel
MAX_LAYERS = 4


def pack_layers(masks) -> np.ndarray:
    """(K, H, W) boolean part masks -> (L, H, W) uint8 index layers, L <= 4: each part goes on
    the first layer where it overlaps no part already there. Raises when more are needed."""
    masks = np.asarray(masks, dtype=bool)
    k, h, w = masks.shape
    if k > 254:
        raise FormatError(f"{k} parts do not fit an 8-bit index mask (at most 254)")
    layers: list[np.ndarray] = []
    for part in range(k):
        if not masks[part].any():
            continue
        for layer in layers:
            if not (layer[masks[part]] > 0).any():
                layer[masks[part]] = part + 1
                break
        else:
            if len(layers) == MAX_LAYERS:
                raise FormatError(f"more than {MAX_LAYERS} parts overlap at one pixel; a mask holds {MAX_LAYERS} layers")
            layer = np.zeros((h, w), np.uint8)
            layer[masks[part]] = part + 1
            layers.append(layer)
    return np.stack(layers) if layers else np.zeros((1, h, w), np.uint8)


def unpack_layers(layers, n_parts: int) -> np.ndarray:
    """(H, W) or (H, W, L) index layers -> (K, H, W) boolean part masks."""
    a = np.asarray(layers)
    if a.ndim == 2:
        a = a[..., None]
    ids = np.arange(1, n_parts + 1).reshape(-1, 1, 1, 1)
    return (a[None] == ids).any(-1)


class FormatError(ValueError):
    """A file of a part dataset is missing or malformed; the message names it."""


def checked_reader(f, path: str | Path, need: list[str], hint: str = "") -> csv.DictReader:
    """A `csv.DictReader` over the open file `f` whose header has every column of `need`;
    FormatError naming `path` and the missing columns (then `hint`) otherwise."""
    reader = csv.DictReader(f)
    lacking = [c for c in need if c not in (reader.fieldnames or [])]
    if lacking:
        raise FormatError(f"{path} lacks the columns {lacking}{hint}")
    return reader


def csv_columns(parts: list[str], has_landmarks: bool) -> list[str]:
    cols = ["id", "image", "label", "mask"]
    if has_landmarks:
        for p in parts:
            cols += [f"{p}_x", f"{p}_y", f"{p}_v"]
    return cols


def write_split_csv(root: str | Path, split: str, rows: list[dict], parts: list[str],
                    has_landmarks: bool) -> None:
    """Write ROOT/<split>.csv atomically; each row a dict with the columns of the format."""

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=csv_columns(parts, has_landmarks), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(Path(root) / f"{split}.csv", buf.getvalue())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_fingerprint(root: str | Path, split: str) -> str:
    """sha256 over the split's CSV and every image (and mask) file it names."""
    root = Path(root)
    h = hashlib.sha256()
    csv_path = root / f"{split}.csv"
    h.update(_sha256_file(csv_path).encode())
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            for key in ("image", "mask"):
                if r.get(key):
                    h.update(_sha256_file(root / r[key]).encode())
    return h.hexdigest()


def write_manifest(root: str | Path, manifest: dict) -> dict:
    """Complete the manifest with each split's fingerprint and write it atomically."""
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise FormatError(f"manifest for {root} lacks {missing}")
    manifest = dict(manifest)
    if manifest.get("has_masks"):
        manifest["mask_format"] = MASK_FORMAT
    manifest["fingerprints"] = {s: split_fingerprint(root, s) for s in manifest["splits"]}
    atomic_write_text(Path(root) / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def read_manifest(root: str | Path) -> dict:
    """ROOT/manifest.json as a dict; a FormatError naming the file when it is missing, not
    JSON, or lacks a key of `MANIFEST_KEYS` (with the command that makes or converts it)."""
    path = Path(root) / "manifest.json"
    trace.record("manifest", path)
    if not path.is_file():
        raise FormatError(
            f"{path} not found: {root} is not a part dataset. Make one with "
            "`python -m synclib.data.partworld --out DIR` or a converter in data_prep/."
        )

    try:
        return read_json(path, "regenerate the data set (convert it again, or generate PartWorld again)",
                         keys=MANIFEST_KEYS, what="a part dataset's manifest")
    except CorruptFile as e:
        raise FormatError(str(e)) from None
