"""The reproduction pipeline: the study, the smoke book, a second run trains nothing, the lock."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import torch
import yaml

import synclib.store
from synclib import analysis, claims
from synclib.files import file_lock
from synclib.reproduce import BUSY
from synclib.store import RunStore, train_job
from synclib.study import ARTIFACTS, Study, load_profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A project folder of its own: configs, notebooks and book copied, everything else new."""
    for d in ("configs", "notebooks", "book"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("_build", "executed"))
    for f in ("CITATION.cff", "LICENSE"):  # the book's first page shows them
        shutil.copy(ROOT / f, tmp_path / f)
    monkeypatch.setenv("SYNCLIB_HOME", str(tmp_path))
    return tmp_path


def test_each_seed_fine_tunes_a_backbone_of_its_own(home):
    """Independent replicates: seed s's runs start from the backbone trained with seed s, so the
    spread over seeds includes the backbone's; `pretrain.seed` pins one shared backbone instead."""
    prof = yaml.safe_load((home / "configs/smoke.yaml").read_text())
    prof.update(profile="two", seeds=[0, 1], methods=["baseline", "ours"], archs={"vgg16": prof["archs"]["vgg16"]})
    (home / "configs/two.yaml").write_text(yaml.safe_dump(prof))
    study = Study.plan("two")
    runs = study.runs_for("table1")
    backbones = {r.seed: r for r in runs if r.backbone}
    assert sorted(backbones) == [0, 1] and backbones[0].hash != backbones[1].hash
    assert backbones[1].label == "partworld/vgg16/backbone/s1" and backbones[1].train["seed"] == 1
    for r in runs:
        if not r.backbone:
            assert r.parent == backbones[r.seed].hash, r.label
    prof["pretrain"]["seed"] = 0
    (home / "configs/two.yaml").write_text(yaml.safe_dump(prof))
    shared = Study.plan("two").runs_for("table1")
    assert [r.seed for r in shared if r.backbone] == [0]
    assert {r.parent for r in shared if not r.backbone} == {backbones[0].hash}


def test_plan_covers_every_dataset_arch_method(home):
    study = Study.plan("smoke")
    runs = study.runs_for("table1", "table2")
    # one data set x 2 archs x 9 rows (ours under both readings of L_sync), less ICNN on ResNet18
    # (the paper runs it on VGG16 only), after the 2 backbones
    assert len(runs) == 2 + 2 * 9 - 1 and all(r.backbone for r in runs[:2])
    assert {r.method for r in runs} == {"baseline", "csgcnn", "decoup", "cw", "iccnn", "icnn", "ours_nosync", "ours"}
    assert {r.row for r in runs[2:]} == {"baseline", "csgcnn", "decoup", "cw", "iccnn", "icnn", "ours_nosync", "ours",
                                         "ours_mean"}
    assert {r.family for r in runs if r.method == "icnn"} == {"vgg16"}
    # the analyses beyond Tables I-II show the paper's four: baseline, ours w/o sync, ours, icCNN
    assert {r.method for r in study.runs_for("fig9", "fig10", "table3")} == {"baseline", "ours_nosync", "ours", "iccnn"}
    mean = study.find_row("partworld", "vgg16", "ours_mean")
    assert mean.config.method_params == {"reduction": "mean"} and mean.method == "ours"
    assert all(r.parent in {b.hash for b in runs[:2]} for r in runs[2:])
    sens = study.runs_for("fig7")
    assert len(sens) == 1 + 3 * 2 and {r.params[0][0] for r in sens[1:]} == {"lambda1", "lambda2", "eps"}


def test_hash_changes_with_config_and_data(home):
    study = Study.plan("smoke")
    a = study.find("partworld", "vgg16", "ours")
    assert a.hash == Study.plan("smoke").find("partworld", "vgg16", "ours").hash  # replanned: the same
    assert a.hash != study.find("partworld", "vgg16", "ours", params=(("lambda2", 0.3),)).hash
    prof = (home / "configs/smoke.yaml").read_text().replace("epochs: 1}", "epochs: 2}")
    (home / "configs/smoke2.yaml").write_text(prof)
    assert a.hash != Study.plan(home / "configs/smoke2.yaml").find("partworld", "vgg16", "ours").hash


