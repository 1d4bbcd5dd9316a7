"""`load_data`: a dataset by name, as uint8 image tensors with a fixed-seed validation split carved from
the training set.

Every source ends in the same shape, `Data` (train / val / optional test `Split`s of N×C×H×W uint8
images and int64 labels; `nas_res.data.splits`), so the trainer has one fast path: hold the images on the device and
augment there (`nas_res.data.batches`). Only an ImageFolder too large for memory stays as a file list,
read by worker processes. Search reads train and val; `test` is loaded only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import ResnasError
from ..memory import check_room
from .imagefolder import load_imagefolder
from .names import DATASETS
from .published import TORCHVISION, load_published
from .splits import Data, Split, carve, channel_stats, take_train
from .subset import parse_train_size

DEFAULT_DATA_DIR = Path(os.environ.get("RESNAS_DATA", Path.home() / ".cache" / "resnas" / "data"))
IN_MEMORY_LIMIT = 4 << 30  # an ImageFolder whose decoded uint8 images exceed this stays on disk
# STATS_NOTE: the normalisation (mean, std) is that of the whole training split left by validation, also
# when a proxy trains on a subset of it: `resnas evaluate` and export recompute it from the data loaded
# whole, so a proxy's checkpoint is evaluated and exported with the normalisation it was trained with.

# Training augmentation per source: pixels of pad-and-crop, and whether a horizontal flip keeps the label.
AUGMENT = {
    "digits": (1, False),
    "mnist": (2, False),
    "fashion-mnist": (2, True),
    "cifar10": (4, True),
    "cifar100": (4, True),
    "synthetic": (4, True),
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
    check: Callable[[int, int, int], None] | None = None,
    train_size: object = None,
) -> Data:
    """Load the dataset `spec` names (see `DATASETS`), validation carved from train with `split_seed`.

    The test split is read only with `test=True` (an explicit final evaluation). `check(channels,
    classes, size)` is called before the split is carved, so a caller refuses data of the wrong shape
    with its own message before anything else about the data is judged. `train_size` (see
    `parse_train_size`) keeps a seeded, class-balanced part of what validation left for training (a
    search's proxy); the validation split is the same whatever it is."""
    train_size = parse_train_size(train_size)  # refused before anything is read
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    root = Path(data_dir).expanduser() if data_dir else DEFAULT_DATA_DIR
    if name == "digits":
        (xtr, ytr), (xte, yte) = _digits()
        classes, source = 10, "scikit-learn's bundled 8x8 digits"
    elif name in TORCHVISION:
        (xtr, ytr), (xte, yte), classes, folder = load_published(name, root, download, test)
        source = str(folder)  # --data-dir, the folder in it, or a system package's folder
    elif name == "synthetic":
        (xtr, ytr), (xte, yte), classes = _synthetic(arg, split_seed)
        source = f"random uint8 tensors {tuple(xtr.shape[1:])}, {classes} classes"
    elif name == "imagefolder":
        return load_imagefolder(arg, val_size, split_seed, test, image_size, augment, memory_limit, check, train_size)
    else:
        raise ResnasError(f"unknown dataset {spec!r}; known: {', '.join(DATASETS)}", field="dataset")
    if check:
        check(xtr.shape[1], classes, xtr.shape[-1])
    train, val = carve(Split(ytr, xtr), val_size, split_seed, classes)
    assert train.images is not None, "carve keeps the images of an in-memory split"
    mean, std = channel_stats(train.images)  # of the whole training split, a proxy's too (see STATS_NOTE)
    full = len(train)
    train = take_train(train, train_size, split_seed, classes)
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
        train_size=train_size,
        train_full=full,
    )


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


def _synthetic(arg: str, seed: int):
    """`synthetic[:CxHxW[:CLASSES[:N]]]`: random images and labels, CIFAR-10's shape by default."""
    parts = arg.split(":") if arg else []
    spec = f"synthetic:{arg}"
    try:
        shape = tuple(int(v) for v in parts[0].lower().split("x")) if parts and parts[0] else (3, 32, 32)
        classes = int(parts[1]) if len(parts) > 1 else 10
        n = int(parts[2]) if len(parts) > 2 else 50_000
        if len(shape) != 3 or len(parts) > 3:
            raise ValueError
    except ValueError:
        raise ResnasError(
            f"{spec} is not synthetic[:CxHxW[:CLASSES[:N]]] (integers, square images), e.g. synthetic:3x32x32:10:50000",
            field="dataset",
        ) from None
    wrong = []
    if min(shape) < 1:
        wrong.append(f"C, H and W must be at least 1; got {'x'.join(map(str, shape))}")
    if shape[1] != shape[2]:
        wrong.append(f"images must be square (H = W); got {shape[1]}x{shape[2]}")
    if classes < 2:
        wrong.append(f"CLASSES must be at least 2 (one class is nothing to tell apart); got {classes}")
    if n < max(classes, 2) + 1:
        wrong.append(
            f"N must be at least CLASSES + 1 = {max(classes, 2) + 1} (a training image per class and one "
            f"for validation); got {n}"
        )
    if wrong:
        raise ResnasError(f"{spec}: {'; '.join(wrong)}", field="dataset")
    n_test = max(2, n // 5)
    check_room((n + n_test) * shape[0] * shape[1] * shape[2], f"{spec} ({n + n_test:,} images)")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + n_test, *shape), dtype=torch.uint8, generator=g)
    y = torch.randint(0, classes, (n + n_test,), generator=g)
    return (x[:n], y[:n]), (x[n:], y[n:]), classes
