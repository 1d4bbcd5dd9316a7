"""What a search is: its frozen configuration, and what of it a stored study pins.

A study's space, budget, dataset, recipe and objective are stored with it (`pinned`); re-running the
same study resumes it, and asking it to change any of those is an error (its trials would no longer
be comparable). `plan` (in plan.py) turns options, a study file and the stored study into one of these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from ..arch.budget import Budget
from ..space.design_space import DesignSpace
from ..space.dims import Dim
from ..space.template import Spec
from ..training.recipe import PRESETS, Recipe
from .keep import KeepPolicy

SAMPLERS = ("tpe", "random", "nsga2", "gp", "grid", "optuna-tpe")
OBJECTIVES = ("accuracy", "accuracy+flops", "accuracy+params", "accuracy+latency", "nelbo")
# A classifier's objectives maximise validation accuracy (and minimise a cost beside it); a VAE's, nelbo,
# minimises its validation negative ELBO.
TASK_OBJECTIVES = {"classify": OBJECTIVES[:4], "vae": ("nelbo",)}
PRUNERS = ("asha", "hyperband", "median", "none")
PINNED = (
    "space",
    "budget",
    "max_params",
    "dataset",
    "val_size",
    "split_seed",
    "train_size",
    "recipe",
    "objective",
    "latency",
)
FIELDS = (
    "study",
    "space",
    "budget",
    "max_params",
    "dataset",
    "data_dir",
    "val_size",
    "split_seed",
    "train_size",
    "trials",
    "timeout",
    "trial_timeout",
    "recipe",
    "epochs",
    "sampler",
    "objective",
    "pruner",
    "storage",
    "workers",
    "gpus",
    "seed",
    "checkpoints",
    "keep_checkpoints",
    "threads",
    "task",
    "latent",
    "likelihood",
    "reference",
    "max_latency",
    "latency_on",
)


@dataclass(frozen=True)
class SearchConfig:
    """Everything a search needs, resolved: the space is loaded, the budget parsed, the recipe built."""

    study: str
    space: DesignSpace
    budget: Budget
    budget_input: str = ""  # as given (`4GFLOPs`), so a resumed study can parse it again
    max_params_input: str = ""
    dataset: str = "digits"
    data_dir: str | None = None
    val_size: float | int = 0.1
    split_seed: int = 0
    train_size: int | float | None = None  # a seeded class-balanced subset of the training split (proxy training)
    trials: int = 20
    timeout: float | None = None  # seconds: no new trial starts after this
    trial_timeout: float | None = None  # seconds: a trial running longer is killed and failed
    recipe: Recipe = field(default_factory=lambda: PRESETS["fast"])
    sampler: str = "tpe"
    objective: str = "accuracy"
    pruner: str = "asha"
    storage: str | None = None
    workers: int = 1
    gpus: tuple[int, ...] = ()
    seed: int = 0
    checkpoints: str | None = None
    keep_checkpoints: KeepPolicy = field(default_factory=KeepPolicy)  # this host's own: not pinned
    threads: int | None = None  # per worker; None: OMP_NUM_THREADS, else the cores split (threads.worker_threads)
    references: tuple[str, ...] | None = None  # zoo nets queued first; None: every one the space and budget take
    # --max-latency / --objective accuracy+latency: {"max_ms", "setting", "key"} (search/latency_plan.py)
    latency: dict | None = None
    notes: tuple[str, ...] = ()  # what was picked for the user, or does not fit, and why: printed before it runs

    @property
    def multi_objective(self) -> bool:
        return self.objective not in ("accuracy", "nelbo")

    @property
    def task(self) -> str:
        return self.space.task

    @property
    def score_key(self) -> str:
        """The epoch metric a trial is judged by: validation accuracy, or a VAE's validation negative ELBO."""
        return "val_loss" if self.task == "vae" else "val_acc"

    @property
    def recipe_key(self) -> str:
        return recipe_key(self.recipe.to_dict())

    def objective_values(self, score: float, flops: int, params: int, latency_ms: float | None = None) -> list[float]:
        """What Optuna is told for a trained candidate: its score (accuracy, or a VAE's negative ELBO), and
        its cost where the objective has two (FLOPs, params or measured milliseconds)."""
        if self.objective in ("accuracy", "nelbo"):
            return [score]
        if self.objective == "accuracy+latency":
            assert latency_ms is not None, "a latency objective measures every candidate it trains"
            return [score, latency_ms]
        return [score, float(flops if self.objective == "accuracy+flops" else params)]

    @property
    def data_key(self) -> str:
        """What makes two trainings comparable on the data side (not where the files live)."""
        key = f"{self.dataset}|val={self.val_size}|split_seed={self.split_seed}"
        return key if self.train_size is None else f"{key}|train={self.train_size}"

    def pinned(self) -> dict:
        """The stored, unchangeable part of the study."""
        return {
            "space": space_snapshot(self.space),
            "space_name": self.space.name,
            "budget": dataclasses.asdict(self.budget),
            "budget_text": self.budget.describe(),
            "budget_input": self.budget_input,
            "max_params_input": self.max_params_input,
            "dataset": self.dataset,
            "val_size": self.val_size,
            "split_seed": self.split_seed,
            "train_size": self.train_size,
            "recipe": self.recipe.to_dict(),
            "objective": self.objective,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "trials": self.trials,
            "seed": self.seed,
            **({"latency": self.latency} if self.latency else {}),
        }


def space_snapshot(space: DesignSpace) -> dict:
    """The template as parsed (dims and fixed parts); its file may change or vanish, the study keeps this."""
    d = dataclasses.asdict(space.spec)
    d.pop("source", None)
    return json.loads(json.dumps(d))


def space_from_snapshot(snapshot: dict, where: str) -> DesignSpace:
    d = dict(snapshot)
    d["dims"] = {k: Dim(v["name"], tuple(v["values"]), v["kind"], v["step"], v["log"]) for k, v in d["dims"].items()}
    d["strides"] = tuple(d["strides"])
    d["split"] = tuple(d["split"]) if d["split"] is not None else None
    return DesignSpace(Spec(source=where, **d))


def recipe_key(recipe: dict) -> str:
    """What makes two trainings comparable on the recipe side."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]
