"""Datasets as uint8 image tensors with a fixed-seed validation split carved from the training set.

Every source ends in the same shape, `Data` (train / val / optional test `Split`s of N×C×H×W uint8
images and int64 labels), so the trainer has one fast path: hold the images on the device and
augment there (`nas_res.data.batches`). Only an ImageFolder too large for memory stays as a file list,
read by worker processes. Search reads train and val; `test` is loaded only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import ResnasError
from ..memory import check_room
from .names import DATASETS
from .published import TORCHVISION, load_published
from .subset import TrainSize, balanced_indices, parse_train_size, read_number, subset_count

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
    train_size: TrainSize = None  # the training subset asked for (None: the whole training split)
    train_full: int = 0  # the training split's size before the subset was taken (0: len(train))

    def __post_init__(self) -> None:
        self.train_full = self.train_full or len(self.train)

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
            "train_size": self.train_size,
            "train_full": self.train_full,
            "val": len(self.val),
            "test": len(self.test) if self.test else None,
            "pad": self.pad,
            "flip": self.flip,
            "in_memory": self.in_memory,
            "source": self.source,
            "split_seed": self.split_seed,
        }


# Class names of the built-in datasets, in label order (an ImageFolder's names are its folder
# names, read with the data into `extra`).
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def class_names(data: Data) -> list[str] | None:
    """The classes' names in label order: an image folder's, or a built-in dataset's; None if unknown."""
    names = data.extra.get("class_names") or CLASS_NAMES.get(data.name)
    return list(names) if names and len(names) == data.classes else None


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
        return _imagefolder(arg, val_size, split_seed, test, image_size, augment, memory_limit, check, train_size)
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


def take_train(train: Split, train_size: TrainSize, seed: int, classes: int, field: str = "train_size") -> Split:
    """The part of a (carved) training split that `train_size` asks for: all of it (None), else a
    seeded, class-balanced subset (`nas_res.data.subset`)."""
    n = subset_count(train_size, len(train), classes, field)
    return train if n is None else train.subset(balanced_indices(train.labels, n, seed, classes))


def with_train_size(data: Data, train_size: object, field: str = "train_size") -> Data:
    """`data`, loaded whole, with its training split cut as `load_data(..., train_size=)` would cut
    it (the same images, the same normalisation), for a caller that loaded the data first."""
    parsed = parse_train_size(train_size, field)
    train = take_train(data.train, parsed, data.split_seed, data.classes, field)
    if train is data.train:
        return data
    return replace(data, train=train, train_size=parsed, train_full=data.train_full)


def parse_val_size(value: object, field: str = "val_size") -> float | int:
    """A validation split as written: a count of images is an integer (5000, "5000"), a fraction is in
    (0, 1) (0.1, "0.1"). Anything else, 2.0 included (two images, or a typo for 0.2?), is refused."""
    allowed = "a count of images is an integer (e.g. 5000), a fraction is in (0, 1) (e.g. 0.1)"
    value = read_number(value, allowed, field)
    if isinstance(value, int):
        if value < 1:
            raise ResnasError(f"a count of validation images must be at least 1; got {value}", field=field)
        return value
    if not 0 < value < 1:  # also nan
        hint = f" (for {int(value)} images write {int(value)})" if value >= 1 and value.is_integer() else ""
        raise ResnasError(f"{allowed}; got {value!r}, not a fraction in (0, 1){hint}", field=field)
    return value


def carve(split: Split, val_size: float | int, seed: int, classes: int = 1) -> tuple[Split, Split]:
    """Disjoint train/val from one training set; the same seed gives the same split on any machine.

    Validation gets at least one image and training at least one per class (fewer cannot learn them)."""
    n = len(split)
    val_size = parse_val_size(val_size)
    k = round(val_size * n) if isinstance(val_size, float) else val_size
    if k < 1:
        raise ResnasError(f"{val_size} of {n:,} images leaves no validation image", field="val_size")
    if n - k < classes:
        most = f"at most {n - classes:,} of them can go to validation" if n > classes else "too few to split"
        raise ResnasError(
            f"{val_size} of {n:,} training images leaves {max(n - k, 0):,} for training, fewer than one per class "
            f"({classes} classes); {most}",
            field="val_size",
        )
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


def _imagefolder(
    path: str,
    val_size,
    split_seed: int,
    test: bool,
    size: int,
    augment: bool,
    memory_limit: int,
    check=None,
    train_size: TrainSize = None,
):
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
    if len(classes) < 2:
        raise ResnasError(
            f"{root / 'train'} has {len(classes)} class folder ({', '.join(classes)}); a classifier needs at "
            "least 2: one sub-folder of images per class",
            field="dataset",
        )
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
    if check:
        check(3, len(classes), size)
    train, val = carve(Split(labels, files=files), val_size, split_seed, len(classes))
    tests = len(test_split) if test_split else 0
    whole = (len(files) + tests) * 3 * size * size <= memory_limit
    if whole:  # decode once, then the same device-resident fast path as CIFAR
        train, val = decode(train, size), decode(val, size)
        test_split = decode(test_split, size) if test_split else None
        assert train.images is not None, "decode returns an in-memory split"
        mean, std = channel_stats(train.images)  # of the whole training split, a proxy's too (see STATS_NOTE)
    else:
        sample = decode(train.subset(torch.arange(0, len(train), max(1, len(train) // 256))), size)
        assert sample.images is not None, "decode returns an in-memory split"
        mean, std = channel_stats(sample.images)
    full = len(train)
    train = take_train(train, train_size, split_seed, len(classes))
    if not whole and (len(train) + len(val) + tests) * 3 * size * size <= memory_limit:  # a proxy that fits
        train, val = decode(train, size), decode(val, size)
        test_split = decode(test_split, size) if test_split else None
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
        train_size=train_size,
        train_full=full,
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
    except Image.DecompressionBombError:
        raise ResnasError(
            f"{path}: {_pixels(path)} is more than the {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels an image may "
            "have (PIL's guard against decompression bombs); shrink it or take it out of the folder",
            field="dataset",
        ) from None
    except (UnidentifiedImageError, OSError) as e:
        raise ResnasError(f"{path}: not a readable image ({e})", field="dataset") from None


def _pixels(path: str) -> str:
    """An image's size from its header, read with PIL's pixel limit lifted (nothing is decoded)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            w, h = im.size
            return f"{w}x{h} = {w * h:,} pixels"
    except Exception:  # noqa: BLE001 (the size is a courtesy; the refusal stands without it)
        return "the image"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
