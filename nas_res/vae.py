"""A variational autoencoder whose encoder and decoder are residual stacks (`task: vae`), priced beside it.

The encoder is the Arch's trunk (stem, stages; the final BN of full pre-activation) flattened into a
linear map to the latent's mean and log-variance. The decoder mirrors it: a linear map back to the
last stage's feature map, the stages in reverse with the same units (kind, order, shortcut,
modulation), each downsample undone by its transposed conv, then the stem in reverse, ending in a
conv to the image's channels (Bernoulli logits, or the means of a discretised Gaussian whose
per-channel scale is learned). `vae_tallies` counts exactly what `VAE` builds, in fvcore's convention
(a transposed conv's weights once per input position), so FLOP budgets apply to VAEs unchanged.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .arch import PREACT_ORDERS, VAE_LATENT, Arch, Kind
from .blocks import (
    Tally,
    Unit,
    bn_cost,
    conv,
    conv_cost,
    conv_size,
    head_has_bn,
    out_pad_for,
    stem_convs,
    stem_cost,
    stem_has_maxpool,
    unit_cost,
)
from .errors import ResnasError
from .model import ResNet, init

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


class VAE(nn.Module):
    """`forward(x) -> (decoded, mu, logvar)`: the decoder's output for z drawn from q(z|x) (always
    sampled, so an evaluation is an ELBO), and the posterior's parameters."""

    def __init__(self, arch: Arch):
        super().__init__()
        assert arch.task == "vae" and arch.latent is not None, "a VAE is built from a task: vae arch"
        check_latent(arch.latent, arch.in_channels, arch.resolution)  # before its linear maps take the memory
        self.arch = arch
        self.encoder = ResNet(arch, head=False)
        res, sw = arch.resolution, arch.stem_width
        stages = tuple((s.depth, s.width, s.stride, s.mid, s.groups) for s in arch.stages)
        sides = stage_sizes(stages, stem_sides(arch.stem, arch.in_channels, sw, res)[-1])
        self.shape = (arch.stages[-1].width, sides[-1][1], sides[-1][1])  # the last stage's feature map
        flat = self.shape[0] * self.shape[1] * self.shape[2]
        self.to_latent = nn.Linear(flat, 2 * arch.latent)
        self.from_latent = nn.Linear(arch.latent, flat)
        self.up_names = []
        for i, units in zip(range(len(stages), 0, -1), decoder_units(stages, sw, sides)):
            made = [Unit(arch, ci, co, mid, g, s, up=(pad, pad)) for ci, co, mid, g, s, pad, _ in units]
            setattr(self, f"up{i}", nn.Sequential(*made))
            self.up_names.append(f"up{i}")
        self.final_bn = nn.BatchNorm2d(sw) if head_has_bn(arch.unit_order) else None
        self.final_relu = arch.unit_order in PREACT_ORDERS
        tail: list[nn.Module] = []
        convs = tail_convs(arch.stem, arch.in_channels, sw, res)
        for j, (ci, co, k, s, pad) in enumerate(convs):
            last = j == len(convs) - 1
            tail.append(conv(ci, co, k, s, bias=last, up=(pad, pad)))
            if not last:
                tail += [nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
        self.out = nn.Sequential(*tail)
        # A discretised Gaussian's log-scale per channel; a Bernoulli has none.
        self.log_scale = nn.Parameter(torch.zeros(arch.in_channels)) if arch.likelihood == "gaussian" else None
        init(self, arch)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_latent(torch.flatten(self.encoder(x), 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # exp() stays finite; the KL keeps it far inside

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        x = self.from_latent(z).view(-1, *self.shape)
        for name in self.up_names:
            x = getattr(self, name)(x)
        if self.final_bn is not None:
            x = self.final_bn(x)
        if self.final_relu:
            x = torch.relu(x)
        return self.out(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar

    def parts(self) -> dict[str, list[str]]:
        """The modules of each part that `vae_tallies` prices (fvcore attributes FLOPs to modules)."""
        n = len(self.arch.stages)
        enc = {f"layer{i}": [f"encoder.layer{i}"] for i in range(1, n + 1)}
        return {
            "stem": ["encoder.conv1", "encoder.bn1"],
            **enc,
            "latent": ["encoder.final_bn", "to_latent", "from_latent"],
            **{name: [name] for name in self.up_names},
            "out": ["final_bn", "out"],
        }


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
    from .cost import stage_cost  # cost prices classifiers and VAEs; it imports this module

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
