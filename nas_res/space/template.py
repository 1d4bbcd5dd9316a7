"""Reading a design-space template (YAML) into a checked `Spec`: its fixed parts and its dimensions.

Every mistake ends in one `ResnasError` naming the file, the field path and what is allowed,
so a user never sees a traceback for a bad template.

Over 300 lines: one reader of one file format, each field's check with its message.
"""

from __future__ import annotations

import difflib
import itertools
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..arch.description import (
    BLOCKS,
    CONVS_PER_BLOCK,
    LIKELIHOODS,
    MODULATIONS,
    SHORTCUTS,
    STEMS,
    STRIDE_ON,
    TASKS,
    UNIT_ORDERS,
    blocks_for_total,
    layers_outside_blocks,
)
from ..errors import ResnasError, a
from ..yamlfile import read_yaml
from .dims import MAX_INT, Dim, check_value, parse_dim, template_error

TOP_KEYS = {
    "name": "a short name",
    "description": "free text",
    "resolution": "reference input side (int)",
    "in_channels": "input channels (int)",
    "classes": "output classes (int)",
    "stem": "{kind: DIM, width: DIM of ints | inner}",
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
    "task": "classify (default) or vae: every candidate is the encoder of a VAE, its decoder mirrored",
    "latent": "a VAE's latent dimension (int, default 32)",
    "likelihood": "a VAE's pixel likelihood: bernoulli (default) or gaussian",
}
MAX_PAIRS = 1_000_000  # width x bottleneck_ratio pairs checked for whole, divisible inner widths


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
    stem_width: int | str | None  # an int, "inner" (the first stage's inner width), or None: dims["stem_width"]
    split: tuple | None  # stage split of a total depth; None when depth is per stage
    modulation_value: float | None
    zero_init_last_bn: bool
    ratio_mode: bool  # inner width from bottleneck_ratio instead of bottleneck_width
    dims: dict  # name -> Dim
    task: str = "classify"  # vae: every candidate is a VAE's encoder (see Arch.task)
    latent: int | None = None  # a VAE's, as Arch
    likelihood: str | None = None


def read_template(path: Path) -> Any:
    return read_yaml(path, "template")


