"""ResNeXt's rule (ii) and a depth ratio as arithmetic: a stage's width after its x2 downsamples under a
width multiplier (2 by default: the rule as the paper states it), and the per-stage depths of a first
depth and a ratio; with the inverse readings a refinement or a reference net needs."""

from __future__ import annotations

import math

DOUBLING = 2  # rule (ii): the width's factor at each x2 downsample when a template opens no width_multiplier


def grown(value: int, factor: float, steps: int) -> int:
    """`value` times `factor` per step, rounded half up, at least 1: a stage's width after `steps` x2
    downsamples (exact for the default factor 2), or a stage's depth under a depth ratio."""
    return max(1, math.floor(value * factor**steps + 0.5))


def geometric_depths(first: int, ratio: float, stages: int) -> tuple[int, ...]:
    """Per-stage depths of `depth: {first, ratio}`: the first stage's depth times `ratio` per stage."""
    return tuple(grown(first, ratio, i) for i in range(stages))


def ratio_of(depths: tuple, grid: tuple) -> float:
    """The grid's depth ratio that gives `depths` (of those that round to them, the nearest to their own
    geometric ratio); else that ratio itself, a value off the grid."""
    own = (depths[-1] / depths[0]) ** (1 / (len(depths) - 1)) if len(depths) > 1 else 1.0
    fits = [r for r in grid if geometric_depths(depths[0], r, len(depths)) == depths]
    return min(fits, key=lambda r: abs(math.log(r / own))) if fits else own


def multiplier_of(stages: tuple, grid: tuple) -> float:
    """The grid's width multiplier that gives the stages' widths (a template allows at most one); else
    their own ratio per downsample, a value off the grid."""
    by_step: dict[int, int] = {}
    steps = 0
    for i, s in enumerate(stages):
        steps += i > 0 and s.stride == 2
        by_step.setdefault(steps, s.width)  # a stage that does not downsample keeps the width
    widths = tuple(by_step.values())
    fit = next((m for m in grid if tuple(grown(widths[0], m, j) for j in range(len(widths))) == widths), None)
    return fit if fit is not None else (widths[-1] / widths[0]) ** (1 / max(1, len(widths) - 1))
