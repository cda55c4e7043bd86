"""The reproduction pipeline: the smoke book builds, a second run trains nothing, the lock."""

import json
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import synclib.train
from synclib.runs import RunSpec, RunStore, load_profile, plan

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A project folder of its own: configs, notebooks and book copied, everything else new."""
    for d in ("configs", "notebooks", "book"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("_build"))
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    return tmp_path


def test_plan_covers_every_dataset_arch_method(home):
    prof = load_profile("smoke")
    specs = plan(prof, ["table1", "table2"])
    # one data set x 2 archs x 3 methods, deduplicated, after the 2 backbones they start from
    assert len(specs) == 2 + 2 * 3 and all(s.backbone for s in specs[:2])
    assert {s.method for s in specs} == {"baseline", "ours_nosync", "ours"}
    sens = plan(prof, ["fig7"])
    assert len(sens) == 1 + 3 * 2 and {s.params[0][0] for s in sens[1:]} == {"lambda1", "lambda2", "eps"}


def test_hash_changes_with_config_and_data(home):
    from synclib.runs import ensure_data

    prof = load_profile("smoke")
    ensure_data(prof, "partworld", progress=False)
    a = RunSpec("partworld", "vgg16", "ours")
    assert a.hash(prof) == RunSpec("partworld", "vgg16", "ours").hash(prof)
    assert a.hash(prof) != RunSpec("partworld", "vgg16", "ours", params=(("lambda2", 0.3),)).hash(prof)
    prof2 = load_profile("smoke")
    prof2["train"]["epochs"] = 2
    assert a.hash(prof) != a.hash(prof2)


def test_smoke_reproduce_builds_the_book_then_trains_nothing(home, capsys):
    from synclib.reproduce import reproduce

    assert reproduce("smoke", only=["table1", "table2"]) == 0
    out = capsys.readouterr().out
    assert "0 of 8 runs are in the store; 8 to train" in out
    html = home / "build/smoke/book/_build/html"
    for page in ("intro", "summary", "table1", "table2", "provenance", "getting_data"):
        assert (html / f"{page}.html").is_file()
    t1 = pd.read_csv(home / "results/smoke/table1.csv")
    assert list(t1.columns) == ["dataset", "arch", "method", "interp", "stability", "purity", "diversity"]
    assert len(t1) == 6 and t1["interp"].between(0, 1).all()
    t2 = pd.read_csv(home / "results/smoke/table2.csv")
    assert list(t2.columns) == ["dataset", "arch", "method", "accuracy"]
    summary = (html / "summary.html").read_text()
    gain = t1.set_index(["arch", "method"])["interp"]
    assert f"{gain['vgg16', 'ours'] - gain['vgg16', 'baseline']:+.3f}" in summary  # glued, not typed
    prov = json.loads((home / "results/smoke/provenance.json").read_text())
    assert set(prov["artifacts"]) == {"table1", "table2"} and all(a["ok"] for a in prov["artifacts"].values())

    t0 = time.perf_counter()
    assert reproduce("smoke", only=["table1", "table2"], book=False) == 0
    out = capsys.readouterr().out
    assert "8 of 8 runs are in the store; 0 to train" in out
    assert "table1: unchanged, not executed again" in out  # nothing it depends on changed
    assert time.perf_counter() - t0 < 120


def test_failing_notebook_is_reported_and_others_still_run(home, capsys):
    from synclib.reproduce import reproduce

    nb = json.loads((home / "notebooks/table2.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": "raise RuntimeError('broken on purpose')"})
    (home / "notebooks/table2.ipynb").write_text(json.dumps(nb))
    assert reproduce("smoke", only=["table1", "table2"], book=False) == 1
    out = capsys.readouterr()
    assert "table1: ok" in out.out and "table2: FAILED" in out.out
    assert "broken on purpose" in (home / "build/smoke/book/table2.ipynb").read_text()


def test_two_callers_never_both_train_a_run(home, monkeypatch):
    from synclib.runs import ensure_data

    prof = load_profile("smoke")
    ensure_data(prof, "partworld", progress=False)
    calls = []

    def slow_fit(cfg, data, out, **kw):
        calls.append(out)
        time.sleep(0.5)
        (Path(out) / "model.pt").write_bytes(b"")

    monkeypatch.setattr(synclib.train, "fit", slow_fit)
    store = RunStore()
    spec = RunSpec("partworld", "resnet18", "baseline", backbone=True)  # a run with no parent
    threads = [threading.Thread(target=store.train, args=(spec, prof)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and store.is_done(spec.hash(prof))


def test_unknown_profile_is_a_clear_error(home):
    with pytest.raises(FileNotFoundError, match="profile 'nope' not found.*known: \\['paper', 'quick', 'smoke'\\]"):
        load_profile("nope")


def test_paper_profile_skips_missing_data(home, monkeypatch, capsys):
    from synclib.runs import ensure_data

    monkeypatch.setenv("SYNCLIB_DATA", str(home / "nowhere"))
    prof = load_profile("paper")
    assert prof["datasets"]["voc_part"]["root"] == str(home / "nowhere/voc_part")
    assert ensure_data(prof, "voc_part") is None
    assert plan(prof, ["table1"], available=set()) == []


def test_paper_profile_builds_what_is_present(home, tmp_path, monkeypatch, capsys):
    """The paper profile (sizes shrunk, code paths unchanged) with only CUB converted."""
    import yaml
    from test_data_prep import write_cub

    from data_prep.cub200 import convert
    from synclib.reproduce import reproduce

    data = tmp_path / "data"
    convert(write_cub(tmp_path / "CUB_200_2011"), data / "cub200", size=32, progress=False)
    monkeypatch.setenv("SYNCLIB_DATA", str(data))
    prof = yaml.safe_load((home / "configs/paper.yaml").read_text())
    for a in prof["archs"].values():
        a.update(width=0.125, batch_size=2, pretrained=None)
    prof["train"]["epochs"] = 1
    (home / "configs/paper_tiny.yaml").write_text(yaml.safe_dump(prof))
    assert reproduce(str(home / "configs/paper_tiny.yaml"), book=True) == 0
    out = capsys.readouterr().out
    assert "[skip] data set 'voc_part' not found" in out and "data_prep.pascal_part" in out
    assert "[skip] data set 'cub200'" not in out
    t2 = pd.read_csv(home / "results/paper/table2.csv")
    assert set(t2["dataset"]) == {"cub200"} and len(t2) == 6
    assert pd.read_csv(home / "results/paper/table1.csv").empty  # CUB has landmarks, not masks
    html = (home / "build/paper/book/_build/html/getting_data.html").read_text()
    assert "muzzle" in html and "lwing" in html  # the mapping table, rendered from the converter


def test_default_params_share_the_main_run(home):
    """A sensitivity setting equal to the default is the main run, not a second one."""
    from synclib.runs import ensure_data

    prof = load_profile("smoke")
    ensure_data(prof, "partworld", progress=False)
    main = RunSpec("partworld", "vgg16", "ours")
    assert RunSpec("partworld", "vgg16", "ours", params=(("lambda1", 0.2),)).hash(prof) == main.hash(prof)
    assert RunSpec("partworld", "vgg16", "ours", params=(("lambda1", 0.3),)).hash(prof) != main.hash(prof)
    cfg = main.config(prof)
    assert cfg.init_from and cfg.init_from.endswith(main.parent(prof).hash(prof))