def builtin_spaces() -> list[str]:
    """Names of the templates shipped in `search_spaces/`."""
    folder = resources.files("nas_res.search_spaces")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(name_or_path: str | Path) -> Spec:
    """The checked template of a built-in space by name (`resnext`) or of a YAML file by path; no torch
    is imported, so a command can refuse a bad template before it loads its machinery."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.exists()):
        if text not in builtin_spaces():
            raise ResnasError(
                f"unknown space {text!r}: not a file, and not a built-in template ({', '.join(builtin_spaces())})"
            )
        with resources.as_file(resources.files("nas_res.search_spaces") / f"{text}.yaml") as p:
            return parse_spec(read_template(p), f"{text}.yaml")
    return parse_spec(read_template(path), str(path))


def parse_spec(data: Any, where: str) -> Spec:
    if not isinstance(data, dict):
        got = "an empty file" if data is None else a(type(data).__name__)
        raise template_error(
            where, "", f"a template must be a mapping of keys (resolution: ..., width: ..., ...); got {got}"
        )
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], TOP_KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise template_error(where, unknown[0], f"unknown key{hint}; allowed: " + ", ".join(TOP_KEYS))
    task = data.get("task", "classify")
    if task not in TASKS:
        raise template_error(where, "task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    for key in ("resolution", "classes", "strides", "depth", "width"):
        if key not in data and not (key == "classes" and task == "vae"):  # a VAE predicts no classes
            raise template_error(where, key, f"missing; expected {TOP_KEYS[key]}")
    if task == "classify":
        for key in ("latent", "likelihood"):
            if key in data:
                raise template_error(where, key, "only a VAE has one: add task: vae, or drop it")
    latent = check_value(where, "latent", data["latent"], int) if "latent" in data else None
    likelihood = data.get("likelihood")
    if likelihood is not None and likelihood not in LIKELIHOODS:
        raise template_error(where, "likelihood", f"must be one of {', '.join(LIKELIHOODS)}; got {likelihood!r}")

    def fixed_int(key: str, default: int | None = None) -> int:
        return check_value(where, key, data.get(key, default), int)

    resolution, in_channels = fixed_int("resolution"), fixed_int("in_channels", 3)
    classes = fixed_int("classes", 1 if task == "vae" else None)
    strides = data["strides"]
    if not isinstance(strides, list) or not strides or any(s not in (1, 2) or isinstance(s, bool) for s in strides):
        raise template_error(where, "strides", f"must be a non-empty list of 1 or 2, one per stage; got {strides!r}")
    n_stages = len(strides)

    dims: dict[str, Dim] = {}
    stem = data.get("stem", {"kind": "imagenet", "width": 64})
    if isinstance(stem, str):
        stem = {"kind": stem}
    stem_help = f"must be a stem kind ({', '.join(STEMS)}) or {{kind: DIM of those, width: DIM of ints | inner}}"
    if not isinstance(stem, dict):
        raise template_error(where, "stem", f"{stem_help}; got {stem!r}")
    unknown = sorted(str(k) for k in stem if k not in ("kind", "width"))
    if unknown:
        raise template_error(where, f"stem.{unknown[0]}", f"unknown key; {stem_help}")
    dims["stem"] = parse_dim(where, "stem.kind", stem.get("kind", "imagenet"), STEMS, "stem")
    stem_width = _stem_width(where, stem.get("width", 64), dims)

    dims["block"] = parse_dim(where, "block", data.get("block", "bottleneck"), BLOCKS)
    depth = data["depth"]
    split = None
    if not isinstance(depth, dict) or set(depth) not in ({"per_stage"}, {"total", "split"}):
        got = f"keys {sorted(map(str, depth))}" if isinstance(depth, dict) else repr(depth)
        raise template_error(
            where,
            "depth",
            "must be {per_stage: [DIM, ...]} (one per stage) or {total: DIM, split: [...]} "
            f"(a stage split of a total layer count); got {got}",
        )
    if "per_stage" in depth:
        per = depth["per_stage"]
        if not isinstance(per, list) or len(per) != n_stages:
            raise template_error(
                where, "depth.per_stage", f"must list one DIM per stage ({n_stages} stages); got {per!r}"
            )
        for i, raw in enumerate(per):
            dims[f"depth{i + 1}"] = parse_dim(where, f"depth.per_stage[{i}]", raw, int, f"depth{i + 1}")
    else:
        split = depth["split"]
        if not isinstance(split, list) or len(split) != n_stages:
            raise template_error(
                where, "depth.split", f"must list one positive integer per stage ({n_stages}); got {split!r}"
            )
        split = tuple(check_value(where, f"depth.split[{i}]", s, int) for i, s in enumerate(split))
        dims["depth"] = parse_dim(where, "depth.total", depth["total"], int, "depth")

    dims["width"] = parse_dim(where, "width", data["width"], int)
    dims["cardinality"] = parse_dim(where, "cardinality", data.get("cardinality", 1), int)
    if "bottleneck_width" in data and "bottleneck_ratio" in data:
        raise template_error(where, "bottleneck_ratio", "give bottleneck_width or bottleneck_ratio, not both")
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
            raise template_error(where, "modulation_value", f"must be a finite number; got {mod_value!r}")
        mod_value = float(mod_value)
        bounded = [m for m in dims["modulation"].values if m in ("scale", "dropout")]
        if bounded and not 0.0 <= mod_value <= 1.0:
            raise template_error(
                where,
                "modulation_value",
                f"must be between 0 and 1 for modulation {bounded[0]} (a factor or a probability); got {mod_value:g}",
            )
    zero = data.get("zero_init_last_bn", False)
    if not isinstance(zero, bool):
        raise template_error(where, "zero_init_last_bn", f"must be true or false; got {zero!r}")

    name = data.get("name", Path(where).stem)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise template_error(where, "name" if not isinstance(name, str) else "description", "must be text")
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
        task,
        latent,
        likelihood,
    )
    _check_consistency(spec)
    return spec


def _stem_width(where: str, raw: Any, dims: dict) -> int | str | None:
    """stem.width: an int, `inner`, or a DIM of ints (a list or range), which becomes dims["stem_width"]
    when it holds several values (one value is the fixed int it names)."""
    if raw == "inner":
        return "inner"
    if isinstance(raw, (list, dict)):
        choices = raw.get("choices") if isinstance(raw, dict) else raw
        if isinstance(choices, list) and "inner" in choices:
            raise template_error(
                where, "stem.width", "inner (as wide as the first stage's inner width) stands alone, not among choices"
            )
        dim = parse_dim(where, "stem.width", raw, int, "stem_width")
        if dim.open:
            dims["stem_width"] = dim
            return None
        return dim.values[0]
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_INT:
        raise template_error(
            where,
            "stem.width",
            f"must be a positive integer (at most {MAX_INT}), a DIM of them (a list, or {{range: [low, high], "
            f"step: s}}) or inner (as wide as the first stage's inner width); got {raw!r}",
        )
    return raw


def _check_consistency(spec: Spec) -> None:
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
