"""`Residual(layer)`: any layer whose output has its input's shape, made residual.

    y = activation(layer(x) + scale * shortcut(x))

The shortcut is the identity when the shapes agree and a learned projection when asked for (`"linear"`
on the last dimension, `"conv1x1"` on the channels, or any module). Recurrent layers return a tuple
(sequence output, state): the shortcut is added to the sequence output and the state passed through,
so `Residual(nn.GRU(...))` stacks like the GRU it wraps. `scale` multiplies the shortcut, as the
constant scaling of Identity Mappings does (0.5 there hampers training; 1 is the identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .errors import ResnasError

PROJECTIONS = ("linear", "conv1x1")


def io_sizes(layer: nn.Module) -> tuple[int, int] | None:
    """(input features or channels, output ones) of a layer, read from its attributes where it has them:
    Linear, convolutions (transposed too), recurrent layers, and a Sequential's first and last of those."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer.in_channels, layer.out_channels
    if isinstance(layer, nn.RNNBase):
        out = layer.proj_size or layer.hidden_size
        return layer.input_size, out * (2 if layer.bidirectional else 1)
    if isinstance(layer, nn.Sequential):
        sized = [s for s in (io_sizes(m) for m in layer) if s is not None]
        if sized:
            return sized[0][0], sized[-1][1]
    return None


def _stride(convs: list[nn.modules.conv._ConvNd]) -> tuple[int, ...]:
    """The spatial stride of a stack of convolutions: the product of theirs, dimension by dimension."""
    stride = [1] * len(convs[0].stride)
    for conv in convs:
        stride = [s * t for s, t in zip(stride, conv.stride)]
    return tuple(stride)


def _projection(layer: nn.Module, kind: str) -> nn.Module:
    sizes = io_sizes(layer)
    name = type(layer).__name__
    if sizes is None:
        raise ResnasError(
            f"cannot tell {name}'s input and output sizes for a {kind!r} projection; "
            "pass the projection as a module instead (projection=nn.Linear(...))",
            field="projection",
        )
    n_in, n_out = sizes
    if kind == "linear":
        return nn.Linear(n_in, n_out, bias=False)
    convs = [m for m in layer.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not convs:
        raise ResnasError(f"a 'conv1x1' projection needs a convolutional layer; {name} has none", field="projection")
    dims = len(convs[0].kernel_size)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    stride = _stride(convs)  # as many entries as the convolutions have spatial dimensions
    return conv(n_in, n_out, kernel_size=1, stride=stride, bias=False)  # type: ignore[arg-type]


class Residual(nn.Module):
    """`activation(layer(x) + scale * shortcut(x))` for any `layer` (see the module's docstring)."""

    def __init__(
        self,
        layer: nn.Module,
        *,
        projection: str | nn.Module | None = None,
        activation: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None,
        scale: float = 1.0,
    ):
        super().__init__()
        if isinstance(projection, str) and projection not in PROJECTIONS:
            allowed = ", ".join(PROJECTIONS)
            raise ResnasError(f"must be None, {allowed} or a module; got {projection!r}", field="projection")
        if projection is not None and not isinstance(projection, (str, nn.Module)):
            raise ResnasError(f"must be None, a name or a module; got {type(projection).__name__}", field="projection")
        self.layer = layer
        self.shortcut: nn.Module = (
            nn.Identity()
            if projection is None
            else _projection(layer, projection)
            if isinstance(projection, str)
            else projection
        )
        self.activation = activation if activation is not None else nn.Identity()
        self.scale = float(scale)
        self.projected = projection is not None

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(x, *args, **kwargs)
        rest: tuple = ()
        if isinstance(out, tuple):  # recurrent layers: (sequence output, state)
            out, rest = out[0], tuple(out[1:])
        short = self._shortcut(x, out)
        y = self.activation(out + (short if self.scale == 1.0 else self.scale * short))
        return (y, *rest) if rest else y

    def _shortcut(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        short = self.shortcut(x)
        if short.shape != out.shape:
            name = type(self.layer).__name__
            hint = (
                "the projection's output does not match it either"
                if self.projected
                else "pass projection='linear' (features) or 'conv1x1' (channels), or a module"
            )
            raise ResnasError(
                f"Residual({name}): the layer's output has shape {tuple(out.shape)} but the shortcut's "
                f"{tuple(short.shape)} (input {tuple(x.shape)}); {hint}",
                field="shortcut",
            )
        return short

    def extra_repr(self) -> str:
        return "" if self.scale == 1.0 else f"scale={self.scale}"


__all__ = ["PROJECTIONS", "Residual", "io_sizes"]
