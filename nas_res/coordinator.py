"""The coordinator: asks Optuna for trials, hands them to this host's worker processes, tells the results.

Per suggestion it computes the cost analytically; an over-budget candidate is recorded with
`trial.set_constraint` and pruned without being built, and does not count toward the trial total.
An architecture already trained with the same recipe on the same data is reused. Everything else is
trained by a worker; its epochs are reported to Optuna here, where pruning is decided. A worker that
crashes, hangs past the trial timeout or runs out of memory fails its trial; the study goes on.

Any number of coordinators may work on one study (`resnas search` on one host, `resnas worker` on
others, all on one PostgreSQL or MySQL database). They share nothing but the database: a trial
takes a slot of the study's total by claiming its run row (`Store.claim`), each coordinator beats
Optuna's heartbeat for its trials, and a trial whose heartbeat stops (its host or process died) is
failed by whichever coordinator notices and tried once more with the same parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import queue
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from .cost import cost
from .data import load_data
from .errors import ResnasError
from .liveness import DB_PATIENCE, Heartbeat, alive, host_id, patiently, sigterm_as_interrupt
from .results import DEFAULT_STORAGE, Run, Store, safe_url, tune_sqlite
from .search import SearchConfig, directions, make_pruner, make_sampler
from .status import RunStatus
from .train import resolve_device
from .worker import CONTINUE, PRUNE, Handle, context

COUNTED = "resnas:counted"  # user attribute of trials that count toward --trials (not over-budget ones)
MAX_ASKS = 500  # suggestions in a row with nothing new to train before the search stops
HEARTBEAT, GRACE = 10, 60  # seconds: Optuna heartbeat interval, and silence after which a trial is failed


@dataclass
class SearchState:
    """What the live view shows; updated after every event. `counts` are this coordinator's own;
    `counted` and `running_all` are the study's, over every host."""

    study: str
    target: int
    counts: dict = field(
        default_factory=lambda: dict.fromkeys(
            ("done", "pruned", "failed", "reused", "over_budget", "repeats", "retried", "lost"), 0
        )
    )
    counted: int = 0  # the study's finished trials that count toward the target
    running_all: int = 0  # the study's trials training now, on every host
    best: dict | None = None  # {"trial", "value", "flops", "params", "summary"}
    workers: list = field(default_factory=list)
    started: float = field(default_factory=time.time)
    trial_seconds: list = field(default_factory=list)
    overheads: list = field(default_factory=list)  # per trained trial: wall seconds outside train()
    interrupted: bool = False
    stopped_by: str = ""
    db_errors: int = 0  # database calls that failed and were retried (a restart, say)

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers if w.get("trial") is not None)

    def eta(self) -> float | None:
        if not self.trial_seconds:
            return None
        left = max(0, self.target - self.counted - self.running_all)
        per = sum(self.trial_seconds) / len(self.trial_seconds)
        return per * (left + 0.5 * self.running) / max(1, len(self.workers))


def recipe_key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


