"""A checked template (`Spec`) written back as template YAML, with some dimensions cut to fewer values:
a refined space (`resnas refine`) that `load_space` and `resnas space show` read like any template.

Each cut field carries a YAML comment (its evidence); everything else is written as the template said
it. What is written is read back and checked before it is returned, so a cut that makes the template
contradict itself (a depth total no bottleneck block splits into) is reported, never written.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ResnasError
from .dims import Dim
from .template import Spec, parse_spec

BOTTLENECK_ONLY = ("cardinality", "bottleneck_width", "bottleneck_ratio")  # a basic block has none of these


def narrowed_text(
    spec: Spec, keep: dict[str, tuple], comments: dict[str, str], *, name: str, header: str = ""
) -> tuple[str, Spec]:
    """The template of `spec` with each dimension of `keep` cut to those values (in `spec`'s order), the
    comment of `comments` beside it, named `name`; and that text read back as a checked `Spec`. A space
    left with basic blocks only has its bottleneck dimensions fixed (a template may not open them then).
    A cut that does not make a valid template raises `ResnasError` naming the field."""
    dims = {k: _cut(d, keep.get(k)) for k, d in spec.dims.items()}
    notes = dict(comments)
    if "bottleneck" not in dims["block"].values:
        for k in BOTTLENECK_ONLY:
            if k in dims and dims[k].open:
                dims[k] = Dim(k, dims[k].values[:1], "fixed")
                notes[k] = "fixed: every block is basic, which has no inner width or groups"
        if dims["cardinality"].values != (1,):
            dims["cardinality"] = Dim("cardinality", (1,), "fixed")
    wanted = {k: d.values for k, d in dims.items()}
    for as_lists in (False, True):  # a cut range is written as a range; a list where that reads back otherwise
        text = template_text(spec, dims, notes, name=name, header=header, as_lists=as_lists)
        refined = parse_spec(yaml.safe_load(text), f"refined {spec.name}")
        if {k: d.values for k, d in refined.dims.items()} == wanted:
            return text, refined
    raise ResnasError(f"the refined template of {spec.name} does not read back as written", field="space")


def _cut(d: Dim, values: tuple | None) -> Dim:
    if values is None or tuple(values) == d.values:
        return d
    kept = tuple(v for v in d.values if v in values)
    if not kept:
        raise ResnasError(f"cannot cut {d.name} to none of its values", field=d.name)
    return Dim(
        d.name, kept, "fixed" if len(kept) == 1 else ("range" if d.kind == "range" else "choices"), d.step, d.log
    )


def template_text(
    spec: Spec, dims: dict[str, Dim], comments: dict[str, str], *, name: str, header: str = "", as_lists: bool = False
) -> str:
    """Template YAML for `spec` with `dims` in place of its dimensions, one flow-style value per field and
    `comments` (dimension name -> text) at the end of their lines."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]

    def field(key: str, value: Any, dim: str = "", indent: str = "") -> None:
        note = f"  # {comments[dim]}" if dim in comments else ""
        lines.append(f"{indent}{key}: {_flow(value)}{note}")

    def dim_value(k: str) -> Any:
        return _dim_raw(dims[k], spec.dims[k], as_lists)

    field("name", name)
    if spec.description:
        field("description", spec.description)
    field("resolution", spec.resolution)
    field("in_channels", spec.in_channels)
    field("classes", spec.classes)
    if spec.task != "classify":
        field("task", spec.task)
        for key in ("latent", "likelihood"):
            if getattr(spec, key) is not None:
                field(key, getattr(spec, key))
    lines.append("stem:")
    field("kind", dim_value("stem"), "stem", "  ")
    if spec.stem_width is None:
        field("width", dim_value("stem_width"), "stem_width", "  ")
    else:
        field("width", spec.stem_width, indent="  ")
    field("strides", list(spec.strides))
    field("block", dim_value("block"), "block")
    lines.append("depth:")
    if "depth_ratio" in spec.dims:
        field("first", dim_value("depth1"), "depth1", "  ")
        field("ratio", dim_value("depth_ratio"), "depth_ratio", "  ")
    elif spec.split is None:
        lines.append("  per_stage:")
        for i in range(len(spec.strides)):
            k = f"depth{i + 1}"
            note = f"  # {comments[k]}" if k in comments else ""
            lines.append(f"    - {_flow(dim_value(k))}{note}")
    else:
        field("total", dim_value("depth"), "depth", "  ")
        field("split", list(spec.split), indent="  ")
    for k in (
        "width",
        "width_multiplier",
        "cardinality",
        "bottleneck_ratio" if spec.ratio_mode else "bottleneck_width",
    ):
        if k in spec.dims:
            field(k, dim_value(k), k)
    for k in ("shortcut", "unit_order", "stride_on", "modulation"):
        field(k, dim_value(k), k)
    if spec.modulation_value is not None:
        field("modulation_value", spec.modulation_value)
    if spec.zero_init_last_bn:
        field("zero_init_last_bn", True)
    return "\n".join(lines) + "\n"


def _dim_raw(d: Dim, original: Dim, as_lists: bool) -> Any:
    """A dimension as a template spells it: a value, a list, or a range (a cut range stays a range where
    its values are a run of the original's grid)."""
    if len(d.values) == 1:
        return d.values[0]
    if d.kind != "range" or (as_lists and d.values != original.values):
        return list(d.values)
    start = original.values.index(d.values[0])
    if original.values[start : start + len(d.values)] != d.values:  # not a run of the grid: list them
        return list(d.values)
    raw: dict[str, Any] = {"range": [d.values[0], d.values[-1]]}
    if d.step != 1 or isinstance(d.values[0], float):
        raw["step"] = d.step
    if d.log:
        raw["log"] = True
    return raw


def _flow(value: Any) -> str:
    """One YAML value on one line (flow style): `[basic, bottleneck]`, `{range: [1, 9]}`, `'3x3'`."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False)
    return text.removesuffix("\n...\n").strip()
