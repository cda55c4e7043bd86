"""`PartDataset`: the one loader of the part-dataset format (see `synclib.data.format`).

A split can be read from its decoded copy (`decoded=True`): every image and mask decoded once,
kept as memory-mapped arrays under `cache_root()/decoded/`, keyed by the split's fingerprint
(the sha256 of its CSV, images and masks) and the decoding's own version, and shared by every
run, evaluation and analysis that reads the split, in any process. The arrays hold exactly the
values decoding gives (8-bit images, masks as bits), so the items are the same tensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..files import atomic_write_text, cache_root, file_lock
from .format import MASK_FORMAT, FormatError, checked_reader, csv_columns, read_manifest

__all__ = ["PartDataset", "collate", "DECODED_VERSION"]

#: The layout of a decoded split (bump it when decoding changes, so old copies are not read).
DECODED_VERSION = 1


class PartDataset(torch.utils.data.Dataset):
    """A split of a part dataset.

    An item is a dict: `image` (3, S, S) float32 in [0, 1]; `label` int; `masks` (K, S, S)
    bool or None (parts may overlap); `landmarks` (K, 3) float32 as normalized x, y, visible, or None; `index`.
    Images of another size are resized to the manifest's `image_size` (bilinear; masks nearest,
    landmarks are normalized so they need no change). A mask must have its image's size: one
    of another size is an error, never stretched.

    cache: keep decoded images in memory after the first read (small sets, repeated epochs).
    manifest: the data set's manifest when the caller has read it already (a `Study` has).
    decoded: read the split's decoded copy (made on first use; see the module's docstring);
    a split without a fingerprint in its manifest is decoded item by item as usual.
    """

    def __init__(self, root: str | Path, split: str, cache: bool = False, manifest: dict | None = None,
                 decoded: bool = False):
        self.root = Path(root)
        self.manifest = manifest if manifest is not None else read_manifest(self.root)
        if split not in self.manifest["splits"]:
            raise FormatError(
                f"{self.root / 'manifest.json'} has no split {split!r}; it has "
                f"{sorted(self.manifest['splits'])}"
            )
        self.split = split
        self.classes: list[str] = list(self.manifest["classes"])
        self.parts: list[str] = list(self.manifest["parts"])
        self.size = int(self.manifest["image_size"])
        self.has_masks = bool(self.manifest["has_masks"])
        self.has_landmarks = bool(self.manifest["has_landmarks"])
        if self.has_masks and self.manifest.get("mask_format") != MASK_FORMAT:
            conv = self.manifest.get("source", {}).get("converter", "its converter")
            raise FormatError(
                f"{self.root / 'manifest.json'}: its masks are in an older format, one part per pixel "
                f"(mask_format {self.manifest.get('mask_format', 1)}; this synclib reads {MASK_FORMAT}, where parts "
                f"may overlap). Convert the data set again with {conv} (PartWorld regenerates itself)")
        self.rows = self._read_rows()
        self.labels = torch.tensor([r["label"] for r in self.rows], dtype=torch.long)
        self._cache: dict[int, dict] | None = {} if cache else None
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = self._decoded_arrays() if decoded else None

    # ------------------------------------------------------------------ the decoded copy
    def decoded_folder(self) -> Path | None:
        """Where this split's decoded copy lives (None: the manifest has no fingerprint for it)."""
        fp = self.manifest.get("fingerprints", {}).get(self.split)
        if not fp:
            return None
        return cache_root() / "decoded" / f"{fp[:32]}-s{self.size}-k{len(self.parts)}-v{DECODED_VERSION}"

    def _decoded_arrays(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        folder = self.decoded_folder()
        if folder is None:
            return None
        if not (folder / "done.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            with file_lock(folder / ".lock"):  # one process decodes; the others wait and read it
                if not (folder / "done.json").is_file():
                    self._write_decoded(folder)
        images = np.load(folder / "images.npy", mmap_mode="r")
        masks = np.load(folder / "masks.npy", mmap_mode="r") if self.has_masks else None
        if len(images) != len(self.rows):
            raise FormatError(f"{folder}: the decoded copy has {len(images)} images, the split {len(self.rows)}; "
                              f"delete {folder} and it is decoded again")
        return images, masks

    def _write_decoded(self, folder: Path) -> None:
        """Decode every item once into images.npy (I, 3, S, S) uint8 and masks.npy (I, K, S,
        ceil(S/8)) bit-packed along the last axis; done.json last, so a killed writer leaves no copy."""
        n, s, k = len(self.rows), self.size, len(self.parts)
        images = _new_npy(folder / "images.npy", (n, 3, s, s), np.uint8)
        masks = _new_npy(folder / "masks.npy", (n, k, s, (s + 7) // 8), np.uint8) if self.has_masks else None
        for i in range(n):
            image, m = self._decode(i)
            images[i] = image.numpy()
            if masks is not None:
                masks[i] = np.packbits(m.numpy(), axis=-1)
        for arr in (images, masks):
            if arr is not None:
                arr.flush()
                os.replace(arr.filename, arr.filename.removesuffix(".part"))
        atomic_write_text(folder / "done.json", json.dumps({"root": str(self.root), "split": self.split, "images": n}))

    def _read_rows(self) -> list[dict]:
        path = self.root / f"{self.split}.csv"
        if not path.is_file():
            raise FormatError(f"{path} not found; the manifest lists split {self.split!r}")
        need = csv_columns(self.parts, self.has_landmarks)
        with open(path, newline="") as f:
            reader = checked_reader(f, path, need)
            rows = []
            for line, r in enumerate(reader, start=2):
                try:
                    r["label"] = int(r["label"])
                    if self.has_landmarks:
                        r["landmarks"] = [
                            (float(r[f"{p}_x"]), float(r[f"{p}_y"]), float(r[f"{p}_v"]))
                            for p in self.parts
                        ]
                except (TypeError, ValueError) as e:
                    raise FormatError(f"{path} line {line}: malformed value ({e})") from e
                if not 0 <= r["label"] < len(self.classes):
                    raise FormatError(f"{path} line {line}: label {r['label']} out of range")
                rows.append(r)
        expected = self.manifest["splits"][self.split]
        if len(rows) != expected:
            raise FormatError(f"{path} has {len(rows)} rows; the manifest says {expected}")
        return rows

    def __len__(self) -> int:
        return len(self.rows)

    def _open(self, rel: str, mode: str) -> Image.Image:
        path = self.root / rel
        try:
            img = Image.open(path)
            img.load()
        except (OSError, ValueError) as e:
            raise FormatError(f"{path}: cannot read the image ({e})") from e
        return img.convert(mode) if mode else img

    def __getitem__(self, i: int) -> dict:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        if self._arrays is not None:
            images, packed = self._arrays
            image = torch.from_numpy(np.array(images[i]))
            masks = None
            if packed is not None:
                masks = torch.from_numpy(np.unpackbits(packed[i], axis=-1, count=self.size).astype(bool))
        else:
            image, masks = self._decode(i)
        landmarks = None
        if self.has_landmarks:
            landmarks = torch.tensor(self.rows[i]["landmarks"], dtype=torch.float32)  # (K, 3)
        item = {"image": image.float() / 255.0, "label": self.rows[i]["label"], "masks": masks,
                "landmarks": landmarks, "index": i}
        if self._cache is not None:
            self._cache[i] = item
        return item

    def _decode(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Item i's image (3, S, S) uint8 and masks (K, S, S) bool (None without masks), from its files."""
        r = self.rows[i]
        s = self.size
        img = self._open(r["image"], "RGB")
        shape = img.size  # (width, height) as stored: its mask must have it too
        if img.size != (s, s):
            img = img.resize((s, s), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        masks = None
        if self.has_masks and r["mask"]:
            m = self._open(r["mask"], "")
            if m.mode not in ("L", "P", "LA", "RGB", "RGBA"):
                raise FormatError(f"{self.root / r['mask']}: a mask must be an 8-bit PNG of 1 to 4 index layers, "
                                  f"not mode {m.mode}")
            if m.size != shape:
                raise FormatError(
                    f"{self.root / r['mask']}: the mask is {m.size[0]}x{m.size[1]} but its image {r['image']} is "
                    f"{shape[0]}x{shape[1]}; a mask must have its image's size (convert the data set again)")
            layers = [b if b.size == (s, s) else b.resize((s, s), Image.NEAREST) for b in m.split()]
            idx = torch.from_numpy(np.stack([np.asarray(b, dtype=np.uint8) for b in layers], -1)).long()  # (S, S, L)
            ids = torch.arange(1, len(self.parts) + 1).view(-1, 1, 1, 1)
            masks = (idx.unsqueeze(0) == ids).any(-1)  # (K, S, S): a part on any layer
        elif self.has_masks:
            masks = torch.zeros(len(self.parts), s, s, dtype=torch.bool)
        return image, masks


def _new_npy(path: Path, shape: tuple[int, ...], dtype) -> np.memmap:
    """A .npy file of `shape` to fill, as a memory map, at `path` + ".part" (renamed when filled)."""
    return np.lib.format.open_memmap(str(path) + ".part", mode="w+", dtype=dtype, shape=shape)


def collate(items: list[dict]) -> dict:
    """Stack a list of items into a batch; a field that is None in any item stays None."""
    out = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if any(v is None for v in vals):
            out[key] = None
        elif isinstance(vals[0], torch.Tensor):
            out[key] = torch.stack(vals)
        else:
            out[key] = torch.tensor(vals)
    return out