class Coordinator:
    """One host's share of a study. `join=True` is `resnas worker`: the study must exist, and the
    sampler's seed is varied per process so that hosts do not all suggest the same candidates."""

    def __init__(
        self,
        config: SearchConfig,
        on_update: Callable[[SearchState], None] | None = None,
        *,
        join: bool = False,
        heartbeat: int = HEARTBEAT,
        grace: int = GRACE,
        db_patience: float = DB_PATIENCE,
    ):
        import optuna

        self.config = config
        self.on_update = on_update or (lambda state: None)
        self.heartbeat, self.grace, self.db_patience = int(heartbeat), int(grace), db_patience
        if self.heartbeat < 1 or self.grace <= self.heartbeat:
            raise ResnasError(
                f"the heartbeat ({heartbeat} s) must be at least 1 s and shorter than the grace period ({grace} s)",
                field="--heartbeat",
            )
        for g in config.gpus:
            resolve_device(f"cuda:{g}")  # a GPU this machine lacks is an error now, not a failure per trial
        self.host = host_id()
        self.owner = f"{self.host}:{os.getpid()}"
        data = load_data(
            config.dataset, data_dir=config.data_dir, val_size=config.val_size, split_seed=config.split_seed
        )  # fail here, clearly, before a study is stored
        self.shape = {"in_channels": data.channels, "classes": data.classes}
        del data
        sampler_config = config
        if join:  # same seed on every host would mean the same suggestions on every host
            salt = int(hashlib.sha256(self.owner.encode()).hexdigest()[:8], 16)
            sampler_config = dataclasses.replace(config, seed=(config.seed + salt) % 2**31)
        shared = join or make_url(config.storage or DEFAULT_STORAGE).get_backend_name() != "sqlite"  # hosts may join
        sampler, pruner = make_sampler(sampler_config, parallel=config.workers > 1 or shared), make_pruner(config)
        self.store = Store(config.storage, create=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # Optuna >= 4.9
        self.retry = (retry or optuna.storages.RetryFailedTrialCallback)(max_retry=1)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        stale = (
            "heartbeat_stale_trial_callback"
            if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
            else "failed_trial_callback"
        )  # Optuna < 4.9
        self.storage = optuna.storages.RDBStorage(
            self.store.url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=self.heartbeat,
            grace_period=self.grace,
            **{stale: self._on_stale},
        )
        tune_sqlite(self.storage.engine)
        if self.store.study_config(config.study) is None:
            if join:
                raise ResnasError(
                    f"no study {config.study!r} in {safe_url(self.store.url)} to join; create it with resnas search",
                    field="--study",
                )
            self.store.add_study(config.study, config.pinned())
        if not join:
            self.store.set_study_trials(config.study, config.trials)
        self.study = optuna.create_study(
            study_name=config.study,
            storage=self.storage,
            load_if_exists=True,
            sampler=sampler,
            pruner=pruner,
            directions=directions(config.objective),
        )
        if not join:
            for k, v in (
                ("objective", config.objective),
                ("space", config.space.name),
                ("budget", config.budget.describe()),
                ("dataset", config.dataset),
            ):
                self.study.set_user_attr(k, v)  # shown by optuna-dashboard
        self.recipe = config.recipe.to_dict()
        self.recipe_key = recipe_key(self.recipe)
        self.checkpoints = Path(config.checkpoints) if config.checkpoints else self._default_checkpoints()
        self.state = SearchState(config.study, config.trials)
        self.handles: list[Handle] = []
        self.beats = Heartbeat(self.storage, self.heartbeat)
        self._last_sweep = self._last_count = 0.0

    def _default_checkpoints(self) -> Path:
        url = make_url(self.store.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).expanduser().parent / "checkpoints" / self.config.study
        return Path("studies") / "checkpoints" / self.config.study

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> SearchState:
        import optuna

        self.beats.start()
        previous = sigterm_as_interrupt()
        deadline = time.time() + self.config.timeout if self.config.timeout else math.inf
        try:
            self._sweep(force=True)
            self._refresh_counts(force=True)
            self._start_workers()
            while True:
                for h in self.handles:
                    if h.trial is None and h.info.get("ready") and self._want_more(deadline):
                        self._dispatch(h)
                if self.state.running == 0 and self._finished(deadline):
                    break
                self._handle_messages()
                self._check_workers()
                self._sweep()
                self._refresh_counts()
                self.on_update(self.state)
            if time.time() >= deadline:
                self.state.stopped_by = "timeout"
        except KeyboardInterrupt:
            self.state.interrupted = True
            for h in self.handles:
                if h.trial is not None:
                    self._finish(
                        h,
                        optuna.trial.TrialState.FAIL,
                        status="interrupted",
                        reason="interrupted (Ctrl-C or SIGTERM); tried again when the study resumes",
                    )
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self.beats.stop()
            for h in self.handles:
                h.kill() if self.state.interrupted else h.stop()
            self.db_patience = 0  # on the way out: one try, no waiting for a database that is gone
            self._refresh_counts(force=True, quiet=True)
            self.on_update(self.state)
            self.store.dispose()
        return self.state

    def _want_more(self, deadline: float) -> bool:
        """Room left in the study's total (every host's finished and running trials count), and time."""
        return (
            self.state.counted + self.state.running_all < self.config.trials
            and time.time() < deadline
            and not self.state.stopped_by
        )

    def _finished(self, deadline: float) -> bool:
        """Nothing more for this host: the total is reached, or time is up. While other hosts' trials still
        run it waits, so that it can take over one whose host goes quiet."""
        return self.state.counted >= self.config.trials or time.time() >= deadline or bool(self.state.stopped_by)

    def _refresh_counts(self, force: bool = False, quiet: bool = False) -> None:
        if not force and time.time() - self._last_count < 0.5:
            return
        self._last_count = time.time()
        try:
            by_status = self._db(self.store.counts, self.config.study)
        except ResnasError:
            if quiet:
                return
            raise
        self.state.running_all = by_status.get("running", 0)
        self.state.counted = sum(n for s, n in by_status.items() if RunStatus(s).counts and RunStatus(s).terminal)

    def _db(self, fn: Callable, *args, **kwargs):
        def counted(e: Exception) -> None:
            self.state.db_errors += 1

        return patiently(
            fn, *args, patience=self.db_patience, what=safe_url(self.store.url), on_retry=counted, **kwargs
        )

    def _hold(self, trial) -> None:
        self._db(self.beats.hold, trial._trial_id)
        self._db(trial.set_user_attr, "owner", self.owner)

    def _tell(self, trial, values=None, state=None) -> bool:
        """Tell Optuna; False when another coordinator already failed the trial (its heartbeat went stale)."""
        import optuna

        try:
            self._db(self.study.tell, trial, values, state=state)
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except ValueError as e:
            if not str(e).startswith("Cannot tell a"):
                raise
            return False
        finally:
            self.beats.release(trial._trial_id)

    # ---- trials whose coordinator died ---------------------------------------------------------
    def _sweep(self, force: bool = False) -> None:
        """Fail the study's stale trials: ones whose heartbeat stopped (Optuna), and, at once, ones held by
        a process on this host that is gone (a killed coordinator; no need to wait out the grace period)."""
        import optuna

        if not force and time.time() - self._last_sweep < self.heartbeat:
            return
        self._last_sweep = time.time()
        self._db(optuna.storages.fail_stale_trials, self.study)
        running = self._db(self.study.get_trials, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for t in running:
            owner = str(t.user_attrs.get("owner", ""))
            owner_host, _, pid = owner.rpartition(":")
            if owner_host != self.host or not pid.isdigit() or int(pid) == os.getpid() or alive(int(pid)):
                continue
            try:
                self._db(self.storage.set_trial_state_values, t._trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another coordinator on this host got there first
            self._lost(t, f"its coordinator ({owner}) exited before the trial finished")

    def _on_stale(self, study, trial) -> None:
        """Optuna failed a trial whose heartbeat stopped."""
        self._lost(
            trial,
            f"no heartbeat for {self.grace} s from its coordinator "
            f"({trial.user_attrs.get('owner', '?')}): its process or host died",
        )

    def _lost(self, trial, reason: str) -> None:
        self._db(self.store.lose_run, self.config.study, trial.number, "lost", reason)
        self.state.counts["lost"] += 1
        self._retry(trial._trial_id)

    def _retry(self, trial_id: int) -> None:
        """Queue the same parameters once more (Optuna's RetryFailedTrialCallback: at most one retry, so a
        candidate that kills its worker every time is given up after the second)."""
        frozen = self._db(self.storage.get_trial, trial_id)
        self._db(self.retry, self.study, frozen)
        if "failed_trial" not in frozen.system_attrs:
            self.state.counts["retried"] += 1

    def _start_workers(self) -> None:
        out = context().Queue()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        devices = [f"cuda:{g}" for g in self.config.gpus] or ["cpu"] * self.config.workers
        data_args = {
            "spec": self.config.dataset,
            "data_dir": self.config.data_dir,
            "val_size": self.config.val_size,
            "split_seed": self.config.split_seed,
        }
        for i, device in enumerate(devices):
            h = Handle(i, device, max(1, cores // len(devices)), data_args, out)
            h.start()
            self.handles.append(h)
            self.state.workers.append({"device": device, "trial": None})
        self.out = out

    # ---- one suggestion ------------------------------------------------------------------------
    def _dispatch(self, h: Handle) -> None:
        """Ask until a candidate needs training, then send it. Over-budget suggestions are pruned unbuilt;
        one trained in another study is reused (and counts); one already in this study is told its result
        again (the sampler learns it is a repeat) but does not count."""
        import optuna

        asked = time.time()
        for _ in range(MAX_ASKS):
            trial = self._db(self.study.ask)
            self._hold(trial)
            retry_of = self._db(self.storage.get_trial_system_attrs, trial._trial_id).get("failed_trial")
            if retry_of is not None:
                self._db(trial.set_user_attr, "retry_of", retry_of)
            arch = self.config.space.suggest(trial).replace(**self.shape)
            c = cost(arch)
            for k, v in (
                ("arch_key", arch.key),
                ("summary", arch.summary()),
                ("flops", c.flops),
                ("params", c.params),
                ("acts", c.acts),
            ):
                self._db(trial.set_user_attr, k, v)
            excess = self._excess(c)
            self._db(trial.set_constraint, "budget", excess)
            if excess > 0:
                self._db(trial.set_user_attr, "status", "over_budget")
                self._tell(trial, state=optuna.trial.TrialState.PRUNED)
                self.state.counts["over_budget"] += 1
                continue
            self._db(self.store.put_arch, arch, c)
            known = self._db(
                self.store.find_trained, arch.key, self.recipe_key, self.config.data_key, study=self.config.study
            )
            if known is not None and known.study == self.config.study:
                self._db(trial.set_user_attr, "status", "repeat")
                self._db(trial.set_user_attr, "repeat_of", known.trial)
                self._tell(trial, self._values(known.best_val_acc, c))
                self.state.counts["repeats"] += 1
                continue
            if known is not None:
                self._reuse(trial, arch, c, known)
                self._refresh_counts(force=True)
                if not self._want_more(math.inf):
                    return
                asked = time.time()
                continue
            ckpt = self.checkpoints / f"trial-{trial.number:05d}"
            run_id = self._db(
                self.store.claim,
                self.config.study,
                self.config.trials,
                **self._run_of(trial, arch),
                status="running",
                reason=f"training on {self.owner}",
                device=f"{h.device}@{socket.gethostname()}"[:64],
            )
            if run_id is None:  # another host took the last slot between our count and this claim
                self._db(trial.set_user_attr, "status", "surplus")
                self._tell(trial, state=optuna.trial.TrialState.PRUNED)
                self._refresh_counts(force=True)
                return
            h.trial = trial
            h.info = {
                "ready": True,
                "arch": arch,
                "cost": c,
                "epoch": 0,
                "started": time.time(),
                "asked": asked,
                "run_id": run_id,
            }
            self.state.running_all += 1
            self.state.workers[h.index].update(
                trial=trial.number, summary=arch.summary(), epoch=0, epochs=self.config.recipe.epochs, flops=c.flops
            )
            h.jobs.put((trial.number, arch.to_dict(), self.recipe, str(ckpt)))
            return
        self.state.stopped_by = (
            f"{MAX_ASKS} suggestions in a row brought nothing new to train (over the budget "
            "or already trained): the feasible part of the space looks exhausted"
        )

    def _run_of(self, trial, arch) -> dict:
        """What a run row says of its trial: which architecture, trained how, on what."""
        return {
            "trial": trial.number,
            "arch_key": arch.key,
            "recipe_key": self.recipe_key,
            "recipe": self.recipe,
            "data_key": self.config.data_key,
        }

    def _excess(self, c) -> float:
        """How far outside the budget, relative (> 0 infeasible, <= 0 feasible): the sampler's constraint."""
        b = self.config.budget
        parts = [(b.flops_min - c.flops) / max(1, b.flops_min) if b.flops_min else -1.0]
        if b.flops_max is not None:
            parts.append((c.flops - b.flops_max) / b.flops_max)
        if b.params_max is not None:
            parts.append((c.params - b.params_max) / b.params_max)
        return max(parts)

    def _values(self, best_val_acc: float, c) -> list[float]:
        if self.config.objective == "accuracy":
            return [best_val_acc]
        return [best_val_acc, float(c.flops if self.config.objective == "accuracy+flops" else c.params)]

    def _reuse(self, trial, arch, c, known: Run) -> None:
        import optuna

        run_id = self._db(
            self.store.claim,
            self.config.study,
            self.config.trials,
            **self._run_of(trial, arch),
            status=known.status,
            reason=f"reused from {known.study} trial {known.trial}",
            history=known.history,
            epochs=known.epochs,
            best_val_acc=known.best_val_acc,
            test_acc=known.test_acc,
            checkpoint=known.checkpoint,
            device=known.device,
            wall_seconds=0.0,
            train_seconds=known.train_seconds,
            reused_from=known.id,
        )
        if run_id is None:
            self._db(trial.set_user_attr, "status", "surplus")
            self._tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        for k, v in (
            ("status", "reused"),
            ("reused_from", f"{known.study}#{known.trial}"),
            ("best_val_acc", known.best_val_acc),
            (COUNTED, True),
        ):
            self._db(trial.set_user_attr, k, v)
        self._tell(trial, self._values(known.best_val_acc, c))
        self.state.counts["reused"] += 1
        self._update_best(trial.number, known.best_val_acc, arch, c)

    # ---- messages from workers ---------------------------------------------------------------
    def _handle_messages(self) -> None:
        try:
            kind, index, trial_number, payload = self.out.get(timeout=0.2)
        except queue.Empty:
            return
        h = self.handles[index]
        if kind == "ready":
            h.info["ready"] = True
            h.failed_starts = 0
        elif kind == "fatal":
            raise ResnasError(f"worker {index} could not load the data: {payload}")
        elif h.trial is None or trial_number != h.trial.number:
            return  # a message from a trial already failed (timed out, say)
        elif kind == "epoch":
            self._on_epoch(h, payload)
        elif kind == "done":
            self._on_done(h, payload)
        elif kind == "error":
            import optuna

            self._finish(h, optuna.trial.TrialState.FAIL, status="error", reason=payload)

    def _on_epoch(self, h: Handle, m: dict) -> None:
        import optuna

        decision = CONTINUE
        h.info["epoch"] = m["epoch"]
        self.state.workers[h.index].update(epoch=m["epoch"], val_acc=m["val_acc"])
        acc = m["val_acc"] if m["val_acc"] is not None else 0.0
        try:
            if not self.config.multi_objective:
                self._db(h.trial.report, acc, m["epoch"])
                if self._db(h.trial.should_prune):
                    decision = PRUNE
        except optuna.exceptions.UpdateFinishedTrialError:
            decision = PRUNE  # failed as stale by another coordinator (the database was away too long)
        h.control.put(decision)

    def _on_done(self, h: Handle, record: dict) -> None:
        import optuna

        status = record["status"]
        best = record["best"]["val_acc"] if record.get("best") else None
        if status in ("ok", "stopped_early") and best is not None:
            state, values = optuna.trial.TrialState.COMPLETE, self._values(best, h.info["cost"])
        elif status == "pruned":
            state, values = optuna.trial.TrialState.PRUNED, None
        else:
            state, values = optuna.trial.TrialState.FAIL, None
        self._finish(h, state, status=status, reason=record.get("reason", ""), record=record, values=values)

    def _finish(self, h: Handle, state, *, status: str, reason: str, record: dict | None = None, values=None) -> None:
        """Write the run, then tell Optuna, then free the worker. A trial cut short from outside (Ctrl-C, its
        process killed) frees its slot and is tried once more with the same parameters."""
        import optuna

        trial, arch, c = h.trial, h.info["arch"], h.info["cost"]
        record = record or {}
        best = (record.get("best") or {}).get("val_acc")
        wall = time.time() - h.info["started"]
        ckpt = self.checkpoints / f"trial-{trial.number:05d}" / "checkpoint.pt"
        written = self._db(
            self.store.finish_run,
            h.info["run_id"],
            status=status,
            reason=reason,
            history=record.get("history", []),
            epochs=len(record.get("history", [])),
            best_val_acc=best,
            checkpoint=str(ckpt) if ckpt.exists() else None,
            device=f"{record.get('device', h.device)}@{socket.gethostname()}"[:64],
            wall_seconds=wall,
            train_seconds=record.get("train_seconds"),
        )
        counted = RunStatus(status).counts
        told = False
        try:
            if written:
                for k, v in (("status", status), (COUNTED, counted)) + ((("reason", reason[:500]),) if reason else ()):
                    self._db(trial.set_user_attr, k, v)
                told = self._tell(trial, values, state=state if values is None else None)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
        if not told:  # failed as stale by another host meanwhile (the database was away past the grace period):
            # that host queued the retry; the run is lost whatever it had reached
            self.beats.release(trial._trial_id)
            self._db(
                self.store.finish_run,
                h.info["run_id"],
                only_running=False,
                status="lost",
                reason=f"failed as stale by another host while it was finishing as {status}",
            )
        elif not counted:
            self._retry(trial._trial_id)
        key = {"COMPLETE": "done", "PRUNED": "pruned"}.get(state.name, "failed")
        if counted and told:
            self.state.counts[key] += 1
            self.state.trial_seconds.append(wall)
        if values is not None and told:
            self._update_best(trial.number, best, arch, c)
        if "worker_seconds" in record:
            self.state.overheads.append(time.time() - h.info["asked"] - record["worker_seconds"])
        h.trial = None
        h.info = {"ready": h.info.get("ready", False)}
        self.state.workers[h.index] = {"device": h.device, "trial": None}
        self._refresh_counts(force=True, quiet=True)

    def _update_best(self, number: int, value: float | None, arch, c) -> None:
        if value is not None and (self.state.best is None or value > self.state.best["value"]):
            self.state.best = {
                "trial": number,
                "value": value,
                "flops": c.flops,
                "params": c.params,
                "summary": arch.summary(),
            }

    def _check_workers(self) -> None:
        """A dead worker fails its trial and is replaced; a trial past its timeout is killed."""
        import optuna

        now = time.time()
        for h in self.handles:
            timed_out = (
                h.trial is not None
                and self.config.trial_timeout is not None
                and now - h.info["started"] > self.config.trial_timeout
            )
            if h.alive() and not timed_out:
                continue
            code = h.process.exitcode if h.process is not None else None
            h.kill()
            if h.trial is not None:
                if timed_out:
                    self._finish(
                        h,
                        optuna.trial.TrialState.FAIL,
                        status="timeout",
                        reason=f"timed out after {self.config.trial_timeout:g} s",
                    )
                else:
                    self._finish(
                        h,
                        optuna.trial.TrialState.FAIL,
                        status="crashed",
                        reason=f"worker process died (exit code {code}; killed, or by the OS for memory?)",
                    )
            if not h.info.get("ready") and h.trial is None:
                h.failed_starts += 1  # died before it could load the data: it will not do better next time
                if h.failed_starts >= 3:
                    raise ResnasError(
                        f"worker process {h.index} exited (code {code}) three times before it was "
                        "ready; see its error above. (A script fed on standard input cannot start "
                        "worker processes: run it from a file.)"
                    )
            h.info = {}
            h.start()
