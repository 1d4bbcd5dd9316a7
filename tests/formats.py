"""Small datasets written in the real on-disk formats, so the real loaders read them.

CIFAR: the pickled batches of cifar-10-batches-py / cifar-100-python. MNIST and Fashion-MNIST:
the big-endian idx files, in torchvision's <root>/<Name>/raw or any folder, plain or .gz.
ImageFolder: PNG files in <split>/<class>/ folders, and a PNG too large to decode that costs 100 kB.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar(root: Path, n_train: int = 50, n_test: int = 20, classes: int = 10, seed: int = 0) -> dict:
    """CIFAR-10 (5 data batches + test_batch + batches.meta) or CIFAR-100 (train, test, meta) pickles.

    Returns the arrays written (N×32×32×3 uint8 and labels) and the md5 of every file, which the
    tests give torchvision in place of the real files' checksums."""
    rng = np.random.default_rng(seed)
    x_train = rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8)
    y_train = rng.integers(0, classes, n_train).tolist()
    x_test = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, classes, n_test).tolist()

    def rows(x):  # the format stores each image as 3072 bytes: the red plane, then green, then blue
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    checksums = {}

    def dump(path: Path, obj) -> None:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)
        checksums[path.name] = md5(path)

    if classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        parts = np.array_split(np.arange(n_train), 5)
        for i, idx in enumerate(parts, 1):
            dump(
                folder / f"data_batch_{i}",
                {
                    "batch_label": f"training batch {i} of 5",
                    "data": rows(x_train[idx]),
                    "labels": [y_train[j] for j in idx],
                    "filenames": [f"img_{j}.png" for j in idx],
                },
            )
        dump(
            folder / "test_batch",
            {
                "batch_label": "testing batch 1 of 1",
                "data": rows(x_test),
                "labels": y_test,
                "filenames": [f"test_{j}.png" for j in range(n_test)],
            },
        )
        dump(
            folder / "batches.meta",
            {"label_names": [f"class{c}" for c in range(10)], "num_cases_per_batch": len(parts[0]), "num_vis": 3072},
        )
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        dump(
            folder / "train",
            {
                "data": rows(x_train),
                "fine_labels": y_train,
                "coarse_labels": [y // 5 for y in y_train],
                "filenames": [],
            },
        )
        dump(
            folder / "test",
            {"data": rows(x_test), "fine_labels": y_test, "coarse_labels": [y // 5 for y in y_test], "filenames": []},
        )
        dump(
            folder / "meta",
            {
                "fine_label_names": [f"fine{c}" for c in range(100)],
                "coarse_label_names": [f"coarse{c}" for c in range(20)],
            },
        )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "md5": checksums}


def use_checksums(monkeypatch, checksums: dict, classes: int = 10) -> None:
    """Point torchvision's CIFAR integrity check at the files the test wrote."""
    import torchvision.datasets as tvd

    cls = tvd.CIFAR10 if classes == 10 else tvd.CIFAR100
    monkeypatch.setattr(cls, "train_list", [[n, checksums[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, checksums[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": checksums[cls.meta["filename"]]})


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file: magic (0, 0, type 0x08 = unsigned byte, number of dims), big-endian dims, the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def gzip_files(folder: Path) -> None:
    """Replace every file in `folder` by its .gz, as the idx files are published (and as Debian installs them)."""
    for path in sorted(folder.iterdir()):
        Path(f"{path}.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()


def rewrite_cifar(folder: Path, name: str, change) -> str:
    """Load one CIFAR pickle, let `change(entry)` alter it, write it back; returns its new md5."""
    path = folder / name
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    change(entry)
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    return md5(path)


def write_big_png(path: Path, side: int) -> None:
    """A valid side×side 1-bit PNG of zeros, streamed through zlib: 30000×30000 is 900 M pixels in ~100 kB."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(1)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the row's bits
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def write_mnist(root: Path, name: str = "MNIST", n_train: int = 60, n_test: int = 20, seed: int = 0) -> dict:
    """The four idx files in torchvision's layout, root/<name>/raw/."""
    return write_idx_files(root / name / "raw", n_train, n_test, seed)


def write_idx_files(
    folder: Path, n_train: int = 60, n_test: int = 20, seed: int = 0, gz: bool = False, side: int = 28
) -> dict:
    """The four MNIST idx files straight into `folder`, plain or gzip'd as published (and as Debian's
    dataset-fashion-mnist installs them); returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for stem, key in [("train-images-idx3", "x_train"), ("train-labels-idx1", "y_train"),
                      ("t10k-images-idx3", "x_test"), ("t10k-labels-idx1", "y_test")]:  # fmt: skip
        path = folder / f"{stem}-ubyte"
        write_idx(path, arrays[key])
        if gz:
            Path(f"{path}.gz").write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
    return arrays


def write_imagefolder(
    root: Path, classes=("cat", "dog", "owl"), per_class: int = 6, size: int = 16, splits=("train", "val")
) -> dict:
    """PNG files of one flat colour per class (so a decoded pixel tells its class): <split>/<class>/<i>.png."""
    from PIL import Image

    colours = {c: ((40 + 70 * i) % 256, (200 - 50 * i) % 256, (90 * i) % 256) for i, c in enumerate(classes)}
    for split in splits:
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new("RGB", (size, size), colours[c]).save(folder / f"{i}.png")
    return colours
