"""Where the good models of a uniformly sampled study lie, per dimension: the analysis behind `resnas refine`.

As "Designing Network Design Spaces" (Radosavovic et al. 2020) and pycls's `sweep/analysis.py` do it:
draw `repeats` bootstrap samples of `share` of the models (with replacement), take the best model of each,
and read the dimension's value of those winners. A numeric dimension's good range is their central `level`
percentile interval (pycls's 2.5/97.5 percentiles), widened to the values of the dimension's grid; a
categorical one's is the fewest values that won `level` of the samples. Then a one-sided two-sample KS
test asks whether the models outside the range are worse than those inside, and a verdict says whether
the evidence supports cutting the dimension to its range.

Plain lists in, frozen records out: nothing here knows a study, a store or a template.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..errors import ResnasError

SHARE, REPEATS, LEVEL, ALPHA = 0.25, 2500, 0.95, 0.05  # pycls's defaults; alpha for the verdict's KS test
MIN_SIDE = 5  # models needed on each side of a test (a value against the rest; inside against outside)
CHUNK = 1 << 20  # sampled indices drawn at once (memory bound, not a result: the stream is the same)
NARROWED, KEPT, TOO_FEW = "narrowed", "kept", "too few"


@dataclass(frozen=True)
class ValueTest:
    """One value of a dimension against the rest of its models: how many, their errors, and the one-sided
    KS p that this value's errors are lower than the rest's (None: too few models to test)."""

    value: Any
    n: int
    mean_error: float | None
    best_error: float | None
    p: float | None


@dataclass(frozen=True)
class DimRefinement:
    """One open dimension: its values, the bootstrap good range, the KS tests and the verdict."""

    name: str
    numeric: bool
    values: tuple  # the dimension's values, as the template lists them
    n: int  # models with a value of this dimension
    good: tuple  # the values inside the good range, in the template's order
    low: float | None  # a numeric dimension's bootstrap percentiles (the range is [low, high])
    median: float | None
    high: float | None
    wins: dict  # value -> share of the bootstrap samples whose best model has it
    inside: int  # models with a value in `good`
    outside: int
    p: float | None  # one-sided KS: the models outside the range are worse than those inside
    verdict: str  # narrowed, kept, or too few
    reason: str
    tests: tuple[ValueTest, ...]

    @property
    def narrowed(self) -> bool:
        return self.verdict == NARROWED

    def range_text(self) -> str:
        """The good range as a reader wants it: `[a, b]` of grid values, or the set of categories."""
        if not self.good:
            return "-"
        if self.numeric:
            return f"[{_fmt(min(self.good))}, {_fmt(max(self.good))}]"
        return "{" + ", ".join(map(str, self.good)) + "}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["wins"] = {str(k): v for k, v in self.wins.items()}
        d["range"] = self.range_text()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DimRefinement:
        """The record `to_dict` wrote (an experiment keeps it in its study), to draw it again."""
        values = tuple(d["values"])
        fields = {k: d[k] for k in cls.__dataclass_fields__}
        fields.update(values=values, good=tuple(d["good"]), tests=tuple(ValueTest(**t) for t in d["tests"]))
        fields["wins"] = {v: d["wins"][str(v)] for v in values if str(v) in d["wins"]}
        return cls(**fields)


def check_options(share: float, repeats: int, level: float, alpha: float, prefix: str = "") -> None:
    """The options' ranges: a value outside one is refused naming the option (`prefix` + its name: `--`
    for the CLI's) and what is allowed."""

    def bad(name: str, what: str, got: object) -> ResnasError:
        return ResnasError(f"must be {what}; got {got!r}", field=prefix + name)

    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise bad("share", "a fraction in (0, 1] of the models per bootstrap sample (pycls: 0.25)", share)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 1_000_000:
        raise bad("repeats", "a whole number of bootstrap samples from 1 to 1,000,000 (pycls: 2500)", repeats)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise bad("level", "a confidence level in (0, 1) (pycls: 0.95)", level)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise bad("alpha", "a significance level in (0, 1), e.g. 0.05", alpha)


def bootstrap_best(errors: Sequence[float], share: float = SHARE, repeats: int = REPEATS, seed: int = 0) -> np.ndarray:
    """The index of the best (lowest-error) model in each of `repeats` samples of `share` of the models,
    drawn with replacement (pycls's `get_filters`: max(1, int(n * share)) models a sample; ties go to the
    first drawn). Seeded: the same inputs give the same winners."""
    errs = np.asarray(errors, dtype=float)
    n = len(errs)
    if n == 0:
        raise ValueError("no models to bootstrap")
    k = max(1, int(n * share))
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK // k)
    winners = []
    for start in range(0, repeats, rows):
        drawn = rng.integers(0, n, size=(min(rows, repeats - start), k))
        winners.append(drawn[np.arange(len(drawn)), np.argmin(errs[drawn], axis=1)])
    return np.concatenate(winners)


