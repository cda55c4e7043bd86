import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small PartWorld (48 train, 16 test, 64²) shared by the tests."""
    from synclib.data.partworld import generate

    root = tmp_path_factory.mktemp("partworld")
    generate(root, n_train=48, n_test=16, size=64, seed=0, progress=False)
    return root
