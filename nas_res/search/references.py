"""The hand picks in the race: the zoo nets a search's space expresses and its budget admits, queued as its
first trials, so that its leaderboard can say whether the search beat what a person would have picked.

A reference is trained like any other trial (the sampler learns from it: PriorBand's lesson, a good prior
helps and a bad one is survivable) and is remembered by its architecture key in the study's record, so
every report can mark it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.trial import FixedTrial

from ..arch import zoo
from ..arch.budget import Budget, human
from ..arch.cost import cost
from ..errors import ResnasError
from ..space.design_space import DesignSpace

FIELD = "--reference"


@dataclass(frozen=True)
class Reference:
    """A zoo net as a point of the space: its name, the parameters that build it, and its key there."""

    name: str
    params: dict[str, Any]
    arch_key: str
    flops: int


def parse_names(text: object) -> tuple[str, ...] | None:
    """`--reference resnet20_cifar,mnist_resnet` (or a study file's list) as names; None: not given.
    An unknown name is refused with the known ones, and so is anything else (a study file's number)."""
    if text is None:
        return None
    if not isinstance(text, (str, list, tuple)):
        raise ResnasError(f"must be zoo names (resnet20_cifar,mnist_resnet) or none; got {text!r}", field=FIELD)
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(str(n).strip() for n in items if str(n).strip()))  # a name given twice: once
    if not names:
        raise ResnasError("names no zoo net; give names (resnet20_cifar,mnist_resnet) or --no-reference", field=FIELD)
    known = zoo.names()
    for n in names:
        if n not in known:
            raise ResnasError(f"unknown zoo name {n!r}; known: {', '.join(known)} (see `resnas zoo`)", field=FIELD)
    return names


def pick(
    space: DesignSpace, budget: Budget, shape: dict, names: tuple[str, ...] | None
) -> tuple[list[Reference], list[str]]:
    """The references to queue, and a note per named net left out (not a point of the space, or over the
    budget). `names=None`: every zoo net that fits, silently skipping the rest; `()`: none."""
    chosen = names if names is not None else tuple(zoo.names())
    refs: list[Reference] = []
    notes: list[str] = []
    for name in chosen:
        params = space.params_of(zoo.get(name))
        if params is None:
            if names is not None:
                notes.append(f"reference {name} is not a point of space {space.name!r}: not queued")
            continue
        arch = space.suggest(FixedTrial(params)).replace(**shape)
        price = cost(arch)
        if budget.excess(price) > 0:
            if names is not None:
                notes.append(
                    f"reference {name} ({human(price.flops)}FLOPs, {human(price.params)} params) is over the "
                    f"budget ({budget.describe()}): not queued"
                )
            continue
        refs.append(Reference(name, params, arch.key, price.flops))
    return refs, notes
