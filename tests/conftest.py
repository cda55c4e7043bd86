from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

# books the tests built, by name: the browser test opens the smoke book that the pipeline test
# built (the same command a user runs) instead of building a second one
BUILT: dict[str, Path] = {}


def pytest_collection_modifyitems(session, config, items):
    """The browser test runs last, so that it can open the book another test built."""
    items.sort(key=lambda item: "test_browser.py" in item.nodeid)


class Killed(Exception):
    """A training run stopped on purpose, as a crash would stop it."""


def kill_after_first(epoch, record):
    """`fit`'s on_epoch_end: stop the run right after its first epoch's checkpoint."""
    if epoch == 1:
        raise Killed


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small PartWorld (48 train, 16 test, 64²) shared by the tests."""
    from synclib.data.partworld import generate

    root = tmp_path_factory.mktemp("partworld")
    generate(root, n_train=48, n_test=16, size=64, seed=0, progress=False)
    return root
