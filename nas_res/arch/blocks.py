"""The layers of a residual network, each with its analytic cost beside it (pycls's pattern).

Cost follows fvcore's convention (one multiply-add = one FLOP, batch 1, eval): convolutions and
linear layers count `out_elements * in_channels/groups * k*k`, batch norm 2 per element, adaptive
average pooling 1 per input element; additions, ReLU, max/avg-pool, gating products and slicing
count nothing. Activations count the output elements of every convolution and linear layer.
The same `branch_convs`/`shortcut_kind` and `*_has_*` predicates drive both the modules (here and in
`model`) and their cost, so the two cannot drift.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .description import ENDS_IN_BN, PREACT_ORDERS, Arch, Kind


class Tally(NamedTuple):
    flops: int = 0
    params: int = 0
    acts: int = 0

    def __add__(self, other):
        return Tally(self.flops + other.flops, self.params + other.params, self.acts + other.acts)

    def __mul__(self, n):
        return Tally(self.flops * n, self.params * n, self.acts * n)


def conv_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv padded by kernel//2 (also a 2x2 ceil-mode avg-pool and a ::2 slice)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def up_size(size: int, stride: int, out_pad: int) -> int:
    """Output side of a transposed conv padded by kernel//2 (odd kernels): the side `conv_size` undoes."""
    return (size - 1) * stride + 1 + out_pad


def out_pad_for(size: int, target: int, stride: int) -> int:
    """The output padding that brings a transposed conv from `size` back to `target` (0 or 1 at stride 2)."""
    return target - up_size(size, stride, 0)


