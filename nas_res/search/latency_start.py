"""The start-up of a search under `--max-latency`: its nets drawn where the limit is likely met.

Drawn uniformly from the nets that fit the FLOPs budget, the start-up wastes its time when the latency
limit admits few of them: on `small-resnext` at ResNet-20's CPU latency with no FLOPs cap, about 1 in 30,
so 34 suggestions were refused and 1 net trained in 15.6 minutes, each refusal a lookup-table prediction
(its new parts timed). Once the study has timed `MIN_FIT` nets (measured whole, or predicted by the table
and refused: most of them, when few nets fit), their latency is fitted as a x MFLOPs + b x layers + c
(least squares on the relative error, coefficients >= 0: the lookup table's additive model at the grain of
a whole net, a layer's fixed cost standing for what FLOPs miss), and each start-up net is drawn uniformly
from those of a pool of `POOL` budget-feasible nets that the fit puts under the limit (the pool's fastest
when none is). The fit only chooses what to time: the table still screens and the measurement decides.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FixedTrial, FrozenTrial

from ..arch.cost import cost
from ..arch.description import Arch
from ..errors import ResnasError
from ..space.design_space import DesignSpace

MIN_FIT = 6  # nets timed (measured, or predicted by the table) before their fit chooses the start-up's nets
POOL = 64  # budget-feasible nets drawn per start-up trial, among which the fit chooses


def features(arch: Arch) -> list[float]:
    return [cost(arch).flops / 1e6, float(arch.depth), 1.0]


@dataclass(frozen=True)
class LatencyFit:
    """Milliseconds as a x MFLOPs + b x layers + c, fitted on nets timed."""

    weights: tuple[float, ...]
    nets: int

    @classmethod
    def fit(cls, archs: Sequence[Arch], ms: Sequence[float]) -> LatencyFit | None:
        """The fit, or None with fewer than MIN_FIT nets."""
        import numpy as np
        from scipy.optimize import nnls

        if len(archs) < MIN_FIT:
            return None
        y = np.asarray(ms, dtype=float)
        x = np.asarray([features(a) for a in archs]) / y[:, None]  # each row / its ms: relative error
        weights, _ = nnls(x, np.ones(len(y)))
        return cls(tuple(float(w) for w in weights), len(archs))

    def predict(self, arch: Arch) -> float:
        return sum(w * f for w, f in zip(self.weights, features(arch)))


def timed_fit(trials: Sequence[FrozenTrial], space: DesignSpace, shape: dict) -> LatencyFit | None:
    """The fit on the study's nets timed so far, measured whole or predicted by the table (their parameters
    rebuild them)."""
    archs, ms = [], []
    for t in trials:
        if t.user_attrs.get("latency_ms") is None or not t.params:
            continue
        try:
            arch = space.suggest(FixedTrial(t.params)).replace(**shape)
        except (ResnasError, ValueError):  # a trial the space cannot rebuild (NotACandidate) says nothing
            continue
        archs.append(arch)
        ms.append(float(t.user_attrs["latency_ms"]))
    return LatencyFit.fit(archs, ms)


def choose_under(
    fit: LatencyFit, pool: Sequence[tuple[Arch, dict[str, Any]]], max_ms: float, rng: random.Random
) -> dict[str, Any] | None:
    """The parameters of a net drawn uniformly from those of `pool` (arch, params) the fit puts under
    `max_ms`; the pool's fastest by the fit where none is; None for an empty pool."""
    if not pool:
        return None
    predicted = [fit.predict(arch) for arch, _ in pool]
    under = [params for (_, params), ms in zip(pool, predicted) if ms <= max_ms]
    if under:
        return rng.choice(under)
    return pool[min(range(len(pool)), key=predicted.__getitem__)][1]
