"""Datasets as uint8 image tensors with a fixed-seed validation split carved from the training set.

Every source ends in the same shape, `Data` (train / val / optional test `Split`s of N×C×H×W uint8
images and int64 labels), so the trainer has one fast path: hold the images on the device and
augment there (`nas_res.batches`). Only an ImageFolder too large for memory stays as a file list,
read by worker processes. Search reads train and val; `test` is loaded only when asked for.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ResnasError

DATASETS = (
    "digits",
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "imagefolder:PATH",
    "synthetic[:CxHxW[:CLASSES[:N]]]",
)
DEFAULT_DATA_DIR = Path(os.environ.get("RESNAS_DATA", Path.home() / ".cache" / "resnas" / "data"))
IN_MEMORY_LIMIT = 4 << 30  # an ImageFolder whose decoded uint8 images exceed this stays on disk

# (torchvision class, folder torchvision reads, files expected there, archive to unpack into --data-dir)
TORCHVISION = {
    "mnist": (
        "MNIST",
        "MNIST/raw",
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        "the four MNIST idx files (unzipped .gz files from yann.lecun.com / ossci-datasets)",
    ),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        "the four Fashion-MNIST idx files (unzipped .gz files from zalandoresearch)",
    ),
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
        "cifar-10-python.tar.gz unpacked (or the .tar.gz itself) from cs.toronto.edu/~kriz",
    ),
    "cifar100": (
        "CIFAR100",
        "cifar-100-python",
        ["train", "test", "meta"],
        "cifar-100-python.tar.gz unpacked (or the .tar.gz itself) from cs.toronto.edu/~kriz",
    ),
}
# Training augmentation per source: pixels of pad-and-crop, and whether a horizontal flip keeps the label.
AUGMENT = {
    "digits": (1, False),
    "mnist": (2, False),
    "fashion-mnist": (2, True),
    "cifar10": (4, True),
    "cifar100": (4, True),
    "synthetic": (4, True),
}


@dataclass
class Split:
    """Labels plus either uint8 images in memory (N×C×H×W) or image files read on demand."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> Split:
        files = [self.files[i] for i in index.tolist()] if self.files is not None else None
        images = self.images[index] if self.images is not None else None
        return Split(self.labels[index], images, files)


@dataclass
class Data:
    """A dataset ready for training: shapes, normalisation, augmentation policy and its splits."""

    name: str
    spec: str  # what was asked for: `cifar10`, `imagefolder:/data/pets`, ...
    channels: int
    classes: int
    size: int
    train: Split
    val: Split
    test: Split | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int
    flip: bool
    source: str
    split_seed: int
    extra: dict = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        return self.train.images is not None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "spec": self.spec,
            "channels": self.channels,
            "classes": self.classes,
            "size": self.size,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test) if self.test else None,
            "pad": self.pad,
            "flip": self.flip,
            "in_memory": self.in_memory,
            "source": self.source,
            "split_seed": self.split_seed,
        }


