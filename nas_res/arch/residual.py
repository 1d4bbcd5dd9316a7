"""`Residual(layer)`: any layer whose output has its input's shape, made residual.

    y = activation(layer(x) + scale * shortcut(x))

The shortcut is the identity when the shapes agree and a learned projection when asked for (`"linear"`
on the last dimension, `"conv1x1"` on the channels, or any module). Recurrent layers return a tuple
(sequence output, state): the shortcut is added to the sequence output and the state passed through,
so `Residual(nn.GRU(...))` stacks like the GRU it wraps. `scale` multiplies the shortcut, as the
constant scaling of Identity Mappings does (0.5 there hampers training; 1 is the identity; 0 drops it).

Every misuse is one `ResnasError` naming the layer, the shapes and the fix: at construction where the
arguments tell (a bad argument, a `Linear`/convolution/recurrent layer that changes its size with no
projection, `"linear"` on a convolution), otherwise at the first forward (a shape the layer changes,
an output that is not a tensor or a tuple starting with one, a projection that cannot take the input).

TorchScript is not supported: `torch.jit.script` rejects `forward(x, *args, **kwargs)`, which passes a
recurrent layer's state through (and torch deprecates `torch.jit`). `torch.export` and `torch.compile`
work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ResnasError, a

PROJECTIONS = ("linear", "conv1x1")
_Conv = nn.modules.conv._ConvNd
_SIZED = (nn.Linear, _Conv, nn.RNNBase)


def _sized(layer: object) -> list[nn.Module]:
    """The modules whose sizes their attributes give: the layer itself, or a Sequential's, in order."""
    if isinstance(layer, _SIZED):
        return [layer]
    if isinstance(layer, nn.Sequential):
        return [s for m in layer for s in _sized(m)]
    return []


def _sizes(m: nn.Module) -> tuple[int, int]:
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    if isinstance(m, _Conv):
        return m.in_channels, m.out_channels
    assert isinstance(m, nn.RNNBase)
    out = m.proj_size or m.hidden_size
    return m.input_size, out * (2 if m.bidirectional else 1)


def io_sizes(layer: object) -> tuple[int, int] | None:
    """(input features or channels, output ones) of a layer, read from its attributes where it has them:
    Linear, convolutions (transposed too), recurrent layers, and a Sequential's first and last of those."""
    sized = _sized(layer)
    return (_sizes(sized[0])[0], _sizes(sized[-1])[1]) if sized else None


def _stride(convs: list[nn.modules.conv._ConvNd]) -> tuple[int, ...]:
    """The spatial stride of a stack of convolutions: the product of theirs, dimension by dimension."""
    stride = [1] * len(convs[0].stride)
    for conv in convs:
        stride = [s * t for s, t in zip(stride, conv.stride)]
    return tuple(stride)


def _projection(layer: object, kind: str) -> nn.Module:
    sized = _sized(layer)
    name = type(layer).__name__
    if not sized:
        example = "nn.Linear(...)" if kind == "linear" else "nn.Conv2d(..., kernel_size=1)"
        raise ResnasError(
            f"cannot tell {name}'s input and output sizes for a {kind!r} projection; "
            f"pass the projection as a module instead (projection={example})",
            field="projection",
        )
    (n_in, _), (_, n_out) = _sizes(sized[0]), _sizes(sized[-1])
    first, last = type(sized[0]).__name__, type(sized[-1]).__name__
    conv_in, conv_out = isinstance(sized[0], _Conv), isinstance(sized[-1], _Conv)
    flat = f"projection=nn.Sequential(nn.Flatten(), nn.LazyLinear({n_out}))"
    module = flat if conv_in and isinstance(sized[-1], nn.Linear) else "a module that maps the input to the output"
    if kind == "linear":
        if conv_in or conv_out:
            where = f"{first} takes its {n_in} channels" if conv_in else f"{last} gives its {n_out} channels"
            fix = "projection='conv1x1'" if conv_in and conv_out else module
            raise ResnasError(
                f"Residual({name}): 'linear' maps the last dimension, but {where} on dimension 1; pass {fix}",
                field="projection",
            )
        return nn.Linear(n_in, n_out, bias=False)
    convs = [m for m in layer.modules() if isinstance(m, _Conv)] if isinstance(layer, nn.Module) else []
    if not convs:
        raise ResnasError(f"a 'conv1x1' projection needs a convolutional layer; {name} has none", field="projection")
    if not (conv_in and conv_out):
        end = f"starts with {first}" if not conv_in else f"ends with {last}"
        raise ResnasError(
            f"Residual({name}): 'conv1x1' maps channels to channels, but the layer {end}; pass {module}",
            field="projection",
        )
    if any(c.transposed and max(c.stride) > 1 for c in convs):
        raise ResnasError(
            f"Residual({name}): a 'conv1x1' projection cannot upsample as its transposed convolution does; "
            "pass a module that maps the input to the output (e.g. a 1x1 ConvTranspose with the same stride)",
            field="projection",
        )
    dims = len(convs[0].kernel_size)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    stride = _stride(convs)  # as many entries as the convolutions have spatial dimensions
    return conv(n_in, n_out, kernel_size=1, stride=stride, bias=False)  # type: ignore[arg-type]


def _what(value: object) -> str:
    """How an argument is named in an error: a class passed for an instance says so."""
    if isinstance(value, type):
        return f"the class {value.__name__} (pass an instance: {value.__name__}(...))"
    return repr(value) if isinstance(value, (str, int, float)) or value is None else a(type(value).__name__)


