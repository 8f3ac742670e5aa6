import numpy as np
import pytest
import torch

# one intra-op thread: the tests' models are small, and on a 2-core machine shared with another
# job two threads thrash (the measurement is in the commit that set this)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """For modules whose tensors are tiny: intra-op threads only add overhead (and thrash on a
    busy CPU). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
