import os
import signal
import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning)

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # a suite started in the background by a shell without job control (`cmd &` in a script) inherits
    # SIGINT ignored, and so would every `resnas` the tests start, which then never see the Ctrl-C the
    # tests send; the default handler here is reset to SIG_DFL in each child, which Python turns back
    # into KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def runner(monkeypatch):
    """in-process CLI; tables 200 columns wide whatever COLUMNS the shell running the suite had
    (the consoles are made at import, so an `env=` on invoke cannot change their width)"""
    from nas_res.cli import common
    from typer.testing import CliRunner

    for console in (common.out, common.err):
        monkeypatch.setattr(console, "width", 200)
    return CliRunner()


if os.environ.get("PYTEST_XDIST_WORKER"):
    # one intra-op thread per xdist worker: two workers with two threads each on two cores thrash
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # and the search workers the tests start follow it
