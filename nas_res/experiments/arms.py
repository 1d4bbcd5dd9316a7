"""An experiment's arms, read and checked: a zoo net, an arch, an iso-complexity pick or a design space
sampled uniformly (restricted by `where`, inside a `budget`), each widened for `quick` and changed by
`with`; and the `{quick: .., full: ..}` values any field may take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..arch.description import Arch, Stage
from ..arch.zoo import get as zoo_get
from ..arch.zoo import names as zoo_names
from ..errors import ResnasError

if TYPE_CHECKING:
    from ..space.design_space import DesignSpace

SCALES = ("quick", "full")
ARM_KEYS = ("zoo", "arch", "iso", "space", "refine", "with", "label", "samples", "where", "budget")
SOURCES = ("zoo", "arch", "iso", "space", "refine")


@dataclass(frozen=True)
class Arm:
    """Fixed architectures (one, or an iso-complexity pick) or a design space sampled uniformly."""

    name: str
    label: str  # a line for tables: what this arm is
    archs: tuple[Arch, ...]  # one for a fixed arm; `samples` distinct ones for a space
    sampled: bool = False  # a space's sample: its models are the unit of comparison, one seed each
    draw: dict | None = None  # a space arm's sampling: {space, where, budget, samples}
    refines: str | None = None  # a refine arm: the space arm whose trained models refine its space (archs
    # come once that arm is trained: see `refined_arms`)


def at_scale(value: Any, scale: str) -> tuple[bool, Any]:
    """(present, value): a `{quick: .., full: ..}` mapping gives this scale's value, or not present."""
    if isinstance(value, dict) and value and set(value) <= set(SCALES):
        return scale in value, value.get(scale)
    return True, value


def parse_arm(name: str, spec: Any, scale: str, width: float, where: str) -> Arm | None:
    """One arm at `scale` (None: it exists at other scales only)."""
    field = f"arms.{name}"
    if not isinstance(spec, dict):
        raise ResnasError(f"must be a mapping with one of {', '.join(SOURCES)}", where=where, field=field)
    unknown = sorted(str(k) for k in spec if k not in ARM_KEYS)
    if unknown:
        raise ResnasError(f"unknown key; allowed: {', '.join(ARM_KEYS)}", where=where, field=f"{field}.{unknown[0]}")
    sources = [k for k in SOURCES if k in spec]
    if len(sources) != 1:
        raise ResnasError(
            f"must name exactly one source ({', '.join(SOURCES)}); got {sources or 'none'}", where=where, field=field
        )
    source = sources[0]
    present, value = at_scale(spec[source], scale)
    if not present:
        return None
    resolved = {k: at_scale(v, scale)[1] for k, v in spec.items() if k != source}
    changes = resolved.get("with") or {}
    if not isinstance(changes, dict):
        raise ResnasError("must be a mapping of arch fields", where=where, field=f"{field}.with")
    here = f"{where}: {field}"
    if source == "refine":
        extra = sorted(set(resolved) - {"label"})
        if extra or not isinstance(value, str):
            raise ResnasError(
                "a refine arm names the space arm it refines (refine: ARM) and may have a label; it samples as "
                f"many models as that arm, under its budget{f' (drop {extra[0]})' if extra else ''}",
                where=where,
                field=f"{field}.{extra[0] if extra else 'refine'}",
            )
        label = resolved.get("label") or f"{value}'s space refined on its models, sampled anew"
        return Arm(name, str(label), (), sampled=True, refines=value)
    try:
        if source == "space":
            return _space_arm(name, value, resolved, changes, width, here)
        if source == "zoo":
            if value not in zoo_names():
                raise ResnasError(f"unknown zoo name {value!r}; see resnas zoo", field=f"{field}.zoo")
            arch, label = zoo_get(value), str(value)
        elif source == "arch":
            arch = Arch.from_dict(value, where=here)
            label = arch.summary()
        else:
            arch, label = _iso(value, field)
        arch = _changed(_widened(arch, width), changes)
    except ResnasError as e:
        raise ResnasError(e.bare, where=where, field=e.field or field) from None
    label = str(resolved.get("label") or (label + "".join(f" {k}={v}" for k, v in changes.items())))
    return Arm(name, label, (arch,))


