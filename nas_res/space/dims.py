"""One dimension of a design-space template: a fixed value, a list of choices or a range, checked.

A mistake names the template file and the dimension's path in it (`depth.per_stage[2].range`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..arch.description import STEM_ALIASES, STEMS
from ..errors import ResnasError

DIM_HELP = "a value, a list of choices, {choices: [...]}, or {range: [low, high], step: s, log: true|false}"
DIM_KEYS = ("choices", "range", "step", "log")
MAX_INT = 1_000_000  # widths, depths, resolutions...: anything larger is a typo (and would overflow floats)
MAX_RANGE = 100_000  # values in one range

# The categorical dims that fix a unit's kind, as opposed to the numeric ones that size it.
STRUCTURE = ("block", "stem", "shortcut", "unit_order", "stride_on", "modulation")


@dataclass(frozen=True)
class Dim:
    """One open (or fixed) dimension: its ordered distinct values and how Optuna should sample it."""

    name: str
    values: tuple
    kind: str = "choices"  # fixed | choices | range
    step: int | float = 1
    log: bool = False

    @property
    def open(self) -> bool:
        return len(self.values) > 1


def template_error(where: str, path: str, message: str) -> ResnasError:
    """A mistake in template `where` at field `path` (`stem.kind`, `depth.per_stage[1]`)."""
    return ResnasError(message, where=where, field=path)


def check_value(where: str, path: str, value: Any, kind: Any) -> Any:
    """kind: int, float, or a tuple of allowed strings."""
    if isinstance(kind, tuple):
        text = STEM_ALIASES.get(value, value) if kind is STEMS and isinstance(value, str) else value
        if not isinstance(value, str) or text not in kind:
            raise template_error(where, path, f"must be one of {', '.join(kind)}; got {value!r}")
        return text
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise template_error(where, path, f"must be a positive integer; got {value!r}")
        if value > MAX_INT:
            raise template_error(where, path, f"must be a positive integer of at most {MAX_INT}; got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise template_error(where, path, f"must be a positive number; got {value!r}")
    if value > MAX_INT:  # also inf, and ints too large for a float
        raise template_error(where, path, f"must be a positive number of at most {MAX_INT}; got {value!r}")
    return float(value)


def parse_dim(where: str, path: str, raw: Any, kind: Any, name: str | None = None) -> Dim:
    """A DIM: scalar (fixed), list (choices), {choices}, or {range, step, log}."""
    name = name or path.split(".")[-1]
    if isinstance(raw, dict):
        unknown = sorted(str(k) for k in raw if k not in DIM_KEYS)
        if unknown:
            raise template_error(
                where, path, f"unknown key(s) {unknown}; allowed: {', '.join(DIM_KEYS)} (a DIM is {DIM_HELP})"
            )
        if ("choices" in raw) == ("range" in raw):
            raise template_error(
                where, path, f"give exactly one of choices or range (a DIM is {DIM_HELP}); got keys {sorted(raw)}"
            )
        if "choices" in raw:
            if set(raw) != {"choices"}:
                raise template_error(where, path, "step/log go with range, not choices")
            if not isinstance(raw["choices"], list):
                raise template_error(where, f"{path}.choices", f"must be a list; got {raw['choices']!r}")
            return parse_dim(where, path, raw["choices"], kind, name)
        return _parse_range(where, path, raw, kind, name)
    if isinstance(raw, list):
        if not raw:
            raise template_error(where, path, "empty list of choices: give at least one value")
        values = [check_value(where, f"{path}[{i}]", v, kind) for i, v in enumerate(raw)]
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise template_error(where, path, f"value {dup!r} is listed twice: choices must be distinct")
        return Dim(name, tuple(values), "choices" if len(values) > 1 else "fixed")
    return Dim(name, (check_value(where, path, raw, kind),), "fixed")


def _parse_range(where: str, path: str, raw: dict, kind: Any, name: str) -> Dim:
    if isinstance(kind, tuple):
        raise template_error(where, path, f"a range needs numbers; list the choices instead ({', '.join(kind)})")
    bounds = raw["range"]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise template_error(where, f"{path}.range", f"must be [low, high]; got {bounds!r}")
    low, high = (check_value(where, f"{path}.range[{i}]", b, kind) for i, b in enumerate(bounds))
    if low > high:
        raise template_error(where, f"{path}.range", f"inverted range [{low}, {high}]: low must not exceed high")
    if kind is float and "step" not in raw and low < high:
        raise template_error(
            where,
            f"{path}.step",
            f"a range of fractional numbers needs a step (e.g. step: {low:g}): "
            "the dimension is the values low, low + step, ... up to high",
        )
    step = raw.get("step", 1)
    step = check_value(where, f"{path}.step", step, kind)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise template_error(where, f"{path}.log", f"must be true or false; got {log!r}")
    if kind is int:
        count = (high - low) // step + 1
        off_grid = low % step
    else:  # min(): a tiny step must not overflow; fmod: 0.3 is a multiple of 0.1 despite float noise
        count = math.floor(min((high - low) / step, MAX_RANGE) + 1e-9) + 1
        rest = math.fmod(low, step)
        off_grid = min(rest, step - rest) > 1e-9 * step
    if count > MAX_RANGE:
        raise template_error(where, path, f"range holds more than {MAX_RANGE} values (use a coarser step)")
    if log and off_grid:
        raise template_error(
            where, f"{path}.range", f"with log and step {step:g}, low ({low:g}) must be a multiple of step"
        )
    if kind is int:
        values = tuple(range(low, high + 1, step))
    else:  # rounded to hide float noise (0.1 + 2 * 0.1); a step below that noise gives repeats, kept once
        values = tuple(dict.fromkeys(round(low + i * step, 10) for i in range(count)))
    return Dim(name, values, "range" if len(values) > 1 else "fixed", step, log)
