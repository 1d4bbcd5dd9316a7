"""Fashion-MNIST and MNIST read from the idx files where they are: torchvision's layout under
--data-dir, --data-dir itself, the folder Debian's dataset-fashion-mnist installs; only then the download.

The files are written in the real format (big-endian idx, plain or gzip'd). Every test sees only the
folders it makes: the system folders point into its tmp_path and the network is off.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import write_idx_files
from nas_res.cli.main import app
from typer.testing import CliRunner

import nas_res.data.dataset
from nas_res import ResnasError
from nas_res.data import published
from nas_res.data.dataset import load_data

REAL = published.SYSTEM_DIRS["fashion-mnist"]  # Debian's folder, before the fixture points it elsewhere
T10K = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def system(monkeypatch, tmp_path) -> dict[str, Path]:
    """The system folders of this test (absent until written), no network, an empty default --data-dir."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    folders = {name: tmp_path / "system" / name for name in ("fashion-mnist", "mnist")}
    for name, folder in folders.items():
        monkeypatch.setitem(published.SYSTEM_DIRS, name, folder)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(nas_res.data.dataset, "DEFAULT_DATA_DIR", tmp_path / "default")
    return folders


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and modification time: what "left as it was" means."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def message(spec: str, **kwargs) -> str:
    with pytest.raises(ResnasError) as e:
        load_data(spec, **kwargs)
    text = str(e.value)
    assert "\n" not in text  # one line of `error: ...` on the CLI
    return text


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_idx_files_in_torchvisions_layout_or_straight_in_data_dir(tmp_path, layout, gz):
    folder = tmp_path / "d" / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path / "d"
    w = write_idx_files(folder, n_train=60, n_test=20, gz=gz)
    d = load_data("fashion-mnist", data_dir=tmp_path / "d", val_size=12, test=True, download=False)
    assert (d.channels, d.classes, d.size, len(d.train), len(d.val), len(d.test)) == (1, 10, 28, 48, 12, 20)
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(w["x_test"]))
    assert d.test.labels.tolist() == w["y_test"].tolist()
    # train + val are exactly the training file's images, each still with its label
    seen = torch.cat([d.train.images, d.val.images])[:, 0].flatten(1)
    labels = torch.cat([d.train.labels, d.val.labels])
    written = torch.from_numpy(w["x_train"]).flatten(1)
    for img, y in zip(seen, labels):
        assert w["y_train"][int((written == img).all(1).nonzero()[0])] == y
    assert d.source == str(folder)


