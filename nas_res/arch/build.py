"""`build(arch) -> nn.Module`: the network an `Arch` describes, freshly initialised: a `ResNet`, or a
`VAE` for `task: vae`."""

from __future__ import annotations

from .description import Arch
from .resnet import ResNet
from .vae import VAE


def build(arch: Arch) -> ResNet | VAE:
    """The `nn.Module` for `arch`, freshly initialised: a `ResNet`, or a `VAE` for `task: vae`."""
    if arch.task == "vae":
        return VAE(arch)
    return ResNet(arch)
