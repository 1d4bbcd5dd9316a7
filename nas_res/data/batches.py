"""Batches for the trainer: shuffled, augmented (pad-and-crop, flip) and normalised on the device.

`DeviceBatches` keeps a split's uint8 images on the training device (on the host when they do not
fit) and does everything per batch with tensor ops driven by one seeded generator, so a batch costs
no host synchronisation and no Python per image. `FileBatches` is the fallback for an ImageFolder
too large for memory: a DataLoader with worker processes and pinned memory applying the same
augmentations to PIL images. Both yield normalised float batches and can save and restore their
shuffling state, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .imagefolder import read_image
from .splits import Data, Split


def batches(
    data: Data,
    split: str,
    *,
    batch_size: int,
    device: torch.device,
    train: bool,
    seed: int = 0,
    channels_last: bool = False,
):
    """The batch source for `data.<split>` (`train`, `val` or `test`), chosen by where the images live."""
    part: Split = getattr(data, split)
    kind = DeviceBatches if part.images is not None else FileBatches
    return kind(data, part, batch_size=batch_size, device=device, train=train, seed=seed, channels_last=channels_last)


class _Normalise:
    def __init__(self, data: Data, device: torch.device, channels_last: bool):
        self.scale = (1.0 / (255.0 * torch.tensor(data.std, device=device))).view(1, -1, 1, 1)
        self.shift = (-torch.tensor(data.mean, device=device) / torch.tensor(data.std, device=device)).view(1, -1, 1, 1)
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, x.float(), self.scale)  # (x/255 - mean) / std in one kernel
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        # a 1-channel crop is contiguous either way, but its NHWC strides would make every convolution
        # run NHWC; flattening and reshaping gives it NCHW strides without a copy
        return x.contiguous().flatten().view(x.shape)


class DeviceBatches:
    """Batches cut from a uint8 tensor on the device; augmentation is batched, never per image."""

    def __init__(
        self,
        data: Data,
        part: Split,
        *,
        batch_size: int,
        device: torch.device,
        train: bool,
        seed: int,
        channels_last: bool,
    ):
        self.device = device
        self.batch_size = batch_size
        self.train = train
        self.pad, self.flip = (data.pad, data.flip) if train else (0, False)
        if part.images is None:
            raise ValueError("DeviceBatches needs a split with images in memory; use FileBatches for image files")
        held = device if _fits(part.images, device) else torch.device("cpu")
        images = part.images.to(held)
        self.images = images.pin_memory() if held.type == "cpu" and device.type == "cuda" else images
        self.labels = part.labels.to(held)
        self.normalise = _Normalise(data, device, channels_last)
        self.generator = torch.Generator(device=held).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train and n >= self.batch_size else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        held = self.images.device
        order = torch.randperm(n, device=held, generator=self.generator) if self.train else None
        for b in range(len(self)):
            if order is None:
                x, y = (
                    self.images[b * self.batch_size : (b + 1) * self.batch_size],
                    self.labels[b * self.batch_size : (b + 1) * self.batch_size],
                )
            else:
                idx = order[b * self.batch_size : (b + 1) * self.batch_size]
                x, y = self.images[idx], self.labels[idx]
                x = augment(x, self.pad, self.flip, self.generator)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            yield self.normalise(x), y

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def _fits(images: torch.Tensor, device: torch.device) -> bool:
    """Whether a split's uint8 images may live on `device`, keeping most of a GPU for the model."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() < free // 4


def augment(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random pad-and-crop (zero padding, as torchvision's RandomCrop) and horizontal flip of a uint8 batch."""
    n, _, h, w = x.shape
    if pad:
        d = torch.randint(0, 2 * pad + 1, (2, n, 1), device=x.device, generator=generator)
        rows = d[0] + torch.arange(h, device=x.device)  # n×h source rows in the padded image
        cols = d[1] + torch.arange(w, device=x.device)
        padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # gather whole pixels (all channels)
        x = padded[torch.arange(n, device=x.device).view(n, 1, 1), rows.view(n, h, 1), cols.view(n, 1, w)]
        x = x.permute(0, 3, 1, 2)
    if flip:
        mirror = torch.rand(n, device=x.device, generator=generator) < 0.5
        x = torch.where(mirror.view(n, 1, 1, 1), x.flip(3), x)
    return x


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, part: Split, size: int, pad: int, flip: bool):
        from torchvision.transforms import v2

        steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        if pad:
            steps.append(v2.RandomCrop(size, padding=pad))
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        if part.files is None:
            raise ValueError("_FileDataset needs a split of image files; use DeviceBatches for images in memory")
        self.files, self.labels, self.transform = part.files, part.labels, v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.transform(read_image(self.files[i])), self.labels[i]


class FileBatches:
    """DataLoader fallback for image files: worker processes, pinned memory, the same augmentations."""

    def __init__(
        self,
        data: Data,
        part: Split,
        *,
        batch_size: int,
        device: torch.device,
        train: bool,
        seed: int,
        channels_last: bool,
    ):
        pad, flip = (data.pad, data.flip) if train else (0, False)
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        workers = min(8, torch.get_num_threads())  # this process's share of the cores (nas_res.training.threads)
        self.loader = torch.utils.data.DataLoader(
            _FileDataset(part, data.size, pad, flip),
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(part) >= batch_size,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            generator=self.generator,
        )
        self.normalise = _Normalise(data, device, channels_last)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield self.normalise(x.to(self.device, non_blocking=True)), y.to(self.device, non_blocking=True)

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
