"""A refine arm's models: the trained models of the space arm it names refine that arm's space (as
`resnas refine` refines a uniform study), and the refined space is sampled anew, under the same budget,
as many models, with another seed (an independent sample: the claim is about the space, not about the
models the refinement was read from).

The refinement is deterministic (seeded bootstrap, seeded sampling), so an experiment run again resolves
the same arm and resumes its training.
"""

from __future__ import annotations

import dataclasses

from ..arch.budget import Budget
from ..results.refine import ALPHA, LEVEL, REPEATS, SHARE
from ..results.store import Store
from ..search.refinement import refine_runs
from ..space.design_space import load_space
from .arms import Arm, subspace
from .spec import Experiment

RESAMPLE_SEED = 1  # the space arm drew its models with seed 0


def pending(exp: Experiment) -> list[Arm]:
    """Refine arms not resolved yet (their space arm still to be trained, or just trained)."""
    return [a for a in exp.arms if a.refines and not a.archs]


def resolve(exp: Experiment, storage: str | None, shape: dict) -> Experiment | None:
    """`exp` with each pending refine arm's models drawn from its refined space, fitted to `shape` (the
    data's channels, classes and side), and the refinement kept (`exp.refinements`); None while a space
    arm it refines has models without a finished run."""
    store = Store(storage, must_exist=False)  # a first run: no database yet, no runs
    try:
        runs = store.runs(exp.study)
    finally:
        store.dispose()
    ended = {r.arch_key for r in runs if r.status.terminal and r.status.counts}
    arms, refinements = [], dict(exp.refinements or {})
    for arm in exp.arms:
        if not arm.refines or arm.archs:  # not a refine arm waiting
            arms.append(arm)
            continue
        parent = exp.arm(arm.refines)
        keys = {a.key for a in parent.archs}
        if not keys <= ended:
            return None
        draw = parent.draw
        assert draw is not None, "a refine arm's parent draws its models (checked when the experiment loads)"
        space = subspace(load_space(draw["space"]), draw["where"], f"arms.{parent.name}.where")
        budget = Budget.parse(draw["budget"]) if draw["budget"] else Budget()
        options = {"share": SHARE, "repeats": REPEATS, "level": LEVEL, "alpha": ALPHA, "seed": 0}
        found = refine_runs(
            space,
            [r for r in runs if r.arch_key in keys],
            budget,
            study=f"{exp.study}, arm {parent.name}",
            options=options,
            more=("", f": give arm {parent.name} more samples"),
        )
        assert found.refined_space is not None, "refine_runs raises where it cannot refine"
        archs = found.refined_space.sample(draw["samples"], budget, seed=RESAMPLE_SEED)
        refinements[arm.name] = {**found.to_dict(), "parent": parent.name, "resample_seed": RESAMPLE_SEED}
        arms.append(dataclasses.replace(arm, archs=tuple(a.replace(**shape) for a in archs)))
    return dataclasses.replace(exp, arms=tuple(arms), refinements=refinements)
