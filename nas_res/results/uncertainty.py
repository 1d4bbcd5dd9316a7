"""How far a validation accuracy can be trusted: intervals, ties with the best, differences between studies.

A search ranks models by accuracy on a finite validation split: on 144 images one image moves accuracy
by 0.69 points, so gaps of that size say nothing. These pure functions put a number on that noise
(binomial for one model's accuracy, Student-t across seeds, a bootstrap across a study's models) so a
report can show it beside every accuracy. Accuracies are in percent throughout, as everywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import stats

from ..errors import ResnasError

Stat = Literal["best", "median"]
PERCENT = (0.0, 100.0)  # the bounds of an accuracy or an error rate, in percent


@lru_cache(maxsize=16)
def _z(level: float) -> float:
    """The two-sided normal quantile for `level` (1.96 for 95%)."""
    _check_level(level)
    return float(stats.norm.ppf(0.5 + level / 2))


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ResnasError(f"confidence level must be between 0 and 1 (0.95 for 95%); got {level!r}", field="level")


def _check_proportion(acc_percent: float, n: int, what: str = "accuracy") -> float:
    """The accuracy as a fraction, after checking it can be one measured on `n` images."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ResnasError(f"the number of validation images must be a positive count; got {n!r}", field="val_images")
    if not (isinstance(acc_percent, (int, float)) and 0 <= acc_percent <= 100):
        raise ResnasError(f"{what} must be a percentage in 0..100; got {acc_percent!r}", field=what)
    return float(acc_percent) / 100


