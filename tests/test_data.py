"""PartWorld and the part-dataset format."""

import json

import numpy as np
import pytest
import torch

from synclib.data import FormatError, PartDataset, collate
from synclib.data.format import read_manifest
from synclib.data.partworld import CLASS_VARIANTS, PARTS, PartWorld, generate


def test_same_seed_same_world(tmp_path):
    a = generate(tmp_path / "a", n_train=6, n_test=2, size=48, seed=3, progress=False)
    b = generate(tmp_path / "b", n_train=6, n_test=2, size=48, seed=3, progress=False)
    c = generate(tmp_path / "c", n_train=6, n_test=2, size=48, seed=4, progress=False)
    assert a["fingerprints"] == b["fingerprints"]
    assert a["fingerprints"] != c["fingerprints"]


def test_classes_differ_in_at_least_two_parts():
    v = CLASS_VARIANTS
    d = (v[:, None, :] != v[None, :, :]).sum(-1)
    assert d[~np.eye(len(v), dtype=bool)].min() >= 2


def test_item_shapes_and_landmarks_match_masks(tiny_world):
    ds = PartDataset(tiny_world, "train")
    assert len(ds) == 48 and ds.parts == PARTS
    it = ds[0]
    assert it["image"].shape == (3, 64, 64) and it["image"].dtype == torch.float32
    assert 0 <= it["image"].min() and it["image"].max() <= 1
    assert it["masks"].shape == (5, 64, 64) and it["masks"].dtype == torch.bool
    # each visible landmark is the centroid of its mask
    for k in range(5):
        m = it["masks"][k]
        x, y, v = it["landmarks"][k].tolist()
        if v:
            rows, cols = torch.nonzero(m, as_tuple=True)
            assert abs(x - ((cols + 0.5) / 64).mean().item()) < 1e-4
            assert abs(y - ((rows + 0.5) / 64).mean().item()) < 1e-4
        else:
            assert not m.any()
    assert it["label"] == PartWorld(0, 64).spec("train", 0).label


def test_part_intervention_removes_exactly_that_part():
    w = PartWorld(seed=1, size=64)
    img, mask = w.render("test", 5)
    img2, mask2 = w.render("test", 5, remove=("head",))
    head = PARTS.index("head") + 1
    assert (mask == head).any() and not (mask2 == head).any()
    # outside the head and the parts it covered, nothing changes
    same = (mask == mask2)
    assert (img[same] == img2[same]).all()
    with pytest.raises(ValueError, match="unknown parts"):
        w.render("test", 5, remove=("wing",))


def test_generate_resumes_and_reuses(tmp_path):
    generate(tmp_path, n_train=4, n_test=2, size=32, seed=0, progress=False)
    (tmp_path / "images/train/000001.png").unlink()
    (tmp_path / "manifest.json").unlink()
    m = generate(tmp_path, n_train=4, n_test=2, size=32, seed=0, progress=False)
    assert (tmp_path / "images/train/000001.png").is_file() and m["splits"]["train"] == 4


def test_collate_keeps_none():
    b = collate([{"x": torch.zeros(2), "m": None, "y": 1}, {"x": torch.ones(2), "m": None, "y": 0}])
    assert b["x"].shape == (2, 2) and b["m"] is None and b["y"].tolist() == [1, 0]


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(FormatError, match="manifest.json not found"):
        PartDataset(tmp_path, "train")


def test_malformed_csv_names_file_and_line(tmp_path):
    generate(tmp_path, n_train=3, n_test=1, size=32, seed=0, progress=False)
    csv = tmp_path / "train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[2], "notanint", 1)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"train.csv line 3"):
        PartDataset(tmp_path, "train")


def test_unknown_split_and_row_count(tmp_path):
    generate(tmp_path, n_train=3, n_test=1, size=32, seed=0, progress=False)
    with pytest.raises(FormatError, match="no split 'val'"):
        PartDataset(tmp_path, "val")
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["splits"]["train"] = 5
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="has 3 rows; the manifest says 5"):
        PartDataset(tmp_path, "train")


