"""Named reference architectures: torchvision's ImageNet nets, the papers' CIFAR nets, the seed's MNIST net.

`zoo.get(name)` returns an `Arch`; the ImageNet entries are state-dict compatible with the
torchvision model of the same name. `resolve_arch` is how every command reads "a zoo name or an arch file".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..errors import ResnasError
from .description import Arch, Stage, load_arch


def torchvision_resnet(block: str, layers: tuple[int, ...], groups: int = 1, width_per_group: int = 64) -> Arch:
    """torchvision's layout: planes 64..512, inner width = int(planes * width_per_group / 64) * groups."""
    expansion = 4 if block == "bottleneck" else 1
    stages = tuple(
        Stage(depth, planes * expansion, 1 if i == 0 else 2, int(planes * width_per_group / 64) * groups, groups)
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), layers))
    )
    return Arch(stages=stages, block=block, stem="imagenet", stem_width=64, shortcut="B")


def cifar_resnet(depth: int, shortcut: str = "A") -> Arch:
    """The ResNet paper's CIFAR-10 nets: 6n+2 layers, widths 16/32/64, option-A shortcuts."""
    n = (depth - 2) // 6
    stages = tuple(Stage(n, w, s) for w, s in ((16, 1), (32, 2), (64, 2)))
    return Arch(stages=stages, block="basic", stem="cifar", stem_width=16, shortcut=shortcut, classes=10, resolution=32)


def preact_resnet(depth: int) -> Arch:
    """Identity Mappings' CIFAR bottleneck nets: 9n+2 layers, full pre-activation, projection when shapes change."""
    n = (depth - 2) // 9
    stages = tuple(Stage(n, 4 * w, s, w, 1) for w, s in ((16, 1), (32, 2), (64, 2)))
    return Arch(
        stages=stages,
        block="bottleneck",
        stem="cifar",
        stem_width=16,
        shortcut="B",
        unit_order="preact",
        classes=10,
        resolution=32,
    )


def mnist_net(shortcut: str = "B") -> Arch:
    """The seed write-up's MNIST net: 3x3 convs, stride-2 convs doubling the filters instead of pooling,
    1x1 stride-2 projection shortcuts, BN, two convs per unit."""
    stages = tuple(Stage(2, w, s) for w, s in ((16, 1), (32, 2), (64, 2)))
    return Arch(
        stages=stages,
        block="basic",
        stem="cifar",
        stem_width=16,
        shortcut=shortcut,
        classes=10,
        in_channels=1,
        resolution=28,
    )


TORCHVISION = "torchvision ImageNet net (state-dict compatible)"
CIFAR = "ResNet paper CIFAR-10 net, option-A shortcuts"
PLAIN = "ResNet paper plain CIFAR-10 net (no shortcuts)"
PREACT = "Identity Mappings pre-activation CIFAR-10 net"

_ZOO: dict[str, tuple[Callable[[], Arch], str]] = {  # name -> (factory, description)
    "resnet18": (lambda: torchvision_resnet("basic", (2, 2, 2, 2)), TORCHVISION),
    "resnet34": (lambda: torchvision_resnet("basic", (3, 4, 6, 3)), TORCHVISION),
    "resnet50": (lambda: torchvision_resnet("bottleneck", (3, 4, 6, 3)), TORCHVISION),
    "resnet101": (lambda: torchvision_resnet("bottleneck", (3, 4, 23, 3)), TORCHVISION),
    "resnet152": (lambda: torchvision_resnet("bottleneck", (3, 8, 36, 3)), TORCHVISION),
    "resnext50_32x4d": (lambda: torchvision_resnet("bottleneck", (3, 4, 6, 3), 32, 4), TORCHVISION),
    "resnext101_32x8d": (lambda: torchvision_resnet("bottleneck", (3, 4, 23, 3), 32, 8), TORCHVISION),
    "resnext101_64x4d": (lambda: torchvision_resnet("bottleneck", (3, 4, 23, 3), 64, 4), TORCHVISION),
    "wide_resnet50_2": (lambda: torchvision_resnet("bottleneck", (3, 4, 6, 3), 1, 128), TORCHVISION),
    "wide_resnet101_2": (lambda: torchvision_resnet("bottleneck", (3, 4, 23, 3), 1, 128), TORCHVISION),
    **{f"resnet{d}_cifar": (partial(cifar_resnet, d), CIFAR) for d in (20, 32, 44, 56, 110, 1202)},
    **{f"plain{d}_cifar": (partial(cifar_resnet, d, "none"), PLAIN) for d in (20, 32, 44, 56, 110)},
    "preact_resnet164": (lambda: preact_resnet(164), PREACT),
    "preact_resnet1001": (lambda: preact_resnet(1001), PREACT),
    "mnist_resnet": (lambda: mnist_net("B"), "seed write-up MNIST net (1x1 stride-2 projections)"),
    "mnist_plain": (lambda: mnist_net("none"), "seed write-up MNIST net, plain twin"),
}


def names() -> list[str]:
    return list(_ZOO)


def _entry(name: str) -> tuple[Callable[[], Arch], str]:
    try:
        return _ZOO[name]
    except KeyError:
        raise ResnasError(f"unknown zoo name {name!r}; known: {', '.join(_ZOO)}") from None


def get(name: str) -> Arch:
    return _entry(name)[0]()


def describe(name: str) -> str:
    return _entry(name)[1]


def resolve_arch(target: str) -> tuple[str, Arch]:
    """A zoo name, or else an arch file (.yaml/.yml/.json, or any existing file): `(name, arch)`, the
    name being the zoo name or the file's stem (it names runs and tables)."""
    if target in _ZOO:
        return target, get(target)
    if Path(target).suffix in (".yaml", ".yml", ".json") or Path(target).exists():
        return Path(target).stem, load_arch(target)
    raise ResnasError(
        f"{target!r} is neither a zoo name ({', '.join(names()[:6])}, ...; see `resnas zoo`) "
        "nor an arch file (.yaml/.json)"
    )
