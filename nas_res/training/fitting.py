"""Whether an arch fits a dataset (its images' channels, its classes), and adapting an arch to one."""

from __future__ import annotations

from ..arch.description import Arch
from ..arch.vae_cost import check_latent
from ..data.splits import Data
from ..errors import ResnasError


def check_fit(arch: Arch, data: Data) -> None:
    """The arch must take the data's channels and predict its classes; say so before any conv sees a batch."""
    wrong = []
    if arch.in_channels != data.channels:
        wrong.append(f"in_channels {arch.in_channels} but {data.name} images have {data.channels} channel(s)")
    if arch.task == "vae":  # a VAE predicts no classes, and its linear maps are sized for its resolution
        what, fix = "the VAE", f"resolution: {data.size}"
        if arch.resolution != data.size:
            wrong.append(f"resolution {arch.resolution} but {data.name} images are {data.size}x{data.size}")
    else:
        what, fix = "the arch", f"classes: {data.classes}"
        if arch.classes != data.classes:
            wrong.append(f"classes {arch.classes} but {data.name} has {data.classes}")
    if wrong:
        raise ResnasError(
            f"{what} does not fit the dataset: {'; '.join(wrong)}. Set in_channels: {data.channels} and {fix} "
            "in the arch (or pass --fit to `resnas train`)",
            field="arch",
        )
    if arch.task == "vae":
        check_latent(arch.latent, arch.in_channels, arch.resolution)  # no wider than the data's images


def fit_to_data(arch: Arch, data: Data) -> Arch:
    """`arch` with the data's input channels and classes (a VAE's: channels and resolution): a zoo net is
    a family, its layout is the net."""
    if arch.task == "vae":
        return arch.replace(in_channels=data.channels, resolution=data.size)
    if (arch.in_channels, arch.classes) == (data.channels, data.classes):
        return arch
    return arch.replace(in_channels=data.channels, classes=data.classes)
