"""`cost(arch)`: exact FLOPs, parameters and activations from the `Arch` alone, and budgets.

fvcore is the referee (`fvcore_cost` builds the model and traces it); `cost` must give its integers.
A stage's units after the first are identical, so a stage costs two unit evaluations whatever its
depth: the analytic count is instant even for ResNet-1001.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from .arch import Arch, Kind
from .blocks import Tally, head_cost, stem_cost, unit_cost
from .errors import ResnasError
from .model import build
from .vae import VAE, vae_tallies


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


@lru_cache(maxsize=1 << 16)
def stage_cost(kind: Kind, cin: int, width: int, mid: int, groups: int, stride: int, depth: int, h: int, w: int):
    """A stage: its first unit, then depth-1 identical units (so depth costs nothing to count)."""
    total, h, w = unit_cost(kind, cin, width, mid, groups, stride, h, w)
    if depth > 1:
        total = total + unit_cost(kind, width, width, mid, groups, 1, h, w)[0] * (depth - 1)
    return total, h, w


def fvcore_cost(arch: Arch, resolution: int | None = None) -> Cost:
    """The referee: build the model and let fvcore trace it (slow; seconds for large nets)."""
    res = arch.resolution if arch.task == "vae" else resolution or arch.resolution
    model = build(arch).eval()
    x = torch.zeros(1, arch.in_channels, res, res)
    with warnings.catch_warnings():  # fvcore's tracer warns about deprecated torch.jit APIs it uses
        warnings.simplefilter("ignore")
        from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis

        counts = []
        for analysis in (FlopCountAnalysis(model, x), ActivationCountAnalysis(model, x)):
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            counts.append(analysis)
        flops, acts = counts[0].total(), counts[1].total()
        by_module = counts[0].by_module()
    params = sum(p.numel() for p in model.parameters())
    if isinstance(model, VAE):  # same parts as `cost`, FLOPs only (fvcore attributes them per module)
        named = {part: Tally(sum(int(by_module.get(m, 0)) for m in mods)) for part, mods in model.parts().items()}
        return Cost(int(flops), int(params), int(acts), named, res)
    # Same parts as `cost`, FLOPs only (fvcore attributes them per module).
    parts = {name: Tally(int(by_module.get(name, 0))) for name in model.stage_names}
    head = sum(int(by_module.get(n, 0)) for n in ("final_bn", "avgpool", "fc"))
    parts = {"stem": Tally(int(flops) - head - sum(t.flops for t in parts.values())), **parts, "head": Tally(head)}
    return Cost(int(flops), int(params), int(acts), parts, res)


# ---- budgets ----------------------------------------------------------------------------------

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*([kKmMgGtT]?)"


def parse_amount(text: str, what: str = "FLOPs") -> int:
    """'4GFLOPs', '600MFLOPs', '4e9', '25M', '4.11 G' -> an integer count."""
    raw = str(text).strip()
    body = re.sub(r"(?i)\s*(flops?|params?)$", "", raw)
    m = re.fullmatch(_NUMBER, body)
    if not m:
        raise ResnasError(
            f"cannot read {raw!r} as a {what} amount; write e.g. 4G, 600M, 4e9 (K, M, G, T = 1e3, 1e6, 1e9, 1e12)",
            field=what.lower(),
        )
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value <= 0:
        raise ResnasError(f"{raw!r} must be positive", field=what.lower())
    if not value < 1e18:  # also inf (1e400): no network comes near, and the count must stay an integer
        raise ResnasError(f"{raw!r} is too large to be a {what} amount (at most 1e18)", field=what.lower())
    return round(value)


@dataclass(frozen=True)
class Budget:
    """FLOPs in [flops_min, flops_max] and params <= params_max (each bound optional)."""

    flops_max: int | None = None
    flops_min: int = 0
    params_max: int | None = None

    @classmethod
    def parse(cls, flops: str | None = None, max_params: str | None = None) -> Budget:
        """A cap ('4GFLOPs', '4e9') or a band ('3.8-4.2GFLOPs'), plus an optional params cap ('25M')."""
        lo, hi = 0, None
        if flops is not None and str(flops).strip():
            text = str(flops).strip()
            band = re.fullmatch(rf"{_NUMBER}\s*(?:flops?)?\s*-\s*{_NUMBER}\s*(?:flops?)?", text, re.I)
            if band:
                low_num, low_unit, high_num, high_unit = band.groups()
                lo = parse_amount(low_num + (low_unit or high_unit))  # '3.8-4.2G': both ends in G
                hi = parse_amount(high_num + high_unit)
                if lo > hi:
                    raise ResnasError(f"band {text!r} is inverted: low end above high end", field="budget")
            else:
                hi = parse_amount(text)
        pmax = parse_amount(max_params, "params") if max_params not in (None, "") else None
        return cls(hi, lo, pmax)

    def admits(self, c: Cost | Tally) -> bool:
        return self.excess(c) <= 0

    def excess(self, c: Cost | Tally) -> float:
        """How far outside the budget, relative to the bound broken most (> 0 outside, <= 0 inside): the
        constraint value a sampler learns the feasible region from."""
        worst = (self.flops_min - c.flops) / max(1, self.flops_min) if self.flops_min else -1.0
        if self.flops_max is not None:
            worst = max(worst, (c.flops - self.flops_max) / self.flops_max)
        if self.params_max is not None:
            worst = max(worst, (c.params - self.params_max) / self.params_max)
        return worst

    @property
    def unbounded(self) -> bool:
        return self.flops_max is None and self.flops_min == 0 and self.params_max is None

    def describe(self) -> str:
        parts = []
        if self.flops_max is not None:
            if self.flops_min:
                low, high = human_pair(self.flops_min, self.flops_max)
                parts.append(f"{low} <= FLOPs <= {high}")
            else:
                parts.append(f"FLOPs <= {human(self.flops_max)}")
        elif self.flops_min:
            parts.append(f"FLOPs >= {human(self.flops_min)}")
        if self.params_max is not None:
            parts.append(f"params <= {human(self.params_max)}")
        return ", ".join(parts) or "no budget"


def human(n: float, decimals: int = 2) -> str:
    """4111512576 -> '4.11 G' (the units of the project's output)."""
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.{decimals}f} {unit}"
    return f"{n:g}"


def human_pair(low: float, high: float) -> tuple[str, str]:
    """Both ends of a band in the project's units, with as many decimals as it takes to tell them apart."""
    for decimals in range(2, 10):
        a, b = human(low, decimals), human(high, decimals)
        if a != b:
            return a, b
    return f"{low:,.0f}", f"{high:,.0f}"
