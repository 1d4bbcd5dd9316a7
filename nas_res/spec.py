"""Reading a design-space template (YAML) into checked dimensions.

Every mistake ends in one `ResnasError` naming the file, the field path and what is allowed,
so a user never sees a traceback for a bad template.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arch import BLOCKS, MODULATIONS, SHORTCUTS, STEM_ALIASES, STEMS, STRIDE_ON, UNIT_ORDERS
from .errors import ResnasError
from .yamlfile import read_yaml

TOP_KEYS = {
    "name": "a short name",
    "description": "free text",
    "resolution": "reference input side (int)",
    "in_channels": "input channels (int)",
    "classes": "output classes (int)",
    "stem": "{kind: DIM, width: int | inner}",
    "strides": "list of 1/2, one per stage",
    "block": "DIM of basic/bottleneck",
    "depth": "{per_stage: [DIM, ...]} or {total: DIM, split: [int, ...]}",
    "width": "DIM: first stage's output width",
    "cardinality": "DIM: groups C of the 3x3",
    "bottleneck_width": "DIM: d, width per group in the first stage",
    "bottleneck_ratio": "DIM: inner width / output width (instead of bottleneck_width)",
    "shortcut": "DIM of A/B/C/D/none",
    "unit_order": f"DIM of {'/'.join(UNIT_ORDERS)}",
    "stride_on": "DIM of 3x3/1x1",
    "modulation": f"DIM of {'/'.join(MODULATIONS)}",
    "modulation_value": "number",
    "zero_init_last_bn": "true/false",
}
DIM_HELP = "a value, a list of choices, {choices: [...]}, or {range: [low, high], step: s, log: true|false}"
DIM_KEYS = ("choices", "range", "step", "log")
MAX_INT = 1_000_000  # widths, depths, resolutions...: anything larger is a typo (and would overflow floats)
MAX_RANGE = 100_000  # values in one range
MAX_PAIRS = 1_000_000  # width x bottleneck_ratio pairs checked for whole, divisible inner widths


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


def _fail(where: str, path: str, message: str) -> ResnasError:
    return ResnasError(message, where=where, field=path)


def _check_value(where: str, path: str, value: Any, kind: Any) -> Any:
    """kind: int, float, or a tuple of allowed strings."""
    if isinstance(kind, tuple):
        text = STEM_ALIASES.get(value, value) if kind is STEMS and isinstance(value, str) else value
        if not isinstance(value, str) or text not in kind:
            raise _fail(where, path, f"must be one of {', '.join(kind)}; got {value!r}")
        return text
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(where, path, f"must be a positive integer; got {value!r}")
        if value > MAX_INT:
            raise _fail(where, path, f"must be a positive integer of at most {MAX_INT}; got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(where, path, f"must be a positive number; got {value!r}")
    if value > MAX_INT:  # also inf, and ints too large for a float
        raise _fail(where, path, f"must be a positive number of at most {MAX_INT}; got {value!r}")
    return float(value)


def parse_dim(where: str, path: str, raw: Any, kind: Any, name: str | None = None) -> Dim:
    """A DIM: scalar (fixed), list (choices), {choices}, or {range, step, log}."""
    name = name or path.split(".")[-1]
    if isinstance(raw, dict):
        unknown = sorted(str(k) for k in raw if k not in DIM_KEYS)
        if unknown:
            raise _fail(where, path, f"unknown key(s) {unknown}; allowed: {', '.join(DIM_KEYS)} (a DIM is {DIM_HELP})")
        if ("choices" in raw) == ("range" in raw):
            raise _fail(
                where, path, f"give exactly one of choices or range (a DIM is {DIM_HELP}); got keys {sorted(raw)}"
            )
        if "choices" in raw:
            if set(raw) != {"choices"}:
                raise _fail(where, path, "step/log go with range, not choices")
            if not isinstance(raw["choices"], list):
                raise _fail(where, f"{path}.choices", f"must be a list; got {raw['choices']!r}")
            return parse_dim(where, path, raw["choices"], kind, name)
        return _parse_range(where, path, raw, kind, name)
    if isinstance(raw, list):
        if not raw:
            raise _fail(where, path, "empty list of choices: give at least one value")
        values = [_check_value(where, f"{path}[{i}]", v, kind) for i, v in enumerate(raw)]
        if len(set(values)) != len(values):
            dup = next(v for v in values if values.count(v) > 1)
            raise _fail(where, path, f"value {dup!r} is listed twice: choices must be distinct")
        return Dim(name, tuple(values), "choices" if len(values) > 1 else "fixed")
    return Dim(name, (_check_value(where, path, raw, kind),), "fixed")


def _parse_range(where: str, path: str, raw: dict, kind: Any, name: str) -> Dim:
    if isinstance(kind, tuple):
        raise _fail(where, path, f"a range needs numbers; list the choices instead ({', '.join(kind)})")
    bounds = raw["range"]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise _fail(where, f"{path}.range", f"must be [low, high]; got {bounds!r}")
    low, high = (_check_value(where, f"{path}.range[{i}]", b, kind) for i, b in enumerate(bounds))
    if low > high:
        raise _fail(where, f"{path}.range", f"inverted range [{low}, {high}]: low must not exceed high")
    if kind is float and "step" not in raw and low < high:
        raise _fail(
            where,
            f"{path}.step",
            f"a range of fractional numbers needs a step (e.g. step: {low:g}): "
            "the dimension is the values low, low + step, ... up to high",
        )
    step = raw.get("step", 1)
    step = _check_value(where, f"{path}.step", step, kind)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise _fail(where, f"{path}.log", f"must be true or false; got {log!r}")
    if kind is int:
        count = (high - low) // step + 1
        off_grid = low % step
    else:  # min(): a tiny step must not overflow; fmod: 0.3 is a multiple of 0.1 despite float noise
        count = int(math.floor(min((high - low) / step, MAX_RANGE) + 1e-9)) + 1
        rest = math.fmod(low, step)
        off_grid = min(rest, step - rest) > 1e-9 * step
    if count > MAX_RANGE:
        raise _fail(where, path, f"range holds more than {MAX_RANGE} values (use a coarser step)")
    if log and off_grid:
        raise _fail(where, f"{path}.range", f"with log and step {step:g}, low ({low:g}) must be a multiple of step")
    if kind is int:
        values = tuple(range(low, high + 1, step))
    else:  # rounded to hide float noise (0.1 + 2 * 0.1); a step below that noise gives repeats, kept once
        values = tuple(dict.fromkeys(round(low + i * step, 10) for i in range(count)))
    return Dim(name, values, "range" if len(values) > 1 else "fixed", step, log)


@dataclass(frozen=True)
class Spec:
    """A checked template: fixed parts plus the dimensions a candidate chooses from."""

    name: str
    description: str
    source: str
    resolution: int
    in_channels: int
    classes: int
    strides: tuple
    stem_width: int | str  # an int, or "inner": the first stage's inner width
    split: tuple | None  # stage split of a total depth; None when depth is per stage
    modulation_value: float | None
    zero_init_last_bn: bool
    ratio_mode: bool  # inner width from bottleneck_ratio instead of bottleneck_width
    dims: dict  # name -> Dim


def read_template(path: Path) -> Any:
    return read_yaml(path, "template")


def parse_spec(data: Any, where: str) -> Spec:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise _fail(where, "", f"a template must be a mapping of keys (resolution: ..., width: ..., ...); got {got}")
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], TOP_KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise _fail(where, unknown[0], f"unknown key{hint}; allowed: " + ", ".join(TOP_KEYS))
    for key in ("resolution", "classes", "strides", "depth", "width"):
        if key not in data:
            raise _fail(where, key, f"missing; expected {TOP_KEYS[key]}")

    def fixed_int(key: str, default: int | None = None) -> int:
        return _check_value(where, key, data.get(key, default), int)

    resolution, classes, in_channels = fixed_int("resolution"), fixed_int("classes"), fixed_int("in_channels", 3)
    strides = data["strides"]
    if not isinstance(strides, list) or not strides or any(s not in (1, 2) or isinstance(s, bool) for s in strides):
        raise _fail(where, "strides", f"must be a non-empty list of 1 or 2, one per stage; got {strides!r}")
    n_stages = len(strides)

    dims: dict[str, Dim] = {}
    stem = data.get("stem", {"kind": "imagenet", "width": 64})
    if isinstance(stem, str):
        stem = {"kind": stem}
    stem_help = f"must be a stem kind ({', '.join(STEMS)}) or {{kind: DIM of those, width: int | inner}}"
    if not isinstance(stem, dict):
        raise _fail(where, "stem", f"{stem_help}; got {stem!r}")
    unknown = sorted(str(k) for k in stem if k not in ("kind", "width"))
    if unknown:
        raise _fail(where, f"stem.{unknown[0]}", f"unknown key; {stem_help}")
    dims["stem"] = parse_dim(where, "stem.kind", stem.get("kind", "imagenet"), STEMS, "stem")
    stem_width = stem.get("width", 64)
    if stem_width != "inner":
        if isinstance(stem_width, bool) or not isinstance(stem_width, int) or not 1 <= stem_width <= MAX_INT:
            raise _fail(
                where,
                "stem.width",
                f"must be a positive integer (at most {MAX_INT}) or inner "
                f"(as wide as the first stage's inner width); got {stem_width!r}",
            )

    dims["block"] = parse_dim(where, "block", data.get("block", "bottleneck"), BLOCKS)
    depth = data["depth"]
    split = None
    if not isinstance(depth, dict) or set(depth) not in ({"per_stage"}, {"total", "split"}):
        got = f"keys {sorted(map(str, depth))}" if isinstance(depth, dict) else repr(depth)
        raise _fail(
            where,
            "depth",
            "must be {per_stage: [DIM, ...]} (one per stage) or {total: DIM, split: [...]} "
            f"(a stage split of a total layer count); got {got}",
        )
    if "per_stage" in depth:
        per = depth["per_stage"]
        if not isinstance(per, list) or len(per) != n_stages:
            raise _fail(where, "depth.per_stage", f"must list one DIM per stage ({n_stages} stages); got {per!r}")
        for i, raw in enumerate(per):
            dims[f"depth{i + 1}"] = parse_dim(where, f"depth.per_stage[{i}]", raw, int, f"depth{i + 1}")
    else:
        split = depth["split"]
        if not isinstance(split, list) or len(split) != n_stages:
            raise _fail(where, "depth.split", f"must list one positive integer per stage ({n_stages}); got {split!r}")
        split = tuple(_check_value(where, f"depth.split[{i}]", s, int) for i, s in enumerate(split))
        dims["depth"] = parse_dim(where, "depth.total", depth["total"], int, "depth")

    dims["width"] = parse_dim(where, "width", data["width"], int)
    dims["cardinality"] = parse_dim(where, "cardinality", data.get("cardinality", 1), int)
    if "bottleneck_width" in data and "bottleneck_ratio" in data:
        raise _fail(where, "bottleneck_ratio", "give bottleneck_width or bottleneck_ratio, not both")
    ratio_mode = "bottleneck_ratio" in data
    if ratio_mode:
        dims["bottleneck_ratio"] = parse_dim(where, "bottleneck_ratio", data["bottleneck_ratio"], float)
    else:
        dims["bottleneck_width"] = parse_dim(where, "bottleneck_width", data.get("bottleneck_width", 64), int)
    dims["shortcut"] = parse_dim(where, "shortcut", data.get("shortcut", "B"), SHORTCUTS)
    dims["unit_order"] = parse_dim(where, "unit_order", data.get("unit_order", "post"), UNIT_ORDERS)
    dims["stride_on"] = parse_dim(where, "stride_on", data.get("stride_on", "3x3"), STRIDE_ON)
    dims["modulation"] = parse_dim(where, "modulation", data.get("modulation", "none"), MODULATIONS)
    mod_value = data.get("modulation_value")
    if mod_value is not None:
        number = isinstance(mod_value, (int, float)) and not isinstance(mod_value, bool)
        if not number or not -MAX_INT <= mod_value <= MAX_INT:  # also nan and inf
            raise _fail(where, "modulation_value", f"must be a finite number; got {mod_value!r}")
        mod_value = float(mod_value)
        bounded = [m for m in dims["modulation"].values if m in ("scale", "dropout")]
        if bounded and not 0.0 <= mod_value <= 1.0:
            raise _fail(
                where,
                "modulation_value",
                f"must be between 0 and 1 for modulation {bounded[0]} (a factor or a probability); got {mod_value:g}",
            )
    zero = data.get("zero_init_last_bn", False)
    if not isinstance(zero, bool):
        raise _fail(where, "zero_init_last_bn", f"must be true or false; got {zero!r}")

    name = data.get("name", Path(where).stem)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise _fail(where, "name" if not isinstance(name, str) else "description", "must be text")
    spec = Spec(
        name,
        description,
        where,
        resolution,
        in_channels,
        classes,
        tuple(strides),
        stem_width,
        split,
        mod_value,
        zero,
        ratio_mode,
        dims,
    )
    _check_consistency(spec)
    return spec


def _check_consistency(spec: Spec) -> None:
    """Contradictions between dimensions, each named with the values that clash."""
    d, where = spec.dims, spec.source
    blocks = d["block"].values
    if "bottleneck" not in blocks:
        for key in ("cardinality", "bottleneck_width", "bottleneck_ratio"):
            if key in d and d[key].open:
                raise _fail(
                    where,
                    key,
                    "is open but every block is basic (two 3x3 convs, no inner width): "
                    "fix it to one value, or add bottleneck to block",
                )
        if d["cardinality"].values != (1,):
            raise _fail(where, "cardinality", "a basic block has no grouped conv: cardinality must be 1")
    if "none" in d["shortcut"].values and d["modulation"].values != ("none",):
        other = next(m for m in d["modulation"].values if m != "none")
        raise _fail(
            where,
            "modulation",
            f"shortcut 'none' (a plain net) has no shortcut to modulate with "
            f"{other!r}: use modulation: none, or drop none from shortcut",
        )
    if spec.ratio_mode and "bottleneck" in blocks:
        _check_inner_widths(spec)
    if "A" in d["shortcut"].values:
        if spec.stem_width != "inner":
            for w in d["width"].values:
                if w < spec.stem_width:
                    raise _fail(
                        where,
                        "shortcut",
                        f"option A cannot shrink {spec.stem_width} stem channels to "
                        f"width {w}; raise width or use shortcut B",
                    )
        elif "bottleneck" in blocks:  # the stem is as wide as the inner width, which may exceed the width
            if spec.ratio_mode:
                r, w = max(d["bottleneck_ratio"].values), min(d["width"].values)
                widest, how = r * w, f"width {w} x bottleneck_ratio {r:g}"
            else:
                c, bw, w = max(d["cardinality"].values), max(d["bottleneck_width"].values), min(d["width"].values)
                widest, how = c * bw, f"cardinality {c} x bottleneck_width {bw}"
            if widest > w:
                raise _fail(
                    where,
                    "shortcut",
                    f"option A cannot shrink a stem of width inner ({how} = {widest:g} "
                    f"channels) to width {w}; keep inner widths at most the width, give stem.width, "
                    "or use shortcut B",
                )
    if spec.split is not None:
        from .space import blocks_for_total  # one rule for totals, kept with the space

        per = {"basic": 2, "bottleneck": 3}

        def need(b: str, s: str) -> str:
            return f"(depth - {4 if s == 'deep' else 2}) divisible by {per[b] * sum(spec.split)}"

        combos = [(b, s) for b in blocks for s in d["stem"].values]
        totals = d["depth"].values
        for total in totals:
            if not any(blocks_for_total(total, b, s, spec.split) for b, s in combos):
                rules = " or ".join(
                    dict.fromkeys(f"{need(b, s)} ({b}{', deep stem' if s == 'deep' else ''})" for b, s in combos)
                )
                raise _fail(
                    where,
                    "depth.total",
                    f"{total} layers cannot be split {list(spec.split)} into whole blocks: need {rules}",
                )
        for b, s in combos:  # every block type with every stem must give some candidate
            if not any(blocks_for_total(total, b, s, spec.split) for total in totals):
                shown = list(totals) if len(totals) <= 12 else f"{totals[0]}..{totals[-1]}"
                raise _fail(
                    where,
                    "depth.total",
                    f"no total in {shown} splits {list(spec.split)} into whole {b} "
                    f"blocks with the {s} stem: need {need(b, s)}; add such a total, or drop {b} from "
                    f"block or {s} from stem.kind",
                )


def _check_inner_widths(spec: Spec) -> None:
    """Each width x bottleneck_ratio must be a whole inner width, divisible by every cardinality."""
    d, where = spec.dims, spec.source
    widths, ratios, cards = d["width"].values, d["bottleneck_ratio"].values, d["cardinality"].values
    if len(widths) * len(ratios) > MAX_PAIRS:
        raise _fail(
            where,
            "bottleneck_ratio",
            f"{len(widths)} widths x {len(ratios)} ratios are too many "
            f"combinations to check (at most {MAX_PAIRS}); use fewer values",
        )
    lcm = 1  # divisible by every cardinality <=> divisible by their lcm (capped: no inner width exceeds MAX_INT)
    for c in cards:
        lcm = min(math.lcm(lcm, c), MAX_INT + 1)
    for w, r in itertools.product(widths, ratios):
        inner = w * r
        whole = round(inner)
        if abs(inner - whole) > 1e-9 * max(1.0, inner) or whole < 1:
            raise _fail(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {inner:g} is not a whole number "
                "of channels: inner widths (width x ratio) must be positive integers",
            )
        if whole > MAX_INT:
            raise _fail(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {whole} channels; inner widths may be at most {MAX_INT}",
            )
        if whole % lcm:
            c = next(c for c in cards if whole % c)
            raise _fail(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {whole} is not a whole multiple of "
                f"cardinality {c}: inner widths must be divisible by the cardinality",
            )
