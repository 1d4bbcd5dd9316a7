"""`Spec`: a checked design-space template, its fixed parts and its dimensions (read by `template`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    """A checked template: fixed parts plus the dimensions a candidate chooses from."""

    name: str
    description: str
    source: str
    resolution: int
    in_channels: int
    classes: int
    strides: tuple
    stem_width: int | str | None  # an int, "inner" (the first stage's inner width), or None: dims["stem_width"]
    split: tuple | None  # stage split of a total depth; None when depth is per stage or a ratio
    modulation_value: float | None
    zero_init_last_bn: bool
    ratio_mode: bool  # inner width from bottleneck_ratio instead of bottleneck_width
    dims: dict  # name -> Dim
    task: str = "classify"  # vae: every candidate is a VAE's encoder (see Arch.task)
    latent: int | None = None  # a VAE's, as Arch
    likelihood: str | None = None
