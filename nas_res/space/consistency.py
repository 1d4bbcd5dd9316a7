"""Contradictions between a template's dimensions (a basic block with an open cardinality, option A
shrinking the stem, a depth total no block splits into, ...), each one message naming the field and the
values that clash."""

from __future__ import annotations

import itertools
import math

from ..arch.description import CONVS_PER_BLOCK, blocks_for_total, layers_outside_blocks
from .dims import MAX_INT, template_error
from .rules import grown
from .spec import Spec

MAX_PAIRS = 1_000_000  # width x bottleneck_ratio pairs checked for whole, divisible inner widths


def check_consistency(spec: Spec) -> None:
    """Contradictions between dimensions, each named with the values that clash."""
    d, where = spec.dims, spec.source
    blocks = d["block"].values
    if "bottleneck" not in blocks:
        for key in ("cardinality", "bottleneck_width", "bottleneck_ratio"):
            if key in d and d[key].open:
                raise template_error(
                    where,
                    key,
                    "is open but every block is basic (two 3x3 convs, no inner width): "
                    "fix it to one value, or add bottleneck to block",
                )
        if d["cardinality"].values != (1,):
            raise template_error(where, "cardinality", "a basic block has no grouped conv: cardinality must be 1")
    if "none" in d["shortcut"].values and d["modulation"].values != ("none",):
        other = next(m for m in d["modulation"].values if m != "none")
        raise template_error(
            where,
            "modulation",
            f"shortcut 'none' (a plain net) has no shortcut to modulate with "
            f"{other!r}: use modulation: none, or drop none from shortcut",
        )
    if spec.ratio_mode and "bottleneck" in blocks:
        _check_inner_widths(spec)
    if "width_multiplier" in d:
        _check_width_multipliers(spec)
    if "A" in d["shortcut"].values:
        if spec.stem_width != "inner":
            stem = max(d["stem_width"].values) if spec.stem_width is None else spec.stem_width
            for w in d["width"].values:
                if w < stem:
                    raise template_error(
                        where,
                        "shortcut",
                        f"option A cannot shrink {stem} stem channels (stem.width) to "
                        f"width {w}; raise width, narrow the stem or use shortcut B",
                    )
        elif "bottleneck" in blocks:  # the stem is as wide as the inner width, which may exceed the width
            if spec.ratio_mode:
                r, w = max(d["bottleneck_ratio"].values), min(d["width"].values)
                widest, how = r * w, f"width {w} x bottleneck_ratio {r:g}"
            else:
                c, bw, w = max(d["cardinality"].values), max(d["bottleneck_width"].values), min(d["width"].values)
                widest, how = c * bw, f"cardinality {c} x bottleneck_width {bw}"
            if widest > w:
                raise template_error(
                    where,
                    "shortcut",
                    f"option A cannot shrink a stem of width inner ({how} = {widest:g} "
                    f"channels) to width {w}; keep inner widths at most the width, give stem.width, "
                    "or use shortcut B",
                )
    split = spec.split  # a local, so that `need` below sees it narrowed
    if split is not None:

        def need(b: str, s: str) -> str:
            return f"(depth - {layers_outside_blocks(s)}) divisible by {CONVS_PER_BLOCK[b] * sum(split)}"

        combos = [(b, s) for b in blocks for s in d["stem"].values]
        totals = d["depth"].values
        for total in totals:
            if not any(blocks_for_total(total, b, s, split) for b, s in combos):
                rules = " or ".join(
                    dict.fromkeys(f"{need(b, s)} ({b}{', deep stem' if s == 'deep' else ''})" for b, s in combos)
                )
                raise template_error(
                    where,
                    "depth.total",
                    f"{total} layers cannot be split {list(split)} into whole blocks: need {rules}",
                )
        for b, s in combos:  # every block type with every stem must give some candidate
            if not any(blocks_for_total(total, b, s, split) for total in totals):
                shown = list(totals) if len(totals) <= 12 else f"{totals[0]}..{totals[-1]}"
                raise template_error(
                    where,
                    "depth.total",
                    f"no total in {shown} splits {list(split)} into whole {b} "
                    f"blocks with the {s} stem: need {need(b, s)}; add such a total, or drop {b} from "
                    f"block or {s} from stem.kind",
                )


def _check_inner_widths(spec: Spec) -> None:
    """Each width x bottleneck_ratio must be a whole inner width, divisible by every cardinality."""
    d, where = spec.dims, spec.source
    widths, ratios, cards = d["width"].values, d["bottleneck_ratio"].values, d["cardinality"].values
    if len(widths) * len(ratios) > MAX_PAIRS:
        raise template_error(
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
            raise template_error(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {inner:g} is not a whole number "
                "of channels: inner widths (width x ratio) must be positive integers",
            )
        if whole > MAX_INT:
            raise template_error(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {whole} channels; inner widths may be at most {MAX_INT}",
            )
        if whole % lcm:
            c = next(c for c in cards if whole % c)
            raise template_error(
                where,
                "bottleneck_ratio",
                f"width {w} x ratio {r:g} = {whole} is not a whole multiple of "
                f"cardinality {c}: inner widths must be divisible by the cardinality",
            )


def _check_width_multipliers(spec: Spec) -> None:
    """A width multiplier needs a x2 downsample to act on; below 1 it shrinks the widths, which option A
    cannot; and two multipliers that round to the same widths would make two names for one network."""
    d, where = spec.dims, spec.source
    factors = d["width_multiplier"].values
    steps = sum(s == 2 for s in spec.strides[1:])
    if steps == 0 and d["width_multiplier"].open:
        raise template_error(
            where, "width_multiplier", "is open but no stage after the first downsamples (strides): fix it to one value"
        )
    if "A" in d["shortcut"].values and steps and min(factors) < 1:
        raise template_error(
            where,
            "width_multiplier",
            f"{min(factors):g} shrinks the width at each downsample, which option A (zero-padding) cannot do; "
            "keep multipliers at least 1, or drop A from shortcut",
        )
    for w in d["width"].values:
        seen: dict[tuple, float] = {}
        for m in factors:
            widths = tuple(grown(w, m, j) for j in range(steps + 1))
            if widths in seen:
                raise template_error(
                    where,
                    "width_multiplier",
                    f"{seen[widths]:g} and {m:g} give width {w} the same stage widths "
                    f"{'-'.join(map(str, widths))}: drop one of them",
                )
            seen[widths] = m