def load_data(
    spec: str,
    *,
    data_dir: str | Path | None = None,
    val_size: float | int = 0.1,
    split_seed: int = 0,
    test: bool = False,
    download: bool = True,
    image_size: int = 224,
    augment: bool = True,
    memory_limit: int = IN_MEMORY_LIMIT,
) -> Data:
    """Load the dataset `spec` names (see `DATASETS`), validation carved from train with `split_seed`.

    The test split is read only with `test=True` (an explicit final evaluation)."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    root = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
    if name == "digits":
        (xtr, ytr), (xte, yte) = _digits()
        classes, source = 10, "scikit-learn's bundled 8x8 digits"
    elif name in TORCHVISION:
        (xtr, ytr), (xte, yte), classes = _torchvision(name, root, download, test)
        source = str(root / TORCHVISION[name][1])
    elif name == "synthetic":
        (xtr, ytr), (xte, yte), classes = _synthetic(arg, split_seed)
        source = f"random uint8 tensors {tuple(xtr.shape[1:])}, {classes} classes"
    elif name == "imagefolder":
        return _imagefolder(arg, val_size, split_seed, test, image_size, augment, memory_limit)
    else:
        raise ResnasError(f"unknown dataset {spec!r}; known: {', '.join(DATASETS)}", field="dataset")
    train, val = carve(Split(ytr, xtr), val_size, split_seed)
    assert train.images is not None, "carve keeps the images of an in-memory split"
    mean, std = channel_stats(train.images)
    pad, flip = AUGMENT[name] if augment else (0, False)
    return Data(
        name,
        spec,
        xtr.shape[1],
        classes,
        xtr.shape[-1],
        train,
        val,
        Split(yte, xte) if test else None,
        mean,
        std,
        pad,
        flip,
        source,
        split_seed,
    )


def carve(split: Split, val_size: float | int, seed: int) -> tuple[Split, Split]:
    """Disjoint train/val from one training set; the same seed gives the same split on any machine."""
    n = len(split)
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)) or not 0 <= val_size < float("inf"):
        raise ResnasError(f"must be a count (e.g. 5000) or a fraction in (0, 1); got {val_size!r}", field="val_size")
    k = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 1 <= k < n:
        raise ResnasError(f"leaves no training or no validation images: {k} of {n} for validation", field="val_size")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return split.subset(order[k:].sort().values), split.subset(order[:k].sort().values)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1)
    sums = torch.zeros(x.shape[0], dtype=torch.float64)
    squares = torch.zeros_like(sums)
    for chunk in x.split(1 << 24, dim=1):  # bounded float64 copies for CIFAR-sized sets
        c = chunk.double()
        sums += c.sum(1)
        squares += (c * c).sum(1)
    n = x.shape[1]
    mean = sums / n
    std = (squares / n - mean * mean).clamp_min(1e-12).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).clamp_min(1e-3).tolist())


def _digits():
    """scikit-learn's 1,797 8×8 digits (levels 0..16), a fixed 20% held out as the test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.clip(np.round(d.images * 255.0 / 16.0), 0, 255).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(20260))
    k = len(y) // 5
    te, tr = order[:k].sort().values, order[k:].sort().values
    return (x[tr], y[tr]), (x[te], y[te])


def _torchvision(name: str, root: Path, download: bool, test: bool):
    import torchvision.datasets as tvd

    cls_name, folder, files, archive = TORCHVISION[name]
    cls = getattr(tvd, cls_name)

    def read(train: bool):
        try:
            return cls(str(root), train=train, download=False)
        except RuntimeError:
            if not download:
                raise
        with _quiet_network():  # torchvision prints each mirror it tries
            return cls(str(root), train=train, download=True)

    try:
        parts = [read(True)] + ([read(False)] if test else [])
    except Exception as e:  # noqa: BLE001 (missing files, failed download, bad checksum, unreadable pickle...)
        where = root / folder
        present = [f for f in files if (where / f).exists()]
        state = (
            "all are there but unreadable"
            if len(present) == len(files)
            else f"found only {', '.join(present)}"
            if present
            else "none of them is there"
        ) + (f" ({type(e).__name__}: {e})" if present else "")
        raise ResnasError(
            f"{name} is not available offline and could not be downloaded: expected "
            f"{', '.join(files)} in {where}/ — {archive}; {state}. "
            f"Put them there or pass --data-dir DIR (the folder that holds {folder.split('/')[0]}/).",
            field="dataset",
        ) from None
    out: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
    for ds in parts:
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # MNIST N×H×W, CIFAR N×H×W×C
        out.append((x.contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)))
    if not test:
        out.append((None, None))
    return out[0], out[1], len(parts[0].classes)


@contextlib.contextmanager
def _quiet_network(timeout: float = 20.0):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # stdout may carry --json; tqdm's progress stays on stderr
            yield
    finally:
        socket.setdefaulttimeout(old)