def good_values(
    values: Sequence[Any], winners: np.ndarray, grid: Sequence[Any], numeric: bool, level: float = LEVEL
) -> tuple[tuple, tuple[float, float, float] | None, dict]:
    """(the grid values inside the good range, a numeric dimension's (low, median, high) percentiles, each
    value's share of the wins). Numeric: the winners' central `level` interval with numpy's default
    (linear) percentiles as pycls takes them, widened to the nearest grid values outside it (an interval
    between two grid values keeps both). Categorical: the values with the most wins until they hold
    `level` of them (a value tied with the last one taken is kept too)."""
    won = [values[i] for i in winners]
    counts: dict[Any, int] = {}
    for v in won:
        counts[v] = counts.get(v, 0) + 1
    wins = {v: counts.get(v, 0) / len(won) for v in grid}
    if numeric:
        tail = 100 * (1 - level) / 2
        low, median, high = (float(x) for x in np.percentile(np.asarray(won, dtype=float), [tail, 50, 100 - tail]))
        ordered = sorted(grid)
        lo = max((g for g in ordered if g <= low + 1e-12), default=ordered[0])
        hi = min((g for g in ordered if g >= high - 1e-12), default=ordered[-1])
        return tuple(g for g in grid if lo <= g <= hi), (low, median, high), wins
    ranked = sorted(grid, key=lambda g: -counts.get(g, 0))
    kept: list[Any] = []
    held = 0
    for g in ranked:
        if held >= level * len(won) and counts.get(g, 0) < counts.get(kept[-1], 0):
            break
        kept.append(g)
        held += counts.get(g, 0)
    return tuple(g for g in grid if g in kept), None, wins


def ks_lower(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided two-sample KS p-value that the errors `x` tend to be lower than `y` (scipy's ks_2samp with
    alternative="greater": x's distribution function lies above y's somewhere). Small p: x is better."""
    return float(stats.ks_2samp(np.asarray(x, dtype=float), np.asarray(y, dtype=float), alternative="greater").pvalue)


def value_tests(values: Sequence[Any], errors: Sequence[float], grid: Sequence[Any], numeric: bool) -> tuple:
    """Each grid value's models against the rest: a categorical value whenever both sides have a model, a
    numeric one where it has at least MIN_SIDE models (else p is None: too few)."""
    tests = []
    for g in grid:
        mine = [e for v, e in zip(values, errors) if v == g]
        rest = [e for v, e in zip(values, errors) if v != g]
        enough = bool(mine and rest) and (not numeric or len(mine) >= MIN_SIDE)
        tests.append(
            ValueTest(
                g,
                len(mine),
                float(np.mean(mine)) if mine else None,
                min(mine) if mine else None,
                ks_lower(mine, rest) if enough else None,
            )
        )
    return tuple(tests)


def refine_dim(
    name: str,
    grid: Sequence[Any],
    values: Sequence[Any],
    errors: Sequence[float],
    *,
    numeric: bool,
    share: float = SHARE,
    repeats: int = REPEATS,
    level: float = LEVEL,
    alpha: float = ALPHA,
    seed: int = 0,
) -> DimRefinement:
    """One dimension of the study: `grid` its values (the template's), `values` and `errors` one per model
    that has one (a basic block has no cardinality). Narrowed when the good range leaves some values out
    and the models outside it are worse (one-sided KS p < alpha); kept when the evidence does not support
    that; too few when a side holds fewer than MIN_SIDE models."""
    grid = tuple(grid)
    tests = value_tests(values, errors, grid, numeric)
    if not values:
        return DimRefinement(
            name,
            numeric,
            grid,
            0,
            grid,
            None,
            None,
            None,
            {},
            0,
            0,
            None,
            TOO_FEW,
            "no model has this dimension",
            tests,
        )
    winners = bootstrap_best(errors, share, repeats, seed)
    good, pct, wins = good_values(values, winners, grid, numeric, level)
    inside = [e for v, e in zip(values, errors) if v in good]
    outside = [e for v, e in zip(values, errors) if v not in good]
    low, median, high = pct if pct is not None else (None, None, None)
    p = ks_lower(inside, outside) if inside and outside else None
    if len(good) == len(grid):
        verdict, reason = KEPT, "the good range holds every value"
    elif len(inside) < MIN_SIDE or len(outside) < MIN_SIDE:
        verdict = TOO_FEW
        reason = f"{len(inside)} model(s) inside the range and {len(outside)} outside; a test needs {MIN_SIDE} a side"
    elif p is not None and p < alpha:
        verdict, reason = NARROWED, f"the models outside the range are worse (KS p={p:.2g} < {alpha:g})"
    else:
        verdict, reason = KEPT, f"the models outside the range are not clearly worse (KS p={_p(p)} >= {alpha:g})"
    return DimRefinement(
        name,
        numeric,
        grid,
        len(values),
        good,
        low,
        median,
        high,
        wins,
        len(inside),
        len(outside),
        p,
        verdict,
        reason,
        tests,
    )


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.2g}"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) and not math.isnan(v) else str(v)
