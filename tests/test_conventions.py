"""What a Python user expects of the package: `python -m synclib`, one version, and the versions
of every installed distribution in a book's provenance."""

import importlib.metadata
import subprocess
import sys

import synclib
from synclib.provenance import distributions


def test_python_m_synclib_and_its_version_come_from_one_place():
    r = subprocess.run([sys.executable, "-m", "synclib", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"synclib {synclib.__version__}"
    assert importlib.metadata.version("synclib") == synclib.__version__  # pyproject reads it from __init__
    r = subprocess.run([sys.executable, "-m", "synclib", "reproduce", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--no-wait" in r.stdout


def test_provenance_lists_every_installed_distribution():
    dists = distributions()
    assert dists["numpy"] == importlib.metadata.version("numpy") and dists["torch"] == importlib.metadata.version("torch")
    assert dists["synclib"] == synclib.__version__
    assert len(dists) == len({d.metadata["Name"] for d in importlib.metadata.distributions()})
    assert list(dists) == sorted(dists, key=str.lower)
