"""The shape every dataset ends in: `Data` (train / val / optional test `Split`s of N×C×H×W uint8 images
and int64 labels, or image files), with the fixed-seed validation split (`carve`), the training subset a
proxy keeps (`take_train`) and the normalisation statistics."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..errors import ResnasError
from .subset import TrainSize, balanced_indices, parse_train_size, read_number, subset_count


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
