"""What a search trains next (the sampler) and when it stops a trial early (the scheduler).

Optuna's defaults, used as they are, make a short search a random one:
- `HyperbandPruner` gives each bracket its own copy of the sampler over that bracket's trials only, so
  TPE stays in random start-up for 10 trials *per bracket*. The default scheduler here is successive
  halving (ASHA, one bracket), whose sampler sees every trial; TPE ranks pruned trials by their last
  reported value, so they teach it too.
- TPE counts every finished trial toward its start-up, over-budget and repeated suggestions included,
  which train nothing. Here start-up is `FeasibleStart`: it counts trained trials only, draws uniformly
  from the distinct nets that fit the budget (none is wasted), and is sized to the trial total. The
  model's own suggestions that break the budget are still told as infeasible (`set_constraint`), so it
  learns where the feasible region is.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from ..arch.cost import cost
from ..arch.description import Arch
from ..errors import ResnasError
from .config import SearchConfig
from .latency_start import POOL, choose_under, timed_fit
from .study import REFERENCE

NOT_TRAINED = (
    "over_budget",
    "over_latency",
    "no_candidate",
    "repeat",
    "surplus",
)  # trial statuses that trained nothing
MAX_DRAWS = 2_000  # draws per start-up trial before giving up on finding an untried net that fits
REDUCTION = 3  # successive halving keeps the best third at each rung


def startup_trials(trials: int) -> int:
    """Random start-up trials for a search of `trials` trained trials: a fifth, at least 3, at most 10
    (TPE's own fixed 10 would be half of a 20-trial search)."""
    return max(3, min(10, trials // 5))


def trained(trial: FrozenTrial) -> bool:
    """A trial that trains (or trained) a network: not an over-budget or repeated suggestion, not failed."""
    ok = trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return ok and trial.user_attrs.get("status") not in NOT_TRAINED


class FeasibleStart(BaseSampler):
    """Draw each trial's network uniformly from the untried distinct nets of the space that fit the
    budget (priced with the data's shape) until `startup` trials have trained, then ask `model`.
    `model=None` never hands over: random search over the feasible nets. Trials queued with their
    parameters (reference nets, retries) take those and do not count toward start-up."""

    def __init__(self, model: BaseSampler | None, config: SearchConfig, shape: dict, startup: int, seed: int):
        self.model, self.space, self.budget, self.shape = model, config.space, config.budget, shape
        self.max_ms = (config.latency or {}).get("max_ms")  # a latency limit: draw where it is likely met
        self.startup = startup if model is not None else math.inf
        self._rng = random.Random(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._planned: dict[int, dict[str, Any]] = {}

    # ---- start-up ------------------------------------------------------------------------------------
    def _in_startup(self, study: Study, trial: FrozenTrial) -> bool:
        if "fixed_params" in trial.system_attrs or "failed_trial" in trial.system_attrs:  # queued, or a retry
            return False
        if math.isinf(self.startup):
            return True
        others = study.get_trials(deepcopy=False)
        done = sum(1 for t in others if t.number != trial.number and trained(t) and REFERENCE not in t.user_attrs)
        return done < self.startup

    def _draw(self, study: Study) -> dict[str, Any] | None:
        """The parameters of an untried net under the budget, uniform over the distinct nets (None when
        MAX_DRAWS draws find none: the space's feasible part is nearly exhausted). Under a latency limit,
        once a fit of the nets timed so far exists, uniform over a pool's nets it puts under the limit
        (latency_start)."""
        trials = study.get_trials(deepcopy=False)
        tried = {t.user_attrs.get("arch_key") for t in trials}
        fit = timed_fit(trials, self.space, self.shape) if self.max_ms is not None else None
        pool: list[tuple[Arch, dict[str, Any]]] = []
        for _ in range(MAX_DRAWS):
            arch = self.space.random_arch(self._rng)
            fitted = arch.replace(**self.shape)
            if fitted.key in tried or self.budget.excess(cost(fitted)) > 0:
                continue
            params = self.space.params_of(arch)
            if params is None:
                continue
            if fit is None:
                return params
            tried.add(fitted.key)  # distinct nets in the pool
            pool.append((fitted, params))
            if len(pool) == POOL:
                break
        if fit is None or self.max_ms is None:  # no net left untried under the budget
            return None
        return choose_under(fit, pool, self.max_ms, self._rng)

    # ---- BaseSampler -----------------------------------------------------------------------------------
    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if self._in_startup(study, trial):
            params = self._draw(study)
            if params is not None:
                self._planned[trial.number] = params
                return
        if self.model is not None:
            self.model.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if trial.number in self._planned or self.model is None:
            return {}
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self._planned or self.model is None:
            return {}
        return self.model.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        planned = self._planned.get(trial.number)
        if planned is not None and param_name in planned:
            return planned[param_name]
        sampler = self._fallback if self.model is None or planned is not None else self.model
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._planned.pop(trial.number, None)
        if self.model is not None:
            self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._fallback.reseed_rng()
        if self.model is not None:
            self.model.reseed_rng()


def make_sampler(config: SearchConfig, shape: dict, parallel: bool, seed: int) -> BaseSampler:
    """`parallel`: trials of the study run side by side (several workers, or hosts joining): TPE then
    counts running trials as if they had failed (constant liar), so that it does not suggest them again."""
    startup = startup_trials(config.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "tpe":
            tpe = optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=parallel, n_startup_trials=0
            )
            return FeasibleStart(tpe, config, shape, startup, seed)
        if config.sampler == "optuna-tpe":  # Optuna's TPE as it is (the old default): to compare
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=parallel)
        if config.sampler == "random":
            return FeasibleStart(None, config, shape, startup, seed)
        if config.sampler == "gp":  # it fits complete trials only: from the first one on, after the start-up
            gp = optuna.samplers.GPSampler(seed=seed, n_startup_trials=1)
            return FeasibleStart(gp, config, shape, startup, seed)
        if config.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        size = config.space.size()
        if size > 100_000:
            raise ResnasError(
                f"grid search over {size:,} candidates is not practical; use tpe or random", field="--sampler"
            )
        grid = {d.name: list(d.values) for d in config.space.open_dims}
        return optuna.samplers.GridSampler(grid, seed=seed)


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "none" or config.multi_objective:  # Optuna cannot prune multi-objective studies
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=config.recipe.epochs, reduction_factor=REDUCTION
        )
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=REDUCTION, min_early_stopping_rate=0)


def rungs(epochs: int) -> list[int]:
    """The epochs at which successive halving compares a trial with the others (before its last)."""
    out, step = [], 1
    while step < epochs:
        out.append(step)
        step *= REDUCTION
    return out


def describe(config: SearchConfig) -> str:
    """The sampler and scheduler in force, for the banner: which, and how long the random start-up is."""
    startup = startup_trials(config.trials)
    sampler = {
        "tpe": f"tpe sampler after {startup} random start-up trial(s) from the nets under the budget",
        "gp": f"gp sampler after {startup} random start-up trial(s) from the nets under the budget",
        "random": "random sampler (uniform over the untried nets under the budget)",
        "optuna-tpe": "Optuna's own tpe sampler (10 start-up trials, every finished trial counted)",
    }.get(config.sampler, f"{config.sampler} sampler")
    if config.pruner == "none" or config.multi_objective:
        return f"{sampler}, no pruning"
    if config.pruner == "asha":
        at = rungs(config.recipe.epochs)
        where = f"compared at epoch(s) {', '.join(map(str, at))}" if at else "nothing to compare in 1 epoch"
        return f"{sampler}, asha pruning (successive halving keeps the best 1/{REDUCTION}, {where})"
    if config.pruner == "hyperband":
        return f"{sampler}, hyperband pruning (each bracket samples on its own)"
    return f"{sampler}, {config.pruner} pruning"
