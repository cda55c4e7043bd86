"""Converters, each on a miniature of its original layout that the test writes itself."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from synclib.data import FormatError, PartDataset


def jpeg(path, w, h, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, quality=95)


def struct_array(records, fields):
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            arr[0, i][f] = r[f]
    return arr


# ---------------------------------------------------------------- PASCAL-Part
def _box_mask(shape, t, l, b, r):
    m = np.zeros(shape, np.uint8)
    m[t:b, l:r] = 1
    return m


@pytest.fixture()
def voc(tmp_path):
    src = tmp_path / "VOC2010"
    shape = (100, 120)
    jpeg(src / "JPEGImages/2008_000001.jpg", 120, 100, 1)
    jpeg(src / "JPEGImages/2008_000002.jpg", 120, 100, 2)
    cat_parts = struct_array([
        {"part_name": "head", "mask": _box_mask(shape, 10, 20, 26, 40)},
        {"part_name": "leye", "mask": _box_mask(shape, 12, 40, 16, 44)},  # merged into head
        {"part_name": "torso", "mask": _box_mask(shape, 26, 20, 50, 84)},
        {"part_name": "lfleg", "mask": _box_mask(shape, 50, 20, 74, 30)},
        {"part_name": "tail", "mask": _box_mask(shape, 30, 74, 40, 84)},
    ], ["part_name", "mask"])
    objs = struct_array([
        {"class": "cat", "class_ind": 8, "mask": _box_mask(shape, 10, 20, 74, 84), "parts": cat_parts},
        {"class": "dog", "class_ind": 12, "mask": _box_mask(shape, 0, 0, 30, 30), "parts": np.zeros((0, 0))},
        {"class": "person", "class_ind": 15, "mask": _box_mask(shape, 0, 0, 99, 99), "parts": np.zeros((0, 0))},
    ], ["class", "class_ind", "mask", "parts"])
    (src / "Annotations_Part").mkdir(parents=True)
    savemat(src / "Annotations_Part/2008_000001.mat", {"anno": {"imname": "2008_000001", "objects": objs}})
    bird_parts = struct_array([
        {"part_name": "lwing", "mask": _box_mask(shape, 0, 0, 32, 64)},
        {"part_name": "lleg", "mask": _box_mask(shape, 32, 0, 64, 64)},
    ], ["part_name", "mask"])
    bird = struct_array([{"class": "bird", "class_ind": 3, "mask": _box_mask(shape, 0, 0, 64, 64),
                          "parts": bird_parts}], ["class", "class_ind", "mask", "parts"])
    savemat(src / "Annotations_Part/2008_000002.mat", {"anno": {"imname": "2008_000002", "objects": bird}})
    (src / "ImageSets/Main").mkdir(parents=True)
    (src / "ImageSets/Main/train.txt").write_text("2008_000001\n")
    (src / "ImageSets/Main/val.txt").write_text("2008_000002\n2008_009999\n")
    return src


def test_pascal_part_crops_filters_and_merges_parts(voc, tmp_path):
    from data_prep.pascal_part import convert

    convert(voc, tmp_path / "out", size=64, progress=False)
    train, test = PartDataset(tmp_path / "out", "train"), PartDataset(tmp_path / "out", "test")
    assert (len(train), len(test)) == (1, 1)  # small dog and person dropped
    cat = train[0]
    assert train.classes[cat["label"]] == "cat" and train.parts[0] == "head"
    m = cat["masks"]  # crop box rows 10:74, cols 20:84 -> 64x64, no resampling
    expect_head = torch.zeros(64, 64, dtype=torch.bool)
    expect_head[0:16, 0:20] = True
    expect_head[2:6, 20:24] = True  # the left eye joins the head
    assert torch.equal(m[0], expect_head)
    assert m[1].sum() == 24 * 64 - 10 * 10  # torso, minus the tail drawn over it later
    assert m[2][40:64, 0:10].all() and m[4][20:30, 54:64].all()
    assert not m[3].any()  # no back legs annotated
    bird = test[0]
    assert test.classes[bird["label"]] == "bird"
    assert bird["masks"][1][0:32].all() and bird["masks"][2][32:64].all()  # wing->torso, leg->front legs


def test_pascal_part_csgcnn_split_and_resume(voc, tmp_path):
    from data_prep.pascal_part import convert

    m1 = convert(voc, tmp_path / "out", size=32, split="csgcnn", progress=False)
    assert sum(m1["splits"].values()) == 2
    m2 = convert(voc, tmp_path / "out", size=32, split="csgcnn", progress=False)
    assert m1["fingerprints"] == m2["fingerprints"]


def test_pascal_part_errors_name_the_file(voc, tmp_path):
    from data_prep.pascal_part import convert

    (voc / "Annotations_Part/2008_000001.mat").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="2008_000001.mat: not a PASCAL-Part annotation"):
        convert(voc, tmp_path / "out", progress=False)
    with pytest.raises(FormatError, match="nowhere/Annotations_Part not found"):
        convert(tmp_path / "nowhere", tmp_path / "out", progress=False)


# ---------------------------------------------------------------- CUB-200-2011
@pytest.fixture()
def cub(tmp_path):
    return write_cub(tmp_path / "CUB_200_2011")


def write_cub(src):
    """A three-image CUB-200-2011 in its original layout."""
    (src / "parts").mkdir(parents=True)
    (src / "images.txt").write_text("1 001.A/a.jpg\n2 002.B/b.jpg\n3 002.B/c.jpg\n")
    (src / "classes.txt").write_text("1 001.A\n2 002.B\n")
    (src / "image_class_labels.txt").write_text("1 1\n2 2\n3 2\n")
    (src / "train_test_split.txt").write_text("1 1\n2 0\n3 1\n")
    (src / "bounding_boxes.txt").write_text("1 10.0 20.0 40.0 30.0\n2 0.0 0.0 80.0 60.0\n3 5 5 50 50\n")
    locs = ["1 6 30.0 35.0 1", "1 1 20.0 20.0 1", "1 14 70.0 30.0 1",  # tail outside the box
            "2 6 40.0 30.0 0", "2 1 8.0 6.0 1", "2 14 72.0 54.0 1",
            "3 6 10 10 1", "3 1 20 20 1", "3 14 30 30 1"]
    (src / "parts/part_locs.txt").write_text("\n".join(locs) + "\n")
    for p, s in (("001.A/a.jpg", 1), ("002.B/b.jpg", 2), ("002.B/c.jpg", 3)):
        jpeg(src / "images" / p, 80, 60, s)
    return src


def test_cub200_landmarks_in_the_crop(cub, tmp_path):
    from data_prep.cub200 import convert

    m = convert(cub, tmp_path / "out", size=32, progress=False)
    assert m["splits"] == {"train": 2, "test": 1} and m["classes"] == ["001.A", "002.B"]
    train = PartDataset(tmp_path / "out", "train")
    a = train[0]
    assert a["label"] == 0 and train.parts == ["head", "back", "tail"]
    torch.testing.assert_close(a["landmarks"], torch.tensor(
        [[0.5, 0.5, 1.0], [0.25, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    b = PartDataset(tmp_path / "out", "test")[0]
    assert b["label"] == 1 and b["landmarks"][0, 2] == 0  # invisible head
    torch.testing.assert_close(b["landmarks"][1], torch.tensor([0.1, 0.1, 1.0]))


def test_cub200_errors(cub, tmp_path):
    from data_prep.cub200 import convert

    (cub / "parts/part_locs.txt").write_text("1 6 30.0\n")
    with pytest.raises(FormatError, match="part_locs.txt line 1"):
        convert(cub, tmp_path / "out", progress=False)
    (cub / "parts/part_locs.txt").unlink()
    with pytest.raises(FormatError, match="part_locs.txt not found"):
        convert(cub, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- ILSVRC Animal-Part
def _v73_struct_field(f, group, field, values):
    """Write a MATLAB v7.3 struct array field: a dataset of references, one per element."""
    import h5py

    refs = []
    for i, v in enumerate(values):
        name = f"#refs#/{group}_{field}_{i}"
        if v is None:
            ds = f.create_dataset(name, data=np.zeros(2, np.uint64))
            ds.attrs["MATLAB_empty"] = 1
        elif isinstance(v, dict):  # a nested struct: a group
            g = f.create_group(name)
            for k, sub in v.items():
                if isinstance(sub, dict):
                    gg = g.create_group(k)
                    for kk, x in sub.items():
                        gg.create_dataset(kk, data=np.array([[x]], np.float64))
            ds = g
        else:
            ds = f.create_dataset(name, data=np.asarray(v, np.float64).reshape(1, -1))
        refs.append(ds.ref)
    grp = f.require_group(group)
    grp.create_dataset(field, data=np.array(refs, dtype=h5py.ref_dtype).reshape(-1, 1))


def test_ilsvrc_animal_part_reads_v73_files(tmp_path):
    import h5py

    from data_prep.ilsvrc_animal_part import convert

    src = tmp_path / "ilsvrc"
    wnid = "n02084071"
    boxes = [(11, 21, 50, 60), (1, 1, 40, 40), (5, 5, 44, 44), (1, 1, 20, 20), (2, 2, 30, 30)]
    for i in range(5):
        jpeg(src / f"{wnid}_obj/img/img/{i + 1:05d}.jpg", 64, 64, i)
    with h5py.File(src / f"{wnid}_obj/img/data.mat", "w") as f:
        _v73_struct_field(f, "samples", "obj", [{"bndbox": dict(zip(("xmin", "ymin", "xmax", "ymax"), b))}
                                                for b in boxes])
    (src / wnid).mkdir()
    with h5py.File(src / wnid / "truth_part01.mat", "w") as f:
        _v73_struct_field(f, "truth", "pHW_center", [(20.5, 10.5), None, None, (1.5, 1.5), None])
    m = convert(src, tmp_path / "out", size=32, progress=False)
    assert m["splits"]["train"] + m["splits"]["test"] == 5 and m["splits"]["parts"] == 2
    parts = PartDataset(tmp_path / "out", "parts")
    lm = parts[0]["landmarks"]  # box 40x40; centre (h 20.5, w 10.5) -> x = 10/40, y = 20/40
    torch.testing.assert_close(lm, torch.tensor([[0.25, 0.5, 1.0], [0.0, 0.0, 0.0]]))
    (src / wnid / "truth_part01.mat").write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="truth_part01.mat: not a MATLAB v7.3"):
        convert(src, tmp_path / "out2", progress=False)
    with pytest.raises(FormatError, match="holds none of the 30 categories"):
        convert(tmp_path, tmp_path / "out3", progress=False)


# ---------------------------------------------------------------- Broden
def test_broden_part_masks(tmp_path):
    from data_prep.broden import convert

    src = tmp_path / "broden"
    jpeg(src / "images/ade20k/a.jpg", 16, 16)
    jpeg(src / "images/pascal/b.jpg", 16, 16)
    labels = np.zeros((16, 16, 3), np.uint8)
    labels[:8, :, 0], labels[:8, :, 1] = 300 % 256, 300 // 256  # number 300 = "leg"
    labels[8:, :8, 0], labels[8:, :8, 1] = 1025 % 256, 1025 // 256  # number 1025 = "wheel"
    Image.fromarray(labels).save(src / "images/ade20k/a_part_1.png")
    (src / "index.csv").write_text(
        "image,split,ih,iw,sh,sw,color,object,part,material,scene,texture\n"
        "ade20k/a.jpg,train,16,16,16,16,,,ade20k/a_part_1.png,,,\n"
        "pascal/b.jpg,val,16,16,16,16,,,,,,\n")
    (src / "label.csv").write_text("number,name,category,frequency,coverage,syns\n300,leg,part(1),1,1,\n1025,wheel,part(1),1,1,\n")
    (src / "c_part.csv").write_text("code,number,name,frequency,coverage\n1,300,leg,1,1\n2,1025,wheel,1,1\n")
    m = convert(src, tmp_path / "out", size=16, progress=False)
    assert m["splits"] == {"test": 1} and m["parts"] == ["leg", "wheel"]
    it = PartDataset(tmp_path / "out", "test")[0]
    assert it["masks"][0][:8].all() and not it["masks"][0][8:].any()
    assert it["masks"][1][8:, :8].all() and it["masks"][1].sum() == 64
    (src / "c_part.csv").write_text("code,name\n1,leg\n")
    with pytest.raises(FormatError, match=r"c_part.csv lacks the columns \['number'\]"):
        convert(src, tmp_path / "out2", progress=False)


# ---------------------------------------------------------------- ImageNet-100
def test_imagenet100_links_and_labels(tmp_path):
    from data_prep.imagenet100 import convert, draw_wnids

    src = tmp_path / "in"
    for w in ("n001", "n002", "n003"):
        for i in range(2):
            jpeg(src / f"train/{w}/{w}_{i}.JPEG", 40, 30, i)
        jpeg(src / f"val/{w}/val_{w}.JPEG", 40, 30, 9)
    (tmp_path / "wnids.txt").write_text("n003\nn001\n")
    m = convert(src, tmp_path / "out", tmp_path / "wnids.txt", progress=False)
    assert m["splits"] == {"train": 4, "test": 2} and m["classes"] == ["n003", "n001"]
    ds = PartDataset(tmp_path / "out", "train")
    assert (tmp_path / "out" / ds.rows[0]["image"]).is_symlink()
    assert ds[0]["image"].shape == (3, 224, 224) and ds[0]["label"] == 0 and ds[0]["masks"] is None
    assert sorted(draw_wnids(src / "train", 1993, 2)) == sorted(draw_wnids(src / "train", 1993, 2))
    (tmp_path / "wnids.txt").write_text("n009\n")
    with pytest.raises(FormatError, match="train/n009 not found"):
        convert(src, tmp_path / "out2", tmp_path / "wnids.txt", progress=False)
