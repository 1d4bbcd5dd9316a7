"""A good_range check: does the good range that refining a space found for one dimension hold the value a
paper's rule names (ResNeXt's rule ii: a width multiplier of 2)? Judged on the refinement stored with the
experiment, the same bootstrap-of-the-best-model range and KS test `resnas refine` reports.
"""

from __future__ import annotations

import math
from typing import Any

from .checks import FAILS, HOLDS, UNSURE, Check, Verdict


def judge_range(check: Check, found: dict | None) -> Verdict:
    """Does the good range refining found for `check.dimension` hold `check.value`? Only a dimension the
    evidence narrowed (the models outside its range worse, one-sided KS) answers: inside holds, outside
    does not; a range kept or with too few models to tell is inconclusive, whatever it holds."""
    arm, name, value = check.arms[0], check.dimension, check.value
    if not found:
        return Verdict(check, UNSURE, f"arm {arm} is not refined yet (its space arm is still training)")
    dim = next((d for d in found.get("dims", []) if d["name"] == name), None)
    if dim is None:
        opened = ", ".join(d["name"] for d in found.get("dims", []))
        return Verdict(check, UNSURE, f"{name} is not an open dimension of the refined space ({opened})")
    inside = any(_same(value, g) for g in dim["good"])
    tests = "; ".join(
        f"{_shown(t['value'])}: {t['n']} models, mean {_num(t['mean_error'])}, best {_num(t['best_error'])}"
        for t in dim["tests"]
    )
    wins = ", ".join(f"{k} {100 * v:.0f}%" for k, v in dim["wins"].items())
    why = (
        f"{name}: good range {dim['range']}, {dim['verdict']} ({dim['reason']}); {_shown(value)} is "
        f"{'inside' if inside else 'outside'}; the best model's value over the bootstrap samples: {wins}; "
        f"{check.metric} per value: {tests}"
    )
    extra = {"dimension": name, "value": value, "good": dim["good"], "range": dim["range"], "ks_p": dim["p"]}
    if dim["verdict"] != "narrowed":
        return Verdict(check, UNSURE, f"{why}; only a range the evidence narrows answers", extra=extra)
    return Verdict(check, HOLDS if inside else FAILS, why, extra=extra)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b))
    return str(a) == str(b)


def _shown(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"
