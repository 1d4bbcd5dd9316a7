"""What of a design space fits a budget: its share (exact or a Wilson interval), its cheapest and largest
candidates, and a refusal naming the nearest candidate when none fits."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..arch.budget import Budget
from ..arch.cost import cost
from ..arch.description import Arch
from ..errors import ResnasError
from .design_space import DesignSpace

STEM_WIDTHS_TRIED = 32  # extremes() tries each stem width up to this many values


@dataclass(frozen=True)
class Fraction:
    """Share of the space inside a budget; `exact` when counted, else a 95% Wilson interval."""

    value: float
    low: float
    high: float
    exact: bool
    feasible: int  # counted (exact) or hits among `total` samples
    total: int


def feasible_fraction(space: DesignSpace, budget: Budget, samples: int = 20_000, seed: int = 0) -> Fraction:
    """Exact by enumeration when the space is small; else a Monte-Carlo estimate with a 95% interval."""
    if space.enumerable:
        archs = list(space.enumerate())
        hits = sum(budget.admits(cost(a)) for a in archs)
        share = hits / len(archs)
        return Fraction(share, share, share, True, hits, len(archs))
    rng = random.Random(seed)
    hits = sum(space.admits(space.random_values(rng), budget) for _ in range(samples))
    low, high = wilson(hits, samples)
    return Fraction(hits / samples, low, high, False, hits, samples)


def extremes(space: DesignSpace, metric: str = "flops") -> tuple[Arch, Arch]:
    """(cheapest, largest) by `metric`: cost grows with depth, width, cardinality and d, so each
    structure's extremes sit at the ends of its numeric ranges. Not so with the stem's width: a stem
    as wide as the first stage spares that stage its projection, so each of its values is tried (the
    ends only, past STEM_WIDTHS_TRIED values)."""

    def at(s: dict, pick, stem_width: int | None) -> Arch:
        values = dict(s)
        values["depths"] = space.extreme_depths(pick, s["block"], s["stem"])
        values.update({n: pick(space.dims[n].values) for n in space.numeric_dims(s["block"]) if n != "stem_width"})
        if stem_width is not None:
            values["stem_width"] = stem_width
        return space.arch_from(values)

    stems: tuple = (None,)
    if "stem_width" in space.dims:
        stems = space.dims["stem_width"].values
        stems = stems if len(stems) <= STEM_WIDTHS_TRIED else (stems[0], stems[-1])
    present = [s for s in space.structures if space.depth_count(s["block"], s["stem"])]
    lows = [at(s, min, w) for s in present for w in stems]
    highs = [at(s, max, w) for s in present for w in stems]
    measure = lambda a: getattr(cost(a), metric)  # noqa: E731
    return min(lows, key=measure), max(highs, key=measure)


def check_budget(space: DesignSpace, budget: Budget) -> None:
    """Raise a clear error when no candidate can meet `budget`, naming the nearest one; a budget of
    several bounds (a band, FLOPs and params) is also refused when no candidate lies inside all of
    them (exact for a small space, else none in 20,000 uniform samples)."""
    cheap_f, big_f = extremes(space, "flops")
    cheap_p, _ = extremes(space, "params")
    problem = None
    if budget.flops_max is not None and cost(cheap_f).flops > budget.flops_max:
        problem = f"the cheapest candidate needs {cost(cheap_f).flops:,} FLOPs: {cheap_f.summary()}"
    elif budget.params_max is not None and cost(cheap_p).params > budget.params_max:
        problem = f"the smallest candidate has {cost(cheap_p).params:,} params: {cheap_p.summary()}"
    elif budget.flops_min and cost(big_f).flops < budget.flops_min:
        problem = f"the largest candidate needs only {cost(big_f).flops:,} FLOPs: {big_f.summary()}"
    bounds = (budget.flops_max is not None) + bool(budget.flops_min) + (budget.params_max is not None)
    if not problem and bounds > 1:  # each end fits some candidate, but maybe no candidate fits both
        share = feasible_fraction(space, budget)
        if not share.feasible:
            problem = (
                f"none of its {share.total:,} candidates lies inside"
                if share.exact
                else f"none of {share.total:,} uniform samples lies inside (under {share.high:.3%} of the space)"
            ) + "; widen the band"
    if problem:
        raise ResnasError(
            f"no candidate of space {space.name!r} fits the budget ({budget.describe()}); {problem}", field="budget"
        )


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial share. `results.uncertainty.wilson` is the same interval for
    an accuracy in percent, with input checks and any level (via scipy); the space layer sits below
    `results` and loads without scipy, so it keeps these few lines of its own."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
