"""Everything Optuna: storage, sampler, pruner, ask and tell, heartbeats, stale trials, retries.

The only module that imports Optuna for a search, and the only one that knows its internals and
the differences between its versions; the coordinator speaks to it in resnas's terms (hold a
trial, tell a result, fail the stale ones, queue a retry).
"""

from __future__ import annotations

import hashlib
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ..results.storage import tune_sqlite
from .config import SearchConfig

COUNTED = "resnas:counted"  # user attribute of trials that count toward --trials (not over-budget ones)
GIVEN_ARCH = "resnas:arch"  # user attribute of a trial queued with its architecture (not the sampler's)
GIVEN_SEED = "resnas:seed"  # ... and the training seed it is to be trained with
REFERENCE = "resnas:reference"  # user attribute of a trial queued with a zoo net's parameters (its name)

COMPLETE, PRUNED, FAIL = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL


def quiet() -> None:
    """Optuna's info logs and experimental-feature warnings are not for resnas's users."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def trial_id(trial: Trial | FrozenTrial) -> int:
    """A trial's id in its storage. Optuna keeps it private; storages are addressed by it."""
    return trial._trial_id


def directions(objective: str) -> list[Literal["maximize", "minimize"]]:
    if objective == "nelbo":
        return ["minimize"]
    return ["maximize"] if objective == "accuracy" else ["maximize", "minimize"]


def salted_seed(seed: int, salt: str) -> int:
    """`salt` (a process's name) varies the seed: the same seed in every process working on a study would
    suggest the same candidates in each."""
    if not salt:
        return seed
    return (seed + int(hashlib.sha256(salt.encode()).hexdigest()[:8], 16)) % 2**31


def _stale_callback_name() -> str:
    """Optuna 4.9 renamed RDBStorage's callback for trials whose heartbeat stopped."""
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"


def _retry_callback() -> Callable[[optuna.Study, FrozenTrial], None]:
    """Queue a failed trial's parameters once more (at most once: a candidate that kills its worker every
    time is given up after the second try). Optuna 4.9 added the heartbeat-specific class."""
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or (
        optuna.storages.RetryFailedTrialCallback
    )
    return retry(max_retry=1)


class OptunaStudy:
    """One study in one storage, as one coordinator uses it.

    `on_stale(trial)` is called when Optuna fails a trial whose heartbeat stopped (its host died)."""

    def __init__(
        self,
        url: str,
        config: SearchConfig,
        *,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        heartbeat: int,
        grace: int,
        on_stale: Callable[[FrozenTrial], None],
        describe: bool,
    ):
        quiet()
        self.retry_callback = _retry_callback()
        stale: dict[str, Any] = {_stale_callback_name(): lambda study, trial: on_stale(trial)}
        self.storage = optuna.storages.RDBStorage(
            url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat, grace_period=grace, **stale
        )
        tune_sqlite(self.storage.engine)
        self.study = optuna.create_study(
            study_name=config.study,
            storage=self.storage,
            load_if_exists=True,
            sampler=sampler,
            pruner=pruner,
            directions=directions(config.objective),
        )
        if describe:
            for k, v in (
                ("objective", config.objective),
                ("space", config.space.name),
                ("budget", config.budget.describe()),
                ("dataset", config.dataset),
            ):
                self.study.set_user_attr(k, v)  # shown by optuna-dashboard

    def use_sampler(self, sampler: optuna.samplers.BaseSampler) -> None:
        """Ask with another sampler from now on (a search that finds itself joining a running study)."""
        self.study.sampler = sampler

    def study_attr(self, key: str) -> Any:
        return self.study.user_attrs.get(key)

    def set_study_attr(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    # ---- asking ----------------------------------------------------------------------------------
    def ask(self) -> Trial:
        return self.study.ask()

    def retry_of(self, trial: Trial) -> int | None:
        """The number of the trial whose parameters this one tries again (Optuna's retry records it)."""
        return self.storage.get_trial_system_attrs(trial_id(trial)).get("failed_trial")

    def waiting(self) -> int:
        """Trials queued and not yet asked (given architectures, retries)."""
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def enqueue(self, user_attrs: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        """Queue a trial: with `params`, the sampler's suggestions are these (a reference net)."""
        self.study.enqueue_trial(params or {}, user_attrs=user_attrs, skip_if_exists=False)

    def queued_attrs(self, key: str) -> list[Any]:
        """`key` of every trial ever queued with it (to queue given architectures once per study)."""
        return [t.user_attrs[key] for t in self.study.get_trials(deepcopy=False) if key in t.user_attrs]

    def given_arch(self, trial: Trial) -> dict | None:
        """The architecture a queued trial carries (None for the sampler's suggestions)."""
        return trial.user_attrs.get(GIVEN_ARCH)

    def set(self, trial: Trial, **attrs: Any) -> bool:
        """Set user attributes; False when the trial was finished meanwhile (failed as stale elsewhere)."""
        try:
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def constrain(self, trial: Trial, excess: float) -> None:
        """The budget as a constraint (> 0 infeasible), so that the sampler learns the feasible region.

        A retried trial carries its first try's constraint (same parameters, same value): Optuna's
        warning that it keeps the old one is no news to a user."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*constraint .* is already set")
            trial.set_constraint("budget", excess)

    # ---- telling ---------------------------------------------------------------------------------
    def tell(self, trial: Trial, values: Sequence[float] | None = None, state: TrialState | None = None) -> bool:
        """Finish a trial; False when another coordinator already failed it (its heartbeat went stale)."""
        try:
            self.study.tell(trial, values, state=state if values is None else None)
            return True
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            if self.storage.get_trial(trial_id(trial)).state.is_finished():
                return False  # finished by someone else between our ask and this tell
            raise

    def record(self, trial: Trial, value: float, step: int) -> None:
        """An epoch's value, without asking the pruner (a repeat's values, replayed)."""
        trial.report(value, step)

    def report(self, trial: Trial, value: float, step: int) -> bool:
        """Report an epoch's value; True when the pruner says stop. A trial another coordinator already
        failed (the database was away too long) is stopped too."""
        try:
            trial.report(value, step)
            return trial.should_prune()
        except optuna.exceptions.UpdateFinishedTrialError:
            return True

    # ---- trials whose coordinator died -----------------------------------------------------------
    def fail_stale(self) -> None:
        """Optuna fails trials whose heartbeat stopped (and calls `on_stale` for each)."""
        optuna.storages.fail_stale_trials(self.study)

    def running(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def fail(self, trial: FrozenTrial) -> bool:
        """Fail a running trial from outside; False when it had finished already."""
        try:
            self.storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def retry(self, trial: Trial | FrozenTrial) -> bool:
        """Queue the same parameters once more; False when this trial was itself a retry (given up)."""
        frozen = self.storage.get_trial(trial_id(trial))
        self.retry_callback(self.study, frozen)
        return "failed_trial" not in frozen.system_attrs

    def record_heartbeat(self, trial: Trial) -> None:
        self.storage.record_heartbeat(trial_id(trial))
