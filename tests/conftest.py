import warnings

import pytest

warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()
