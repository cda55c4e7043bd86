"""Nothing silently wrong: each case a hostile but fair user tried, on smoke sizes.

Either the command refuses with an error that names the file (or key, or option) and the way
out, or the result is unchanged: a run killed at any point resumes to the very weights of a
run that never stopped; two callers of one run train it once; a failed write leaves the last
good checkpoint whole.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synclib.data.format as fmt
import synclib.files as files
from synclib.cli import main as cli
from synclib.data import FormatError, PartDataset
from synclib.data.partworld import WorldMismatch, generate
from synclib.files import CorruptFile
from synclib.profile import ProfileError
from synclib.study import load_profile
from synclib.train import TrainConfig, fit, load_run

ROOT = Path(__file__).resolve().parent.parent
CFG = TrainConfig(method="ours", arch="resnet18", width=0.125, epochs=3, batch_size=16)  # 3 steps an epoch


@pytest.fixture(scope="module")
def straight(tiny_world, tmp_path_factory):
    """The run that never stopped: what every interrupted run must end as."""
    out = tmp_path_factory.mktemp("straight")
    fit(CFG, tiny_world, out, progress=False)
    return torch.load(out / "model.pt", weights_only=True)


def same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def interrupt(epoch: int, record: dict) -> None:
    raise KeyboardInterrupt  # after the first epoch's checkpoint


def other_world(tmp_path) -> Path:
    generate(tmp_path / "other", n_train=48, n_test=16, size=64, seed=1, progress=False)
    return tmp_path / "other"


# ------------------------------------------------------------------ a run folder holds one run
def test_another_data_set_in_a_finished_folder_is_refused_and_changes_nothing(tiny_world, tmp_path):
    out = tmp_path / "run"
    fit(CFG, tiny_world, out, progress=False)
    before = {f: (out / f).read_bytes() for f in ("config.json", "model.pt", "checkpoint.pt")}
    with pytest.raises(ValueError, match=r"config.json holds another run's config \(training data: fingerprint "
                                         r"\w+ \(.*\) there, \w+ \(.*other\) now\); give another --out, or delete"):
        fit(CFG, other_world(tmp_path), out, progress=False)
    assert {f: (out / f).read_bytes() for f in before} == before


def test_another_runs_checkpoint_without_config_is_refused(tiny_world, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=16), tiny_world, a,
        progress=False)
    b.mkdir()
    shutil.copy(a / "checkpoint.pt", b / "checkpoint.pt")  # config.json deleted, another run's checkpoint in
    with pytest.raises(ValueError, match=r"checkpoint.pt is another run's checkpoint \(epochs: 1 there, 3 now; "
                                         r"method: 'baseline' there, 'ours' now\)"):
        fit(CFG, tiny_world, b, progress=False)
    assert sorted(p.name for p in b.iterdir()) == ["checkpoint.pt"]  # nothing written


def test_a_checkpoint_that_records_no_config_is_refused(tiny_world, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny_world, tmp_path, progress=False, on_epoch_end=interrupt)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["config"]  # as an older synclib wrote it
    torch.save(state, tmp_path / "checkpoint.pt")
    (tmp_path / "config.json").unlink()
    with pytest.raises(ValueError, match="records no config"):
        fit(CFG, tiny_world, tmp_path, progress=False)


def test_the_same_run_moved_elsewhere_still_resumes(tiny_world, tmp_path, straight):
    """Binding is by config and data fingerprint, not by where the data set or the folder lies."""
    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny_world, tmp_path / "run", progress=False, on_epoch_end=interrupt)
    shutil.copytree(tiny_world, tmp_path / "moved")
    shutil.move(tmp_path / "run", tmp_path / "run2")
    fit(CFG, tmp_path / "moved", tmp_path / "run2", progress=False)
    same_weights(straight, torch.load(tmp_path / "run2/model.pt", weights_only=True))


# ------------------------------------------------------------------ PartWorld
def test_partworld_refuses_another_seed_and_size_in_its_folder(tmp_path):
    out = tmp_path / "w"
    generate(out, n_train=3, n_test=1, size=64, seed=0, progress=False)
    image = (out / "images/train/000000.png").read_bytes()
    with pytest.raises(WorldMismatch, match=r"n_train 3 there, 4 asked, seed 0 there, 5 asked, size 64 there, "
                                            r"96 asked\). Give another --out, or --force"):
        generate(out, n_train=4, n_test=1, size=96, seed=5, progress=False)
    assert (out / "images/train/000000.png").read_bytes() == image
    assert json.loads((out / "manifest.json").read_text())["image_size"] == 64


def test_partworld_refuses_a_folder_of_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(WorldMismatch, match="files that are not a PartWorld"):
        generate(tmp_path, n_train=2, n_test=1, size=32, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_interrupted_partworld_resumes_with_its_recorded_parameters(tmp_path, monkeypatch):
    real = fmt.write_split_csv
    import synclib.data.partworld as pw

    monkeypatch.setattr(pw, "write_split_csv", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, n_train=2, n_test=1, size=32, progress=False)
    assert json.loads((tmp_path / "generating.json").read_text())["size"] == 32  # recorded before rendering
    monkeypatch.setattr(pw, "write_split_csv", real)
    with pytest.raises(WorldMismatch):
        generate(tmp_path, n_train=2, n_test=1, size=48, progress=False)
    m = generate(tmp_path, n_train=2, n_test=1, size=32, progress=False)
    fresh = generate(tmp_path / "fresh", n_train=2, n_test=1, size=32, progress=False)
    assert m["fingerprints"] == fresh["fingerprints"]  # the resumed world is the uninterrupted one


# ------------------------------------------------------------------ corrupt files name themselves
def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                      "random": np.random.default_rng(0).bytes(4096)}[how])


@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
def test_a_corrupt_checkpoint_names_itself(tiny_world, tmp_path, how):
    with pytest.raises(KeyboardInterrupt):
        fit(CFG, tiny_world, tmp_path, progress=False, on_epoch_end=interrupt)
    _damage(tmp_path / "checkpoint.pt", how)
    with pytest.raises(CorruptFile, match=rf"(?s){tmp_path}/checkpoint.pt: .*delete it to train the run from its first epoch"):
        fit(CFG, tiny_world, tmp_path, progress=False)


@pytest.mark.parametrize("how", ["truncated", "empty", "random"])
@pytest.mark.parametrize("name", ["model.pt", "config.json"])
def test_a_corrupt_model_or_config_names_itself(tiny_world, tmp_path, name, how):
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=48), tiny_world,
        tmp_path, progress=False)
    _damage(tmp_path / name, how)
    with pytest.raises(CorruptFile, match=rf"(?s){tmp_path}/{name}: .*delete {tmp_path} and train the run again"):
        load_run(tmp_path)


@pytest.mark.parametrize("content, problem", [
    ({"data": "x"}, r"lacks \['train'\]"),              # was KeyError: 'train'
    ({"train": {"epochs": "one"}}, "no valid training config"),
])
def test_a_config_without_a_training_config_names_itself(tiny_world, tmp_path, content, problem):
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=48), tiny_world,
        tmp_path, progress=False)
    (tmp_path / "config.json").write_text(json.dumps(content))
    with pytest.raises(CorruptFile, match=rf"config.json: .*{problem}"):
        load_run(tmp_path)


def test_a_model_file_of_other_weights_names_itself(tiny_world, tmp_path):
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=48), tiny_world,
        tmp_path, progress=False)
    torch.save({"x": torch.zeros(1)}, tmp_path / "model.pt")  # was KeyError: 'fc.weight'
    with pytest.raises(CorruptFile, match=r"model.pt: lacks \['fc.weight'\]"):
        load_run(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    state["fc.weight"] = torch.zeros(3, 4)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(CorruptFile, match="model.pt: does not hold the weights of the network"):
        load_run(tmp_path)


@pytest.fixture()
def home(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    return tmp_path


def test_a_stored_run_with_a_corrupt_model_names_the_run_in_the_tables(home):
    from synclib.store import RunStore
    from synclib.study import Study
    from synclib.tables import run_rows

    study = Study.plan("smoke")
    store = RunStore()
    run = study.find_row("partworld", "vgg16", "baseline", 0)
    folder = store.path(run.hash)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"train": run.train}))
    (folder / "model.pt").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "DONE").write_text("x")
    with pytest.raises(CorruptFile, match=rf"run partworld/vgg16/baseline/s0: {folder}/model.pt: cannot be read "
                                          rf"as a torch file .*delete {folder} and train the run again"):
        run_rows(study, rows=["baseline"], datasets=["partworld"], train_missing=False)


@pytest.mark.parametrize("name", ["job.json", "eval.json"])
def test_jobs_and_cached_evaluations_name_themselves(tmp_path, name):
    from synclib.files import read_json
    from synclib.store import read_job

    p = tmp_path / name
    p.write_text('{"hash": ')
    with pytest.raises(CorruptFile, match=rf"{name}: is not valid JSON"):
        read_job(p) if name == "job.json" else read_json(p, keys=("row",))


# ------------------------------------------------------------------ bad values, refused before any write
@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "epochs: must be an integer >= 1, got 0"),
    ("--epochs", "-3", "epochs: must be an integer >= 1, got -3"),
    ("--width", "0", "width: must be a number > 0 and <= 8, got 0.0"),
    ("--width", "-1", "width: must be a number > 0 and <= 8, got -1.0"),
    ("--batch-size", "0", "batch_size: must be an integer >= 1, got 0"),
    ("--batch-size", "-16", "batch_size: must be an integer >= 1, got -16"),
    ("--method", "ourz", "unknown method 'ourz'"),
    ("--param", "gamma=1", "takes .* not \\['gamma'\\]"),
])
def test_bad_values_are_refused_before_anything_is_written(tiny_world, tmp_path, capsys, option, value, message):
    out = tmp_path / "run"
    args = ["train", "--arch", "resnet18", "--width", "0.125", "--epochs", "1", "--batch-size", "48",
            "--data", str(tiny_world), "--out", str(out)]
    assert cli(args + [option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synclib train: ") and __import__("re").search(message, err), err
    assert not out.exists()
    if option == "--method":  # the corrected command is not poisoned by the bad one
        assert cli(args + ["--method", "ours"]) == 0


def test_a_mask_of_another_size_than_its_image_is_an_error(tmp_path):
    root = tmp_path / "d"
    generate(root, n_train=2, n_test=1, size=32, progress=False)
    Image.fromarray(np.zeros((17, 40), np.uint8)).save(root / "masks/train/000001.png")
    ds = PartDataset(root, "train")
    ds[0]  # noqa: B018 - the other mask is fine
    with pytest.raises(FormatError, match=r"masks/train/000001.png: the mask is 40x17 but its image "
                                          r"images/train/000001.png is 32x32"):
        ds[1]  # noqa: B018


# ------------------------------------------------------------------ profiles
@pytest.mark.parametrize("old, new, message", [
    ("lr: 0.01", "lerning_rate: 0.01", r"train.lerning_rate: unknown key; did you mean 'lr'\?"),
    ("pretrain: {epochs: 1}", "pretrian: {epochs: 1}", r"pretrian: unknown key; did you mean 'pretrain'\?"),
    ("width: 0.125, batch_size: 16}\n  resnet18", "widht: 0.125, batch_size: 16}\n  resnet18",
     r"archs.vgg16.widht: unknown key; did you mean 'width'\?"),
    ("\ntrain: {epochs: 1", "\ntrain: {epohcs: 1", r"train.epohcs: unknown key; did you mean 'epochs'\?"),
    ("\ntrain: {epochs: 1", "\ntrain: {epochs: one", r"train.epochs: must be an integer >= 1, got 'one'"),
    ("\ntrain: {epochs: 1", "\ntrain: {epochs: -2", r"train.epochs: must be an integer >= 1, got -2"),
    ("seeds: [0]", "seeds: 0", r"seeds: must be a list, each item an integer >= 0 \(at least one\), got 0"),
    ("width: 0.125, batch_size: 16}\n  resnet18", "width: 0, batch_size: 16}\n  resnet18",
     r"archs.vgg16.width: must be a number > 0 and <= 8, got 0"),
    ("weight_decay: 5.0e-4", "weight_decay: 5e-4", r"train.weight_decay: .*'5e-4' \(text: YAML reads"),
    ("methods: [baseline,", "methods: [baselin,", r"methods\[0\]: 'baselin' is not one of .*did you mean 'baseline'"),
    ("", None, r"is empty; a profile names its sections"),
    ("seeds: [0]", "seeds: [0", r"is not valid YAML"),
])
def test_a_bad_profile_names_the_file_the_key_and_the_value(home, old, new, message):
    text = (home / "configs/smoke.yaml").read_text()
    bad = home / "configs/bad.yaml"
    bad.write_text("" if new is None else text.replace(old, new, 1))
    assert new is None or bad.read_text() != text
    with pytest.raises(ProfileError, match=rf"(?s)^{bad}\b.*{message}"):
        load_profile(bad)


def test_every_shipped_profile_passes_the_schema():
    for name in ("smoke", "quick", "paper", "gpu"):
        load_profile(ROOT / "configs" / f"{name}.yaml")


# ------------------------------------------------------------------ crashes and races
KILL = """
import os, signal, sys, torch
import synclib.files as files
from synclib.train import TrainConfig, fit
torch.set_num_threads(2)
point, data, out = sys.argv[1:]
real_replace, steps = os.replace, [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def replace(src, dst):
    name = os.path.basename(dst)
    epoch2 = name == "checkpoint.pt" and os.path.exists(os.path.join(out, "checkpoint.pt"))
    if point == "before-rename" and epoch2:
        die()  # the temp file of epoch 2's checkpoint is written, the rename not done
    real_replace(src, dst)
    if (point == "after-rename" and epoch2) or (point == "before-model" and name == "checkpoint.pt"
                                                and torch.load(dst, weights_only=True)["epoch"] == 3):
        die()
files.os.replace = replace
step = torch.optim.SGD.step
def counted(self, *a, **k):
    steps[0] += 1
    if point == "mid-epoch" and steps[0] == 5:  # epoch 2, second step
        die()
    return step(self, *a, **k)
torch.optim.SGD.step = counted
fit(TrainConfig(method="ours", arch="resnet18", width=0.125, epochs=3, batch_size=16), data, out, progress=False)
"""


@pytest.mark.parametrize("point", ["mid-epoch", "before-rename", "after-rename", "before-model"])
def test_a_run_killed_anywhere_resumes_to_the_same_weights(tiny_world, tmp_path, straight, point):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", KILL, point, str(tiny_world), str(out)], capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not (out / "model.pt").exists()
    left = list(out.glob(".*.tmp"))
    assert bool(left) == (point == "before-rename")  # SIGKILL leaves the temp file; the next start removes it
    torch.set_num_threads(2)
    fit(CFG, tiny_world, out, progress=False)
    assert not list(out.glob(".*.tmp"))
    same_weights(straight, torch.load(out / "model.pt", weights_only=True))
    assert [e["epoch"] for e in json.loads((out / "history.json").read_text())["epochs"]] == [1, 2, 3]


def test_two_callers_of_one_folder_train_it_once(tiny_world, tmp_path, straight):
    epochs = []
    threads = [threading.Thread(target=fit, args=(CFG, tiny_world, tmp_path),
                                kwargs={"progress": False, "on_epoch_end": lambda e, r: epochs.append(e)})
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert epochs == [1, 2, 3]  # the second caller waited, found the run finished, trained nothing
    same_weights(straight, torch.load(tmp_path / "model.pt", weights_only=True))


def test_a_failed_write_leaves_the_last_good_checkpoint(tiny_world, tmp_path, straight, monkeypatch):
    real, calls = os.replace, []

    def full_disk(src, dst):
        if Path(dst).name == "checkpoint.pt":
            calls.append(dst)
            if len(calls) == 2:  # epoch 2's checkpoint: the disk is full
                raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fit(CFG, tiny_world, tmp_path, progress=False)
    monkeypatch.setattr(files.os, "replace", real)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 1  # whole, and epoch 1's
    assert not list(tmp_path.glob(".*.tmp"))
    fit(CFG, tiny_world, tmp_path, progress=False)
    same_weights(straight, torch.load(tmp_path / "model.pt", weights_only=True))


def test_every_atomic_write_is_fsynced_before_its_rename(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(files.os, "replace", lambda a, b: (order.append("replace"), real_replace(a, b))[1])
    files.atomic_write_text(tmp_path / "x.json", "{}")
    assert order == ["fsync", "replace", "fsync"]  # the file, the rename, then the folder


def test_leftover_temp_files_are_removed_when_a_run_starts(tiny_world, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    junk = tmp_path / ".checkpoint.pt.abc123.tmp"
    junk.write_bytes(b"half")
    fit(TrainConfig(method="baseline", arch="resnet18", width=0.125, epochs=1, batch_size=48), tiny_world,
        tmp_path, progress=False)
    assert not junk.exists()


def test_a_profile_whose_world_changed_says_how_to_render_it(home):
    from synclib.study import Study

    Study.plan("smoke")
    text = (home / "configs/smoke.yaml").read_text().replace("seed: 0,", "seed: 1,", 1)
    (home / "configs/smoke.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"smoke.yaml: datasets.partworld: .*partworld-smoke holds another PartWorld "
                                         r"than the profile's generate: settings \(seed 0 there, 1 asked\). Delete"):
        Study.plan("smoke")



def test_a_waiter_names_the_holder_that_has_not_written_its_note_yet(tmp_path):
    """The holder truncates the lock file, then writes its pid: a waiter reading in between
    waits for the note instead of saying "another process"."""
    lock = tmp_path / ".build.lock"
    lock.write_text("")

    def late_note():
        lock.write_text(json.dumps({"pid": 4242, "since": 0}))

    timer = threading.Timer(0.3, late_note)
    timer.start()
    try:
        assert files.lock_holder(lock).startswith("pid 4242, since ")
    finally:
        timer.join()
    lock.write_text("")
    assert files.lock_holder(lock, patience=0.1) == "another process"  # nobody ever writes one