def _changed(arch: Arch, changes: dict) -> Arch:
    fields = {f.name for f in dataclasses.fields(Arch) if f.init} - {"stages"}
    bad = sorted(set(changes) - fields)
    if bad:
        raise ResnasError(f"unknown arch field {bad[0]!r}; allowed: {', '.join(sorted(fields))}", field="with")
    return Arch.from_dict({**arch.to_dict(), **changes})


def _widened(arch: Arch, factor: float) -> Arch:
    """Every width times `factor` (at least one channel per group; inner widths kept divisible by the
    cardinality), so that `quick` can train the papers' nets at a fraction of their cost."""
    if factor == 1:
        return arch

    def scaled(value: int, multiple: int = 1) -> int:
        return max(multiple, round(value * factor / multiple) * multiple)

    stages = tuple(Stage(s.depth, scaled(s.width), s.stride, scaled(s.mid, s.groups), s.groups) for s in arch.stages)
    return arch.replace(stem_width=scaled(arch.stem_width), stages=stages)


def _iso(value: Any, field: str) -> tuple[Arch, str]:
    """{like: ZOO|arch mapping, cardinality: C, match: flops|params}: ResNeXt's complexity-preserving pick."""
    if not isinstance(value, dict) or "like" not in value or "cardinality" not in value:
        raise ResnasError("must be {like: a zoo name or arch, cardinality: C, match: flops|params}", field=field)
    from ..space.iso import MATCHES, iso_cardinality  # here: an experiment without iso arms is read without torch

    like = value["like"]
    ref = zoo_get(like) if isinstance(like, str) else Arch.from_dict(like, where=f"{field}.iso.like")
    match = value.get("match", "flops")
    if match not in MATCHES:
        raise ResnasError(f"must be one of {', '.join(MATCHES)}; got {match!r}", field=f"{field}.iso.match")
    (result,) = iso_cardinality(ref, [value["cardinality"]], match)
    return result.arch, f"{result.label} (iso-{match} with {like if isinstance(like, str) else 'the reference'})"


def _space_arm(name: str, value: Any, resolved: dict, changes: dict, width: float, where: str) -> Arm:
    """`samples` distinct archs drawn uniformly from a template (restricted by `where`) inside `budget`."""
    from ..space.design_space import load_space  # here: an experiment without space arms is read without torch

    space = load_space(str(value))
    samples = resolved.get("samples", 50)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 10_000:
        raise ResnasError(f"must be an integer from 1 to 10000; got {samples!r}", field=f"arms.{name}.samples")
    space = subspace(space, resolved.get("where") or {}, f"arms.{name}.where")
    archs = space.sample(samples, resolved.get("budget"), seed=0)
    if not archs:
        raise ResnasError("no architecture of this space fits the budget", field=f"arms.{name}.budget")
    archs = [_changed(_widened(a, width), changes) for a in archs]
    fixed = ", ".join(f"{k}={v}" for k, v in (resolved.get("where") or {}).items())
    label = resolved.get("label") or f"{len(archs)} samples of {space.name}" + (f" ({fixed})" if fixed else "")
    draw = {"space": str(value), "where": resolved.get("where") or {}, "budget": resolved.get("budget")}
    draw |= {"samples": samples, "plain": width == 1 and not changes}  # plain: its nets are points of the space
    return Arm(name, str(label), tuple(archs), sampled=True, draw=draw)


def subspace(space: DesignSpace, fixed: Any, field: str) -> DesignSpace:
    """The part of `space` where each named dimension takes one of the given values (a value or a list)."""
    from ..space.design_space import DesignSpace

    if not isinstance(fixed, dict):
        raise ResnasError("must be a mapping of dimension -> value(s)", field=field)
    dims = dict(space.spec.dims)
    for key, want in fixed.items():
        if key not in dims:
            raise ResnasError(f"the space has no dimension {key!r}; it has {', '.join(sorted(dims))}", field=field)
        values = want if isinstance(want, list) else [want]
        keep = tuple(v for v in dims[key].values if v in values)
        if not keep:
            raise ResnasError(f"{key} takes {list(dims[key].values)} in this space; got {want!r}", field=field)
        dims[key] = dataclasses.replace(dims[key], values=keep, kind="fixed" if len(keep) == 1 else dims[key].kind)
    return DesignSpace(dataclasses.replace(space.spec, dims=dims))
