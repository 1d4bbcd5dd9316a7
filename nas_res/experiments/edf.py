"""Comparing design spaces by their models' errors (Radosavovic et al., "On Network Design Spaces"): the
EDF, complexity-normalised, a one-sided KS test on the normalised EDFs, and bootstrap intervals of the
median and the best model.

Complexity normalisation: a space whose samples are cheaper would look worse for that alone, so each
model is weighted by one over the number of its space's models in its log-FLOPs bin, over the bins both
spaces occupy; each space then has the same (uniform) distribution of complexity. The weighted EDFs'
largest gap has no textbook null distribution, so its p-value is a permutation test within FLOPs bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

PERMUTATIONS = 2000  # label shuffles of the normalised KS test (p resolves to 1/2001)
RESAMPLES = 5000  # bootstrap resamples of a median or best-of-N difference


def normalised_weights(flops: dict[str, list[int]], bins: int = 8) -> dict[str, list[float]]:
    """Per arm, each model's weight (summing to 1 per arm; 0 outside the bins every arm occupies)."""
    pooled = [f for fs in flops.values() for f in fs]
    if not pooled:
        return {a: [] for a in flops}
    every, index, start = log_bins(pooled, bins), {}, 0
    for a, fs in flops.items():
        index[a], start = every[start : start + len(fs)], start + len(fs)
    shared = set.intersection(*(set(ix) for ix in index.values())) if index else set()
    out = {}
    for a, ix in index.items():
        counts = {b: ix.count(b) for b in shared}
        raw = [1 / counts[b] if b in shared else 0.0 for b in ix]
        total = sum(raw) or 1.0
        out[a] = [w / total for w in raw]
    return out


def log_bins(flops: Sequence[int], bins: int = 8) -> list[int]:
    """Each model's log-FLOPs bin, `bins` equal bins over the range of `flops`."""
    logs = [math.log(max(f, 1)) for f in flops]
    lo, hi = min(logs), max(logs)
    width = (hi - lo) / bins or 1.0
    return [min(bins - 1, int((x - lo) / width)) for x in logs]


def weighted_edf(values: list[float], weights: list[float]) -> tuple[list[float], list[float]]:
    pairs = sorted((v, w) for v, w in zip(values, weights) if w > 0)
    if not pairs:
        return [], []
    xs, ys, acc = [pairs[0][0]], [0.0], 0.0
    for v, w in pairs:
        acc += w
        xs.append(v)
        ys.append(acc)
    return xs, ys


def _gaps(a: Sequence[float], wa: Sequence[float], b: Sequence[float], wb: Sequence[float]) -> tuple[float, float]:
    """The largest gap of a's weighted EDF above b's, and below it (each >= 0)."""
    grid = np.unique(np.concatenate([np.asarray(a, float), np.asarray(b, float)]))

    def cdf(x, w):
        order = np.argsort(x, kind="stable")
        xs, cum = np.asarray(x, float)[order], np.cumsum(np.asarray(w, float)[order])
        idx = np.searchsorted(xs, grid, side="right")
        return np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0.0)

    diff = cdf(a, wa) - cdf(b, wb)
    return float(max(diff.max(), 0.0)), float(max(-diff.min(), 0.0))


def normalised_ks(
    a: Sequence[float], a_flops: Sequence[int], b: Sequence[float], b_flops: Sequence[int], seed: int = 0
) -> dict | None:
    """One-sided KS on complexity-normalised EDFs both ways: {"lower": {D, p}, "higher": {D, p}} where
    "lower" is a's EDF above b's (a's values lower). None when the arms share no FLOPs bin.

    The p-values come from permutations within each FLOPs bin: under the null (the same errors at the same
    complexity), a model's arm is exchangeable only with models of its own bin; shuffling across bins would
    compare the observed gap, read off an arm's few models in a bin, with gaps of better-filled bins."""
    weights = normalised_weights({"a": list(a_flops), "b": list(b_flops)})
    if not any(weights["a"]) or not any(weights["b"]):
        return None
    lower, higher = _gaps(a, weights["a"], b, weights["b"])
    values = np.asarray(list(a) + list(b), float)
    n = len(a)
    w = list(weights["a"]) + list(weights["b"])
    bins = np.asarray(log_bins(list(a_flops) + list(b_flops)))
    groups = [np.flatnonzero(bins == k) for k in np.unique(bins)]
    rng = np.random.default_rng(seed)
    beat_lower = beat_higher = 0
    shuffled = values.copy()
    for _ in range(PERMUTATIONS):
        for g in groups:
            shuffled[g] = values[rng.permutation(g)]
        lo, hi = _gaps(shuffled[:n], w[:n], shuffled[n:], w[n:])
        beat_lower += lo >= lower - 1e-12
        beat_higher += hi >= higher - 1e-12
    p = lambda k: (1 + k) / (1 + PERMUTATIONS)  # noqa: E731
    return {"lower": {"D": lower, "p": p(beat_lower)}, "higher": {"D": higher, "p": p(beat_higher)}}


def bootstrap_difference(
    a: Sequence[float], b: Sequence[float], stat: Callable = np.median, level: float = 0.95, seed: int = 0
) -> dict:
    """stat(a) - stat(b) with a percentile bootstrap interval (each arm resampled on its own: the models of
    two samples are not paired), and each arm's own interval."""
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, float), np.asarray(b, float)
    ra = stat(rng.choice(xa, size=(RESAMPLES, len(xa))), axis=1)
    rb = stat(rng.choice(xb, size=(RESAMPLES, len(xb))), axis=1)
    q = (50 * (1 - level), 50 * (1 + level))

    def interval(x) -> list[float]:
        return [float(v) for v in np.percentile(x, q)]

    return {
        "a": float(stat(xa)),
        "b": float(stat(xb)),
        "a_interval": interval(ra),
        "b_interval": interval(rb),
        "diff": float(stat(xa) - stat(xb)),
        "interval": interval(ra - rb),
    }
