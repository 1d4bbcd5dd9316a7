"""Running an experiment: every arm x seed trained as the given trials of one study (`NAME-SCALE`), on the
usual workers and storages, resumable; then each trained network evaluated on the test split.

The architectures are fitted to the data's shape (channels, classes, resolution) before they are given,
so the keys stored with the runs are the ones the report looks for; the experiment's definition (arms
with their architectures, checks, the paper's figures) is stored with the study, so a report needs
only the storage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.dataset import load_data
from ..errors import ResnasError
from ..results.export import evaluate_runs
from ..results.store import Store
from ..search.config import SearchConfig
from ..search.coordinator import GRACE, HEARTBEAT, Coordinator, Given
from ..search.plan import StudyChanged, plan
from ..search.state import SearchState
from .refined_arms import pending, resolve
from .spec import Experiment, load_experiment

SNAPSHOT = "experiment"  # the key of the experiment's definition in its study's stored config


def data_shape(exp: Experiment, data_dir: str | None = None) -> dict:
    """The arch fields the experiment's data fixes: channels, classes (none for a VAE) and side."""
    data = load_data(exp.dataset, data_dir=data_dir, val_size=exp.val_size, train_size=exp.train_size)
    shape = {"in_channels": data.channels, "classes": data.classes, "resolution": data.size}
    if exp.task == "vae":
        del shape["classes"]  # a VAE predicts no classes: it reconstructs its images
    return shape


def fitted(exp: Experiment, data_dir: str | None = None, shape: dict | None = None) -> Experiment:
    """`exp` with every arch shaped for its dataset: what the trainer builds, and the keys it stores."""
    shape = shape or data_shape(exp, data_dir)
    arms = tuple(dataclasses.replace(a, archs=tuple(x.replace(**shape) for x in a.archs)) for a in exp.arms)
    return dataclasses.replace(exp, arms=arms)


def given_of(exp: Experiment) -> list[Given]:
    """Each fixed arm once per seed (0, 1, ...); each model of a sampled arm once, seed 0. An architecture
    in two arms (the identity net among both shortcut and unit-order variants) is trained once."""
    pairs = [
        Given(arch, seed)
        for arm in exp.arms
        for arch in arm.archs
        for seed in (range(1) if arm.sampled else range(exp.seeds))
    ]
    return list(dict.fromkeys(pairs))


def plan_experiment(
    name_or_path: str | Path | Experiment,
    scale: str = "quick",
    *,
    storage: str | None = None,
    host: dict | None = None,
) -> tuple[Experiment, list[Given], SearchConfig]:
    """The experiment at `scale` (or one already fitted, with its refine arms resolved: `next_stage`), what
    it trains, and the search config of its study."""
    host = {k: v for k, v in (host or {}).items() if v is not None}
    if isinstance(name_or_path, Experiment):
        exp = name_or_path
    else:
        exp = load_experiment(name_or_path, scale)
        shape = data_shape(exp, host.get("data_dir"))
        exp = fitted(exp, shape=shape)
        if pending(exp):  # run before: a refine arm whose space arm is trained is resolved at once
            exp = resolve(exp, storage, shape) or exp
    given = given_of(exp)
    options = {
        **host,
        "study": exp.study,
        "storage": storage,
        "space": "cifar-resnet",  # pinned with every study; an experiment's arms are given, never sampled
        "dataset": exp.dataset,
        "val_size": exp.val_size,
        "train_size": exp.train_size,
        "recipe": exp.recipe,
        "objective": "nelbo" if exp.task == "vae" else "accuracy",
        **_vae_options(exp),
        "sampler": "random",
        "pruner": "none",  # every arm trains in full: the claims are about where training ends
        "trials": len(given),
    }
    options.setdefault("keep_checkpoints", "all" if exp.test else "best:5")  # --test reads every network
    try:
        config, _ = plan(options)
    except StudyChanged as e:
        raise ResnasError(
            f"experiment {exp.name!r} at scale {scale!r} was run before with other settings: {e.changed}; its "
            f"study {exp.study!r} keeps them. Restore the file's recipe and data, or delete that study "
            f"(resnas study delete {exp.study})",
            field="experiment",
        ) from None
    return exp, given, config


