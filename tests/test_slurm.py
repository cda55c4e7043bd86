"""A real SLURM cluster on this machine: `synclib reproduce --executor slurm` against a local build.

The fixture starts a single-node cluster from Debian's slurm-wlm and munge (`.ci/run` installs
them): its own munged on its own socket, slurmctld and slurmd, with a slurm.conf for this
machine's cores and memory, each a process the fixture owns and stops. Without the packages,
or without root (slurmd runs jobs as their user), the test skips and says why.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"Debian's slurm-wlm and munge are not installed ({missing} not found; "
                    "apt-get install slurm-wlm munge, as .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("a single-node SLURM cluster needs root here (slurmd starts jobs as their user)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "munge"):
        (d / sub).mkdir()
    host = socket.gethostname()
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=synclib-test
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName={host} CPUs={os.cpu_count()} RealMemory={int(_memory_mb() * 0.8)} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    env = dict(os.environ, SLURM_CONF=str(conf))
    procs = []

    def start(*cmd):
        log = open(d / "log" / f"{Path(cmd[0]).name}.out", "w")
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))

    start("munged", "-F", "-f", f"--socket={d}/munge/munge.socket", f"--pid-file={d}/munge/munged.pid",
          f"--seed-file={d}/munge/seed")
    time.sleep(0.5)
    start("slurmctld", "-D", "-i", "-f", str(conf))
    start("slurmd", "-D", "-f", str(conf))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if r.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            logs = "\n".join(f"{p.name}: {p.read_text()[-800:]}" for p in (d / "log").iterdir())
            pytest.fail(f"the SLURM node never became idle (sinfo: {r.stdout!r} {r.stderr!r})\n{logs}")
        yield env
    finally:
        # no job outlives its cluster: cancel what is left and wait for the queue to empty
        # (a job whose result is written may still be ending its step)
        subprocess.run(["scancel", "--full", "--partition", "debug"], env=env, capture_output=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            r = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True)
            if r.returncode != 0 or not r.stdout.strip():
                break
            time.sleep(0.5)
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _home(path: Path) -> Path:
    for sub in ("configs", "notebooks", "book"):
        shutil.copytree(ROOT / sub, path / sub, ignore=shutil.ignore_patterns("_build", "executed"))
    for f in ("CITATION.cff", "LICENSE"):
        shutil.copy(ROOT / f, path / f)
    return path


def _build(home: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    """`synclib reproduce --profile smoke` for Tables I-II in `home`: their runs and their two
    notebooks alone (--only with --no-book), no book."""
    synclib = Path(sys.executable).with_name("synclib")
    return subprocess.run([str(synclib), "reproduce", "--profile", "smoke", "--only", "table1", "--only", "table2",
                           "--no-book", *extra], cwd=home, env=dict(env, SYNCLIB_HOME=str(home)),
                          capture_output=True, text=True)


def test_a_slurm_build_equals_a_local_build(slurm_cluster, tmp_path):
    """The smoke profile's Tables I-II runs trained as SLURM jobs give the runs and the numbers
    of the same runs trained here: the same hashes, the same values in every results CSV
    (each job and each local process on one thread)."""
    local, cluster = _home(tmp_path / "local"), _home(tmp_path / "cluster")
    t0 = time.perf_counter()
    r = _build(local, slurm_cluster, "--jobs", "2")  # two processes of one thread each
    local_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    t0 = time.perf_counter()
    r = _build(cluster, slurm_cluster, "--executor", "slurm", "--threads", "1")
    slurm_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "to train on SLURM" in r.stdout
    print(f"local build {local_s:.0f} s, SLURM build {slurm_s:.0f} s")

    def done(home):
        return {p.parent.name for p in (home / "runs").glob("*/DONE")}

    assert done(local) == done(cluster) and len(done(local)) == 19  # 2 backbones + 2 archs x 9 rows, ICNN on VGG16 only
    jobs = list((cluster / "runs/_slurm").glob("*/*_log.out"))
    assert len(jobs) == 19  # one SLURM job per run
    csvs = sorted(p.name for p in (local / "results/smoke").glob("*.csv"))
    assert csvs == sorted(p.name for p in (cluster / "results/smoke").glob("*.csv")) and "table1.csv" in csvs
    for name in csvs:
        a, b = (pd.read_csv(home / "results/smoke" / name) for home in (local, cluster))
        if name == "train_times.csv":  # the wall times differ; the runs they time do not
            a, b = (f.drop(columns=["seconds", "seconds_std"]) for f in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=True)

    # a second call finds every run in the store and submits nothing
    r = _build(cluster, slurm_cluster, "--executor", "slurm", "--threads", "1")
    assert r.returncode == 0 and "19 of 19 runs are in the store; 0 to train on SLURM" in r.stdout


def test_a_failing_job_is_reported_with_its_log(slurm_cluster, tmp_path, monkeypatch):
    """A job whose training fails is named with its SLURM job id and the path of its log."""
    from synclib.executors import SlurmExecutor
    from synclib.store import RunStore
    from synclib.study import Study

    home = _home(tmp_path / "home")
    for k, v in slurm_cluster.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SYNCLIB_HOME", str(home))
    # a cache of its own: training reads the split's decoded copy, which another test may have made
    monkeypatch.setenv("SYNCLIB_CACHE", str(tmp_path / "cache"))
    study = Study.plan("smoke")
    run = study.find("partworld", "resnet18", "baseline", backbone=True)
    store = RunStore()
    shutil.rmtree(Path(run.data_root) / "images" / "train")  # the job cannot read its data
    failed = SlurmExecutor(threads=1, poll_s=0.5).run(study, [run], store)
    assert failed == [run.label] and not store.is_done(run.hash)
    logs = list((store.root / "_slurm").glob("*/*_log.err"))
    assert logs and "cannot read the image" in "".join(p.read_text() for p in logs)
