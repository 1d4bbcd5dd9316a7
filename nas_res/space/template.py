"""Reading a design-space template (YAML) into a checked `Spec`: its fixed parts and its dimensions.

Every mistake ends in one `ResnasError` naming the file, the field path and what is allowed,
so a user never sees a traceback for a bad template. What contradicts across fields is in `consistency`.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

from ..arch.description import (
    BLOCKS,
    LIKELIHOODS,
    MODULATIONS,
    SHORTCUTS,
    STEMS,
    STRIDE_ON,
    TASKS,
    UNIT_ORDERS,
)
from ..errors import ResnasError, a
from ..yamlfile import read_yaml
from .consistency import check_consistency
from .dims import MAX_INT, Dim, check_value, parse_dim, template_error
from .spec import Spec

TOP_KEYS = {
    "name": "a short name",
    "description": "free text",
    "resolution": "reference input side (int)",
    "in_channels": "input channels (int)",
    "classes": "output classes (int)",
    "stem": "{kind: DIM, width: DIM of ints | inner}",
    "strides": "list of 1/2, one per stage",
    "block": "DIM of basic/bottleneck",
    "depth": "{per_stage: [DIM, ...]}, {total: DIM, split: [int, ...]} or {first: DIM, ratio: DIM}",
    "width": "DIM: first stage's output width",
    "width_multiplier": "DIM: the width's factor at each x2 downsample (default 2, the ResNeXt rule)",
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
    if not isinstance(depth, dict) or set(depth) not in ({"per_stage"}, {"total", "split"}, {"first", "ratio"}):
        got = f"keys {sorted(map(str, depth))}" if isinstance(depth, dict) else repr(depth)
        raise template_error(
            where,
            "depth",
            "must be {per_stage: [DIM, ...]} (one per stage), {total: DIM, split: [...]} (a stage split of a "
            "total layer count) or {first: DIM, ratio: DIM} (the first stage's depth, times ratio per stage); "
            f"got {got}",
        )
    if "per_stage" in depth:
        per = depth["per_stage"]
        if not isinstance(per, list) or len(per) != n_stages:
            raise template_error(
                where, "depth.per_stage", f"must list one DIM per stage ({n_stages} stages); got {per!r}"
            )
        for i, raw in enumerate(per):
            dims[f"depth{i + 1}"] = parse_dim(where, f"depth.per_stage[{i}]", raw, int, f"depth{i + 1}")
    elif "first" in depth:
        dims["depth1"] = parse_dim(where, "depth.first", depth["first"], int, "depth1")
        dims["depth_ratio"] = parse_dim(where, "depth.ratio", depth["ratio"], float, "depth_ratio")
    else:
        split = depth["split"]
        if not isinstance(split, list) or len(split) != n_stages:
            raise template_error(
                where, "depth.split", f"must list one positive integer per stage ({n_stages}); got {split!r}"
            )
        split = tuple(check_value(where, f"depth.split[{i}]", s, int) for i, s in enumerate(split))
        dims["depth"] = parse_dim(where, "depth.total", depth["total"], int, "depth")

    dims["width"] = parse_dim(where, "width", data["width"], int)
    if "width_multiplier" in data:  # only where given: a stored space without one reads as it did
        dims["width_multiplier"] = parse_dim(where, "width_multiplier", data["width_multiplier"], float)
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
    check_consistency(spec)
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
