"""The coordinator: the loop that takes work, hands it to this host's workers and tells the results.

Work comes from one of two sources, through the same loop: the sampler (`resnas search`: Optuna
suggests, the space turns the suggestion into an Arch) or architectures given up front (re-training
the best with seeds, experiment arms), queued in the study as trials that carry their Arch. Per
trial the cost is computed analytically; an over-budget candidate is recorded as a constraint and
pruned without being built, and does not count toward the trial total. An architecture already
trained with the same recipe on the same data is reused. Everything else is trained by a worker;
its epochs are reported to Optuna here, where pruning is decided.

Any number of coordinators may work on one study (on one PostgreSQL or MySQL database). They share
nothing but the database: a trial takes a slot of the total by claiming its run row, each
coordinator beats the heartbeat of its own trials, and a trial whose heartbeat stops is failed by
whichever coordinator notices and tried once more with the same parameters.

Over 300 lines: the loop and its recovery from lost hosts and database errors, which share its state.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..arch.budget import human
from ..arch.description import Arch
from ..errors import ResnasError, Terminated, sigterm_as_interrupt
from ..results.storage import DEFAULT_STORAGE, safe_url
from ..results.store import Store
from ..training.status import RunStatus
from . import references
from .config import SearchConfig, recipe_key
from .keep import checkpoint_root
from .liveness import DB_PATIENCE, Heartbeat, host_id, owner_gone, patiently, storage_full
from .pool import Done, Epoch, Fatal, Pool, Raised, Ready
from .preflight import preflight
from .sampler import make_pruner, make_sampler
from .settings import GRACE, HEARTBEAT
from .state import SearchState
from .study import GIVEN_ARCH, GIVEN_SEED, REFERENCE, OptunaStudy, salted_seed
from .trials import Trials

GIVEN_KEY, GIVEN_MODE = "resnas:given", "resnas:given_archs"  # trial attribute; study attribute
COORDINATORS = "resnas:coordinators"  # study attribute: the processes (host:pid) that worked on it


@dataclasses.dataclass(frozen=True)
class Given:
    """An architecture to train as one trial, with its own training seed (None: the recipe's)."""

    arch: Arch
    seed: int | None = None

    @property
    def key(self) -> str:
        return f"{self.arch.key}|seed={self.seed}"


class Coordinator:
    """One host's share of a study. `join=True` is `resnas worker`: the study must exist, and the
    sampler's seed is varied per process so that hosts do not all suggest the same candidates.
    `given`: train exactly these architectures (queued once per study), instead of asking the sampler."""

    def __init__(
        self,
        config: SearchConfig,
        on_update: Callable[[SearchState], None] | None = None,
        *,
        join: bool = False,
        given: Sequence[Given] = (),
        heartbeat: int = HEARTBEAT,
        grace: int = GRACE,
        db_patience: float = DB_PATIENCE,
    ):
        self.config = config
        self.on_update = on_update or (lambda state: None)
        self.heartbeat, self.grace, self.db_patience = int(heartbeat), int(grace), db_patience
        self.facts = preflight(config, self.heartbeat, self.grace)
        self.shape = self.facts.shape
        self.host = host_id()
        self.owner = f"{self.host}:{os.getpid()}"
        shared = join or make_url(config.storage or DEFAULT_STORAGE).get_backend_name() != "sqlite"
        seed = salted_seed(config.seed, self.owner if join else "")
        sampler = make_sampler(config, self.shape, parallel=config.workers > 1 or shared, seed=seed)
        self.store = Store(config.storage, create=True)
        self.checkpoints = checkpoint_root(config.study, config.checkpoints, config.storage)  # before it is stored
        new = self.store.study_config(config.study) is None
        if new:
            if join:
                raise ResnasError(
                    f"no study {config.study!r} in {safe_url(self.store.url)} to join; create it with resnas search",
                    field="--study",
                )
            self.store.add_study(config.study, config.pinned())
        self.store.set_study_values(config.study, **self.facts.sizes, **({} if join else {"trials": config.trials}))
        self.optuna = OptunaStudy(
            self.store.url,
            config,
            sampler=sampler,
            pruner=make_pruner(config),
            heartbeat=self.heartbeat,
            grace=self.grace,
            on_stale=self._on_stale,
            describe=not join,
        )
        self.others = self._sign_in()
        self.joined, self.salted = join or bool(self.others), join
        if self.others:  # a second `resnas search` of a running study: a joiner, not a twin of the first
            self.salt_sampler()
        self.given_mode = bool(given) or bool(self.optuna.study_attr(GIVEN_MODE))
        if given:
            self._queue(given)
        elif new:
            try:
                self._queue_references()
            except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
                full = storage_full(e, safe_url(self.store.url))
                if full is None:
                    raise
                raise full from None
        self.recipe = config.recipe.to_dict()
        self.pool = Pool(
            config.gpus,
            config.workers,
            {
                "spec": config.dataset,
                "data_dir": config.data_dir,
                "val_size": config.val_size,
                "split_seed": config.split_seed,
                "train_size": config.train_size,
            },
        )
        self.state = SearchState(
            config.study, config.trials, workers=self.pool.workers, lower_is_better=config.task == "vae"
        )
        self.beats = Heartbeat(self.optuna.record_heartbeat, self.heartbeat)
        self.trials = Trials(self)
        self.deadline = math.inf
        self.waiting = 0  # the study's queued trials (given mode): when none is left and none runs, it is done
        self._last_sweep = self._last_count = 0.0

    def _queue(self, given: Sequence[Given]) -> None:
        """Queue each given architecture once per study: a resumed call adds only what is new."""
        self.optuna.set_study_attr(GIVEN_MODE, True)
        queued = set(self.optuna.queued_attrs(GIVEN_KEY))
        for g in given:
            if g.key not in queued:
                queued.add(g.key)
                self.optuna.enqueue({GIVEN_KEY: g.key, GIVEN_ARCH: g.arch.to_dict(), GIVEN_SEED: g.seed})

    def _queue_references(self) -> None:
        """Queue the zoo nets the space expresses and the budget admits as the first trials of a new study,
        and record them (name -> arch key) with the study so that every report can mark them."""
        refs, notes = references.pick(self.config.space, self.config.budget, self.shape, self.config.references)
        if refs:
            listed = ", ".join(f"{r.name} ({human(r.flops)}FLOPs)" for r in refs)
            notes.append(f"reference nets queued as the first trials: {listed} (--no-reference: none)")
        elif self.config.references is None:
            notes.append(f"no zoo net is a point of space {self.config.space.name!r} under the budget: no reference")
        self.config = dataclasses.replace(self.config, notes=(*self.config.notes, *notes))
        for r in refs:
            self.optuna.enqueue({REFERENCE: r.name}, params=r.params)
        self.store.set_study_values(self.config.study, references={r.name: r.arch_key for r in refs})

    def _sign_in(self) -> list[str]:
        """Record this process among the study's coordinators; return the others at work on it now: live
        processes of this host that signed in, and any process training one of its trials."""
        signed = [o for o in self.optuna.study_attr(COORDINATORS) or [] if not owner_gone(o, self.host)]
        self.optuna.set_study_attr(COORDINATORS, [*signed[-63:], self.owner])
        running = (str(t.user_attrs.get("owner", "")) for t in self.optuna.running())
        here = (o for o in signed if o.rpartition(":")[0] == self.host)
        return sorted({o for o in (*running, *here) if o and o != self.owner and not owner_gone(o, self.host)})

    def salt_sampler(self) -> None:
        """From now on suggest with a seed of this process's own: another process works on the study, and
        the same seed in both would suggest the same candidates in each."""
        if not self.salted:
            self.salted = True
            seed = salted_seed(self.config.seed, self.owner)
            self.optuna.use_sampler(make_sampler(self.config, self.shape, parallel=True, seed=seed))

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> SearchState:
        self.beats.start()
        previous = sigterm_as_interrupt()
        self.deadline = time.time() + self.config.timeout if self.config.timeout else math.inf
        try:
            self.sweep(force=True)
            self.refresh_counts(force=True)
            self.pool.start()
            while True:
                for w in self.pool.idle():
                    if self.want_more():
                        self.trials.dispatch(w)
                if self.pool.busy == 0 and self._finished():
                    break
                self._receive()
                self._check_workers()
                self.sweep()
                self.refresh_counts()
                self.on_update(self.state)
            if time.time() >= self.deadline:
                self.state.stopped_by = "timeout"
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            full = storage_full(e, safe_url(self.store.url))
            if full is None:
                raise
            self.state.interrupted = True  # its trials stay `running`; a resumed search tries them again
            raise full from None
        except KeyboardInterrupt as e:
            self.state.interrupted = True
            self.state.terminated = isinstance(e, Terminated)
            for w in self.pool.workers:
                if w.job is not None:
                    self.trials.finish(
                        w, RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM); tried again when the study resumes"
                    )
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.beats.stop()
            self.pool.stop(kill=self.state.interrupted)
            self.db_patience = 0  # on the way out: one try, no waiting for a database that is gone
            self.refresh_counts(force=True, quiet=True)
            self.on_update(self.state)
            self.store.dispose()
        return self.state

    def want_more(self) -> bool:
        """Room left in the study's total (every host's finished and running trials count), and time;
        with given architectures, one still queued."""
        s = self.state
        room = s.counted + s.running_all < self.config.trials and time.time() < self.deadline and not s.stopped_by
        return room and (not self.given_mode or self.waiting > 0)

    def _finished(self) -> bool:
        """Nothing more for this host: the total is reached, time is up, or (given architectures) none is
        queued or running. While other hosts' trials run it waits, to take over one whose host goes quiet."""
        s = self.state
        drained = self.given_mode and self.waiting == 0 and s.running_all == 0
        return s.counted >= self.config.trials or time.time() >= self.deadline or bool(s.stopped_by) or drained

    def refresh_counts(self, force: bool = False, quiet: bool = False) -> None:
        if not force and time.time() - self._last_count < 0.5:
            return
        self._last_count = time.time()
        try:
            by_status = self.db(self.store.counts, self.config.study)
            if self.given_mode:
                self.waiting = self.db(self.optuna.waiting)
        except ResnasError:
            if quiet:
                return
            raise
        self.state.running_all = by_status.get(RunStatus.RUNNING, 0)
        self.state.counted = sum(n for s, n in by_status.items() if RunStatus(s).counts and s != RunStatus.RUNNING)

    def db(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """A database call that waits out a restart (and counts the retries for the live view)."""

        def counted(e: Exception) -> None:
            self.state.db_errors += 1

        return patiently(
            fn, *args, patience=self.db_patience, what=safe_url(self.store.url), on_retry=counted, **kwargs
        )

    def recipe_for(self, trial: Any) -> tuple[Arch, dict, str]:
        """A trial's architecture, recipe and recipe key: given with the trial, or suggested by the sampler."""
        given = trial.user_attrs.get(GIVEN_ARCH)
        if given is None:
            return self.config.space.suggest(trial).replace(**self.shape), self.recipe, self.config.recipe_key
        seed = trial.user_attrs.get(GIVEN_SEED)
        recipe = self.recipe if seed is None else {**self.recipe, "seed": int(seed)}
        return Arch.from_dict(given).replace(**self.shape), recipe, recipe_key(recipe)

    # ---- messages from workers -------------------------------------------------------------------
    def _receive(self) -> None:
        m = self.pool.receive()
        if m is None:
            return
        w = self.pool.workers[m.worker]
        if isinstance(m, Ready):
            w.ready, w.failed_starts = True, 0
        elif isinstance(m, Fatal):
            raise ResnasError(f"worker {m.worker} could not load the data: {m.message}")
        elif w.job is None or m.trial != w.job.number:
            return  # a message from a trial already failed (timed out, say)
        elif isinstance(m, Epoch):
            self.trials.epoch(w, m.metrics)
        elif isinstance(m, Done):
            self.trials.done(w, m.record, m.worker_seconds)
        elif isinstance(m, Raised):
            self.trials.finish(w, RunStatus.ERROR, m.message)

    def _check_workers(self) -> None:
        """A dead worker fails its trial and is replaced; a trial past its timeout is killed."""
        limit = self.config.trial_timeout
        for w in self.pool.workers:
            timed_out = w.job is not None and limit is not None and time.time() - w.job.started > limit
            if w.alive() and not timed_out:
                continue
            code = w.process.exitcode if w.process is not None else None
            w.kill()
            if w.job is not None:
                if timed_out:
                    self.trials.finish(w, RunStatus.TIMEOUT, f"timed out after {limit:g} s")
                else:
                    self.trials.finish(
                        w,
                        RunStatus.CRASHED,
                        f"worker process died (exit code {code}; killed, or by the OS for memory?)",
                    )
            elif not w.ready:
                w.failed_starts += 1  # died before it could load the data: it will not do better next time
                if w.failed_starts >= 3:
                    raise ResnasError(
                        f"worker process {w.index} exited (code {code}) three times before it was "
                        "ready; see its error above. (A script fed on standard input cannot start "
                        "worker processes: run it from a file.)"
                    )
            w.start()

    # ---- trials whose coordinator died -----------------------------------------------------------
    def sweep(self, force: bool = False) -> None:
        """Fail the study's stale trials: ones whose heartbeat stopped (Optuna), and, at once, ones held by
        a process on this host that is gone (a killed coordinator; no need to wait out the grace period)."""
        if not force and time.time() - self._last_sweep < self.heartbeat:
            return
        self._last_sweep = time.time()
        self.db(self.optuna.fail_stale)
        for t in self.db(self.optuna.running):
            owner = str(t.user_attrs.get("owner", ""))
            if owner == self.owner or not owner_gone(owner, self.host):
                continue
            if self.db(self.optuna.fail, t):  # else another coordinator on this host got there first
                self._lost(t, f"its coordinator ({owner}) exited before the trial finished")

    def _on_stale(self, trial: Any) -> None:
        """Optuna failed a trial whose heartbeat stopped."""
        self._lost(
            trial,
            f"no heartbeat for {self.grace} s from its coordinator "
            f"({trial.user_attrs.get('owner', '?')}): its process or host died",
        )

    def _lost(self, trial: Any, reason: str) -> None:
        self.db(self.store.lose_run, self.config.study, trial.number, RunStatus.LOST, reason)
        self.state.counts["lost"] += 1
        self.retry(trial)

    def retry(self, trial: Any) -> None:
        """Queue the same parameters once more (at most once)."""
        if self.db(self.optuna.retry, trial):
            self.state.counts["retried"] += 1