def conv_cost(
    cin: int,
    cout: int,
    k: int,
    stride: int,
    groups: int,
    h: int,
    w: int,
    bias: bool = False,
    up: tuple[int, int] | None = None,
):
    """Tally of one conv and its output size. With `up` (output paddings) a strided conv is transposed:
    fvcore then counts its weights once per *input* position."""
    weights = cout * (cin // groups) * k * k
    if up is not None and stride > 1:
        ho, wo = up_size(h, stride, up[0]), up_size(w, stride, up[1])
        return Tally(weights * h * w, weights + (cout if bias else 0), cout * ho * wo), ho, wo
    ho, wo = conv_size(h, k, stride), conv_size(w, k, stride)
    return Tally(weights * ho * wo, weights + (cout if bias else 0), cout * ho * wo), ho, wo


def bn_cost(c: int, h: int, w: int) -> Tally:
    return Tally(2 * c * h * w, 2 * c, 0)


def conv(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = False, up: tuple[int, int] | None = None
) -> nn.Conv2d | nn.ConvTranspose2d:
    """A conv padded by k//2; with `up` (output paddings) and a stride, the transposed conv that undoes one."""
    if up is not None and stride > 1:
        return nn.ConvTranspose2d(cin, cout, k, stride, k // 2, output_padding=up, groups=groups, bias=bias)
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias)


# ---- the residual unit ----------------------------------------------------------------------------


def branch_convs(arch: Arch | Kind, cin: int, cout: int, mid: int, groups: int, stride: int):
    """(in, out, kernel, stride, groups) of each conv of the residual branch, in order."""
    if arch.block == "basic":
        return ((cin, cout, 3, stride, 1), (cout, cout, 3, 1, 1))
    s1, s3 = (stride, 1) if arch.stride_on == "1x1" else (1, stride)
    return ((cin, mid, 1, s1, 1), (mid, mid, 3, s3, groups), (mid, cout, 1, 1, 1))


def shortcut_kind(arch: Arch | Kind, cin: int, cout: int, stride: int, up: bool = False) -> str:
    """identity | pad (option A) | proj (1x1 conv) | avgproj (ResNet-D) | conv (1x1, no BN) | none.
    A decoder's unit (`up`) that changes shape always projects (a transposed 1x1): zero-padding cannot
    narrow its widths, and it has no average pool to undo."""
    changes = cin != cout or stride != 1
    kind = {"none": "none", "C": "proj"}.get(arch.shortcut)
    if kind:
        return kind
    if not changes:
        return "conv" if arch.modulation == "conv" else "identity"
    return "proj" if up else {"A": "pad", "B": "proj", "D": "avgproj"}[arch.shortcut]


def _bn_channels(arch: Arch | Kind, convs) -> list[tuple[int, int]]:
    """(conv index whose output/input size it sees, channels) of each bn_i; bn_i pairs with conv_i."""
    order = arch.unit_order
    if order == "preact":
        return [(i, c[0]) for i, c in enumerate(convs)]
    return [(i, c[1]) for i, c in enumerate(convs)]  # bn_after_add: the last one sits after the addition


@lru_cache(maxsize=1 << 16)
def unit_cost(
    arch: Kind, cin: int, cout: int, mid: int, groups: int, stride: int, h: int, w: int, up: tuple | None = None
):
    """Tally of one residual unit and its output size; mirrors `Unit` line by line. Cached: a search
    costs the same few units over and over. `up`: a decoder's unit, its strided convs transposed."""
    total = Tally()
    convs = branch_convs(arch, cin, cout, mid, groups, stride)
    ho, wo = h, w
    for (_, ch), (ci, co, k, s, g) in zip(_bn_channels(arch, convs), convs):
        if arch.unit_order == "preact":
            total += bn_cost(ch, ho, wo)
        t, ho, wo = conv_cost(ci, co, k, s, g, ho, wo, up=up)
        total += t
        if arch.unit_order != "preact":
            total += bn_cost(ch, ho, wo)  # bn_after_add's last BN also sees (cout, ho, wo)
    kind = shortcut_kind(arch, cin, cout, stride, up is not None)
    with_bn = projection_has_bn(arch.unit_order)
    if kind == "proj":
        total += conv_cost(cin, cout, 1, stride, 1, h, w, up=up)[0] + (bn_cost(cout, ho, wo) if with_bn else Tally())
    elif kind == "avgproj":
        total += conv_cost(cin, cout, 1, 1, 1, ho, wo)[0] + (bn_cost(cout, ho, wo) if with_bn else Tally())
    elif kind == "conv":
        total += conv_cost(cin, cout, 1, 1, 1, h, w)[0]
    if arch.modulation in ("gate", "shortcut_gate"):
        total += conv_cost(cin, cout, 1, stride, 1, h, w, bias=True, up=up)[0]
    return total, ho, wo


class Unit(nn.Module):
    """One residual unit (basic or bottleneck, any unit order, shortcut and modulation).

    Attribute names follow torchvision (conv1, bn1, ..., downsample) so its weights load as they are.
    """

    def __init__(
        self, arch: Arch, cin: int, cout: int, mid: int, groups: int, stride: int, up: tuple[int, int] | None = None
    ):
        """`up` (output paddings): a VAE decoder's unit, which undoes a downsample with transposed convs."""
        super().__init__()
        self.order = arch.unit_order
        convs = branch_convs(arch, cin, cout, mid, groups, stride)
        self.n = len(convs)
        for i, (ci, co, k, s, g) in enumerate(convs, 1):
            setattr(self, f"conv{i}", conv(ci, co, k, s, g, up=up))
        for i, ch in _bn_channels(arch, convs):
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(ch))
        self.relu = nn.ReLU(inplace=True)

        self.kind = shortcut_kind(arch, cin, cout, stride, up is not None)
        self.stride, self.pad = stride, cout - cin
        with_bn = [nn.BatchNorm2d(cout)] if projection_has_bn(arch.unit_order) else []
        self.downsample: nn.Module  # a Sequential (proj, avgproj) or a bare Conv2d (conv); unset otherwise
        if self.kind == "proj":
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride, up=up), *with_bn)
        elif self.kind == "avgproj":
            pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            self.downsample = nn.Sequential(pool, conv(cin, cout, 1), *with_bn)
        elif self.kind == "conv":
            self.downsample = conv(cin, cout, 1)
        assert arch.modulation_value is not None, "Arch fills in the modulation's default value"
        self.modulation, self.mod_value = arch.modulation, arch.modulation_value
        if self.modulation in ("gate", "shortcut_gate"):
            self.gate = conv(cin, cout, 1, stride, bias=True, up=up)
        elif self.modulation == "dropout":
            self.drop = nn.Dropout(self.mod_value)
        self.last_bn = f"bn{self.n}" if arch.unit_order in ENDS_IN_BN else ""  # a name: no second registration

    def _shortcut(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        kind = self.kind
        if kind in ("proj", "avgproj", "conv"):
            return self.downsample(pre)  # pre-activation orders project the activated input
        if kind == "pad":
            if self.stride > 1:
                x = x[:, :, :: self.stride, :: self.stride]
            return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2)) if self.pad else x
        return x

    def _add_shortcut(self, out: torch.Tensor, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        short = self._shortcut(x, pre)
        mod = self.modulation
        if mod == "scale":
            return out + short * self.mod_value
        if mod == "dropout":
            return out + self.drop(short)
        if mod in ("gate", "shortcut_gate"):
            g = torch.sigmoid(self.gate(x))
            return (out * g if mod == "gate" else out) + short * (1 - g)  # exclusive: g*F + (1-g)*x
        return out + short

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        order, relu = self.order, self.relu
        out = x
        pre = x
        for i in range(1, self.n + 1):
            last = i == self.n
            if order == "preact":
                out = relu(getattr(self, f"bn{i}")(out))
            elif order == "relu_preact":
                out = F.relu(out)
            if i == 1:
                pre = out if order in PREACT_ORDERS else x
            out = getattr(self, f"conv{i}")(out)
            if order in ("post", "relu_before_add", "relu_preact") or (order == "bn_after_add" and not last):
                out = getattr(self, f"bn{i}")(out)
            if (order in ("post", "bn_after_add") and not last) or order == "relu_before_add":
                out = relu(out)
        if self.kind != "none":  # a plain unit (no shortcut) skips only the addition
            out = self._add_shortcut(out, x, pre)
        if order == "bn_after_add":
            out = relu(getattr(self, f"bn{self.n}")(out))
        elif order == "post":
            out = relu(out)
        return out


# ---- stem and head --------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def stem_cost(stem: str, in_channels: int, stem_width: int, unit_order: str, resolution: int):
    """Tally of the stem and its output size; mirrors `ResNet`'s stem."""
    h = w = resolution
    total = Tally()
    convs = stem_convs(stem, in_channels, stem_width)
    for j, (ci, co, k, s) in enumerate(convs):
        t, h, w = conv_cost(ci, co, k, s, 1, h, w)
        total += t
        if j < len(convs) - 1 or stem_has_bn(unit_order):
            total += bn_cost(co, h, w)
    if stem_has_maxpool(stem):
        h, w = conv_size(h, 3, 2), conv_size(w, 3, 2)  # max-pool 3x3/2: counted as nothing
    return total, h, w


def stem_convs(stem: str, in_channels: int, stem_width: int):
    """(in, out, kernel, stride) of each stem conv."""
    c, sw = in_channels, stem_width
    if stem == "imagenet":
        return ((c, sw, 7, 2),)
    if stem == "deep":
        half = max(sw // 2, 1)
        return ((c, half, 3, 2), (half, half, 3, 1), (half, sw, 3, 1))
    return ((c, sw, 3, 1),)


def stem_has_bn(unit_order: str) -> bool:
    """Full pre-activation leaves the stem's last conv bare: the first unit normalises it."""
    return unit_order != "preact"


def stem_has_maxpool(stem: str) -> bool:
    """ImageNet-style stems downsample once more with a 3x3/2 max-pool; the CIFAR stem keeps the size."""
    return stem in ("imagenet", "deep")


def head_has_bn(unit_order: str) -> bool:
    """Full pre-activation leaves the last unit's output unnormalised: the head adds a final BN."""
    return unit_order == "preact"


def projection_has_bn(unit_order: str) -> bool:
    """Pre-activation orders leave projection shortcuts bare: the next unit normalises (the paper's code)."""
    return unit_order not in PREACT_ORDERS


@lru_cache(maxsize=1024)
def head_cost(unit_order: str, classes: int, channels: int, h: int, w: int) -> Tally:
    """Final BN (full pre-activation only), global average pool, linear classifier."""
    total = bn_cost(channels, h, w) if head_has_bn(unit_order) else Tally()
    total += Tally(channels * h * w, 0, 0)  # adaptive average pool: one per input element
    return total + Tally(channels * classes, channels * classes + classes, classes)


@lru_cache(maxsize=1 << 16)
def stage_cost(kind: Kind, cin: int, width: int, mid: int, groups: int, stride: int, depth: int, h: int, w: int):
    """A stage: its first unit, then depth-1 identical units (so depth costs nothing to count)."""
    total, h, w = unit_cost(kind, cin, width, mid, groups, stride, h, w)
    if depth > 1:
        total = total + unit_cost(kind, width, width, mid, groups, 1, h, w)[0] * (depth - 1)
    return total, h, w