def _check(layer: object, projection: object, activation: object, scale: object) -> None:
    """The arguments' mistakes that show before any input: each one error saying what is allowed."""
    if isinstance(layer, type) or not callable(layer):
        raise ResnasError(f"must be a module such as nn.Linear(8, 8); got {_what(layer)}", field="layer")
    if isinstance(projection, str) and projection not in PROJECTIONS:
        allowed = ", ".join(PROJECTIONS)
        raise ResnasError(f"must be None, {allowed} or a module; got {projection!r}", field="projection")
    if projection is not None and not isinstance(projection, (str, nn.Module)):
        raise ResnasError(f"must be None, a name or a module; got {_what(projection)}", field="projection")
    if activation is not None and (isinstance(activation, type) or not callable(activation)):
        raise ResnasError(
            f"must be None, a module such as nn.ReLU() or a function such as torch.relu; got {_what(activation)}",
            field="activation",
        )
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale < 0:
        raise ResnasError(
            f"must be a finite number >= 0 (1: identity, 0: no shortcut); got {_what(scale)}", field="scale"
        )
    # a bare Linear, convolution or recurrent layer's sizes are its input's and output's (a Sequential may reshape)
    name = type(layer).__name__
    sizes = io_sizes(layer) if isinstance(layer, _SIZED) else None
    if projection is None and sizes is not None and sizes[0] != sizes[1]:
        unit, fix = ("channels", "conv1x1") if isinstance(layer, _Conv) else ("features", "linear")
        raise ResnasError(
            f"Residual({name}): the layer maps {sizes[0]} {unit} to {sizes[1]}, so the identity shortcut cannot "
            f"be added to its output; pass projection='{fix}' or a module",
            field="projection",
        )
    given = io_sizes(projection) if isinstance(projection, _SIZED) else None
    if sizes is not None and given is not None and sizes != given:
        raise ResnasError(
            f"Residual({name}): the layer maps {sizes[0]} to {sizes[1]} but the projection "
            f"{type(projection).__name__} {given[0]} to {given[1]}; pass one that maps {sizes[0]} to {sizes[1]}",
            field="projection",
        )


class Residual(nn.Module):
    """`activation(layer(x) + scale * shortcut(x))` for any `layer` (see the module's docstring)."""

    def __init__(
        self,
        layer: nn.Module | Callable[..., Any],
        *,
        projection: str | nn.Module | None = None,
        activation: nn.Module | Callable[[torch.Tensor], torch.Tensor] | None = None,
        scale: float = 1.0,
    ):
        super().__init__()
        _check(layer, projection, activation, scale)
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
        self._kind = projection if isinstance(projection, str) else None if projection is None else "module"

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            raise ResnasError(f"{self._name()}: must be a tensor (the shortcut adds it); got {_what(x)}", field="input")
        out = self.layer(x, *args, **kwargs)
        is_tuple = isinstance(out, tuple)  # recurrent layers: (sequence output, state)
        main = out[0] if is_tuple and out else out
        if not isinstance(main, torch.Tensor):
            got = f"a tuple starting with {_what(main)}" if is_tuple and out else "()" if is_tuple else _what(out)
            raise ResnasError(
                f"{self._name()}: the layer returned {got}; the shortcut is added to a tensor or to the first "
                "element of a tuple (as recurrent layers return): make the layer return one of those",
                field="layer",
            )
        short = self._shortcut(x, main)
        y = self.activation(main + (short if self.scale == 1.0 else self.scale * short))
        return (y, *out[1:]) if is_tuple else y

    def _name(self) -> str:
        return f"Residual({type(self.layer).__name__})"

    def _shortcut(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        shapes = f"{tuple(x.shape)} to {tuple(out.shape)}"
        try:
            short = self.shortcut(x)
        except RuntimeError as e:
            if isinstance(e, torch.cuda.OutOfMemoryError):
                raise
            raise ResnasError(
                f"{self._name()}: the projection {type(self.shortcut).__name__} fails on the input of shape "
                f"{tuple(x.shape)} ({e}); pass a projection module that maps {shapes}",
                field="shortcut",
            ) from e
        if short.shape != out.shape:
            convs = isinstance(self.layer, nn.Module) and any(isinstance(m, _Conv) for m in self.layer.modules())
            if self._kind == "conv1x1":
                hint = f"'conv1x1' follows only the convolutions' strides: pass a module that maps {shapes}"
            elif self._kind is not None:
                hint = f"pass a projection module that maps {shapes}"
            elif convs:
                hint = f"pass projection='conv1x1' (channels, stride) or a module that maps {shapes}"
            elif x.dim() == out.dim() and x.shape[:-1] == out.shape[:-1]:
                hint = "pass projection='linear' (features: the last dimension) or a module"
            else:
                hint = f"pass a projection module that maps {shapes}"
            raise ResnasError(
                f"{self._name()}: the layer's output has shape {tuple(out.shape)} but the shortcut's "
                f"{tuple(short.shape)} (input {tuple(x.shape)}); {hint}",
                field="shortcut",
            )
        return short

    def extra_repr(self) -> str:
        return "" if self.scale == 1.0 else f"scale={self.scale}"


__all__ = ["PROJECTIONS", "Residual", "io_sizes"]
