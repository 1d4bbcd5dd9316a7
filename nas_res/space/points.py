"""Which networks are points of a design space, and the Optuna parameters that make it build them.

A search queues the zoo nets its space expresses as its first trials (`study.enqueue_trial(params)`):
`params_of` gives those parameters, named and valued exactly as `DesignSpace.suggest` asks for them.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from ..arch.description import Arch
from ..errors import ResnasError
from .dims import STRUCTURE, Dim
from .template import Spec


class DesignSpace(Protocol):
    """What of a design space this module reads (`space.DesignSpace` is one; it imports this module)."""

    spec: Spec
    dims: dict[str, Dim]

    def arch_from(self, values: dict[str, Any]) -> Arch: ...

    def values_of(self, arch: Arch) -> dict[str, Any]: ...


BOTTLENECK_DIMS = ("cardinality", "bottleneck_width", "bottleneck_ratio")


def params_of(space: DesignSpace, arch: Arch) -> dict[str, Any] | None:
    """The parameters that make `space.suggest` build `arch` (fitted to the space's in_channels, classes and
    resolution: a search sets those from its data), or None when the space cannot express it.

    The numeric values (depths, widths, C, d, stem width) are read off the arch; the categorical ones are
    tried as the template spells them, since an Arch keeps one spelling of equivalent networks (a basic
    block's stride is on its 3x3 either way; option A is B where no unit changes shape). A candidate is a
    point when the space builds it with the arch's key: nothing else counts (zero-init of the last BN too).
    """
    spec, dims = space.spec, space.dims
    if len(arch.stages) != len(spec.strides):
        return None
    fitted = arch.replace(in_channels=spec.in_channels, classes=spec.classes, resolution=spec.resolution)
    numeric = _numeric_values(space, fitted)
    if numeric is None:
        return None
    own = tuple(getattr(fitted, k) for k in STRUCTURE)  # the usual spelling first: one try for most points
    combos = itertools.product(*(dims[k].values for k in STRUCTURE))
    for combo in itertools.chain([own] if all(v in dims[k].values for k, v in zip(STRUCTURE, own)) else [], combos):
        structure = dict(zip(STRUCTURE, combo))
        if structure["block"] != fitted.block or structure["stem"] != fitted.stem:
            continue
        values = {
            name: value
            for name, d in dims.items()
            if d.open
            and not (fitted.block == "basic" and name in BOTTLENECK_DIMS)  # as `suggest` skips them
            and (value := structure.get(name, numeric.get(name))) is not None
        }
        try:
            built = space.arch_from(values)
        except ResnasError:  # a combination no Arch can be (option A shrinking the stem's channels)
            continue
        if built.key == fitted.key:
            return {dims[name].name: value for name, value in values.items()}
    return None


def _numeric_values(space: DesignSpace, arch: Arch) -> dict[str, Any] | None:
    """The numeric dims' values that shape `arch`, each one of its dim's values; None when one is not."""
    first = arch.stages[0]
    if arch.block == "bottleneck" and not space.spec.ratio_mode and first.mid % first.groups:
        return None  # no whole d per group
    out: dict[str, Any] = {}
    for name, value in space.values_of(arch).items():  # open dims only: the key comparison checks the rest
        if name in STRUCTURE:
            continue
        d = space.dims[name]
        same = [v for v in d.values if v == value or (isinstance(v, float) and abs(v - value) <= 1e-9 * abs(v))]
        if not same:
            return None
        out[name] = same[0]  # the dim's own value (a float ratio as the template's grid spells it)
    return out