def test_debians_folder_is_found_with_no_flag_and_read_in_place(tmp_path, system):
    debian = system["fashion-mnist"]
    w = write_idx_files(debian, n_train=60, n_test=20, gz=True)  # as dataset-fashion-mnist installs them
    before = snapshot(debian)
    d = load_data("fashion-mnist", val_size=12, test=True, download=False)
    assert d.source == str(debian) and torch.equal(d.test.images[:, 0], torch.from_numpy(w["x_test"]))
    (tmp_path / "empty").mkdir()
    assert load_data("fashion-mnist", data_dir=tmp_path / "empty", val_size=12).source == str(debian)
    assert snapshot(debian) == before  # nothing unzipped, copied or added beside the package's files
    assert not (tmp_path / "default").exists() and list((tmp_path / "empty").iterdir()) == []
    # `resnas train` with no --data-dir: the one command a user with the package types
    args = ["train", "mnist_resnet", "--dataset", "fashion-mnist", "--epochs", "1", "--batch-size", "48",
            "--device", "cpu", "--val-size", "12", "--out", str(tmp_path / "o"), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["source"] == str(debian)
    # a --data-dir that does not hold them: read from the package's folder, and said so
    result = CliRunner().invoke(app, [*args, "--overwrite", "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    assert f"fashion-mnist: not in --data-dir {tmp_path / 'empty'}; read from {debian}" in result.stderr


def test_the_first_folder_with_the_files_is_read(tmp_path, system):
    data = tmp_path / "d"
    places = [data / "FashionMNIST" / "raw", data, system["fashion-mnist"]]
    written = [write_idx_files(p, n_train=30, n_test=10, seed=i, gz=i == 1) for i, p in enumerate(places)]
    for i, folder in enumerate(places):
        d = load_data("fashion-mnist", data_dir=data, val_size=5, test=True, download=False)
        assert d.source == str(folder) and torch.equal(d.test.images[:, 0], torch.from_numpy(written[i]["x_test"]))
        if i == 0:
            shutil.rmtree(data / "FashionMNIST")
        else:
            for f in folder.iterdir():
                f.unlink()


def test_a_folder_counts_only_with_every_file_needed(tmp_path, system):
    raw = tmp_path / "d" / "FashionMNIST" / "raw"
    write_idx_files(raw, n_train=30, n_test=10)
    for f in T10K:
        (raw / f).unlink()
    write_idx_files(tmp_path / "d", n_train=30, n_test=10, seed=1)
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / "d" / f).unlink()
    # training reads the train pair where it is; the test split needs all four files in one folder
    assert load_data("fashion-mnist", data_dir=tmp_path / "d", val_size=5, download=False).source == str(raw)
    text = message("fashion-mnist", data_dir=tmp_path / "d", val_size=5, test=True, download=False)
    assert f"{raw}/ (found only train-images-idx3-ubyte, train-labels-idx1-ubyte)" in text
    assert f"{tmp_path / 'd'}/ (found only {', '.join(T10K)})" in text
    debian = write_idx_files(system["fashion-mnist"], n_train=30, n_test=10, seed=2, gz=True)
    d = load_data("fashion-mnist", data_dir=tmp_path / "d", val_size=5, test=True, download=False)
    assert d.source == str(system["fashion-mnist"])
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(debian["x_test"]))


def test_nothing_anywhere_names_every_place_the_package_and_the_download(tmp_path, system):
    data = tmp_path / "d"
    text = message("fashion-mnist", data_dir=data, download=False)
    for needle in (
        "(--no-download)",
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        f"{data / 'FashionMNIST' / 'raw'}/ (no such folder)",
        f"{data}/ (no such folder)",
        f"{system['fashion-mnist']}/ (no such folder)",
        "apt-get install dataset-fashion-mnist",
        "--data-dir",
        f"download them into {data / 'FashionMNIST' / 'raw'}/",
    ):
        assert needle in text, (needle, text)
    # MNIST has no Debian package: its folder is looked in, no package is named
    text = message("mnist", data_dir=data, download=False)
    assert f"{system['mnist']}/ (no such folder)" in text and "apt-get" not in text
    # with the download allowed but offline: why it failed, and nothing left behind
    data.mkdir()
    text = message("fashion-mnist", data_dir=data, download=True)
    assert "could not be downloaded" in text and "network disabled by the test" in text
    assert "apt-get install dataset-fashion-mnist" in text and list(data.iterdir()) == []
    # --data-dir at the system folder itself: looked in once, nothing written there
    text = message("fashion-mnist", data_dir=system["fashion-mnist"], download=False)
    assert text.count(f"{system['fashion-mnist']}/ (") == 1
    assert not system["fashion-mnist"].exists()


def test_nothing_anywhere_is_one_error_line_on_the_cli(tmp_path):
    args = ["train", "mnist_resnet", "--dataset", "fashion-mnist", "--no-download", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    text = result.stdout + result.stderr
    assert result.exit_code == 2 and "Traceback" not in text and text.count("error:") == 1
    assert "apt-get install dataset-fashion-mnist" in " ".join(text.split())


@pytest.mark.skipif(
    not REAL.is_dir(),
    reason=f"{REAL} is absent: Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)
def test_debians_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setitem(published.SYSTEM_DIRS, "fashion-mnist", REAL)
    d = load_data("fashion-mnist", data_dir=tmp_path / "empty", test=True, download=False)
    assert d.source == str(REAL)
    assert (d.channels, d.classes, d.size, len(d.train) + len(d.val), len(d.test)) == (1, 10, 28, 60_000, 10_000)
    train_labels = torch.cat([d.train.labels, d.val.labels])
    assert np.bincount(train_labels.numpy()).tolist() == [6_000] * 10  # Zalando's: 6,000 of each class
    assert np.bincount(d.test.labels.numpy()).tolist() == [1_000] * 10
    assert d.train.images.dtype == torch.uint8 and int(d.train.images.max()) == 255
