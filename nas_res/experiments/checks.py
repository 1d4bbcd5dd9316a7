"""A claim's check and its verdict: holds, does not hold, or inconclusive at this sample size.

Arms are compared on one metric across their seeds. A difference between two arms gets a Student-t
interval from the within-arm spread pooled over the arms of the check (as a one-way ANOVA does: with
2-3 seeds per arm, one arm's own spread says almost nothing), at a level Bonferroni-corrected for the
number of comparisons in the check. A claim holds when every interval lies on its side, does not hold
when one lies on the other, and is inconclusive otherwise: "we could not tell" is a verdict too.

Sampled design spaces are compared as pycls compares them, by the distribution of their models'
errors: a one-sided two-sample Kolmogorov-Smirnov test each way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResnasError

# What each run is measured by: the final epoch, so nothing is selected on the validation split (but
# best_val_loss, the epoch a run stopped early keeps), and what its training took (epochs; seconds,
# validation included).
METRICS = {
    "train_loss": "final training loss",
    "train_error": "final training error (%)",
    "val_loss": "final validation loss",
    "val_error": "final validation error (%)",
    "val_acc": "final validation accuracy (%)",
    "test_error": "test error (%)",
    "test_acc": "test accuracy (%)",
    "best_val_loss": "lowest validation loss",
    "epochs": "epochs trained",
    "train_seconds": "training time (s)",
}
# What a report's table shows per arm, by task: a VAE's losses are its negative ELBO per image.
SHOWN = {
    "classify": ("train_loss", "val_acc", "test_acc"),
    "vae": ("train_seconds", "epochs", "train_loss", "val_loss", "best_val_loss"),
}
KINDS = {
    "increasing": "each arm's metric is above the previous arm's",
    "decreasing": "each arm's metric is below the previous arm's",
    "not_increasing": "no arm's metric is above the previous arm's by more than the margin",
    "not_decreasing": "no arm's metric is below the previous arm's by more than the margin",
    "lowest": "`arm` has a lower metric than every arm in `among`",
    "highest": "`arm` has a higher metric than every arm in `among`",
    "equal": "the arms' metrics are within the margin of each other",
    "edf_lower": "the first (sampled) arm's models have lower values than the second's (EDF, KS test)",
    "good_range": "`value` lies in the good range of `dimension` found when `arm` (a refine arm) refined its space",
}
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
LEVEL = 0.95


@dataclass(frozen=True)
class Check:
    claim: str
    metric: str
    kind: str
    arms: tuple[str, ...]  # in order; for lowest/highest: the arm first, then `among`
    margin: float = 0.0
    dimension: str = ""  # good_range: the dimension, and the value its good range should hold
    value: Any = None

    @classmethod
    def parse(cls, raw: Any, field: str, known: set[str], present: set[str], where: str) -> Check:
        """One entry of `checks`; arms of other scales are dropped from it (a check left with fewer than
        two arms is an error)."""

        def fail(key: str, message: str) -> ResnasError:
            return ResnasError(message, where=where, field=f"{field}.{key}" if key else field)

        if not isinstance(raw, dict):
            raise fail("", "must be a mapping {claim, metric, kind, arms (or arm and among), margin}")
        allowed = {"claim", "metric", "kind", "arms", "arm", "among", "margin", "dimension", "value"}
        unknown = sorted(str(k) for k in set(raw) - allowed)
        if unknown:
            raise fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(allowed))}")
        kind, metric = raw.get("kind"), raw.get("metric")
        if kind not in KINDS:
            raise fail("kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
        if metric not in METRICS:
            raise fail("metric", f"must be one of {', '.join(METRICS)}; got {metric!r}")
        if kind == "good_range":
            return cls._good_range(raw, metric, known, present, fail)
        if "dimension" in raw or "value" in raw:
            raise fail("dimension", "only a good_range check names a dimension and a value")
        if kind in ("lowest", "highest"):
            if "arm" not in raw or not isinstance(raw.get("among"), list):
                raise fail("", f"a {kind} check names `arm` and a list `among`")
            arms: list = [raw["arm"], *raw["among"]]
        elif isinstance(raw.get("arms"), list):
            arms = raw["arms"]
        else:
            raise fail("arms", "must be a list of arm names")
        for a in arms:
            if a not in known:
                raise fail("arms", f"no arm {a!r}; arms: {', '.join(sorted(known))}")
        if kind in ("lowest", "highest") and raw["arm"] not in present:
            raise fail("arm", f"{raw['arm']!r} is not trained at this scale")
        arms = [a for a in arms if a in present]
        if len(arms) < 2 or (kind == "edf_lower" and len(arms) != 2):
            raise fail("arms", f"needs {'exactly' if kind == 'edf_lower' else 'at least'} two arms at this scale")
        margin = raw.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
            raise fail("margin", f"must be a number >= 0; got {margin!r}")
        if kind == "equal" and margin == 0:
            raise fail("margin", "an `equal` check needs a margin > 0 (how close counts as equal)")
        return cls(str(raw.get("claim") or KINDS[kind]), metric, kind, tuple(arms), float(margin))

    @classmethod
    def _good_range(cls, raw: dict, metric: str, known: set[str], present: set[str], fail) -> Check:
        """{kind: good_range, arm: REFINE_ARM, dimension: NAME, value: V}: judged on what refining found."""
        for key in ("arms", "among", "margin"):
            if key in raw:
                raise fail(key, "a good_range check names `arm` (a refine arm), `dimension` and `value`")
        arm, dim, value = raw.get("arm"), raw.get("dimension"), raw.get("value")
        if metric != "val_error":
            raise fail("metric", f"refining reads the models' validation error: use val_error; got {metric!r}")
        if arm not in known:
            raise fail("arm", f"no arm {arm!r}; arms: {', '.join(sorted(known))}")
        if arm not in present:
            raise fail("arm", f"{arm!r} is not trained at this scale")
        if not isinstance(dim, str) or not dim:
            raise fail("dimension", f"must name a dimension of the refined space (width_multiplier, ...); got {dim!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise fail("value", f"must be one value of {dim} (a number or a name); got {value!r}")
        claim = raw.get("claim") or f"{dim} = {value} lies in the good range refining found"
        return cls(str(claim), metric, "good_range", (arm,), 0.0, dim, value)


@dataclass
class Comparison:
    """One difference `b - a` of arm means with its interval, and what it says about the claim."""

    a: str
    b: str
    diff: float | None
    lo: float | None
    hi: float | None
    outcome: str  # HOLDS (this pair agrees), FAILS (it contradicts), UNSURE


@dataclass
class Verdict:
    check: Check
    verdict: str
    why: str
    pairs: list[Comparison] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # KS statistics for an edf check

    def to_dict(self) -> dict:
        return {
            "claim": self.check.claim,
            "metric": self.check.metric,
            "kind": self.check.kind,
            "arms": list(self.check.arms),
            "margin": self.check.margin,
            "verdict": self.verdict,
            "why": self.why,
            "pairs": [vars(p) for p in self.pairs],
            **self.extra,
        }


def pooled_sd(groups: list[list[float]]) -> tuple[float | None, int]:
    """The within-group standard deviation pooled over `groups`, and its degrees of freedom."""
    df = sum(len(g) - 1 for g in groups if len(g) > 1)
    if df == 0:
        return None, 0
    ss = sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups if len(g) > 1)
    return math.sqrt(ss / df), df


def difference(a: list[float], b: list[float], sd: float | None, df: int, level: float) -> tuple:
    """mean(b) - mean(a) with its Student-t interval from the pooled sd (None bounds: no spread known)."""
    from scipy import stats  # here: reading an experiment file needs no SciPy

    diff = sum(b) / len(b) - sum(a) / len(a)
    if sd is None or not a or not b:
        return diff, None, None
    half = float(stats.t.ppf(0.5 + level / 2, df)) * sd * math.sqrt(1 / len(a) + 1 / len(b))
    return diff, diff - half, diff + half


def judge(
    check: Check, values: dict[str, list[float]], level: float = LEVEL, flops: dict[str, list[int]] | None = None
) -> Verdict:
    """The verdict of `check` on each arm's values (one per seed, or per model for a sampled arm); `flops`,
    each value's model's FLOPs, lets an EDF check normalise complexity. (A good_range check is judged on
    what refining found: `good_range.judge_range`.)"""
    missing = [a for a in check.arms if not values.get(a)]
    if missing:
        return Verdict(check, UNSURE, f"no finished runs yet for {', '.join(missing)}")
    if check.kind == "edf_lower":
        a, b = check.arms
        paired = flops is not None and all(len(flops.get(x) or []) == len(values[x]) for x in (a, b))
        return _edf(check, values[a], values[b], level, (flops[a], flops[b]) if flops and paired else None)
    pairs = _pairs(check)
    sd, df = pooled_sd([values[a] for a in check.arms])
    corrected = 1 - (1 - level) / len(pairs)
    out = []
    for a, b in pairs:
        diff, lo, hi = difference(values[a], values[b], sd, df, corrected)
        out.append(Comparison(a, b, diff, lo, hi, _outcome(check, lo, hi)))
    outcomes = {p.outcome for p in out}
    verdict = FAILS if FAILS in outcomes else HOLDS if outcomes == {HOLDS} else UNSURE
    if sd is None:
        why = "one run per arm: no spread between seeds to judge a difference by (use 2 or more seeds)"
    else:
        shown = "; ".join(f"{p.b} - {p.a} = {p.diff:+.3g} [{p.lo:+.3g}, {p.hi:+.3g}]" for p in out)
        why = f"{shown} ({100 * corrected:.4g}% intervals, pooled sd {sd:.3g}, {df} df)"
    return Verdict(check, verdict, why, out)


def _pairs(check: Check) -> list[tuple[str, str]]:
    arms = check.arms
    if check.kind in ("lowest", "highest"):
        return [(arms[0], other) for other in arms[1:]]
    if check.kind == "equal":
        return [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    return list(itertools.pairwise(arms))


def _outcome(check: Check, lo: float | None, hi: float | None) -> str:
    """What one interval of `b - a` says about the claim."""
    if lo is None or hi is None:
        return UNSURE
    m, kind = check.margin, check.kind
    if kind in ("increasing", "lowest"):  # b above a (lowest: every other arm above the arm)
        return HOLDS if lo > 0 else FAILS if hi < 0 else UNSURE
    if kind in ("decreasing", "highest"):
        return HOLDS if hi < 0 else FAILS if lo > 0 else UNSURE
    if kind == "not_increasing":  # b rises above a by no more than m
        return HOLDS if hi <= m else FAILS if lo > m else UNSURE
    if kind == "not_decreasing":
        return HOLDS if lo >= -m else FAILS if hi < -m else UNSURE
    # equal: the whole interval within +-m, or the whole of it outside
    return HOLDS if -m <= lo and hi <= m else FAILS if lo > m or hi < -m else UNSURE


def _edf(check: Check, first: list[float], second: list[float], level: float, flops: tuple | None = None) -> Verdict:
    """First arm's values lower (its EDF above the second's): one-sided KS tests both ways, on the raw EDFs
    and, where each model's FLOPs are known, on the complexity-normalised ones too (a side is significant
    only where both tests say so). The medians and the best models are compared by bootstrap intervals."""
    import numpy as np
    from scipy import stats

    from .edf import bootstrap_difference, normalised_ks

    a, b = check.arms
    alpha = 1 - level
    lower = stats.ks_2samp(first, second, alternative="greater")  # first's CDF above: its values lower
    higher = stats.ks_2samp(first, second, alternative="less")
    extra: dict = {
        "ks_lower": {"D": float(lower.statistic), "p": float(lower.pvalue)},
        "ks_higher": {"D": float(higher.statistic), "p": float(higher.pvalue)},
        "n": [len(first), len(second)],
        "median": bootstrap_difference(first, second, np.median, level),
        "best": bootstrap_difference(first, second, np.min, level),
    }
    why = (
        f"{a}'s EDF above {b}'s by up to D={lower.statistic:.3f} (one-sided KS p={lower.pvalue:.3g}); "
        f"below by up to D={higher.statistic:.3f} (p={higher.pvalue:.3g}); {len(first)} vs {len(second)} models"
    )
    low_p, high_p = [float(lower.pvalue)], [float(higher.pvalue)]
    norm = normalised_ks(first, flops[0], second, flops[1]) if flops else None
    if norm:
        extra["ks_normalised"] = norm
        low_p.append(norm["lower"]["p"])
        high_p.append(norm["higher"]["p"])
        why += (
            f"; complexity-normalised: above by D={norm['lower']['D']:.3f} (permutation p={norm['lower']['p']:.3g}), "
            f"below by D={norm['higher']['D']:.3f} (p={norm['higher']['p']:.3g})"
        )
    for key, what in (("median", "median"), ("best", "best model")):
        d = extra[key]
        lo, hi = d["interval"]
        why += f"; {what} {d['a']:.3g} vs {d['b']:.3g}, {a} - {b} = {d['diff']:+.3g} [{lo:+.3g}, {hi:+.3g}]"
    lower_holds = all(p < alpha for p in low_p)
    higher_holds = all(p < alpha for p in high_p)
    if lower_holds and not higher_holds:
        verdict = HOLDS
    elif higher_holds and not lower_holds:
        verdict = FAILS
    else:
        verdict = UNSURE
    return Verdict(check, verdict, why, extra=extra)
