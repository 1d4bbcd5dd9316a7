"""ImageFolder data: `PATH/train/<class>/*` (validation carved from it) and `PATH/val/<class>/*` as the
test split, decoded into memory when it fits and read from the files by workers when it does not."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ResnasError
from .splits import Data, Split, carve, channel_stats, take_train
from .subset import TrainSize


def load_imagefolder(
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
