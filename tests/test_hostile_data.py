"""Hostile data: files in the real formats, each wrong in one way, through the real loaders.

Every case must end in ONE message naming the file (or folder, or value) and what is wrong, exit
code 2 from the CLI, no traceback, and nothing left behind under --data-dir: never a crash in the
middle of training, never a silent run on images paired with the wrong labels.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import gzip_files, md5, rewrite_cifar, use_checksums, write_big_png, write_cifar, write_idx, write_mnist
from nas_res.cli.main import app
from servers import sqlite_url
from typer.testing import CliRunner

from nas_res import ResnasError
from nas_res.data import published
from nas_res.data.dataset import load_data
from nas_res.data.idx import read_idx
from nas_res.data.splits import Split, carve, parse_val_size

runner = CliRunner()
TRAIN = ["train", "mnist_resnet", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]
RAW = ("FashionMNIST", "raw")
DEBIAN = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist


def invoke(args: list) -> object:
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *needles: str):
    """Exit 2, one `error:` line naming every needle, no traceback, stdout clean."""
    text = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code == 2, (result.exit_code, text)
    assert "Traceback" not in text and text.count("error:") == 1, text
    assert result.stdout.strip() == "", result.stdout
    flat = " ".join(text.split())
    for needle in needles:
        assert " ".join(str(needle).split()) in flat, (needle, text)
    return flat


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else ["<absent>"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test here reaches the network: a download attempt fails at once, as offline. Temporary
    folders go to the test's own folder, so the tests see whether any is left behind."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for name in ("fashion-mnist", "mnist"):  # and no system package's folder (Debian's Fashion-MNIST) either
        monkeypatch.setitem(published.SYSTEM_DIRS, name, tmp_path / "no-system" / name)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    yield
    left = [p.name for p in scratch.iterdir() if p.name.startswith("resnas-")]
    assert left == [], f"temporary folders left behind: {left}"


# ---- MNIST / Fashion-MNIST idx files ------------------------------------------------------------


def spoil_idx(raw: Path, how: str, arrays: dict) -> tuple[str, ...]:
    """Make one idx file wrong; returns what the message must name."""
    images, labels = raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"
    if how == "label_out_of_range":
        y = arrays["y_train"].copy()
        y[17] = 200
        write_idx(labels, y)
        return str(labels), "label 200", "0..9"
    if how == "train_labels_are_the_test_labels":  # the hostile trial's swap: 60 images, 20 labels
        shutil.copy(raw / "t10k-labels-idx1-ubyte", labels)
        return str(images), str(labels), "60 images", "20 labels", "t10k"
    if how == "labels_where_images_belong":
        shutil.copy(raw / "t10k-labels-idx1-ubyte", images)
        return str(images), "0x00000801", "0x00000803"
    if how == "not_an_idx_file":
        images.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
        return str(images), "magic number is 0x89504e47", "not an idx file"
    if how == "empty_file":
        labels.write_bytes(b"")
        return str(labels), "empty file"
    if how == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
        return str(images), "60x28x28", "truncated"
    if how == "extra_bytes":
        labels.write_bytes(labels.read_bytes() + b"\x01\x02")
        return str(labels), "holds more bytes"
    if how == "header_claims_petabytes":  # a header that must not be believed before it is checked
        images.write_bytes(bytes([0, 0, 8, 3]) + b"\xff" * 12)
        return str(images), "PB", "available"
    if how == "corrupt_gzip":
        labels.unlink()
        gz = raw / "train-labels-idx1-ubyte.gz"
        gz.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 60]) + bytes(60))[:10] + b"not deflate data")
        return str(gz), "cannot be read"
    if how == "test_images_are_another_size":
        write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
        return "t10k", "32x32", "28x28"
    raise AssertionError(how)


IDX_CASES = [
    "label_out_of_range",
    "train_labels_are_the_test_labels",
    "labels_where_images_belong",
    "not_an_idx_file",
    "empty_file",
    "truncated",
    "extra_bytes",
    "header_claims_petabytes",
    "corrupt_gzip",
    "test_images_are_another_size",
]


@pytest.mark.parametrize("how", IDX_CASES)
def test_wrong_idx_file_is_one_message_naming_it(how, tmp_path):
    data = tmp_path / "data"
    arrays = write_mnist(data, "FashionMNIST", n_train=60, n_test=20)
    needles = spoil_idx(data.joinpath(*RAW), how, arrays)
    before = tree(data)
    args = [*TRAIN, "--dataset", "fashion-mnist", "--data-dir", data, "--test", "--out", tmp_path / "o"]
    refused(invoke(args), *needles)
    assert tree(data) == before  # nothing downloaded over the user's files, nothing added
    assert not (tmp_path / "o").exists()


def test_idx_files_may_be_the_published_gz_files(tmp_path):
    arrays = write_mnist(tmp_path, "MNIST", n_train=60, n_test=20)
    gzip_files(tmp_path / "MNIST" / "raw")
    d = load_data("mnist", data_dir=tmp_path, val_size=12, test=True, download=False)
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(arrays["x_test"]))
    assert d.test.labels.tolist() == arrays["y_test"].tolist()
    together = torch.cat([d.train.labels, d.val.labels]).sort().values
    assert together.tolist() == sorted(arrays["y_train"].tolist())


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="dataset-fashion-mnist (Debian) is not installed")
def test_reads_debians_fashion_mnist_files():
    y = read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz", "labels")
    x = read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz", "images")
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
    assert np.bincount(y).tolist() == [1000] * 10  # Zalando's test set: 1,000 of each class
    with pytest.raises(ResnasError, match="0x00000803.*0x00000801"):
        read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz", "labels")


# ---- CIFAR pickles ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["label_out_of_range", "fewer_labels_than_images"])
def test_wrong_cifar_batch_is_one_message(how, tmp_path, monkeypatch):
    w = write_cifar(tmp_path, n_train=50, n_test=20)
    folder = tmp_path / "cifar-10-batches-py"
    if how == "label_out_of_range":
        w["md5"]["data_batch_3"] = rewrite_cifar(folder, "data_batch_3", lambda e: e["labels"].__setitem__(0, 10))
        needles = ("label 10", "0..9")
    else:
        w["md5"]["data_batch_2"] = rewrite_cifar(folder, "data_batch_2", lambda e: e["labels"].pop())
        needles = ("50 images but 49 labels",)
    use_checksums(monkeypatch, w["md5"])
    refused(invoke([*TRAIN, "--dataset", "cifar10", "--data-dir", tmp_path, "--out", tmp_path / "o"]), *needles)


def test_a_cifar_archive_beside_the_folder_is_unpacked(tmp_path, monkeypatch):
    staging, data = tmp_path / "staging", tmp_path / "data"
    w = write_cifar(staging, n_train=50, n_test=20)
    use_checksums(monkeypatch, w["md5"])
    data.mkdir()
    with tarfile.open(data / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    d = load_data("cifar10", data_dir=data, val_size=10, test=True, download=False)
    assert torch.equal(d.test.images, torch.from_numpy(w["x_test"]).permute(0, 3, 1, 2))
    assert sorted(p.name for p in (data / "cifar-10-batches-py").iterdir()) == sorted(w["md5"])


# ---- a failed fetch leaves nothing behind -------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "cifar10", "cifar100"])
@pytest.mark.parametrize("state", ["absent", "empty"])
def test_failed_download_leaves_nothing_behind(dataset, state, tmp_path):
    data = tmp_path / "data" / "nested"
    if state == "empty":
        data.mkdir(parents=True)
    args = [*TRAIN, "--dataset", dataset, "--data-dir", data, "--out", tmp_path / "o"]
    refused(invoke(args), "could not be downloaded", "network disabled by the test", str(data), "--data-dir")
    assert tree(tmp_path / "data") == (["<absent>"] if state == "absent" else ["nested"])
    assert not (tmp_path / "o").exists()


def test_failed_download_keeps_the_files_that_were_there(tmp_path):
    write_mnist(tmp_path, "FashionMNIST")
    raw = tmp_path.joinpath(*RAW)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f).unlink()
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    args = [*TRAIN, "--dataset", "fashion-mnist", "--data-dir", tmp_path, "--test", "--out", tmp_path / "o"]
    refused(invoke(args), "found only train-images-idx3-ubyte, train-labels-idx1-ubyte")
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_a_download_lands_in_torchvisions_layout(tmp_path, monkeypatch):
    """The download path itself, served from memory: files arrive in DATA/FashionMNIST/raw, complete."""
    import torchvision.datasets as tvd

    staging = tmp_path / "staging"
    arrays = write_mnist(staging, "FashionMNIST")
    gzip_files(staging.joinpath(*RAW))
    served = {p.name: p.read_bytes() for p in staging.joinpath(*RAW).iterdir()}
    monkeypatch.setattr(tvd.FashionMNIST, "resources", [(n, md5(staging.joinpath(*RAW, n))) for n in sorted(served)])

    class Response(io.BytesIO):
        def __init__(self, request):
            self.url = request.full_url
            body = served[self.url.rsplit("/", 1)[1]]
            super().__init__(body)
            self.length = len(body)

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, *a, **k: Response(request))
    d = load_data("fashion-mnist", data_dir=tmp_path / "data", val_size=6, test=True)
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(arrays["x_test"]))
    names = set(tree(tmp_path / "data"))
    assert {"FashionMNIST/raw/train-labels-idx1-ubyte", "FashionMNIST/raw/t10k-images-idx3-ubyte.gz"} <= names


# ---- ImageFolder --------------------------------------------------------------------------------


def small_pngs(folder: Path, n: int = 3) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(folder / f"{i}.png")


def test_decompression_bomb_names_the_file_and_its_size(tmp_path):
    from PIL import Image

    root = tmp_path / "pets"
    small_pngs(root / "train" / "cat")
    small_pngs(root / "train" / "dog")
    write_big_png(root / "train" / "dog" / "huge.png", 30_000)
    limit = Image.MAX_IMAGE_PIXELS
    args = [*TRAIN, "--dataset", f"imagefolder:{root}", "--image-size", "8", "--out", tmp_path / "o"]
    refused(invoke(args), str(root / "train" / "dog" / "huge.png"), "30000x30000 = 900,000,000 pixels")
    assert limit == Image.MAX_IMAGE_PIXELS  # PIL's guard is back as it was


def test_imagefolder_with_one_class_is_refused(tmp_path):
    root = tmp_path / "pets"
    small_pngs(root / "train" / "cat")
    args = [*TRAIN, "--dataset", f"imagefolder:{root}", "--image-size", "8", "--out", tmp_path / "o"]
    refused(invoke(args), str(root / "train"), "1 class folder (cat)", "at least 2")


# ---- synthetic ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,needles",
    [
        ("synthetic:3x100000x100000", ["synthetic:3x100000x100000", "1.80 PB", "memory available"]),
        (
            "synthetic:1x8x8:1:1",
            [
                "CLASSES must be at least 2 (one class is nothing to tell apart); got 1",
                "N must be at least CLASSES + 1 = 3",
            ],
        ),
        ("synthetic:1x8x8:10:5", ["N must be at least CLASSES + 1 = 11", "got 5"]),
        ("synthetic:0x8x8", ["C, H and W must be at least 1; got 0x8x8"]),
    ],
)
def test_synthetic_spec_that_cannot_be_made(spec, needles, tmp_path):
    flat = refused(invoke([*TRAIN, "--dataset", spec, "--out", tmp_path / "o"]), *needles)
    assert "is not synthetic[" not in flat  # the format was right: say what is wrong with the values


# ---- validation split ---------------------------------------------------------------------------


def test_val_size_leaving_fewer_training_images_than_classes(tmp_path):
    # digits: 1,438 images for training and validation; 1437 would leave one image for ten classes
    refused(
        invoke([*TRAIN, "--val-size", "1437", "--out", tmp_path / "o"]),
        "--val-size",
        "1437 of 1,438",
        "leaves 1 for training",
        "10 classes",
        "at most 1,428",
    )
    assert len(load_data("digits", val_size=1428).train) == 10  # the most that still leaves one per class


@pytest.mark.parametrize(
    "value,expected",
    [("5000", 5000), (5000, 5000), ("0.25", 0.25), (0.1, 0.1), (" 12 ", 12)],
)
def test_val_size_as_written(value, expected):
    got = parse_val_size(value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value,needle",
    [
        ("2.0", "got 2.0, not a fraction in (0, 1) (for 2 images write 2)"),
        (2.0, "write 2"),
        (1.0, "write 1"),
        ("1e3", "write 1000"),
        ("0", "at least 1; got 0"),
        ("-0.5", "not a fraction"),
        ("nan", "nan"),
        ("half", "'half'"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_val_size_that_is_neither_count_nor_fraction(value, needle):
    with pytest.raises(ResnasError, match=re.escape(needle)) as e:
        parse_val_size(value)
    assert str(e.value).startswith("val_size: ")
    with pytest.raises(ResnasError, match="val_size"):  # what a study file's `val_size: 2.0` reaches
        carve(Split(torch.arange(100)), value, seed=0)


def test_study_file_val_size_that_is_not_a_fraction(tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text("space: plain-vs-residual\ndataset: digits\nval_size: 2.0\ntrials: 1\nepochs: 1\n")
    url = sqlite_url(tmp_path)
    refused(invoke(["search", study, "--storage", url, "--study", "v"]), "val_size", "2.0", "write 2")
    assert not Path(url[len("sqlite:///") :]).exists() or "v" not in invoke(["studies", "--storage", url]).stdout


# ---- evaluating a checkpoint on data it does not fit --------------------------------------------


def test_evaluate_a_digits_checkpoint_on_other_data(tmp_path):
    """One checkpoint (training it is this test's cost) for both: the mismatch, then a fit."""
    out = tmp_path / "run"
    assert invoke([*TRAIN, "--out", out]).exit_code == 0
    ckpt = out / "checkpoint.pt"
    # 20 images: the digits run's validation count (144) would not even fit; the channels are the news
    flat = refused(
        invoke(["evaluate", ckpt, "--dataset", "synthetic:3x8x8:10:20", "--device", "cpu"]),
        str(ckpt),
        "takes 1 channel(s) and predicts 10 classes",
        "trained on digits: 8x8 images",
        "synthetic:3x8x8:10:20 has 3 channel(s), 8x8 images and 10 classes",
    )
    assert "val_size" not in flat
    # another dataset of the right shape: its own default split, not digits' 144 validation images
    r = invoke(["evaluate", ckpt, "--dataset", "synthetic:1x8x8:10:40", "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert '"images": 8' in r.stdout  # synthetic's test split: a fifth of 40
