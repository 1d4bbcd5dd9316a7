"""The published datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100), read where they already are.

MNIST's four idx files (plain or the published .gz) are looked for in --data-dir in torchvision's
layout (DIR/FashionMNIST/raw/), in --data-dir itself, then in the folder a system package installs
them into (Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist), and read in place.
Only when no folder has them are they fetched (a local CIFAR archive unpacked, or torchvision's
download into DIR in its layout), always into a temporary folder first, so a failed fetch leaves
nothing behind. MNIST's idx files are read and checked by `nas_res.data.idx`; CIFAR's pickles by
torchvision, with their counts and labels checked here: a swapped, truncated or foreign file is one
message naming it, never a crash mid-training or a silent mismatch of images and labels.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import ResnasError
from .idx import read_idx


class Source(NamedTuple):
    """A published dataset: its torchvision class, the folder under --data-dir, its files, their origin."""

    cls: str
    folder: str
    files: list[str]
    origin: str
    classes: int


IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
TORCHVISION = {
    "mnist": Source(
        "MNIST",
        "MNIST/raw",
        IDX_FILES,
        "the four MNIST idx files (the .gz files from yann.lecun.com / ossci-datasets, unzipped or not)",
        10,
    ),
    "fashion-mnist": Source(
        "FashionMNIST",
        "FashionMNIST/raw",
        IDX_FILES,
        "the four Fashion-MNIST idx files (the .gz files from zalandoresearch, unzipped or not)",
        10,
    ),
    "cifar10": Source(
        "CIFAR10",
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
        "cifar-10-python.tar.gz unpacked (or the .tar.gz itself) from cs.toronto.edu/~kriz",
        10,
    ),
    "cifar100": Source(
        "CIFAR100",
        "cifar-100-python",
        ["train", "test", "meta"],
        "cifar-100-python.tar.gz unpacked (or the .tar.gz itself) from cs.toronto.edu/~kriz",
        100,
    ),
}

# Where a system package puts the idx files; looked in after --data-dir, before any download. Only
# Fashion-MNIST has a Debian package (dataset-fashion-mnist); MNIST's folder is looked in all the same.
SYSTEM_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}

Pair = tuple[torch.Tensor | None, torch.Tensor | None]


def load_published(name: str, root: Path, download: bool, test: bool) -> tuple[Pair, Pair, int, Path]:
    """(train images, labels), (test images, labels) or (None, None) without `test`, the classes, and
    the folder the files were read from."""
    src = TORCHVISION[name]
    classes, idx = src.classes, src.files == IDX_FILES
    where = find_published(name, root, test)
    if where is None:
        _fetch(name, root, download)
        where = root / src.folder
    if idx:
        train = _read_idx_pair(name, where, "train", classes)
        test_pair: Pair = _read_idx_pair(name, where, "t10k", classes) if test else (None, None)
        if test_pair[0] is not None and test_pair[0].shape[1:] != train[0].shape[1:]:
            raise ResnasError(
                f"{name}: the t10k images in {where} are {_shape(test_pair[0])}, the train images "
                f"{_shape(train[0])}; both must have one size",
                field="dataset",
            )
        return train, test_pair, classes, where
    return _read_cifar(name, root, True), _read_cifar(name, root, False) if test else (None, None), classes, where


def find_published(name: str, root: Path, test: bool = False) -> Path | None:
    """The first folder (see `_places`) holding every file `name` needs, the test split's with `test`
    (MNIST's training pair suffices without it); None when none does. Nothing is read or fetched."""
    src = TORCHVISION[name]
    needed = src.files if test or src.files != IDX_FILES else src.files[:2]
    return next((p for p in _places(name, root) if all(_find(p, f) for f in needed)), None)


def _places(name: str, root: Path) -> list[Path]:
    """The folders looked in, in order: torchvision's layout under --data-dir; for the idx datasets
    also --data-dir itself and the system package's folder. A folder counts only with every file needed."""
    src = TORCHVISION[name]
    places = [root / src.folder]
    if src.files == IDX_FILES:
        places += [root, *([SYSTEM_DIRS[name]] if name in SYSTEM_DIRS else [])]
    return list(dict.fromkeys(places))


def _shape(x: torch.Tensor | np.ndarray) -> str:
    return "x".join(map(str, x.shape[-2:]))


def _find(where: Path, name: str) -> Path | None:
    """The file as torchvision keeps it (unzipped), else the original .gz, else None."""
    for path in (where / name, where / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _read_idx_pair(name: str, where: Path, prefix: str, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of one MNIST split, checked to belong together."""
    images_path = _find(where, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(where, f"{prefix}-labels-idx1-ubyte")
    assert images_path and labels_path, "load_published fetches missing files before reading"
    x, y = read_idx(images_path, "images"), read_idx(labels_path, "labels")
    other = "t10k" if prefix == "train" else "train"
    if len(x) != len(y):
        raise ResnasError(
            f"{images_path} holds {len(x):,} images but {labels_path} holds {len(y):,} labels; each image "
            f"needs its label (is one of them the {other} file?)",
            field="dataset",
        )
    if not len(y):
        raise ResnasError(f"{labels_path} holds no labels (and {images_path} no images)", field="dataset")
    if x.shape[1] != x.shape[2]:
        raise ResnasError(f"{images_path}: images must be square; these are {_shape(x)}", field="dataset")
    _check_labels(y, classes, name, str(labels_path))
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _check_labels(labels: np.ndarray, classes: int, name: str, where: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        raise ResnasError(
            f"{where}: label {int(labels[bad[0]])} (item {int(bad[0])}, one of {bad.size:,} such) is outside "
            f"0..{classes - 1}: {name} has {classes} classes",
            field="dataset",
        )


def _read_cifar(name: str, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR split through torchvision (which checks every file's MD5), its counts and labels checked."""
    import torchvision.datasets as tvd

    src = TORCHVISION[name]
    cls = getattr(tvd, src.cls)
    where = root / src.folder
    try:
        ds = cls(str(root), train=train, download=False)
        x, y = np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)
    except Exception as e:  # noqa: BLE001 (bad checksum, unreadable pickle, wrong keys or shapes...)
        wrong = [f for f, md5 in [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
                 if not tvd.utils.check_integrity(str(where / f), md5)]  # fmt: skip
        why = (
            f"{', '.join(wrong)} do(es) not match the published MD5 checksum (corrupt, or other files)"
            if wrong
            else f"{type(e).__name__}: {e}"
        )
        raise ResnasError(
            f"{name}: {', '.join(src.files)} in {where}/: all are there but unreadable: {why}. Replace them "
            f"with {src.origin}",
            field="dataset",
        ) from None
    part = "training batches" if train else "test batch"
    if len(x) != len(y):
        raise ResnasError(
            f"{where}: the {part} hold {len(x):,} images but {len(y):,} labels; each image needs its label",
            field="dataset",
        )
    _check_labels(y, src.classes, name, f"{where} ({part})")
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)


def _fetch(name: str, root: Path, download: bool) -> None:
    """Put the missing files in place: a CIFAR archive beside them unpacked, else torchvision's download,
    into a temporary folder moved in only when complete. Nothing is left behind when it fails."""
    import torchvision.datasets as tvd

    src = TORCHVISION[name]
    cls = getattr(tvd, src.cls)
    where = root / src.folder
    local = root / cls.filename if hasattr(cls, "filename") else None
    if not download and not (local and local.is_file()):
        raise _missing(name, root, None)
    moved: list[Path] = []
    created = next((p for p in [*reversed(where.parents), where] if not p.exists()), None)
    try:
        with tempfile.TemporaryDirectory(prefix="resnas-fetch-") as tmp:
            if local and local.is_file():
                tvd.utils.extract_archive(str(local), tmp)
            else:
                with _quiet_network():  # torchvision prints each mirror it tries
                    cls(tmp, train=True, download=True)
            where.mkdir(parents=True, exist_ok=True)
            for path in sorted((Path(tmp) / src.folder).iterdir()):
                if not (where / path.name).exists():
                    shutil.move(str(path), str(where / path.name))
                    moved.append(where / path.name)
    except Exception as e:  # noqa: BLE001 (offline, failed download, bad checksum, unwritable --data-dir...)
        for path in moved:
            path.unlink(missing_ok=True)
        if created is not None and created.exists():
            shutil.rmtree(created, ignore_errors=True)
        raise _missing(name, root, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from None


def _missing(name: str, root: Path, why: str | None) -> ResnasError:
    """The files expected, every folder looked in and what each held, and the ways to get them: a
    system package (where there is one), --data-dir, the download. `why` the download failed (None:
    downloading was not allowed)."""
    src = TORCHVISION[name]
    where = root / src.folder

    def state(folder: Path) -> str:
        present = [f for f in src.files if _find(folder, f)]
        if present:
            return f"found only {', '.join(present)}"
        return "none of them is there" if folder.is_dir() else "no such folder"

    looked = "; ".join(f"{p}/ ({state(p)})" for p in _places(name, root))
    ways = []
    if name in SYSTEM_PACKAGES:
        ways.append(f"install Debian's package (apt-get install {SYSTEM_PACKAGES[name]}) into {SYSTEM_DIRS[name]}/")
    if src.files == IDX_FILES:
        ways.append(f"pass --data-dir DIR, a folder that holds them (or {src.folder}/ with them)")
    else:
        ways.append(f"put them in {where}/ or pass --data-dir DIR (the folder that holds {src.folder.split('/')[0]}/)")
    ways.append(f"let resnas download them into {where}/ (online, without --no-download)")
    return ResnasError(
        f"{name} is not available offline "
        + (f"and could not be downloaded ({why})" if why else "(--no-download)")
        + f": expected {', '.join(src.files)}, {src.origin}; looked in {looked}. To get them: {'; or '.join(ways)}.",
        field="dataset",
    )


@contextlib.contextmanager
def _quiet_network(timeout: float = 20.0):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # stdout may carry --json; tqdm's progress stays on stderr
            yield
    finally:
        socket.setdefaulttimeout(old)