def wilson(acc_percent: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval, in percent, for an accuracy measured on `n` images.

    Wilson rather than Wald (p +/- z*sqrt(p(1-p)/n)): Wald's interval leaves 0..100 near the ends and
    has zero width at 100%, claiming certainty that 144 images cannot give; Wilson's stays inside and
    keeps its coverage there."""
    p, z = _check_proportion(acc_percent, n), _z(level)
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def seed_summary(values: list[float], level: float = 0.95, within: tuple[float, float] | None = None) -> dict:
    """Mean, sample standard deviation and Student-t interval of one architecture trained with several
    seeds: `{"n", "mean", "sd", "lo", "hi"}` (sd, lo and hi are None for a single seed: one run says
    nothing about seed-to-seed spread). Student-t, not normal: with 3 seeds the normal interval would
    be less than half as wide as it should be. `within`: the bounds of the quantity (an accuracy's
    (0, 100)), which the interval is kept inside: few seeds give a t-interval past them."""
    _check_level(level)
    xs = [float(v) for v in values]
    if not xs:
        raise ResnasError("no results to summarise", field="values")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "lo": None, "hi": None}
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    low, high = within or (-math.inf, math.inf)
    return {"n": n, "mean": mean, "sd": sd, "lo": max(low, mean - half), "hi": min(high, mean + half)}


def difference_interval(acc_a: float, n_a: int, acc_b: float, n_b: int, level: float = 0.95) -> tuple[float, float]:
    """Agresti-Caffo interval, in points, for acc_a - acc_b (two accuracies measured on n_a and n_b
    images): add one right and one wrong answer to each side, then the unpaired normal (Wald)
    interval. The +1/+2 adjustment gives close to nominal coverage even for small n and accuracies
    near 100%, where the plain Wald interval for a difference is far too narrow."""
    p_a, p_b, z = _check_proportion(acc_a, n_a), _check_proportion(acc_b, n_b), _z(level)
    a, b = (p_a * n_a + 1) / (n_a + 2), (p_b * n_b + 1) / (n_b + 2)
    se = math.sqrt(a * (1 - a) / (n_a + 2) + b * (1 - b) / (n_b + 2))
    diff = a - b
    return 100 * (diff - z * se), 100 * (diff + z * se)


def tied_with_best(best_acc: float, best_n: int, acc: float, n: int, level: float = 0.95) -> bool:
    """Whether a model cannot be told apart from the best: the `level` Agresti-Caffo interval of
    best - acc (see `difference_interval`) includes 0.

    Conservative: both accuracies are measured on the same validation images, so their errors are
    correlated and the paired test (`mcnemar`, on per-image records) separates more pairs. Used where a
    run has no per-image record (stored before resnas kept them); it errs towards calling rows tied,
    never towards calling a noise gap a win."""
    lo, hi = difference_interval(best_acc, best_n, acc, n, level)
    return lo <= 0 <= hi


@dataclass(frozen=True)
class McNemar:
    """Two models on the same images: `b` images only the first got right, `c` only the second, and the
    exact two-sided p-value of b against b + c fair coin flips (McNemar's exact test)."""

    b: int
    c: int
    p: float

    def to_dict(self) -> dict:
        return {"b": self.b, "c": self.c, "p": self.p}


Bitmap = bytes | bytearray | memoryview | np.ndarray


def mcnemar(a: Bitmap, b: Bitmap, n: int | None = None) -> McNemar:
    """McNemar's exact test of two models' per-image correctness on the same `n` images.

    `a` and `b` are either packed bitmaps as resnas stores them (bytes: 1 bit an image, numpy.packbits
    order, padding bits 0; see `per_image`) or arrays of one 0/1 (or bool) per image. Only the images
    the two disagree on count: b (a right, b wrong) and c (a wrong, b right); p is the two-sided
    binomial test of b successes in b + c trials at 1/2 (1 when they never disagree). Paired, so it
    separates far smaller gaps than two independent proportions (`tied_with_best`): an image both get
    right or both get wrong says nothing about which is better. `n` checks the lengths; without it
    two bitmaps of the same length are taken to cover the same images."""
    x, y = _packed(a, n, "first"), _packed(b, n, "second")
    if len(x) != len(y):
        raise ResnasError(
            f"per-image records of different lengths ({len(x)} and {len(y)} bytes): not the same images",
            field="bitmap",
        )
    only_a = int(np.unpackbits(x & ~y).sum())
    only_b = int(np.unpackbits(~x & y).sum())
    return mcnemar_counts(only_a, only_b)


def mcnemar_counts(b: int, c: int) -> McNemar:
    """McNemar's exact test from the discordant counts (b: only the first right, c: only the second):
    what `mcnemar` computes, and what pooled counts (summed over paired seeds) are tested with."""
    if min(b, c) < 0:
        raise ResnasError(f"discordant counts must not be negative; got b={b}, c={c}", field="bitmap")
    p = 1.0 if b + c == 0 else min(1.0, float(stats.binomtest(b, b + c, 0.5).pvalue))
    return McNemar(int(b), int(c), p)


def per_image(bits: Bitmap, n: int) -> np.ndarray:
    """The `n` per-image outcomes (bool, in the split's order) of a packed bitmap (or of an array of
    them, checked): what a stored `val_correct` / `test_correct` holds."""
    return np.unpackbits(_packed(bits, n, "the"), count=n).astype(bool)


def _packed(bits: Bitmap, n: int | None, which: str) -> np.ndarray:
    """A bitmap as packed uint8, checked against `n` images where given (length and zero padding)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise ResnasError(f"the number of images must be a positive count; got {n!r}", field="images")
    if isinstance(bits, np.ndarray):
        flat = bits.reshape(-1)
        if flat.dtype != bool and not np.isin(flat, (0, 1)).all():
            raise ResnasError(f"{which} per-image array must hold 0/1 or bool values", field="bitmap")
        if n is not None and len(flat) != n:
            raise ResnasError(f"{which} per-image array has {len(flat)} values, not {n}", field="bitmap")
        return np.packbits(flat.astype(bool))
    if not isinstance(bits, (bytes, bytearray, memoryview)):
        raise ResnasError(
            f"{which} per-image record must be bytes or an array; got {type(bits).__name__}", field="bitmap"
        )
    packed = np.frombuffer(bytes(bits), dtype=np.uint8)
    if n is not None:
        if len(packed) != -(-n // 8):
            raise ResnasError(
                f"{which} per-image record has {len(packed)} bytes; {n} images need {-(-n // 8)}", field="bitmap"
            )
        if n % 8 and packed[-1] & (0xFF >> (n % 8)):
            raise ResnasError(f"{which} per-image record has bits set past image {n}: damaged", field="bitmap")
    return packed


def bootstrap_difference(
    a: list[float],
    b: list[float],
    *,
    n_val: int | tuple[int | None, int | None] | None,
    stat: Stat,
    reps: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Interval for stat(b) - stat(a), in points, between two studies' validation accuracies (percent),
    `stat` the best or the median model: `{"diff", "lo", "hi", "reps"}`.

    Each replicate redraws, where the validation count is known (`n_val`: one count for both
    studies, or a pair (a's, b's)), every model's accuracy as Binomial(n_val, acc)/n_val (which
    images the validation split happened to hold), then resamples each study's models with
    replacement (which models the search happened to train; a model drawn twice keeps one
    accuracy). Percentile interval; deterministic for a `seed`; vectorised (2000 replicates of 100
    models take a few tens of milliseconds, most of it the binomial draws).

    Validation noise is drawn independently for the two studies; where both were measured on the
    same images it is partly shared, so the interval is, if anything, too wide. For "best" the
    bootstrap is rough: a resampled maximum never exceeds the observed one, so the interval leans
    low for the side with few models; validation noise makes it less so. Read it as a guard against
    over-reading a gap, not as an exact coverage statement."""
    if stat not in ("best", "median"):
        raise ResnasError(f"stat must be best or median; got {stat!r}", field="stat")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ResnasError(f"reps must be a positive count; got {reps!r}", field="reps")
    _check_level(level)
    n_a, n_b = n_val if isinstance(n_val, tuple) else (n_val, n_val)
    rng = np.random.default_rng(seed)
    reduce = np.max if stat == "best" else np.median
    draws = []
    observed = []
    for accs, n, side in ((a, n_a, "first"), (b, n_b, "second")):
        if len(accs) == 0:
            raise ResnasError(f"the {side} study has no model with a validation accuracy", field="study")
        if n is not None:
            for acc in accs:
                _check_proportion(acc, n)
        x = np.asarray(accs, dtype=float) / 100
        observed.append(float(reduce(x)))
        picked = rng.integers(0, len(x), size=(reps, len(x)))
        sample = x[picked] if n is None else np.take_along_axis(_redraw(rng, x, n, reps) / n, picked, axis=1)
        draws.append(reduce(sample, axis=1))
    diffs = 100 * (draws[1] - draws[0])
    lo, hi = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return {"diff": 100 * (observed[1] - observed[0]), "lo": float(lo), "hi": float(hi), "reps": reps}


def _redraw(rng: np.random.Generator, p: np.ndarray, n: int, reps: int) -> np.ndarray:
    """`reps` x models draws of Binomial(n, p[j]), a count of right answers.

    At validation-sized n numpy's sampler inverts the CDF step by step (~150 ns a draw: 30 ms for
    2000 replicates of 100 models); tabulating each model's CDF once over its mean +/- 8 sd (the mass
    outside, < 1e-15, goes to the window's ends) and searching it is several times faster. Where
    that window is wide (n in the thousands) numpy's sampler is fast and is used instead."""
    half = int(np.ceil(8 * np.sqrt(n * p * (1 - p)).max())) + 5
    width = min(n + 1, 2 * half + 1)
    if width > 256:
        return rng.binomial(n, np.broadcast_to(p, (reps, len(p))))
    start = np.clip(np.round(n * p).astype(np.int64) - half, 0, n + 1 - width)
    cdf = stats.binom.cdf(start[:, None] + np.arange(width), n, p[:, None])
    cdf[:, -1] = 1.0
    u = rng.random((reps, len(p)))
    counts = np.empty((reps, len(p)), dtype=np.int64)
    for j in range(len(p)):
        counts[:, j] = start[j] + np.searchsorted(cdf[j], u[:, j], side="right")
    return counts