def _vae_options(exp: Experiment) -> dict:
    """A VAE experiment's study is a VAE search: its task, latent and likelihood (every arm shares them)."""
    if exp.task != "vae":
        return {}
    arch = exp.arms[0].archs[0]
    return {"task": "vae", "latent": arch.latent, "likelihood": arch.likelihood}


def prepare_experiment(
    name_or_path: str | Path | Experiment,
    scale: str = "quick",
    *,
    storage: str | None = None,
    host: dict | None = None,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
) -> tuple[Experiment, Coordinator]:
    """The experiment and the coordinator that trains it, its definition stored with its study."""
    exp, given, config = plan_experiment(name_or_path, scale, storage=storage, host=host)
    coordinator = Coordinator(config, on_update, given=given, heartbeat=heartbeat, grace=grace)
    store = Store(storage)
    try:
        store.set_study_values(exp.study, **{SNAPSHOT: exp.snapshot()})
    finally:
        store.dispose()
    return exp, coordinator


def next_stage(
    exp: Experiment,
    *,
    storage: str | None = None,
    host: dict | None = None,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
) -> tuple[Experiment, Coordinator] | None:
    """After a stage has trained: the experiment with its refine arms resolved (their space arms' models
    refine the spaces, which are sampled anew) and the coordinator that trains them; None when no refine
    arm waits, or one waits on models still untrained (an interrupted stage)."""
    if not pending(exp):
        return None
    data_dir = (host or {}).get("data_dir")
    resolved = resolve(exp, storage, data_shape(exp, data_dir))
    if resolved is None:
        return None
    return prepare_experiment(
        resolved, exp.scale, storage=storage, host=host, on_update=on_update, heartbeat=heartbeat, grace=grace
    )


def run_experiment(
    name_or_path: str | Path,
    scale: str = "quick",
    *,
    storage: str | None = None,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
    workers: int | None = None,
    gpus: Sequence[int] | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
    checkpoints: str | None = None,
    keep_checkpoints: str | None = None,
    timeout: str | float | None = None,
) -> tuple[Experiment, SearchState]:
    """Train every arm x seed of the experiment (resuming what is done), then test each network where the
    experiment asks for it (as `resnas experiment run`). Returns the experiment as trained and the
    study's final state; `experiment_report` reads the results."""
    host = {
        "workers": workers,
        "gpus": list(gpus) if gpus else None,
        "threads": threads,
        "data_dir": data_dir,
        "checkpoints": checkpoints,
        "keep_checkpoints": keep_checkpoints,
        "timeout": timeout,
    }
    options: dict[str, Any] = {"on_update": on_update, "heartbeat": heartbeat, "grace": grace}
    exp, coordinator = prepare_experiment(name_or_path, scale, storage=storage, host=host, **options)
    state = coordinator.run()
    while not state.interrupted and (stage := next_stage(exp, storage=storage, host=host, **options)) is not None:
        exp, coordinator = stage
        state = coordinator.run()
    if exp.test and not state.interrupted:
        test_all(exp, storage, data_dir=data_dir, device=f"cuda:{gpus[0]}" if gpus else "auto")
    return exp, state


def test_all(exp: Experiment, storage: str | None, *, data_dir: str | None, device: str) -> int:
    """Evaluate on the test split each trained network of the study not evaluated yet; how many were."""
    store = Store(storage)
    try:
        keys = {x.key for arm in exp.arms for x in arm.archs}
        pending = [
            r
            for r in store.runs(exp.study)
            if r.status.ranks and r.test_acc is None and r.arch_key in keys and r.checkpoint and not r.reused
        ]
        if pending:
            evaluate_runs(
                store, exp.study, [{"trial": r.trial} for r in pending], {r.trial: r for r in pending},
                data_dir=data_dir, device=device,
            )  # fmt: skip
        return len(pending)
    finally:
        store.dispose()


__all__ = ["next_stage", "plan_experiment", "prepare_experiment", "run_experiment", "test_all"]