def test_corrupt_image_names_the_file(tmp_path):
    generate(tmp_path, n_train=2, n_test=1, size=32, seed=0, progress=False)
    (tmp_path / "images/train/000000.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match="000000.png: cannot read"):
        PartDataset(tmp_path, "train")[0]


def test_difficulty_off_renders_the_easy_world_unchanged():
    from synclib.data.partworld import PartWorld

    easy, off = PartWorld(0, 48), PartWorld(0, 48, {"swap": 0.0, "occlusion": 0.0})
    for i in range(4):
        a, b = easy.render("train", i), off.render("train", i)
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_difficulty_swaps_variants_and_occludes_parts():
    from synclib.data.partworld import CLASS_VARIANTS, PartWorld

    swapped = PartWorld(0, 48, {"swap": 1.0})
    for i in range(5):
        sp = swapped.spec("train", i)
        assert (sp.variants == 1 - CLASS_VARIANTS[sp.label]).all()  # every part the other variant
    easy, hidden = PartWorld(0, 64), PartWorld(0, 64, {"occlusion": 1.0})
    shown = [((hidden.render("test", i)[1] > 0).sum(), (easy.render("test", i)[1] > 0).sum()) for i in range(6)]
    assert all(h <= e for h, e in shown)  # an occluder only ever hides part pixels ...
    assert sum(h < e for h, e in shown) >= 2  # ... and does where it falls on the object
    with pytest.raises(ValueError, match="difficulty"):
        PartWorld(0, 48, {"blur": 1.0})


def test_a_new_difficulty_is_refused_then_forced_afresh(tmp_path):
    from synclib.data.partworld import WorldMismatch, generate

    out = tmp_path / "w"
    m0 = generate(out, n_train=4, n_test=2, size=32, progress=False)
    with pytest.raises(WorldMismatch, match=r"difficulty None there, \{'swap': 1.0.*asked.*--force"):
        generate(out, n_train=4, n_test=2, size=32, progress=False, difficulty={"swap": 1.0})
    assert read_manifest(out)["fingerprints"] == m0["fingerprints"]  # the refusal changed nothing
    m1 = generate(out, n_train=4, n_test=2, size=32, progress=False, difficulty={"swap": 1.0}, force=True)
    assert m0["fingerprints"]["train"] != m1["fingerprints"]["train"]
    assert m1["source"]["params"]["difficulty"]["swap"] == 1.0
    assert "difficulty" not in m0["source"]["params"]  # an easy world keeps its old parameters
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # the new folder was renamed into place


def test_overlapping_parts_round_trip_through_layers(tmp_path):
    import numpy as np

    from synclib.data.format import pack_layers, unpack_layers

    masks = np.zeros((3, 6, 6), bool)
    masks[0, :4] = True  # a first-level part ...
    masks[1, 1:3, 1:3] = True  # ... a second-level part inside it ...
    masks[2, 4:] = True  # ... and one beside both
    layers = pack_layers(masks)
    assert layers.shape == (2, 6, 6)  # part 2 shares the first layer with part 0; part 1 needs its own
    assert (unpack_layers(np.moveaxis(layers, 0, -1), 3) == masks).all()
    with pytest.raises(Exception, match="overlap at one pixel"):
        pack_layers(np.ones((5, 2, 2), bool))


def test_a_decoded_split_gives_the_same_items_and_decodes_once(tiny_world, tmp_path, monkeypatch):
    """The decoded copy (memory-mapped images and bit-packed masks) gives exactly the items
    decoding the files gives; a second reader of the split decodes nothing."""
    monkeypatch.setenv("SYNCLIB_CACHE", str(tmp_path / "cache"))
    plain = PartDataset(tiny_world, "test")
    copy = PartDataset(tiny_world, "test", decoded=True)
    folder = copy.decoded_folder()
    assert folder.parent == tmp_path / "cache/decoded" and (folder / "done.json").is_file()
    assert not list(folder.glob("*.part"))
    for i in range(len(plain)):
        a, b = plain[i], copy[i]
        assert torch.equal(a["image"], b["image"]) and a["label"] == b["label"]
        assert a["masks"].dtype == b["masks"].dtype == torch.bool and torch.equal(a["masks"], b["masks"])
        assert torch.equal(a["landmarks"], b["landmarks"])
    assert int(copy[0]["masks"].sum()) > 0  # the parts are there, not an empty copy

    def no_decoding(self, i):
        raise AssertionError("decoded the files again")

    expected = plain[3]["image"]
    monkeypatch.setattr(PartDataset, "_decode", no_decoding)
    again = PartDataset(tiny_world, "test", decoded=True)
    assert torch.equal(again[3]["image"], expected)