def _synthetic(arg: str, seed: int):
    """`synthetic[:CxHxW[:CLASSES[:N]]]`: random images and labels, CIFAR-10's shape by default."""
    parts = [p for p in arg.split(":")] if arg else []
    try:
        shape = tuple(int(v) for v in parts[0].lower().split("x")) if parts and parts[0] else (3, 32, 32)
        classes = int(parts[1]) if len(parts) > 1 else 10
        n = int(parts[2]) if len(parts) > 2 else 50_000
        if len(shape) != 3 or shape[1] != shape[2] or min(shape) < 1 or classes < 2 or n < 2 or len(parts) > 3:
            raise ValueError
    except ValueError:
        raise ResnasError(
            f"synthetic:{arg} is not synthetic[:CxHxW[:CLASSES[:N]]] with square images, "
            "e.g. synthetic:3x32x32:10:50000",
            field="dataset",
        ) from None
    g = torch.Generator().manual_seed(seed)
    n_test = max(2, n // 5)
    x = torch.randint(0, 256, (n + n_test, *shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n + n_test,), generator=g)
    return (x[:n], y[:n]), (x[n:], y[n:]), classes


def _imagefolder(path: str, val_size, split_seed: int, test: bool, size: int, augment: bool, memory_limit: int):
    """`PATH/train/<class>/*.png` (validation carved from it) and `PATH/val/<class>/...` as the test split."""
    import torchvision.datasets as tvd

    root = Path(path).expanduser()
    if not path or not (root / "train").is_dir():
        raise ResnasError(
            f"imagefolder:{path} needs a folder with train/<class>/<images> "
            f"(and val/<class>/<images> for the test split); {root / 'train'} is not a folder",
            field="dataset",
        )

    def folder(sub: str) -> tvd.ImageFolder:
        try:
            return tvd.ImageFolder(str(root / sub))  # .jpg .png .bmp .tif .webp ...
        except (FileNotFoundError, OSError) as e:
            raise ResnasError(f"{root / sub}: {e}", field="dataset") from None

    train_folder = folder("train")
    classes = train_folder.classes
    labels = torch.tensor(train_folder.targets, dtype=torch.int64)
    files = [p for p, _ in train_folder.samples]
    test_split = None
    if test:
        test_folder = folder("val")
        if test_folder.classes != classes:
            raise ResnasError(
                f"{root / 'val'} has classes {test_folder.classes}, {root / 'train'} has {classes}; "
                "they must be the same",
                field="dataset",
            )
        test_split = Split(
            torch.tensor(test_folder.targets, dtype=torch.int64), files=[p for p, _ in test_folder.samples]
        )
    train, val = carve(Split(labels, files=files), val_size, split_seed)
    fits = (len(files) + (len(test_split) if test_split else 0)) * 3 * size * size <= memory_limit
    if fits:  # decode once, then the same device-resident fast path as CIFAR
        train, val = decode(train, size), decode(val, size)
        test_split = decode(test_split, size) if test_split else None
        assert train.images is not None, "decode returns an in-memory split"
        mean, std = channel_stats(train.images)
    else:
        sample = decode(train.subset(torch.arange(0, len(train), max(1, len(train) // 256))), size)
        assert sample.images is not None, "decode returns an in-memory split"
        mean, std = channel_stats(sample.images)
    pad, flip = (size // 8, True) if augment else (0, False)
    return Data(
        "imagefolder",
        f"imagefolder:{root}",
        3,
        len(classes),
        size,
        train,
        val,
        test_split,
        mean,
        std,
        pad,
        flip,
        str(root),
        split_seed,
        {"class_names": classes},
    )


def decode(split: Split, size: int) -> Split:
    """Read image files into uint8 N×3×size×size (shorter side resized to `size`, centre crop)."""
    from torchvision.transforms import v2

    tf = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    if split.files is None:
        raise ValueError("decode needs a split of image files; this one is already in memory")
    images = torch.empty((len(split), 3, size, size), dtype=torch.uint8)
    for i, path in enumerate(split.files):
        images[i] = tf(read_image(path))
    return Split(split.labels, images)


def read_image(path: str) -> torch.Tensor:
    """One image file as uint8 3×H×W (RGB), with a message naming the file when it is not an image."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2.functional import pil_to_tensor

    try:
        with Image.open(path) as im:
            return pil_to_tensor(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ResnasError(f"{path}: not a readable image ({e})", field="dataset") from None
