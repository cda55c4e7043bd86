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


def _voc_xml(path, objects):
    """A VOC annotation: objects as (name, (xmin, ymin, xmax, ymax)) in 1-based pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<object><name>{n}</name><pose>Left</pose><truncated>0</truncated><difficult>0</difficult>"
                   f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox>"
                   "</object>" for n, b in objects)
    path.write_text(f"<annotation><folder>VOC2010</folder><filename>{path.stem}.jpg</filename>{body}</annotation>")


def _parts(shape, spec):
    return struct_array([{"part_name": n, "mask": _box_mask(shape, *tlbr)} for n, tlbr in spec], ["part_name", "mask"])


def _anno(path, shape, objects):
    objs = struct_array([{"class": c, "class_ind": i, "mask": _box_mask(shape, *tlbr),
                          "parts": _parts(shape, parts) if parts else np.zeros((0, 0))}
                         for c, i, tlbr, parts in objects], ["class", "class_ind", "mask", "parts"])
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"anno": {"imname": path.stem, "objects": objs}})


@pytest.fixture()
def voc(tmp_path):
    """Three VOC2010 images with PASCAL-Part annotations: a cow (and a small dog and a person),
    a horse with hooves and a tail, a bird and a thin but large sheep."""
    src = tmp_path / "VOC2010"
    shape = (100, 120)
    for k in (1, 2, 3):
        jpeg(src / f"JPEGImages/2008_00000{k}.jpg", 120, 100, k)
    # cow: VOC box x 11..74, y 11..74 (1-based): the crop is rows/cols 10:74 (0-based), 64x64
    _voc_xml(src / "Annotations/2008_000001.xml", [("cow", (11, 11, 74, 74)), ("dog", (81, 1, 120, 40)),
                                                   ("person", (1, 1, 120, 100))])
    # the person is drawn first: the animals, painted later, occlude it
    _anno(src / "Annotations_Part/2008_000001.mat", shape, [
        ("person", 15, (0, 0, 100, 120), None),
        ("cow", 10, (10, 10, 74, 74), [("head", (12, 12, 20, 30)), ("lhorn", (12, 30, 14, 34)),
                                      ("torso", (20, 12, 50, 66)), ("lfuleg", (50, 12, 60, 20)),
                                      ("lflleg", (60, 12, 72, 20)), ("lbuleg", (50, 60, 72, 70)),
                                      ("tail", (20, 66, 30, 72))]),
        ("dog", 12, (0, 80, 40, 120), [("head", (0, 80, 10, 90))]),
    ])
    # horse: box x 1..64, y 1..64 -> crop rows/cols 0:64; the box's first and last rows and
    # columns are zeroed by ICNN's getPart_one
    _voc_xml(src / "Annotations/2008_000002.xml", [("horse", (1, 1, 64, 64))])
    _anno(src / "Annotations_Part/2008_000002.mat", shape, [
        ("horse", 13, (0, 0, 64, 64), [("head", (0, 0, 10, 20)), ("torso", (10, 5, 40, 55)),
                                      ("lfho", (55, 5, 63, 12)), ("rbuleg", (40, 40, 55, 50)),
                                      ("tail", (10, 55, 30, 63))]),
    ])
    # bird 64x64 and a thin sheep: 30 wide, 100 tall, area 3000 >= 50^2 though its width is < 50
    _voc_xml(src / "Annotations/2008_000003.xml", [("bird", (1, 1, 64, 64)), ("sheep", (81, 1, 110, 100))])
    _anno(src / "Annotations_Part/2008_000003.mat", shape, [
        ("bird", 3, (0, 0, 64, 64), [("lwing", (2, 2, 30, 62)), ("lleg", (40, 2, 62, 20)),
                                    ("tail", (30, 40, 40, 62)), ("beak", (30, 2, 34, 6))]),
        ("sheep", 17, (0, 80, 100, 110), [("torso", (10, 82, 90, 108))]),
    ])
    (src / "ImageSets/Main").mkdir(parents=True)
    (src / "ImageSets/Main/train.txt").write_text("2008_000001\n2008_000002\n")
    (src / "ImageSets/Main/val.txt").write_text("2008_000003\n2008_009999\n")
    return src


def _rect(t, l, b, r, n=64):
    m = torch.zeros(n, n, dtype=torch.bool)
    m[t:b, l:r] = True
    return m


def test_pascal_part_follows_icnn_getpart(voc, tmp_path):
    from data_prep.pascal_part import PARTS, convert

    convert(voc, tmp_path / "out", size=64, progress=False)
    train, test = PartDataset(tmp_path / "out", "train"), PartDataset(tmp_path / "out", "test")
    assert [train.classes[train[i]["label"]] for i in range(len(train))] == ["cow", "horse"]  # small dog dropped
    assert [test.classes[test[i]["label"]] for i in range(len(test))] == ["bird", "sheep"]  # thin sheep kept
    assert PARTS == ["head", "torso", "front_legs", "back_legs", "tail"]
    cow = train[0]["masks"]  # crop origin (10, 10); no resampling at 64
    torch.testing.assert_close(cow[0], _rect(2, 2, 10, 20) | _rect(2, 20, 4, 24))  # head with its horn
    torch.testing.assert_close(cow[1], _rect(10, 2, 40, 56))
    torch.testing.assert_close(cow[2], _rect(40, 2, 62, 10))  # upper and lower front leg
    torch.testing.assert_close(cow[3], _rect(40, 50, 62, 60))
    assert not cow[4].any()  # ICNN merges no tail for cows, though PASCAL-Part annotates one
    horse = train[1]["masks"]  # the box's edge rows/columns 0 and 63 are zeroed
    torch.testing.assert_close(horse[0], _rect(1, 1, 10, 20))
    torch.testing.assert_close(horse[2], _rect(55, 5, 63, 12))  # the hoof is a front leg
    torch.testing.assert_close(horse[3], _rect(40, 40, 55, 50))
    assert not horse[4].any()
    bird = test[0]["masks"]
    torch.testing.assert_close(bird[1], _rect(2, 2, 30, 62))  # the wing is torso
    torch.testing.assert_close(bird[2], _rect(40, 2, 62, 20))  # the legs fill ICNN's third slot
    torch.testing.assert_close(bird[4], _rect(30, 40, 40, 62))
    torch.testing.assert_close(bird[0], _rect(30, 2, 34, 6))  # the beak is head
    sheep = test[1]["masks"]
    assert sheep[1].sum() > 0 and not sheep[0].any()


def test_pascal_part_csgcnn_split_and_resume(voc, tmp_path):
    from data_prep.pascal_part import convert

    m1 = convert(voc, tmp_path / "out", size=32, split="csgcnn", progress=False)
    assert sum(m1["splits"].values()) == 4
    m2 = convert(voc, tmp_path / "out", size=32, split="csgcnn", progress=False)
    assert m1["fingerprints"] == m2["fingerprints"]


def test_pascal_part_errors_name_the_file(voc, tmp_path):
    from data_prep.pascal_part import convert

    jpg = voc / "JPEGImages/2008_000002.jpg"
    jpg.write_bytes(jpg.read_bytes()[:400])  # a truncated JPEG
    with pytest.raises(FormatError, match=r"2008_000002.jpg: cannot decode the image"):
        convert(voc, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and (tmp_path / "out.partial").is_dir()  # nothing half-made in place
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
    given = {(1, 6): "30.0 35.0 1", (1, 1): "20.0 20.0 1", (1, 14): "70.0 30.0 1",  # tail outside the box
             (2, 6): "40.0 30.0 0", (2, 1): "8.0 6.0 1", (2, 14): "72.0 54.0 1",
             (3, 6): "10 10 1", (3, 1): "20 20 1", (3, 14): "30 30 1"}
    locs = [f"{i} {p} {given.get((i, p), '0.0 0.0 0')}" for i in (1, 2, 3) for p in range(1, 16)]  # 15 per image
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

    locs = (cub / "parts/part_locs.txt").read_text()
    (cub / "parts/part_locs.txt").write_text("1 6 30.0\n")
    with pytest.raises(FormatError, match="part_locs.txt line 1"):
        convert(cub, tmp_path / "out", progress=False)
    (cub / "parts/part_locs.txt").write_text("\n".join(locs.splitlines()[:-4]) + "\n")  # truncated
    with pytest.raises(FormatError, match=r"part_locs.txt: image 3 has 11 rows, CUB-200-2011 has 15"):
        convert(cub, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    (cub / "parts/part_locs.txt").write_text(locs)
    jpg = cub / "images/002.B/c.jpg"
    good = jpg.read_bytes()
    jpg.write_bytes(good[:300])
    with pytest.raises(FormatError, match=r"002.B/c.jpg: cannot decode the image"):
        convert(cub, tmp_path / "out", progress=False)
    jpg.write_bytes(good)
    (cub / "parts/part_locs.txt").unlink()
    with pytest.raises(FormatError, match="part_locs.txt not found"):
        convert(cub, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- ILSVRC Animal-Part
MAT73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Nov 28 00:00:00 2026 HDF5 schema 1.00 ."


def _mat73(path, build):
    """A MATLAB 7.3 file: HDF5 behind a 512-byte user block whose header names the version."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        build(f)
    with open(path, "r+b") as fh:
        fh.write(MAT73_HEADER.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


def _h5_value(f, name, v):
    """One MATLAB value under #refs#: a double matrix (stored transposed), a char row, an empty
    matrix, or a struct (a group of such values)."""
    import h5py

    if isinstance(v, dict):
        g = f.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        for k, x in v.items():
            if isinstance(x, dict):
                _h5_value(f, f"{name}/{k}", x)
            elif isinstance(x, str):
                d = g.create_dataset(k, data=np.array([[ord(c)] for c in x], np.uint16))
                d.attrs["MATLAB_class"] = np.bytes_("char")
            else:
                d = g.create_dataset(k, data=np.array(x, np.float64).reshape(1, 1))
                d.attrs["MATLAB_class"] = np.bytes_("double")
        return g
    if isinstance(v, str):
        d = f.create_dataset(name, data=np.array([[ord(c)] for c in v], np.uint16))
        d.attrs["MATLAB_class"] = np.bytes_("char")
        return d
    if v is None or np.asarray(v).size == 0:
        d = f.create_dataset(name, data=np.zeros(2, np.uint64))
        d.attrs["MATLAB_class"] = np.bytes_("double")
        d.attrs["MATLAB_empty"] = np.uint8(1)
        return d
    d = f.create_dataset(name, data=np.asarray(v, np.float64).T)  # MATLAB's 2×n is stored n×2
    d.attrs["MATLAB_class"] = np.bytes_("double")
    assert isinstance(d, h5py.Dataset)
    return d


def _h5_struct_array(f, var, records):
    """A MATLAB 7.3 struct array `var` (n×1): one dataset of references per field."""
    import h5py

    fields = list(records[0])
    g = f.create_group(var)
    g.attrs["MATLAB_class"] = np.bytes_("struct")
    for field in fields:
        refs = [_h5_value(f, f"#refs#/{var}_{field}_{i}", r[field]).ref for i, r in enumerate(records)]
        g.create_dataset(field, data=np.array(refs, dtype=h5py.ref_dtype).reshape(-1, 1))


def _truth_obj(wnid, i):
    return {"ID": float(i), "bndbox": {"xmin": "12", "ymin": "20", "xmax": "200", "ymax": "180"},
            "filename": f"{wnid}_{10000 + i}", "folder": wnid, "name": wnid}


ILSVRC_BOXES = [(1, 1, 300, 260), (11, 21, 60, 70), (5, 5, 40, 40), (1, 1, 250, 250), (20, 30, 280, 250),
                (1, 1, 100, 100), (1, 1, 120, 90), (3, 3, 99, 99), (1, 1, 64, 64), (2, 2, 200, 200)]


@pytest.fixture()
def ilsvrc(tmp_path):
    """One category of ILSVRC Animal-Part as the two real repositories lay it out: detanimalpart's
    images and data.mat (7.3), ICNN's truth files (head in 7.3, front legs in MATLAB 5)."""
    src = tmp_path / "ilsvrc"
    wnid = "n02084071"
    for i in range(1, 11):
        jpeg(src / f"{wnid}_obj/img/img/{i:05d}.jpg", 300, 260, i)
    _mat73(src / f"{wnid}_obj/img/data.mat", lambda f: _h5_struct_array(f, "samples", [
        {"obj": {"bndbox": dict(zip(("ymin", "ymax", "xmin", "xmax"), (b[1], b[3], b[0], b[2])))}, "class": wnid}
        for b in ILSVRC_BOXES]))
    head = {1: [[112.0], [56.0]],  # (h, w) in the 224×224 resized box: x = 56/224, y = 112/224
            3: [[10.0], [10.0]],  # the dropped small box's
            4: [[50.0, 60.0], [70.0, 80.0]],  # two instances: ICNN uses neither
            5: [[56.0], [168.0]]}
    _mat73(src / wnid / "truth_part01.mat", lambda f: _h5_struct_array(f, "truth", [
        {"pHW_center": head.get(i), "pHW_scale": None if i not in head else [[1.0]],
         "obj": _truth_obj(wnid, i) if i in head else None} for i in range(1, 11)]))
    legs = {1: np.array([[200.0], [20.0]])}
    savemat(src / wnid / "truth_part02.mat", {"truth": struct_array(
        [{"pHW_center": legs.get(i, np.zeros((0, 0))), "pHW_scale": np.zeros((0, 0)),
          "obj": _truth_obj(wnid, i) if i in legs else np.zeros((0, 0))} for i in range(1, 11)],
        ["pHW_center", "pHW_scale", "obj"])})
    return src


def test_ilsvrc_animal_part_as_icnn_reads_it(ilsvrc, tmp_path):
    from data_prep.ilsvrc_animal_part import convert, icnn_train, mat_version

    wnid = "n02084071"
    assert mat_version(ilsvrc / wnid / "truth_part01.mat") == "7.3"
    assert mat_version(ilsvrc / wnid / "truth_part02.mat") == "5"
    assert icnn_train(10) == {1, 2, 3, 4, 6, 7, 8, 9, 10}  # round(linspace(1, 10, 9))
    m = convert(ilsvrc, tmp_path / "out", size=32, progress=False)
    # image 3 (36×36 < 50²) is dropped; image 5 is ICNN's one test image of ten
    assert m["splits"] == {"train": 8, "test": 1, "parts": 2}
    parts = PartDataset(tmp_path / "out", "parts")
    assert [r["id"] for r in parts.rows] == [f"{wnid}_00001", f"{wnid}_00005"]
    # box 300×260, larger than 224: the centre is measured in the 224×224 resize, not in box pixels
    torch.testing.assert_close(parts[0]["landmarks"], torch.tensor([[0.25, 0.5, 1.0], [20 / 224, 200 / 224, 1.0]]))
    torch.testing.assert_close(parts[1]["landmarks"], torch.tensor([[0.75, 0.25, 1.0], [0.0, 0.0, 0.0]]))
    train = PartDataset(tmp_path / "out", "train")
    four = next(i for i, r in enumerate(train.rows) if r["id"].endswith("00004"))
    assert train[four]["landmarks"][:, 2].sum() == 0  # the two-instance head is not used
    assert PartDataset(tmp_path / "out", "test").rows[0]["id"] == f"{wnid}_00005"


def test_ilsvrc_animal_part_malformed_inputs(ilsvrc, tmp_path):
    from data_prep.ilsvrc_animal_part import convert

    wnid = "n02084071"
    (ilsvrc / wnid / "truth_part01.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(FormatError, match=r"truth_part01.mat: not a MATLAB file \(neither v5 nor v7.3"):
        convert(ilsvrc, tmp_path / "out", progress=False)
    (ilsvrc / wnid / "truth_part01.mat").unlink()
    jpg = ilsvrc / f"{wnid}_obj/img/img/00004.jpg"
    jpg.write_bytes(jpg.read_bytes()[:500])
    with pytest.raises(FormatError, match=r"00004.jpg: cannot decode the image"):
        convert(ilsvrc, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    jpg.unlink()
    with pytest.raises(FormatError, match=r"00004.jpg not found"):
        convert(ilsvrc, tmp_path / "out", progress=False)
    with pytest.raises(FormatError, match="holds none of the 30 categories"):
        convert(tmp_path, tmp_path / "out3", progress=False)


# ---------------------------------------------------------------- Broden
def _broden(tmp_path):
    src = tmp_path / "broden"
    jpeg(src / "images/ade20k/a.jpg", 16, 16)
    jpeg(src / "images/pascal/b.jpg", 16, 16)
    labels = np.zeros((16, 16, 3), np.uint8)
    labels[:8, :, 0], labels[:8, :, 1] = 300 % 256, 300 // 256  # number 300 = "leg"
    labels[8:, :8, 0], labels[8:, :8, 1] = 1025 % 256, 1025 // 256  # number 1025 = "wheel"
    Image.fromarray(labels).save(src / "images/ade20k/a_part_1.png")
    second = np.zeros((16, 16, 3), np.uint8)  # a second-level part inside the leg: the foot
    second[4:8, 0:4, 0], second[4:8, 0:4, 1] = 77, 0
    Image.fromarray(second).save(src / "images/ade20k/a_part_2.png")
    (src / "index.csv").write_text(
        "image,split,ih,iw,sh,sw,color,object,part,material,scene,texture\n"
        "ade20k/a.jpg,train,16,16,16,16,,,ade20k/a_part_1.png;ade20k/a_part_2.png,,,\n"
        "pascal/b.jpg,val,16,16,16,16,,,,,,\n")
    (src / "label.csv").write_text("number,name,category,frequency,coverage,syns\n77,foot,part(2),1,1,\n"
                                   "300,leg,part(1),1,1,\n1025,wheel,part(1),1,1,\n")
    (src / "c_part.csv").write_text("code,number,name,frequency,coverage\n1,300,leg,1,1\n2,1025,wheel,1,1\n"
                                    "3,77,foot,1,1\n")
    return src


def test_broden_keeps_every_part_layer(tmp_path):
    from data_prep.broden import convert

    src = _broden(tmp_path)
    m = convert(src, tmp_path / "out", size=16, progress=False)
    assert m["splits"] == {"test": 1} and m["parts"] == ["leg", "wheel", "foot"]
    it = PartDataset(tmp_path / "out", "test")[0]
    leg, wheel, foot = it["masks"]
    assert leg[:8].all() and not leg[8:].any()  # the leg keeps the foot's pixels ...
    assert foot[4:8, 0:4].all() and foot.sum() == 16  # ... which belong to the foot as well
    assert wheel[8:, :8].all() and wheel.sum() == 64


def test_broden_malformed_inputs_name_file_and_line(tmp_path):
    from data_prep.broden import convert

    src = _broden(tmp_path)
    index = (src / "index.csv").read_text()
    (src / "index.csv").write_text(index + "pascal/c.jpg,val,16\n")  # a short row
    with pytest.raises(FormatError, match=r"index.csv line 4: expected 12 columns"):
        convert(src, tmp_path / "out", progress=False)
    (src / "index.csv").write_text(index)
    jpg = src / "images/ade20k/a.jpg"
    jpg.write_bytes(jpg.read_bytes()[:300])
    with pytest.raises(FormatError, match=r"ade20k/a.jpg: cannot decode the image"):
        convert(src, tmp_path / "out", progress=False)
    (src / "c_part.csv").write_text("code,name\n1,leg\n")
    with pytest.raises(FormatError, match=r"c_part.csv lacks the columns \['number'\]"):
        convert(src, tmp_path / "out2", progress=False)


def test_old_masks_ask_to_convert_again(tmp_path):
    import json

    from data_prep.broden import convert

    convert(_broden(tmp_path), tmp_path / "out", size=16, progress=False)
    man = json.loads((tmp_path / "out/manifest.json").read_text())
    del man["mask_format"]  # as written before masks could overlap
    (tmp_path / "out/manifest.json").write_text(json.dumps(man))
    with pytest.raises(FormatError, match=r"older format, one part per pixel .* Convert the data set again with data_prep.broden"):
        PartDataset(tmp_path / "out", "test")


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
    m = convert(src, tmp_path / "out3", draw_seed=1993, progress=False)  # the drawn list lands with the data
    assert (tmp_path / "out3/wnids.txt").read_text().split() == m["classes"]
    bad = src / "val/n001/val_n001.JPEG"
    bad.write_bytes(bad.read_bytes()[:200])
    (tmp_path / "wnids.txt").write_text("n001\n")
    with pytest.raises(FormatError, match=r"val_n001.JPEG: cannot decode the image"):
        convert(src, tmp_path / "out4", tmp_path / "wnids.txt", progress=False)
