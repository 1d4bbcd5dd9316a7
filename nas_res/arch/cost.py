"""`cost(arch)`: exact FLOPs, parameters and activations from the `Arch` alone; no model is built.

fvcore is the referee (`nas_res.arch.referee.fvcore_cost` builds the model and traces it); `cost` must give
its integers.
A stage's units after the first are identical, so a stage costs two unit evaluations whatever its
depth: the analytic count is instant even for ResNet-1001.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .blocks import Tally, head_cost, stage_cost, stem_cost
from .description import Arch, Kind
from .vae_cost import vae_tallies


@dataclass(frozen=True)
class Cost:
    flops: int
    params: int
    acts: int
    parts: dict = field(default_factory=dict)  # "stem", "layer1".., "head" -> Tally
    resolution: int = 0

    def to_dict(self) -> dict:
        return {
            "flops": self.flops,
            "params": self.params,
            "acts": self.acts,
            "resolution": self.resolution,
            "parts": {k: t._asdict() for k, t in self.parts.items()},
        }


def cost(arch: Arch, resolution: int | None = None) -> Cost:
    """Cost at `resolution` (default: the arch's reference resolution), fvcore's convention. A VAE is
    priced at its own resolution only: its linear maps are sized for it."""
    res = arch.resolution if arch.task == "vae" else resolution or arch.resolution
    stages = tuple((s.depth, s.width, s.stride, s.mid, s.groups) for s in arch.stages)
    if arch.task == "vae":
        assert arch.latent is not None and arch.likelihood is not None, "Arch fills in a VAE's latent and likelihood"
        parts = vae_tallies(
            arch.kind, arch.stem, arch.stem_width, arch.in_channels, res, stages, arch.latent, arch.likelihood
        )
    else:
        tallies = network_tallies(arch.kind, arch.stem, arch.stem_width, arch.in_channels, arch.classes, res, stages)
        parts = dict(zip(["stem", *(f"layer{i}" for i in range(1, len(stages) + 1)), "head"], tallies))
    total = sum(parts.values(), Tally())
    return Cost(total.flops, total.params, total.acts, parts, res)


def network_tallies(
    kind: Kind,
    stem: str,
    stem_width: int,
    in_channels: int,
    classes: int,
    resolution: int,
    stages: tuple,
    vae: tuple[int, str] | None = None,
) -> list[Tally]:
    """Tallies of the stem, each stage and the head, from the fields alone (stages as (depth, width,
    stride, mid, groups) tuples), so a search can price a candidate before making its `Arch`. With
    `vae` (latent, likelihood): the parts of that VAE instead."""
    if vae is not None:
        return list(vae_tallies(kind, stem, stem_width, in_channels, resolution, stages, *vae).values())
    t, h, w = stem_cost(stem, in_channels, stem_width, kind.unit_order, resolution)
    tallies = [t]
    cin = stem_width
    for depth, width, stride, mid, groups in stages:
        t, h, w = stage_cost(kind, cin, width, mid, groups, stride, depth, h, w)
        tallies.append(t)
        cin = width
    tallies.append(head_cost(kind.unit_order, classes, cin, h, w))
    return tallies
