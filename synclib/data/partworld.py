"""PartWorld: a procedural part benchmark whose ground truth is known.

Writes a part dataset (see `synclib.data.format`): animals of 6 classes built from 5 part
kinds (head, torso, front legs, back legs, tail). Each part kind has two variants that differ
in shape and texture; a class is a combination of variants (any two classes differ in at
least two parts), so a classifier must look at the parts. Each object has a random colour,
position, scale and flip, on a cluttered background of textured distractor shapes. Pixel
masks and landmarks (each part's centroid) come with every image.

Difficulty (`difficulty=`, all off by default, so an old data set renders as before): `swap`,
the probability that a part takes the other variant than its class's (parts shared between
classes: some images are then ambiguous, which bounds the attainable accuracy); `texture_mix`,
the probability that a part wears the other variant's texture (variants that differ less);
`occlusion`, the probability that a distractor is painted over the object (the parts it
hides leave the masks); `clutter`, extra distractors per image, drawn with the parts'
own textures. The difficulty's draws come from their own stream, so they never move the
draws of the easy world.

Every sample is a pure function of (seed, split, index): `PartWorld(seed).render(split, i,
remove=("head",))` renders the same image again with parts removed (a part intervention),
so analyses can ask which filters a part's removal silences.

    python -m synclib.data.partworld --out DIR --n-train N --n-test N --size S --seed S [--swap P ...] [--force]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..files import atomic_write_bytes, atomic_write_text, read_json
from ..schema import GENERATE, SchemaError, check
from .format import read_manifest, write_manifest, write_split_csv

__all__ = ["PartWorld", "PARTS", "CLASSES", "CLASS_VARIANTS", "generate", "WorldMismatch", "world_differences"]

PARTS = ["head", "torso", "front_legs", "back_legs", "tail"]
CLASSES = ["ardent", "bristle", "corvid", "dapple", "ember", "fennic"]
# Variant of each part (columns in PARTS order) per class; rows differ in >= 2 parts.
CLASS_VARIANTS = np.array([
    [0, 0, 0, 0, 0],
    [1, 0, 1, 0, 1],
    [0, 1, 1, 1, 0],
    [1, 1, 0, 1, 1],
    [0, 0, 1, 1, 1],
    [1, 1, 1, 0, 0],
])
SPLITS = {"train": 0, "test": 1}
PAINT_ORDER = ["tail", "back_legs", "front_legs", "torso", "head"]  # later paints on top
VERSION = 1
DIFFICULTY = {"swap": 0.0, "texture_mix": 0.0, "occlusion": 0.0, "clutter": 0}
STRETCH = 1.45  # vertical scale of the object relative to its length


@dataclass
class _Spec:
    label: int
    variants: np.ndarray  # (K,)
    cx: float  # object centre, pixels (col)
    cy: float  # object centre, pixels (row)
    length: float  # torso length in pixels
    flip: bool
    colour: np.ndarray  # (3,) base colour in [0, 1]
    shades: np.ndarray  # (K,) brightness of each part
    bg_seed: int
    textures: np.ndarray | None = None  # (K,) the variant whose texture each part wears
    occluders: int = 0
    hard_seed: int = 0


def _stripes(u, v, period, angle):
    t = np.cos(angle) * u + np.sin(angle) * v
    return (np.floor(t / period) % 2) == 0


def _dots(u, v, period):
    du = (u % period) - period / 2
    dv = (v % period) - period / 2
    return du * du + dv * dv < (period * 0.3) ** 2


class PartWorld:
    """The generator. `render(split, i, remove=())` -> (image (S,S,3) uint8, index mask (S,S) uint8)."""

    def __init__(self, seed: int = 0, size: int = 112, difficulty: dict | None = None):
        self.seed = seed
        self.size = size
        unknown = sorted(set(difficulty or {}) - set(DIFFICULTY))
        if unknown:
            raise ValueError(f"unknown PartWorld difficulty {unknown}; known: {sorted(DIFFICULTY)}")
        self.difficulty = {**DIFFICULTY, **(difficulty or {})}
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self.yy, self.xx = yy, xx

    def spec(self, split: str, i: int) -> _Spec:
        rng = np.random.default_rng([self.seed, SPLITS[split], i])
        s = self.size
        label = int(rng.integers(len(CLASSES)))
        # the object fills most of the frame, like the box-cropped (and so vertically
        # stretched) objects of the ICNN protocol: it extends about [-0.95, 0.9] L in x and
        # [-0.5, 0.62] * STRETCH * L in y around its centre
        length = float(rng.uniform(0.46, 0.52) * s)
        cx = float(rng.uniform(min(0.93 * length, s / 2), max(s - 0.93 * length, s / 2)))
        ly = STRETCH * length
        cy = float(rng.uniform(min(0.52 * ly, s / 2), max(s - 0.64 * ly, s / 2)))
        colour = rng.uniform(0.25, 0.95, size=3)
        sp = _Spec(label, CLASS_VARIANTS[label].copy(), cx, cy, length, bool(rng.integers(2)),
                   colour, rng.uniform(0.75, 1.15, size=len(PARTS)), int(rng.integers(2**31)))
        d = self.difficulty
        if any(d.values()):  # a stream of its own: the easy world's draws above stay as they were
            hard = np.random.default_rng([self.seed, SPLITS[split], i, 1])
            k = len(PARTS)
            sp.variants = np.where(hard.random(k) < d["swap"], 1 - sp.variants, sp.variants)
            sp.textures = np.where(hard.random(k) < d["texture_mix"], 1 - sp.variants, sp.variants)
            sp.occluders = int(hard.random() < d["occlusion"]) * int(hard.integers(1, 3))
            sp.hard_seed = int(hard.integers(2**31))
        return sp

    # -- drawing ---------------------------------------------------------------------------
    def _background(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        s = self.size
        img = np.empty((s, s, 3), np.float32)
        img[:] = rng.uniform(0.2, 0.8, size=3)
        img += rng.normal(0, 0.04, size=(s, s, 3)).astype(np.float32)
        for _ in range(int(rng.integers(6, 11))):  # textured distractors
            self._distractor(img, rng)
        return img

    def _distractor(self, img: np.ndarray, rng, part_like: bool = False) -> np.ndarray:
        """Paint one textured shape; returns its mask. `part_like`: a part's texture and scale."""
        s = self.size
        xx, yy = self.xx, self.yy
        c = rng.uniform(0, s, size=2)
        r = rng.uniform(0.05, 0.18, size=2) * s
        ang = rng.uniform(0, np.pi)
        u = (xx - c[0]) * np.cos(ang) + (yy - c[1]) * np.sin(ang)
        v = -(xx - c[0]) * np.sin(ang) + (yy - c[1]) * np.cos(ang)
        if rng.integers(2):
            shape = (u / r[0]) ** 2 + (v / r[1]) ** 2 < 1
        else:
            shape = (np.abs(u) < r[0]) & (np.abs(v) < r[1] * 0.6)
        col = rng.uniform(0, 1, size=3)
        if part_like:  # the parts' textures at the parts' scale (torso length about s / 2)
            ul, vl = u / (0.5 * s), v / (0.5 * s * STRETCH)
            tex = _dots(ul, vl, 0.16) if rng.integers(2) else _stripes(ul, vl, 0.09, rng.uniform(0, np.pi))
        else:
            tex = [_stripes(u, v, rng.uniform(3, 7), rng.uniform(0, np.pi)),
                   _dots(u, v, rng.uniform(4, 8)), np.ones_like(shape)][int(rng.integers(3))]
        img[shape] = col
        img[shape & tex] = col * (0.45 if part_like else 0.55)
        return shape

    def _part_shape(self, part: str, variant: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Boolean mask of a part in object coordinates (u forward, v down, torso length 1)."""
        if part == "torso":
            if variant == 0:  # ellipse
                return (u / 0.5) ** 2 + (v / 0.26) ** 2 < 1
            return (np.abs(u) < 0.48) & (np.abs(v) < 0.2)  # box
        if part == "head":
            hu, hv = u - 0.62, v + 0.22
            if variant == 0:  # round
                return hu * hu + hv * hv < 0.22**2
            return np.abs(hu) + np.abs(hv) < 0.28  # diamond
        if part in ("front_legs", "back_legs"):
            xs = (0.34, 0.16) if part == "front_legs" else (-0.34, -0.16)
            out = np.zeros_like(u, dtype=bool)
            for x0 in xs:
                if variant == 0:  # thin straight
                    out |= (np.abs(u - x0) < 0.05) & (v > 0.1) & (v < 0.62)
                else:  # thick, splayed
                    xc = x0 + 0.35 * (v - 0.1) * np.sign(x0)
                    out |= (np.abs(u - xc) < 0.075) & (v > 0.1) & (v < 0.55)
            return out
        if part == "tail":
            if variant == 0:  # long thin, raised
                t = np.clip((-(u + 0.45)) / 0.5, 0, 1)
                vc = -0.05 - 0.45 * t
                return (u < -0.42) & (u > -0.95) & (np.abs(v - vc) < 0.06)
            tu = -(u + 0.45)  # short fan
            return (tu > 0) & (tu < 0.4) & (np.abs(v + 0.02) < 0.06 + 0.55 * tu)
        raise ValueError(part)

    def _texture(self, part: str, variant: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        if variant == 0:
            return _dots(u, v, 0.16)
        return _stripes(u, v, 0.09, 0.8 if part in ("torso", "tail") else 0.0)

    def render(self, split: str, i: int, remove: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Image (S, S, 3) uint8 and part index map (S, S) uint8 (0 = background, k+1 = part k).

        remove: part names left out; the background shows where they were.
        """
        bad = [p for p in remove if p not in PARTS]
        if bad:
            raise ValueError(f"unknown parts {bad}; PartWorld's parts are {PARTS}")
        sp = self.spec(split, i)
        img = self._background(sp.bg_seed)
        hard = np.random.default_rng(sp.hard_seed)
        for _ in range(int(self.difficulty["clutter"])):
            self._distractor(img, hard, part_like=True)
        mask = np.zeros((self.size, self.size), np.uint8)
        u = (self.xx - sp.cx) / sp.length
        v = (self.yy - sp.cy) / (STRETCH * sp.length)
        if sp.flip:
            u = -u
        for part in PAINT_ORDER:
            if part in remove:
                continue
            k = PARTS.index(part)
            var = int(sp.variants[k])
            shape = self._part_shape(part, var, u, v)
            tex = self._texture(part, var if sp.textures is None else int(sp.textures[k]), u, v)
            col = np.clip(sp.colour * sp.shades[k], 0, 1)
            img[shape] = col
            img[shape & tex] = col * 0.45
            mask[shape] = k + 1
        for _ in range(sp.occluders):  # in front of the object: what it hides is no part
            mask[self._distractor(img, hard)] = 0
        return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask

    def landmarks(self, mask: np.ndarray) -> list[tuple[float, float, float]]:
        """Each part's centroid as normalized (x, y, visible) from an index map."""
        out = []
        s = self.size
        for k in range(len(PARTS)):
            rows, cols = np.nonzero(mask == k + 1)
            if len(rows) == 0:
                out.append((0.0, 0.0, 0.0))
            else:
                out.append((float((cols + 0.5).mean() / s), float((rows + 0.5).mean() / s), 1.0))
        return out


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class WorldMismatch(ValueError):
    """The folder holds PartWorld rendered with other parameters (or files of something else)."""

    def __init__(self, out: Path, held: dict | None, asked: dict, message: str):
        super().__init__(message)
        self.out, self.held, self.asked = out, held, asked


def _held(out: Path) -> tuple[dict | None, dict | None]:
    """(parameters, manifest) of the PartWorld in `out`: its manifest's parameters, else those
    recorded before rendering began (generating.json); None for a folder empty or absent, {}
    for one that holds something else."""
    if (out / "manifest.json").is_file():
        m = read_manifest(out)
        return m.get("source", {}).get("params", {}), m
    stamp = out / "generating.json"
    if stamp.is_file():
        return read_json(stamp, f"delete {out} and generate again", what="PartWorld's parameters"), None
    if out.is_dir() and any(out.iterdir()):
        return {}, None  # something, but not a PartWorld synclib rendered
    return None, None


def world_differences(held: dict, asked: dict) -> str:
    keys = [k for k in sorted(set(held) | set(asked)) if held.get(k) != asked.get(k)]
    return ", ".join(f"{k} {held.get(k)!r} there, {asked.get(k)!r} asked" for k in keys)


def generate(out: str | Path, n_train: int = 800, n_test: int = 200, size: int = 112,
             seed: int = 0, progress: bool = True, difficulty: dict | None = None,
             force: bool = False) -> dict:
    """Write PartWorld as a part dataset under `out`; returns the manifest.

    The parameters are recorded (`generating.json`) before the first image is rendered, so an
    interrupted generation resumes (the images on disk are a function of seed, split and
    index, and are kept) and a finished data set with the same parameters is returned as it
    is. A folder that holds another seed, size, count or difficulty is refused (WorldMismatch,
    naming both): give another `out`, or `force=True` to render afresh into `OUT.partial`,
    renamed into place when it is whole.
    """
    out = Path(out)
    params = {"n_train": n_train, "n_test": n_test, "size": size, "seed": seed, "version": VERSION}
    world = PartWorld(seed, size, difficulty)
    if any(world.difficulty.values()):  # an easy world keeps the parameters (and fingerprints) it had
        params["difficulty"] = world.difficulty
    if force:
        return _generate_afresh(out, params, world, progress)
    held, m = _held(out)
    if held is not None and held != params:
        what = (f"PartWorld rendered with {held}" if held else
                "files that are not a PartWorld synclib rendered (no manifest.json, no generating.json)")
        diff = f" ({world_differences(held, params)})" if held else ""
        raise WorldMismatch(out, held, params, f"{out} holds {what}; asked for {params}{diff}. Give another "
                            "--out, or --force to render afresh (into a new folder, renamed into place when whole)")
    if m is not None:
        if m.get("mask_format") is None:  # written before masks could overlap: the same files
            m = write_manifest(out, {k: v for k, v in m.items() if k != "fingerprints"})
        return m
    atomic_write_text(out / "generating.json", json.dumps(params))  # before the first image
    return _render(out, params, world, progress)


def _generate_afresh(out: Path, params: dict, world: PartWorld, progress: bool) -> dict:
    partial = out.with_name(out.name + ".partial")
    if _held(partial)[0] not in (None, params):  # another world's half: not ours to resume
        shutil.rmtree(partial)
    if _held(partial)[0] is None:
        atomic_write_text(partial / "generating.json", json.dumps(params))
    _render(partial, params, world, progress)
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    partial.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return read_manifest(out)


def _render(out: Path, params: dict, world: PartWorld, progress: bool) -> dict:
    n_train, n_test, size = params["n_train"], params["n_test"], params["size"]
    for split, n in (("train", n_train), ("test", n_test)):
        rows = []
        for i in tqdm(range(n), desc=f"PartWorld {split}", disable=not progress, unit="img"):
            img_rel, mask_rel = f"images/{split}/{i:06d}.png", f"masks/{split}/{i:06d}.png"
            if (out / img_rel).is_file() and (out / mask_rel).is_file():
                mask = np.asarray(Image.open(out / mask_rel))
                label = world.spec(split, i).label
            else:
                img, mask = world.render(split, i)
                label = world.spec(split, i).label
                atomic_write_bytes(out / img_rel, _png(img))
                atomic_write_bytes(out / mask_rel, _png(mask))
            row = {"id": f"{split}-{i:06d}", "image": img_rel, "label": label, "mask": mask_rel}
            for p, (x, y, vis) in zip(PARTS, world.landmarks(mask)):
                row.update({f"{p}_x": f"{x:.6f}", f"{p}_y": f"{y:.6f}", f"{p}_v": int(vis)})
            rows.append(row)
        write_split_csv(out, split, rows, PARTS, has_landmarks=True)
    return write_manifest(out, {
        "name": "partworld", "classes": CLASSES, "parts": PARTS, "image_size": size,
        "splits": {"train": n_train, "test": n_test}, "has_masks": True, "has_landmarks": True,
        "source": {"generator": "synclib.data.partworld", "params": params},
    })


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--seed", type=int, default=0)
    for k in DIFFICULTY:
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(DIFFICULTY[k]), default=DIFFICULTY[k],
                        help=f"difficulty: {k} (default {DIFFICULTY[k]}: off)")
    ap.add_argument("--force", action="store_true",
                    help="render afresh into OUT.partial and rename it into place, whatever OUT holds")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:

        check({"n_train": args.n_train, "n_test": args.n_test, "size": args.size, "seed": args.seed,
               "difficulty": {k: getattr(args, k) for k in DIFFICULTY}}, GENERATE)
        m = generate(args.out, args.n_train, args.n_test, args.size, args.seed,
                     difficulty={k: getattr(args, k) for k in DIFFICULTY}, force=args.force)
    except (SchemaError, WorldMismatch) as e:
        raise SystemExit(f"partworld: {e}") from None
    n = sum(m["splits"].values())
    print(f"wrote {n} images of {args.size}x{args.size} to {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
