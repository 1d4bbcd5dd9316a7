"""A VAE's price from its fields alone: the sides, decoder units and tail convs that `VAE` builds, and
their exact cost in fvcore's convention (a transposed conv's weights once per input position), so FLOP
budgets apply to VAEs unchanged. Kept apart from the module so that pricing never builds one."""

from __future__ import annotations

from functools import lru_cache

from ..errors import ResnasError
from .blocks import (
    Tally,
    bn_cost,
    conv_cost,
    conv_size,
    head_has_bn,
    out_pad_for,
    stage_cost,
    stem_convs,
    stem_cost,
    stem_has_maxpool,
    unit_cost,
)
from .description import VAE_LATENT, Kind

MAXPOOL = (3, 2)  # the ImageNet stems' max-pool (kernel, stride), undone by a transposed 3x3/2 conv


def stage_sizes(stages: tuple, stem_side: int) -> list[tuple[int, int]]:
    """(input side, output side) of each stage, from the stem's output side."""
    sides, side = [], stem_side
    for _, _, stride, _, _ in stages:
        out = conv_size(side, 3, stride)
        sides.append((side, out))
        side = out
    return sides


def stem_sides(stem: str, in_channels: int, stem_width: int, resolution: int) -> list[int]:
    """The side before each strided layer of the stem (its convs, then its max-pool) and after the last."""
    sides = [resolution]
    for _, _, k, s in stem_convs(stem, in_channels, stem_width):
        sides.append(conv_size(sides[-1], k, s))
    if stem_has_maxpool(stem):
        sides.append(conv_size(sides[-1], *MAXPOOL))
    return sides


def tail_convs(stem: str, in_channels: int, stem_width: int, resolution: int):
    """(in, out, kernel, stride, output padding) of each conv of the decoder's tail: the stem reversed."""
    layers = [(ci, co, k, s) for ci, co, k, s in stem_convs(stem, in_channels, stem_width)]
    if stem_has_maxpool(stem):
        layers.append((stem_width, stem_width, *MAXPOOL))
    sides = stem_sides(stem, in_channels, stem_width, resolution)
    out = []
    for j in reversed(range(len(layers))):
        ci, co, k, s = layers[j]
        out.append((co, ci, k, s, out_pad_for(sides[j + 1], sides[j], s)))
    return out


def decoder_units(stages: tuple, stem_width: int, sides: list[tuple[int, int]]):
    """For each stage, last first: its decoder units as (in, out, mid, groups, stride, output padding, side),
    the side being the unit's input side. A stage's `depth - 1` identity units come first, then the unit
    that undoes its first (narrowing to the stage's input width, upsampling by its stride)."""
    out = []
    cins = [stem_width, *(s[1] for s in stages[:-1])]
    for (depth, width, stride, mid, groups), cin, (side_in, side_out) in reversed(list(zip(stages, cins, sides))):
        pad = out_pad_for(side_out, side_in, stride) if stride > 1 else 0
        units = [(width, width, mid, groups, 1, 0, side_out)] * (depth - 1)
        out.append([*units, (width, cin, mid, groups, stride, pad, side_out)])
    return out


def check_latent(latent: int | None, in_channels: int, resolution: int, field: str = "latent", where: str = "") -> None:
    """Refuse a VAE whose latent is wider than the image it encodes: the code is there to compress the
    image, and each latent dimension adds three weights per value of the last feature map, two to reach it
    and one back (a 1,000,000 latent on 8x8 digits built 770 M parameters and wrote a 9.2 GB checkpoint)."""
    values = in_channels * resolution**2
    if latent is not None and latent > values:
        raise ResnasError(
            f"{latent:,} is wider than the image it encodes: a {in_channels}x{resolution}x{resolution} image has "
            f"{values:,} values, and a VAE's latent is at most that (default {VAE_LATENT})",
            field=field,
            where=where,
        )


def vae_tallies(
    kind: Kind,
    stem: str,
    stem_width: int,
    in_channels: int,
    resolution: int,
    stages: tuple,
    latent: int,
    likelihood: str,
) -> dict[str, Tally]:
    """Tallies of each part of the VAE (the names of `VAE.parts`), from the fields alone."""
    return dict(_vae_tallies(kind, stem, stem_width, in_channels, resolution, stages, latent, likelihood))


@lru_cache(maxsize=1 << 12)
def _vae_tallies(kind, stem, stem_width, in_channels, resolution, stages, latent, likelihood):
    parts: list[tuple[str, Tally]] = []
    t, h, w = stem_cost(stem, in_channels, stem_width, kind.unit_order, resolution)
    parts.append(("stem", t))
    sides = stage_sizes(stages, h)
    cin = stem_width
    for i, (depth, width, stride, mid, groups) in enumerate(stages, 1):
        t, h, w = stage_cost(kind, cin, width, mid, groups, stride, depth, h, w)
        parts.append((f"layer{i}", t))
        cin = width
    flat = cin * h * w
    latent_t = bn_cost(cin, h, w) if head_has_bn(kind.unit_order) else Tally()
    latent_t += Tally(flat * 2 * latent, flat * 2 * latent + 2 * latent, 2 * latent)  # to mean and log-variance
    latent_t += Tally(latent * flat, latent * flat + flat, flat)  # back to the feature map
    parts.append(("latent", latent_t))
    for i, units in zip(range(len(stages), 0, -1), decoder_units(stages, stem_width, sides)):
        total = Tally()
        for ci, co, mid, g, s, pad, side in units:
            total += unit_cost(kind, ci, co, mid, g, s, side, side, (pad, pad))[0]
        parts.append((f"up{i}", total))
    side = stem_sides(stem, in_channels, stem_width, resolution)[-1]
    out = bn_cost(stem_width, side, side) if head_has_bn(kind.unit_order) else Tally()
    convs = tail_convs(stem, in_channels, stem_width, resolution)
    for j, (ci, co, k, s, pad) in enumerate(convs):
        last = j == len(convs) - 1
        t, side, _ = conv_cost(ci, co, k, s, 1, side, side, bias=last, up=(pad, pad))
        out += t if last else t + bn_cost(co, side, side)
    if likelihood == "gaussian":
        out += Tally(0, in_channels, 0)  # the learned log-scale per channel
    parts.append(("out", out))
    return tuple(parts)