def test_a_saved_study_is_the_same_study(home, tmp_path):
    study = Study.plan("smoke")
    again = Study.load(study.save(tmp_path / "study.json"))
    assert [r.to_dict() for r in again.runs_for(*again.artifacts)] == [r.to_dict() for r in study.runs_for(*study.artifacts)]
    assert again.find("partworld", "resnet18", "ours", 0) == study.find("partworld", "resnet18", "ours", 0)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match=r"bad.json: lacks \[.profile.,.*it is not a saved study; plan it again"):
        Study.load(tmp_path / "bad.json")


def test_method_params_keep_their_types(home):
    run = Study.plan("smoke").find("partworld", "vgg16", "ours", params=(("lambda2", 3),))
    assert run.config.method_params == {"lambda2": 3} and isinstance(run.config.method_params["lambda2"], int)


def test_smoke_reproduce_reads_once_builds_the_book_then_trains_nothing(home, tmp_path, monkeypatch, capsys):
    """One `synclib reproduce --profile smoke`, every artifact: the profile is parsed once and each
    data set's manifest read once, training subprocesses and notebook kernels included."""
    from synclib.reproduce import reproduce

    log = tmp_path / "io.log"
    monkeypatch.setenv("SYNCLIB_IO_LOG", str(log))
    n_runs = len(Study.plan("smoke").runs_for(*ARTIFACTS))  # also generates the data, as a first build does
    log.unlink()
    assert reproduce("smoke", jobs=2) == 0
    reads = [line.split("\t") for line in log.read_text().splitlines()]
    # the study's profile is parsed once (the cluster page reads the paper profile, for its estimate)
    assert [p for k, p in reads if k == "profile"].count(str(home / "configs/smoke.yaml")) == 1, reads
    assert [p for k, p in reads if k == "manifest"] == [str(home / "data/partworld-smoke/manifest.json")], reads
    out = capsys.readouterr().out
    assert f"0 of {n_runs} runs are in the store; {n_runs} to train" in out
    html = home / "book/_build/html"
    pages = (*ARTIFACTS, "provenance", "getting_data", "own_network", "performance", "cluster")
    for page in ("intro", "summary", "api", *(f"executed/{a}" for a in pages)):
        assert (html / f"{page}.html").is_file(), page
    api = (html / "api.html").read_text()
    import importlib

    for mod in ("synclib.losses", "synclib.metrics", "synclib.probe", "synclib.data", "synclib.methods"):
        m = importlib.import_module(mod)
        documented = {n for n in m.__all__ if re.search(rf'id="[\w.]*\.{n}"', api)}
        assert documented == set(m.__all__), (mod, set(m.__all__) - documented)
    assert "preferred-citation" in (html / "intro.html").read_text()  # CITATION.cff on the first page
    t1 = pd.read_csv(home / "results/smoke/table1.csv")
    assert list(t1.columns) == ["dataset", "arch", "method", "interp", "stability", "purity", "diversity"]
    # 2 archs x 9 rows (ours under both readings, five comparison methods), ICNN on VGG16 only
    assert len(t1) == 17 and t1["interp"].between(0, 1).all()
    assert set(t1["method"]) == {"baseline", "csgcnn", "decoup", "cw", "iccnn", "icnn", "ours_nosync", "ours",
                                 "ours_mean"}
    assert set(t1[t1.method == "icnn"]["arch"]) == {"vgg16"}
    cl = pd.read_csv(home / "results/smoke/claims.csv")
    assert list(cl.columns) == ["claim", "reading", "source", "quote", "paper", "ours", "effect", "interval", "p",
                                "p_adjusted", "detectable", "verdict", "note"]
    assert set(cl["reading"]) == {"printed", "mean"} and set(cl["verdict"]) == {"inconclusive"}  # one seed: no test
    # the claims page read what the table and figure pages cached: judging again evaluates no network
    calls = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, args: calls.append(type(m).__name__))
    try:
        analysis.load.cache_clear()
        again = claims.claims_all(Study.plan("smoke"))
    finally:
        handle.remove()
    assert calls == [] and list(again["claim"]) == list(cl["claim"]) and list(again["verdict"]) == list(cl["verdict"])
    t2 = pd.read_csv(home / "results/smoke/table2.csv")
    assert list(t2.columns) == ["dataset", "arch", "method", "accuracy"]
    summary = (html / "summary.html").read_text()
    gain = t1.set_index(["arch", "method"])["interp"]
    assert f"{gain['vgg16', 'ours'] - gain['vgg16', 'baseline']:+.3f}" in summary  # glued, not typed
    prov = json.loads((home / "results/smoke/provenance.json").read_text())
    assert set(prov["artifacts"]) == set(ARTIFACTS) and all(a["ok"] for a in prov["artifacts"].values())
    for h in prov["artifacts"]["table1"]["hashes"]:  # every run has the job it was trained from
        assert json.loads((home / "runs" / h / "job.json").read_text())["hash"] == h
        # and the test split's probe its training process kept, which every page read: one file
        assert len(list((home / "runs" / h).glob("probe-*.pt"))) == 1, h

    log.unlink()
    assert reproduce("smoke", book=False) == 0
    out = capsys.readouterr().out
    assert f"{n_runs} of {n_runs} runs are in the store; 0 to train" in out
    assert "table1: unchanged, not executed again" in out  # nothing it depends on changed
    assert "claims: unchanged, not executed again" in out
    assert [k for k, _ in (line.split("\t") for line in log.read_text().splitlines())].count("manifest") == 1
    # a page's "Reproduce this page" command (`--only`) keeps every other page of the book as it was
    kept = {a: (home / f"book/executed/{a}.ipynb").read_bytes() for a in ("fig4", "claims")}
    assert reproduce("smoke", only=["table2"]) == 0
    assert {a: (home / f"book/executed/{a}.ipynb").read_bytes() for a in kept} == kept
    assert "Not built" not in (html / "executed/claims.html").read_text()

    # the ecosystem's own commands give the same book: a papermill loop, then jupyter-book build book/
    before = _page_texts(html)
    shutil.rmtree(home / "book/executed")
    shutil.rmtree(home / "book/_build")
    venv = Path(sys.executable).parent
    (home / "book/executed").mkdir()
    for nb in (*ARTIFACTS, "getting_data", "own_network", "performance", "cluster", "provenance"):
        subprocess.run([str(venv / "papermill"), f"notebooks/{nb}.ipynb", f"book/executed/{nb}.ipynb",
                        "-p", "profile", "smoke", "--no-progress-bar"], cwd=home, check=True, capture_output=True)
    r = subprocess.run([str(venv / "jupyter-book"), "build", "book/", "-W", "-n", "--keep-going"], cwd=home,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    after = _page_texts(html)
    assert before.keys() == after.keys()
    for page in before:
        assert before[page] == after[page], page
    from conftest import BUILT

    BUILT["smoke_html"] = html  # the browser test opens this book


def _page_texts(html: Path) -> dict[str, str]:
    """The article text of every page, tags and styles stripped, pandas' random table ids masked;
    on the provenance and own-network pages the wall times and the training time are masked
    (timings excepted)."""
    out = {}
    for p in sorted(html.rglob("*.html")):
        if "_static" in p.parts or "_sources" in p.parts or p.name in ("genindex.html", "search.html", "index.html"):
            continue
        text = p.read_text()
        m = re.search(r"<article.*?</article>", text, re.S)
        text = re.sub(r"<style.*?</style>", " ", m.group(0) if m else text, flags=re.S)
        text = re.sub(r"T_[0-9a-f]{5}_", "T_", re.sub(r"<[^>]+>", " ", text))  # pandas' random table ids
        text = re.sub(r"\s+", " ", text)
        if p.stem == "provenance":
            text = re.sub(r"\b\d+\.\d+\b", "<t>", re.sub(r"training \d+ s", "training <t> s", text))
        if p.stem == "own_network":  # its training and measuring time
            text = re.sub(r"\b\d+(\.\d+)? s\b", "<t> s", text)
        out[str(p.relative_to(html))] = text
    return out


def test_failing_notebook_is_reported_and_others_still_run(home, capsys):
    from synclib.reproduce import reproduce

    nb = json.loads((home / "notebooks/table2.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "id": "broken-on-purpose", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": "raise RuntimeError('broken on purpose')"})
    (home / "notebooks/table2.ipynb").write_text(json.dumps(nb))
    _tiny_profile(home)
    assert reproduce("tiny", only=["table1", "table2"], book=False) == 1
    out = capsys.readouterr()
    assert "table2: FAILED" in out.out and "FAILED: ['table2']" in out.err
    assert "broken on purpose" in (home / "book/executed/table2.ipynb").read_text()
    assert json.loads((home / "book/executed/.executed.json").read_text())["table1"]["record"]["ok"]  # the other ran


def test_two_callers_never_both_train_a_run(home, monkeypatch):
    study = Study.plan("smoke")
    calls = []

    def slow_fit(cfg, data, out, **kw):
        calls.append(out)
        time.sleep(0.5)
        (Path(out) / "model.pt").write_bytes(b"")

    monkeypatch.setattr(synclib.store, "fit", slow_fit)  # the name store.fit_job calls
    probed = []
    monkeypatch.setattr(synclib.store, "run_probe", lambda out, ds, **kw: probed.append((out, ds.split)))
    store = RunStore()
    run = study.find("partworld", "resnet18", "baseline", backbone=True)  # a run with no parent
    job = store.write_job(run)
    threads = [threading.Thread(target=train_job, args=(job,), kwargs={"progress": False}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and store.is_done(run.hash)
    assert probed == [(calls[0], "test")]  # the process that trained it probed its test split, once


def test_a_job_names_its_parent_folder_and_reads_no_profile(home):
    study = Study.plan("smoke")
    run = study.find("partworld", "vgg16", "ours")
    job = RunStore().job(run)
    assert job["config"]["init_from"] == str(home / "runs" / run.parent)
    assert run.train["init_from"] == run.parent and job["hash"] == run.hash


def test_unknown_profile_is_a_clear_error(home):
    with pytest.raises(FileNotFoundError, match="profile 'nope' not found.*known: \\['gpu', 'paper', 'quick', 'smoke'\\]"):
        load_profile("nope")


def test_paper_profile_skips_missing_data(home, monkeypatch, capsys):
    monkeypatch.setenv("SYNCLIB_DATA", str(home / "nowhere"))
    study = Study.plan("paper")
    assert study.datasets["voc_part"].root == str(home / "nowhere/voc_part")
    assert not study.datasets["voc_part"].present
    assert study.runs_for("table1") == [] and study.artifacts == ["table1", "table2", "claims"]
    with pytest.raises(FileNotFoundError, match=r"'voc_part' is not at .*nowhere/voc_part: convert it with "
                       r"`python -m data_prep.pascal_part --src ORIGINAL --out .*nowhere/voc_part`"):
        study.find("voc_part", "vgg16", "ours")


def test_paper_profile_builds_what_is_present(home, tmp_path, monkeypatch, capsys):
    """The paper profile (sizes shrunk, code paths unchanged) with only CUB converted."""
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
    prof["seeds"] = [0]  # one seed: the code paths are the same, and the claims say "inconclusive"
    (home / "configs/paper_tiny.yaml").write_text(yaml.safe_dump(prof))
    assert reproduce(str(home / "configs/paper_tiny.yaml"), book=False) == 0  # the pages; the smoke test builds a book
    out = capsys.readouterr().out
    assert "[skip] data set 'voc_part' not found" in out and "data_prep.pascal_part" in out
    assert "[skip] data set 'cub200'" not in out
    t2 = pd.read_csv(home / "results/paper/table2.csv")
    # 2 archs x (baseline, CSGCNN, Decoup, icCNN, ours w/o sync, ours, ours_mean): no ICNN on CUB (as in the
    # paper) and no CW (its concept images need part masks; CUB has landmarks)
    assert set(t2["dataset"]) == {"cub200"} and len(t2) == 14 and not {"icnn", "cw"} & set(t2["method"])
    assert pd.read_csv(home / "results/paper/table1.csv").empty  # CUB has landmarks, not masks
    page = (home / "book/executed/getting_data.ipynb").read_text()
    assert "muzzle" in page and "lwing" in page  # the mapping table, rendered from the converter
    fig4 = (home / "book/executed/fig4.ipynb").read_text()
    assert "Not built on this profile" in fig4  # a page that says why, not a missing page


def test_default_params_share_the_main_run(home):
    """A sensitivity setting equal to the default is the main run, not a second one."""
    study = Study.plan("smoke")
    main = study.find("partworld", "vgg16", "ours")
    assert study.find("partworld", "vgg16", "ours", params=(("lambda1", 0.2),)) is main
    assert study.find("partworld", "vgg16", "ours", params=(("lambda1", 0.3),)).hash != main.hash
    assert main.config.init_from == main.parent


def _package_copy(tmp_path, monkeypatch):
    """A copy of synclib's source that the run keys are hashed from (edited by the test)."""
    import synclib
    import synclib.provenance as prov

    pkg = tmp_path / "pkg"
    shutil.copytree(Path(synclib.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(prov, "_PKG", pkg)
    return pkg


def test_run_keys_follow_the_training_source_and_nothing_else(home, tmp_path, monkeypatch):
    pkg = _package_copy(tmp_path, monkeypatch)
    rows = ("baseline", "ours_nosync", "ours")

    def hashes():
        s = Study.plan("smoke")
        return {r: s.find_row("partworld", "vgg16", r).hash for r in rows}

    before = hashes()
    assert all("source" in Study.plan("smoke").find_row("partworld", "vgg16", r).key for r in rows)
    (pkg / "analysis" / "pruning.py").write_text((pkg / "analysis" / "pruning.py").read_text() + "\n# an edit outside training\n")
    (pkg / "reproduce.py").write_text((pkg / "reproduce.py").read_text() + "\n# another\n")
    (home / "README.md").write_text("edited")
    assert hashes() == before  # analyses, the book and the README retrain nothing
    (pkg / "methods" / "ours.py").write_text((pkg / "methods" / "ours.py").read_text() + "\n# ours changed\n")
    after_ours = hashes()
    assert after_ours["baseline"] == before["baseline"]  # a method's own file retrains only it
    assert after_ours["ours"] != before["ours"] and after_ours["ours_nosync"] != before["ours_nosync"]
    (pkg / "losses.py").write_text((pkg / "losses.py").read_text() + "\n# a changed loss\n")
    after_losses = hashes()
    assert all(after_losses[r] != after_ours[r] for r in rows)  # a changed loss retrains every run


def test_a_run_records_its_commit_source_and_environment(home):
    study = Study.plan("smoke")
    run = study.find_row("partworld", "resnet18", "baseline")
    store = RunStore()
    store.ensure(study, run)
    rec = json.loads((store.path(run.hash) / "provenance.json").read_text())
    assert rec["source"] == run.key["source"] and rec["commit"]
    env = rec["environment"]
    assert env["torch"] and env["threads"] >= 1 and env["device"] == "cpu" and env["cpu"]


def test_analyses_never_hand_a_module_a_tensor_on_another_device(home, monkeypatch):
    """Every module call of every analysis gets its inputs on the module's own device, and a
    loaded run's model sits on the CPU beside its probe (the probe alone may use the GPU)."""
    seen = []

    def check(module, args):
        params = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        for t in args:
            if isinstance(t, torch.Tensor) and params:
                seen.append(module.__class__.__name__)
                assert t.device == params[0].device, f"{module.__class__.__name__}: input on {t.device}, weights on {params[0].device}"

    handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
    try:
        study = Study.plan("smoke")
        arch = study.analysis["arch"]
        p = analysis.load(study, study.find_row("partworld", arch, "ours"))
        assert {q.device.type for q in p.model.parameters()} == {"cpu"} and p.probe.a.device.type == "cpu"
        assert p.probe.a.dtype == torch.float32
        analysis.pruning_curves(study, arch, steps=4)
        analysis.landscape_table(study, arch, images=4, points=3)
        analysis.module_tables(study, arch, 8)
        analysis.filter_examples(study, arch)
        analysis.landmark_curves(study)
    finally:
        handle.remove()
        analysis.load.cache_clear()
    assert {"Linear", "Conv2d"} <= set(seen)  # the check did watch the heads and the trunks


def test_a_bad_generator_setting_names_the_profile(home):
    prof = (home / "configs/smoke.yaml").read_text().replace("difficulty: {", "difficulty: {blur: 1, ")
    (home / "configs/bad.yaml").write_text(prof)
    with pytest.raises(ValueError, match=r"bad.yaml: datasets.partworld.generate.difficulty.blur: unknown key "
                                         r"\(known here: \['clutter', 'occlusion', 'swap', 'texture_mix'\]\)"):
        Study.plan(home / "configs/bad.yaml")


def _tiny_profile(home: Path) -> Path:
    """The smoke profile's smallest study: one arch, the baseline, one reading."""
    prof = yaml.safe_load((home / "configs/smoke.yaml").read_text())
    prof.update(profile="tiny", methods=["baseline"], readings=["printed"], archs={"vgg16": prof["archs"]["vgg16"]})
    (home / "configs/tiny.yaml").write_text(yaml.safe_dump(prof))
    return home / "configs/tiny.yaml"


def _outputs(path: Path) -> str:
    """A notebook's cell outputs (the notebook validated first), pandas' random table ids, object
    addresses and timings masked."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    text = json.dumps([c.get("outputs", []) for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])])
    text = re.sub(r"\b\d+(\.\d+)? s\b", "<t> s", re.sub(r" at 0x[0-9a-f]+", " at 0x", text))
    return re.sub(r"T_[0-9a-f]{5}", "T_", text)


def test_two_builds_of_one_checkout_at_once(home):
    """Two `synclib reproduce` of one checkout started together: every run trains once, a build that
    finds the checkout's notebooks held waits and says who holds them, both exit 0 with no
    traceback, and the pages equal a single build's. Under --no-wait a build that finds the
    checkout busy stops, saying why."""
    _tiny_profile(home)
    cmd = [str(Path(sys.executable).parent / "synclib"), "reproduce", "--profile", "tiny",
           "--only", "table1", "--only", "table2", "--no-book"]
    logs_dir = home.parent / "build-logs"
    logs_dir.mkdir()
    outs = [(logs_dir / f"out{i}", logs_dir / f"err{i}") for i in range(2)]
    # Which of two builds reaches the notebooks first, and whether the other finds it still there,
    # is up to the machine's speed; so the test holds the checkout (as a third build would) until
    # both have trained (one of them training, the other waiting for its runs) and both say they wait.
    with file_lock(home / "book/.build.lock"):
        builds = []
        for out, err in outs:
            with open(out, "w") as o, open(err, "w") as e:
                builds.append(subprocess.Popen(cmd, cwd=home, stdout=o, stderr=e, text=True))
            time.sleep(1)
        deadline = time.monotonic() + 600
        waiting = f"another build of this checkout is running (pid {os.getpid()}, since "
        while sum(waiting in out.read_text() for out, _ in outs) < 2:
            assert time.monotonic() < deadline and all(b.poll() is None for b in builds), \
                [(out.read_text(), err.read_text()) for out, err in outs]
            time.sleep(0.5)
    results = [(b.wait(timeout=600), out.read_text(), err.read_text()) for b, (out, err) in zip(builds, outs)]
    for rc, out, err in results:
        assert rc == 0 and "Traceback" not in err and "Invalid Signature" not in err, (out, err)
        assert "[wait] " + waiting in out
    # released, one build executes the notebooks; the other, given the checkout after it, finds them current
    assert sum("table1: unchanged, not executed again" in out for _, out, _ in results) == 1
    logs = {p.parent.name: p.read_text() for p in (home / "runs").glob("*/train.log")}
    assert len(logs) == 2  # the backbone and the baseline's fine-tune
    assert all(log.count("training\n") == 1 for log in logs.values()), logs
    executed = home / "book/executed"
    together = {nb: _outputs(executed / f"{nb}.ipynb") for nb in ("table1", "table2")}

    # a single build of the same study, in a fresh executed folder, writes the same pages
    shutil.rmtree(executed)
    r = subprocess.run(cmd, cwd=home, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {nb: _outputs(executed / f"{nb}.ipynb") for nb in together} == together

    # --no-wait while another build holds the checkout: exit 3 and a sentence that names the holder
    with file_lock(home / "book/.build.lock"):
        r = subprocess.run([*cmd, "--no-wait"], cwd=home, capture_output=True, text=True)
    assert r.returncode == BUSY and "Traceback" not in r.stderr
    assert f"another build of this checkout is running (pid {os.getpid()}, since " in r.stderr
    assert "--no-wait was given, so this one stops" in r.stderr

    # an executed notebook, as the book's download button serves it, runs in another checkout:
    # its injected study file is relative to the project, absent there, so it plans its profile
    nb = nbformat.read(executed / "table2.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'study_file = "book/executed/study.json"' in injected.source and str(home) not in injected.source
    other = home.parent / "another-clone"
    for d in ("configs", "notebooks", "book"):
        shutil.copytree(home / d, other / d, ignore=shutil.ignore_patterns("_build", "executed"))
    (other / "downloads").mkdir()
    shutil.copy(executed / "table2.ipynb", other / "downloads/table2.ipynb")
    venv = Path(sys.executable).parent
    r = subprocess.run([str(venv / "papermill"), "downloads/table2.ipynb", "downloads/out.ipynb", "--no-progress-bar"],
                       cwd=other, capture_output=True, text=True, env={**os.environ, "SYNCLIB_HOME": str(other)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "book/executed/study.json is not in this checkout: planning the profile 'tiny' here instead" in \
        (other / "downloads/out.ipynb").read_text()
    assert (other / "results/tiny/table2.csv").read_text() == (home / "results/tiny/table2.csv").read_text()
