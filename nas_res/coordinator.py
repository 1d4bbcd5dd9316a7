"""The coordinator: the one process that owns the Optuna study and hands trials to worker processes.

Per suggestion it computes the cost analytically; an over-budget candidate is recorded with
`trial.set_constraint` and pruned without being built, and does not count toward the trial total.
An architecture already trained with the same recipe on the same data is reused. Everything else is
trained by a worker; its epochs are reported to Optuna here, where pruning is decided. A worker that
crashes, hangs past the trial timeout or runs out of memory fails its trial; the study goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import make_url

from .cost import cost
from .data import load_data
from .errors import ResnasError
from .search import SearchConfig, directions, make_pruner, make_sampler
from .store import Store, tune_sqlite
from .train import resolve_device
from .worker import CONTINUE, PRUNE, Handle, context

COUNTED = "resnas:counted"  # user attribute of trials that count toward --trials (not over-budget ones)
MAX_ASKS = 500              # suggestions in a row with nothing new to train before the search stops


@dataclass
class SearchState:
    """What the live view shows; updated after every event."""

    study: str
    target: int
    counts: dict = field(default_factory=lambda: dict.fromkeys(
        ("done", "pruned", "failed", "reused", "over_budget", "repeats"), 0))
    counted_before: int = 0
    best: dict | None = None        # {"trial", "value", "flops", "params", "summary"}
    workers: list = field(default_factory=list)
    started: float = field(default_factory=time.time)
    trial_seconds: list = field(default_factory=list)
    overheads: list = field(default_factory=list)  # per trained trial: wall seconds outside train()
    interrupted: bool = False
    stopped_by: str = ""

    @property
    def counted(self) -> int:
        c = self.counts
        return self.counted_before + c["done"] + c["pruned"] + c["failed"] + c["reused"]

    @property
    def running(self) -> int:
        return sum(1 for w in self.workers if w.get("trial") is not None)

    def eta(self) -> float | None:
        if not self.trial_seconds:
            return None
        left = max(0, self.target - self.counted - self.running)
        per = sum(self.trial_seconds) / len(self.trial_seconds)
        return per * (left + 0.5 * self.running) / max(1, len(self.workers))


def recipe_key(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


class Coordinator:
    def __init__(self, config: SearchConfig, on_update: Callable[[SearchState], None] | None = None):
        import optuna

        self.config = config
        self.on_update = on_update or (lambda state: None)
        for g in config.gpus:
            resolve_device(f"cuda:{g}")  # a GPU this machine lacks is an error now, not a failure per trial
        self.store = Store(config.storage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.storage = optuna.storages.RDBStorage(self.store.url, engine_kwargs={"pool_pre_ping": True})
        tune_sqlite(self.storage.engine)
        if self.store.study_config(config.study) is None:
            self.store.add_study(config.study, config.pinned())
        self.store.set_study_trials(config.study, config.trials)
        self.study = optuna.create_study(study_name=config.study, storage=self.storage, load_if_exists=True,
                                         sampler=make_sampler(config), pruner=make_pruner(config),
                                         directions=directions(config.objective))
        for k, v in (("objective", config.objective), ("space", config.space.name),
                     ("budget", config.budget.describe()), ("dataset", config.dataset)):
            self.study.set_user_attr(k, v)  # shown by optuna-dashboard
        self.recipe = config.recipe.to_dict()
        self.recipe_key = recipe_key(self.recipe)
        data = load_data(config.dataset, data_dir=config.data_dir, val_size=config.val_size,
                         split_seed=config.split_seed)  # fail here, clearly, before any worker starts
        self.shape = {"in_channels": data.channels, "classes": data.classes}
        del data
        self.checkpoints = Path(config.checkpoints) if config.checkpoints else self._default_checkpoints()
        self.state = SearchState(config.study, config.trials)
        self.handles: list[Handle] = []

    def _default_checkpoints(self) -> Path:
        url = make_url(self.store.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).expanduser().parent / "checkpoints" / self.config.study
        return Path("studies") / "checkpoints" / self.config.study

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> SearchState:
        import optuna

        self._fail_stale_trials()
        self.state.counted_before = sum(1 for t in self.study.get_trials(deepcopy=False)
                                        if t.user_attrs.get(COUNTED))
        self._start_workers()
        deadline = time.time() + self.config.timeout if self.config.timeout else math.inf
        try:
            while True:
                for h in self.handles:
                    if h.trial is None and h.info.get("ready") and self._want_more(deadline):
                        self._dispatch(h)
                if self.state.running == 0 and not self._want_more(deadline):
                    break
                self._handle_messages()
                self._check_workers()
                self.on_update(self.state)
            if time.time() >= deadline:
                self.state.stopped_by = "timeout"
        except KeyboardInterrupt:
            self.state.interrupted = True
            for h in self.handles:
                if h.trial is not None:
                    self._finish(h, optuna.trial.TrialState.FAIL, status="interrupted",
                                 reason="interrupted (Ctrl-C); the study can be resumed")
        finally:
            for h in self.handles:
                h.kill() if self.state.interrupted else h.stop()
            self.on_update(self.state)
            self.store.dispose()
        return self.state

    def _want_more(self, deadline: float) -> bool:
        return (self.state.counted + self.state.running < self.config.trials and time.time() < deadline
                and not self.state.stopped_by)

    def _fail_stale_trials(self) -> None:
        """Trials left RUNNING by a coordinator that was killed: this coordinator owns the study now.
        (Several coordinators on one study, over PostgreSQL, need Optuna's heartbeat instead.)"""
        import optuna

        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            self.storage.set_trial_user_attr(t._trial_id, "reason", "its coordinator stopped before it finished")
            self.storage.set_trial_user_attr(t._trial_id, COUNTED, False)
            self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)

    def _start_workers(self) -> None:
        out = context().Queue()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        devices = [f"cuda:{g}" for g in self.config.gpus] or ["cpu"] * self.config.workers
        data_args = {"spec": self.config.dataset, "data_dir": self.config.data_dir, "val_size": self.config.val_size,
                     "split_seed": self.config.split_seed}
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
            trial = self.study.ask()
            arch = self.config.space.suggest(trial).replace(**self.shape)
            c = cost(arch)
            for k, v in (("arch_key", arch.key), ("summary", arch.summary()), ("flops", c.flops),
                         ("params", c.params), ("acts", c.acts)):
                trial.set_user_attr(k, v)
            excess = self._excess(c)
            trial.set_constraint("budget", excess)
            if excess > 0:
                trial.set_user_attr("status", "over_budget")
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                self.state.counts["over_budget"] += 1
                continue
            self.store.put_arch(arch, c)
            known = self.store.find_trained(arch.key, self.recipe_key, self.config.data_key,
                                            study=self.config.study)
            if known is not None and known["study"] == self.config.study:
                trial.set_user_attr("status", "repeat")
                trial.set_user_attr("repeat_of", known["trial"])
                self.study.tell(trial, self._values(known["best_val_acc"], c))
                self.state.counts["repeats"] += 1
                continue
            trial.set_user_attr(COUNTED, True)
            if known is not None:
                self._reuse(trial, arch, c, known)
                if not self._want_more(math.inf):
                    return
                asked = time.time()
                continue
            h.trial = trial
            h.info = {"ready": True, "arch": arch, "cost": c, "epoch": 0, "started": time.time(), "asked": asked}
            self.state.workers[h.index].update(trial=trial.number, summary=arch.summary(), epoch=0,
                                               epochs=self.config.recipe.epochs, flops=c.flops)
            ckpt = self.checkpoints / f"trial-{trial.number:05d}"
            h.jobs.put((trial.number, arch.to_dict(), self.recipe, str(ckpt)))
            return
        self.state.stopped_by = (f"{MAX_ASKS} suggestions in a row brought nothing new to train (over the budget "
                                 "or already trained): the feasible part of the space looks exhausted")

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

    def _reuse(self, trial, arch, c, known: dict) -> None:
        trial.set_user_attr("status", "reused")
        trial.set_user_attr("reused_from", f"{known['study']}#{known['trial']}")
        trial.set_user_attr("best_val_acc", known["best_val_acc"])
        self.study.tell(trial, self._values(known["best_val_acc"], c))
        self.store.add_run(study=self.config.study, trial=trial.number, arch_key=arch.key, recipe_key=self.recipe_key,
                           recipe=self.recipe, data_key=self.config.data_key, status=known["status"],
                           reason=f"reused from {known['study']} trial {known['trial']}", history=known["history"],
                           epochs=known["epochs"], best_val_acc=known["best_val_acc"], test_acc=known["test_acc"],
                           checkpoint=known["checkpoint"], device=known["device"], wall_seconds=0.0,
                           train_seconds=known["train_seconds"], reused_from=known["id"])
        self.state.counts["reused"] += 1
        self._update_best(trial.number, known["best_val_acc"], arch, c)

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
        decision = CONTINUE
        h.info["epoch"] = m["epoch"]
        self.state.workers[h.index].update(epoch=m["epoch"], val_acc=m["val_acc"])
        acc = m["val_acc"] if m["val_acc"] is not None else 0.0
        if not self.config.multi_objective:
            h.trial.report(acc, m["epoch"])
            if h.trial.should_prune():
                decision = PRUNE
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
        """Tell Optuna, write the run, free the worker."""
        trial, arch, c = h.trial, h.info["arch"], h.info["cost"]
        record = record or {}
        best = (record.get("best") or {}).get("val_acc")
        wall = time.time() - h.info["started"]
        trial.set_user_attr("status", status)
        if status == "interrupted":  # not a result: the resumed study trains another in its place
            trial.set_user_attr(COUNTED, False)
        if reason:
            trial.set_user_attr("reason", reason[:500])
        self.study.tell(trial, values, state=state if values is None else None)
        ckpt = self.checkpoints / f"trial-{trial.number:05d}" / "checkpoint.pt"
        self.store.add_run(study=self.config.study, trial=trial.number, arch_key=arch.key, recipe_key=self.recipe_key,
                           recipe=self.recipe, data_key=self.config.data_key, status=status, reason=reason,
                           history=record.get("history", []), epochs=len(record.get("history", [])),
                           best_val_acc=best, checkpoint=str(ckpt) if ckpt.exists() else None,
                           device=record.get("device", h.device), wall_seconds=wall,
                           train_seconds=record.get("train_seconds"))
        key = {"COMPLETE": "done", "PRUNED": "pruned"}.get(state.name, "failed")
        if status != "interrupted":
            self.state.counts[key] += 1
        self.state.trial_seconds.append(wall)
        if values is not None:
            self._update_best(trial.number, best, arch, c)
        if "worker_seconds" in record:
            self.state.overheads.append(time.time() - h.info["asked"] - record["worker_seconds"])
        h.trial = None
        h.info = {"ready": h.info.get("ready", False)}
        self.state.workers[h.index] = {"device": h.device, "trial": None}

    def _update_best(self, number: int, value: float | None, arch, c) -> None:
        if value is not None and (self.state.best is None or value > self.state.best["value"]):
            self.state.best = {"trial": number, "value": value, "flops": c.flops, "params": c.params,
                               "summary": arch.summary()}

    def _check_workers(self) -> None:
        """A dead worker fails its trial and is replaced; a trial past its timeout is killed."""
        import optuna

        now = time.time()
        for h in self.handles:
            timed_out = (h.trial is not None and self.config.trial_timeout is not None
                         and now - h.info["started"] > self.config.trial_timeout)
            if h.alive() and not timed_out:
                continue
            code = h.process.exitcode if h.process is not None else None
            h.kill()
            if h.trial is not None:
                reason = (f"timed out after {self.config.trial_timeout:g} s" if timed_out else
                          f"worker process died (exit code {code}; killed by the OS for memory?)")
                self._finish(h, optuna.trial.TrialState.FAIL, status="timeout" if timed_out else "crashed",
                             reason=reason)
            if not h.info.get("ready") and h.trial is None:
                h.failed_starts += 1  # died before it could load the data: it will not do better next time
                if h.failed_starts >= 3:
                    raise ResnasError(f"worker process {h.index} exited (code {code}) three times before it was "
                                      "ready; see its error above. (A script fed on standard input cannot start "
                                      "worker processes: run it from a file.)")
            h.info = {}
            h.start()
