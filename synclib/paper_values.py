"""The paper's published numbers (Tables I and II), typed from its text.

These are the only hand-typed numbers of the book; every page labels them as the paper's.
Keys: (paper data set, arch, method) with methods named as synclib names them.
"""

from __future__ import annotations

__all__ = ["TABLE1", "TABLE2", "TABLE3", "TABLE4", "METHOD_LABELS", "DATASET_LABELS"]

METHOD_LABELS = {"baseline": "Baseline", "csgcnn": "CSGCNN", "decoup": "Decoup", "cw": "CW*",
                 "iccnn": "icCNN", "icnn": "ICNN", "ours_nosync": "Ours w/o sync", "ours": "Ours (Eq. 6 as printed)",
                 "ours_mean": "Ours (mean over filters)", "ours_cells": "Ours (L_sync in map cells)",
                 "ours_tau1": "Ours (L_lac with no temperature)"}
DATASET_LABELS = {"voc_part": "VOC Part", "broden": "BRODEN", "cub200": "CUB-200",
                  "ilsvrc_part": "ILSVRC Part", "imagenet100": "ImageNet-100"}

_T1 = {  # method: (VGG16 interp, stability, purity, diversity, ResNet18 ...)
    "voc_part": {
        "baseline": (0.4613, 0.5526, 0.0614, 0.8845, 0.4388, 0.5371, 0.0667, 0.8905),
        "csgcnn": (0.5055, 0.5202, 0.0698, 0.8539, 0.3311, 0.5294, 0.0452, 0.8733),
        "decoup": (0.4571, 0.5242, 0.0577, 0.8626, 0.3704, 0.5121, 0.0474, 0.8880),
        "cw": (0.4218, 0.4743, 0.0411, 0.6542, 0.3114, 0.5378, 0.0289, 0.8730),
        "iccnn": (0.4505, 0.5492, 0.0556, 0.8790, 0.4464, 0.4886, 0.0723, 0.8612),
        "icnn": (0.4991, 0.4970, 0.0581, 0.3409, None, None, None, None),
        "ours_nosync": (0.6825, 0.4593, 0.0810, 0.6950, 0.7282, 0.4431, 0.0965, 0.5128),
        "ours": (0.6418, 0.4346, 0.0511, 0.8203, 0.6598, 0.4290, 0.0652, 0.7452),
    },
    "broden": {
        "baseline": (0.2171, 0.0018, 0.1773, 0.7915, 0.4210, 0.0017, 0.3742, 0.7643),
        "csgcnn": (0.2432, 0.0015, 0.1829, 0.8530, 0.3958, 0.0018, 0.3268, 0.8235),
        "decoup": (0.2321, 0.0019, 0.1751, 0.7284, 0.4150, 0.0018, 0.3671, 0.7769),
        "cw": (0.2497, 0.0054, 0.2025, 0.9130, 0.3646, 0.0013, 0.3105, 0.1979),
        "iccnn": (0.2304, 0.0128, 0.1590, 0.8569, 0.4013, 0.0016, 0.3337, 0.8149),
        "ours_nosync": (0.3323, 0.0015, 0.2258, 0.6512, 0.4441, 0.0021, 0.3902, 0.7567),
        "ours": (0.3156, 0.0012, 0.1697, 0.7529, 0.4621, 0.0017, 0.3417, 0.7762),
    },
}
_T2 = {  # method: (VGG16 VOC, CUB, ILSVRC, ImageNet-100, ResNet18 ...) in %
    "baseline": (90.99, 81.39, 90.71, 84.12, 88.26, 73.90, 88.72, 81.18),
    "csgcnn": (90.66, 77.20, 86.65, 80.70, 87.11, 71.82, 88.76, 80.68),
    "decoup": (91.43, 80.69, 91.04, 84.64, 88.50, 74.01, 87.17, 81.86),
    "cw": (90.72, 79.58, 91.73, 83.86, 90.77, 73.42, 90.48, 81.28),
    "iccnn": (90.44, 80.36, 90.84, 84.30, 88.63, 73.80, 88.82, 81.44),
    "icnn": (91.97, None, 86.30, None, None, None, None, None),
    "ours_nosync": (91.10, 82.68, 90.81, 83.96, 88.26, 74.04, 88.89, 82.14),
    "ours": (91.53, 82.48, 91.10, 84.40, 88.53, 74.34, 89.09, 82.04),
}

METRICS = ("interp", "stability", "purity", "diversity")
TABLE1: dict[tuple[str, str, str], dict[str, float | None]] = {}
for _ds, _rows in _T1.items():
    for _m, _v in _rows.items():
        TABLE1[(_ds, "vgg16", _m)] = dict(zip(METRICS, _v[:4]))
        TABLE1[(_ds, "resnet18", _m)] = dict(zip(METRICS, _v[4:]))

TABLE2: dict[tuple[str, str, str], float | None] = {}
for _m, _v in _T2.items():
    for _i, _ds in enumerate(("voc_part", "cub200", "ilsvrc_part", "imagenet100")):
        TABLE2[(_ds, "vgg16", _m)] = None if _v[_i] is None else _v[_i] / 100
        TABLE2[(_ds, "resnet18", _m)] = None if _v[4 + _i] is None else _v[4 + _i] / 100

# Table III: module consistency (lower is better), VGG16, per data set
TABLE3: dict[tuple[str, str], float] = {}
for _m, _v in {"baseline": (0.4617, 0.4855, 0.4847, 0.4858), "iccnn": (0.4481, 0.4827, 0.4653, 0.4711),
               "ours_nosync": (0.1501, 0.4925, 0.1507, 0.4872), "ours": (0.3267, 0.4306, 0.2663, 0.3571)}.items():
    for _ds, _x in zip(("voc_part", "cub200", "ilsvrc_part", "imagenet100"), _v):
        TABLE3[(_ds, _m)] = _x

# Table IV: alignment of modules with parts (VOC Part, VGG16)
TABLE4: dict[str, dict[str, float]] = {
    "baseline": {"nmi": 0.1432, "ari": 0.1152, "avi": 0.1267},
    "iccnn": {"nmi": 0.1599, "ari": 0.1277, "avi": 0.1532},
    "ours_nosync": {"nmi": 0.2502, "ari": 0.3126, "avi": 0.2285},
    "ours": {"nmi": 0.3538, "ari": 0.3905, "avi": 0.3542},
}
