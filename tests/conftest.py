import os
import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: two workers with two threads each on two cores thrash
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and the search workers the tests start follow it
