"""Budgets (a FLOPs cap or band, a params cap) and the units the project writes counts in.

Parsing a budget imports nothing heavy, so a mistyped `--budget` is refused before torch loads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ResnasError

if TYPE_CHECKING:
    from .blocks import Tally
    from .cost import Cost

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
