"""Where and in what precision a run computes: the device a user names, bf16 autocast, a sync point."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from ..errors import ResnasError
from .recipe import Recipe


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` (a GPU when there is one), `cpu`, `cuda`, `cuda:N`; a device this machine lacks is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ResnasError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N", field="device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ResnasError(
                f"{device!r} asked for, but this machine has no usable CUDA GPU; use --device cpu", field="device"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ResnasError(
                f"{device!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}",
                field="device",
            )
    elif dev.type != "cpu":
        raise ResnasError(f"unsupported device {device!r}; use auto, cpu, cuda or cuda:N", field="device")
    return dev


def channels_last_safe(model: nn.Module, device: torch.device) -> bool:
    """Whether this model may train in NHWC here. On a CPU, oneDNN's NHWC backward of a 1x1 strided
    convolution on fewer input channels than its block (8 with AVX2, 16 with AVX-512) writes past its
    workspace (uxlfoundation/oneDNN#6035, open): wrong weight gradients on any thread count, a corrupted
    heap on one. Such a net trains NCHW; a GPU, or wider convolutions, keep the recipe's channels_last."""
    if device.type != "cpu":
        return True
    return not any(
        isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels < 16
        for m in model.modules()
    )


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so a clock read after it times the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, recipe: Recipe):
    """bf16 autocast when the recipe asks for it, or by default on a GPU; else no change."""
    bf16 = recipe.precision == "bf16" or (recipe.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
