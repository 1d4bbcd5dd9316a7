"""One trial from ask to tell: cost and budget, reuse or repeat, the claim of a slot, the worker's epochs,
and the result written to resnas's run row before Optuna is told.

The order matters to every other host on the study: the run row exists from the moment a trial
starts training, and its result is written before Optuna hears it, so no told trial lacks its run
and no run lacks its trial. As trials end, their checkpoints are held to the keep policy (keep.py).

Over 300 lines: a trial's life is one sequence whose order is the protocol between hosts (above), kept
in one file so that it reads top to bottom.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..arch.cost import Cost, cost
from ..arch.description import Arch
from ..latency.meter import LatencyLimit, Meter
from ..latency.setting import Setting
from ..results.record import Run
from ..results.store import Store, Twin
from ..space.design_space import NotACandidate
from ..training.checkpoint import FILE_NAME
from ..training.status import RunStatus
from ..training.threads import worker_threads
from .config import SearchConfig
from .keep import Keeper, checkpoint_of, discard, trial_folder
from .liveness import Heartbeat
from .pool import Assignment, Job, Worker
from .state import Fastest, SearchState
from .study import COMPLETE, COUNTED, FAIL, PRUNED, REFERENCE, OptunaStudy

MAX_ASKS = 500  # suggestions in a row with nothing new to train before the search stops


class Host(Protocol):
    """What the trial bookkeeping needs of the loop that runs it (the `Coordinator` is one)."""

    config: SearchConfig
    optuna: OptunaStudy
    store: Store
    state: SearchState
    checkpoints: Path
    beats: Heartbeat
    owner: str  # host:pid, written on each trial it takes
    given_mode: bool  # trains queued archs only (train_archs, experiment arms)

    def db(self, fn: Callable, *args: Any, **kwargs: Any) -> Any: ...
    def sweep(self, force: bool = False) -> None: ...
    def want_more(self) -> bool: ...
    def recipe_for(self, trial: Any) -> tuple[Arch, dict, str]: ...
    def salt_sampler(self) -> None: ...
    def refresh_counts(self, force: bool = False, quiet: bool = False) -> None: ...
    def retry(self, trial: Any) -> None: ...


class Trials:
    """The trial bookkeeping of one coordinator (its study, store, state and heartbeat)."""

    def __init__(self, coordinator: Host):
        self.c = coordinator
        self.config = coordinator.config
        self.optuna, self.store, self.state = coordinator.optuna, coordinator.store, coordinator.state
        self.db = coordinator.db
        self.threads = worker_threads(self.config.threads, self.config.gpus, self.config.workers)
        held = self.config.latency  # measured here, in fresh processes, each net once (the storage keeps them)
        self.latency = (
            LatencyLimit(Meter(Setting.from_dict(held["setting"]), self.store), held["max_ms"]) if held else None
        )
        self.keeper = Keeper(
            self.config.keep_checkpoints,
            coordinator.checkpoints,
            self.config.study,
            self.store,
            self.db,
            pareto_too=self.config.multi_objective,
        )
        self.state.disk = self.keeper.disk
        self._settled = False

    # ---- from a suggestion to a worker -------------------------------------------------------------
    def dispatch(self, w: Worker) -> None:
        """Ask until a candidate needs training, then send it. Over-budget suggestions are pruned unbuilt;
        one trained in another study is reused (and counts); one already in this study is told its result
        again (the sampler learns it is a repeat) but does not count."""
        c, db, counts = self.c, self.db, self.state.counts
        if not self._settled:  # a resumed study under a new policy: hold what is on disk to it at once
            self._settled = True
            self.keeper.settle()
            self.keeper.measure(force=True)
        asked = time.time()
        for _ in range(MAX_ASKS):
            c.sweep()  # a long run of over-budget or repeated suggestions must not hold up failing a dead host's trial
            trial = db(self.optuna.ask)
            db(c.beats.hold, trial)
            db(self.optuna.set, trial, owner=c.owner)
            retry_of = db(self.optuna.retry_of, trial)
            if retry_of is not None:
                db(self.optuna.set, trial, retry_of=retry_of)
            if c.given_mode and self.optuna.given_arch(trial) is None:  # another host took the last one
                self._surplus(trial)
                return
            try:
                arch, recipe, recipe_key = c.recipe_for(trial)
            except NotACandidate as e:  # a depth total the chosen blocks do not split into: infeasible
                db(self.optuna.set, trial, status="no_candidate", reason=e.bare)
                db(self.optuna.constrain, trial, 1.0)
                self.tell(trial, state=PRUNED)
                counts["no_candidate"] += 1
                continue
            price = cost(arch)
            db(
                self.optuna.set,
                trial,
                arch_key=arch.key,
                summary=arch.summary(),
                flops=price.flops,
                params=price.params,
                acts=price.acts,
            )
            excess, over = self.config.budget.excess(price), "over_budget"
            if excess <= 0 and self.latency is not None:  # within the budget: then the latency
                verdict = self.latency.judge(arch)
                db(self.optuna.set, trial, latency_ms=verdict.ms, latency=verdict.how)
                if self.state.fastest is None or verdict.ms < self.state.fastest.ms:
                    self.state.fastest = Fastest(verdict.ms, verdict.how, arch.summary())
                excess, over = max(excess, verdict.excess), "over_latency"
            db(self.optuna.constrain, trial, excess)
            if excess > 0:
                db(self.optuna.set, trial, status=over)
                self.tell(trial, state=PRUNED)
                counts[over] += 1
                continue
            db(self.store.put_arch, arch, price)
            known = db(self.store.find_trained, arch.key, recipe_key, self.config.data_key, study=self.config.study)
            if known is not None and known.study == self.config.study:
                db(self.optuna.set, trial, status="repeat", repeat_of=known.trial)
                self.tell(trial, self._values(known.score, price, arch))
                counts["repeats"] += 1
                continue
            pruned = (
                None
                if known
                else db(self.store.find_pruned, arch.key, recipe_key, self.config.data_key, self.config.study)
            )
            if pruned is not None:  # told what it reached before, so the sampler ranks it as it did then
                db(self.optuna.set, trial, status="repeat", repeat_of=pruned.trial)
                for h in pruned.history:
                    if h.get(self.config.score_key) is not None:
                        db(self.optuna.record, trial, h[self.config.score_key], h["epoch"])
                self.tell(trial, state=PRUNED)
                counts["repeats"] += 1
                continue
            if known is not None:
                self._reuse(trial, arch, price, recipe, recipe_key, known)
                c.refresh_counts(force=True)
                if not c.want_more():
                    return
                asked = time.time()
                continue
            run_id = db(
                self.store.claim,
                self.config.study,
                self.config.trials,
                **self._run_of(trial, arch, recipe, recipe_key),
                status=RunStatus.RUNNING.value,
                reason=f"training on {c.owner}",
                device=f"{w.device}@{socket.gethostname()}"[:64],
            )
            if isinstance(run_id, Twin):  # another process trains it (or has just trained it): not twice
                self._twin(trial, run_id)
                continue
            if run_id is None:  # another host took the last slot between our count and this claim
                self._surplus(trial)
                return
            resumes = retry_of is not None and (trial_folder(c.checkpoints, retry_of) / FILE_NAME).is_file()
            w.send(
                Job(
                    trial.number,
                    arch.to_dict(),
                    recipe,
                    str(trial_folder(c.checkpoints, trial.number)),
                    threads=self.threads,
                    keep=str(self.config.keep_checkpoints),
                    resume_from=retry_of if resumes else None,
                ),
                Assignment(
                    trial,
                    trial.number,
                    arch,
                    price,
                    run_id,
                    int(recipe["epochs"]),
                    asked,
                    retry_of,
                    reference=REFERENCE in trial.user_attrs,
                ),
            )
            self.state.running_all += 1
            return
        limit = self.latency is not None and self.latency.max_ms is not None
        over = "over the budget, over the latency limit," if limit else "over the budget,"
        self.state.stopped_by = (
            f"{MAX_ASKS} suggestions in a row brought nothing new to train ({over} "
            "no net of the space, or already trained): the feasible part of the space looks exhausted"
        )

    def _run_of(self, trial: Any, arch: Any, recipe: dict, recipe_key: str) -> dict:
        """What a run row says of its trial: which architecture, trained how, on what."""
        return {
            "trial": trial.number,
            "arch_key": arch.key,
            "recipe_key": recipe_key,
            "recipe": recipe,
            "data_key": self.config.data_key,
        }

    def _values(self, score: float | None, price: Cost, arch: Arch) -> list[float]:
        assert score is not None, "a trained candidate that ranks has a score"
        ms = self.latency.ms(arch) if self.latency is not None else None
        return self.config.objective_values(score, price.flops, price.params, ms)

    def _twin(self, trial: Any, twin: Twin) -> None:
        """The same training as another trial of the study (another process suggested it too): a repeat,
        told without a value (it may not have one yet) and not counted."""
        self.db(self.optuna.set, trial, status="repeat", repeat_of=twin.trial)
        self.tell(trial, state=PRUNED)
        self.state.counts["repeats"] += 1
        self.c.salt_sampler()  # another process suggests what this one does: stop walking in its steps

    def _surplus(self, trial: Any) -> None:
        self.db(self.optuna.set, trial, status="surplus")
        self.tell(trial, state=PRUNED)
        self.c.refresh_counts(force=True)

    def _reuse(self, trial: Any, arch: Any, price: Cost, recipe: dict, recipe_key: str, known: Run) -> None:
        run_id = self.db(
            self.store.claim,
            self.config.study,
            self.config.trials,
            **self._run_of(trial, arch, recipe, recipe_key),
            status=RunStatus(known.status).value,
            reason=f"reused from {known.study} trial {known.trial}",
            history=known.history,
            epochs=known.epochs,
            best_val_acc=known.best_val_acc,
            test_acc=known.test_acc,
            val_correct=known.val_correct,
            test_correct=known.test_correct,
            checkpoint=known.checkpoint,
            device=known.device,
            wall_seconds=0.0,
            train_seconds=known.train_seconds,
            reused_from=known.id,
        )
        if isinstance(run_id, Twin):
            self._twin(trial, run_id)
            return
        if run_id is None:  # another host took the last slot
            self._surplus(trial)
            return
        self.db(
            self.optuna.set,
            trial,
            status="reused",
            reused_from=f"{known.study}#{known.trial}",
            best_val_acc=known.best_val_acc,
            **{COUNTED: True},
        )
        self.tell(trial, self._values(known.score, price, arch))
        self.state.counts["reused"] += 1
        self.state.offer_best(trial.number, known.score, arch, price)

    def tell(self, trial: Any, values: list[float] | None = None, state: Any = None) -> bool:
        try:
            return self.db(self.optuna.tell, trial, values, state)
        finally:
            self.c.beats.release(trial)

    # ---- from a worker to the study ----------------------------------------------------------------
    def epoch(self, w: Worker, metrics: dict) -> None:
        job = w.job
        assert job is not None
        score = metrics[self.config.score_key]
        job.epoch, job.val_acc, job.val_loss = metrics["epoch"], metrics["val_acc"], metrics["val_loss"]
        job.history.append(metrics)  # stored as it comes: a run cut short shows the epochs it finished
        self.db(self.store.finish_run, job.run_id, history=job.history, epochs=len(job.history))
        self.keeper.measure()
        prune = False
        if not self.config.multi_objective:
            worst = math.inf if self.config.task == "vae" else 0.0
            prune = self.db(self.optuna.report, job.trial, worst if score is None else score, metrics["epoch"])
        # A trial that has trained all its epochs is complete, whatever the pruner says: Hyperband's top
        # rung is the last epoch, and stopping there would drop a fully trained network from the ranking.
        # A reference (a hand pick) is trained in full: the search is judged against its final accuracy.
        w.decide(prune and metrics["epoch"] < job.epochs and not job.reference)

    def done(self, w: Worker, record: dict, worker_seconds: float) -> None:
        status = RunStatus(record["status"])
        best = (record.get("best") or {}).get(self.config.score_key)
        job = w.job
        assert job is not None
        values = self._values(best, job.cost, job.arch) if status.ranks and best is not None else None
        w.threads = record.get("threads", w.threads)
        self.finish(w, status, record.get("reason", ""), record=record, values=values)
        self.state.overheads.append(time.time() - job.asked - worker_seconds)

    def finish(
        self,
        w: Worker,
        status: RunStatus,
        reason: str,
        *,
        record: dict | None = None,
        values: list[float] | None = None,
    ) -> None:
        """Write the run, then tell Optuna, then free the worker. A trial cut short from outside (Ctrl-C, its
        process killed) frees its slot and is tried once more with the same parameters, continuing from its
        checkpoint; one that ended has its checkpoints held to the keep policy."""
        job = w.job
        assert job is not None
        trial, record = job.trial, record or {}
        score = (record.get("best") or {}).get(self.config.score_key)
        wall = time.time() - job.started
        folder = trial_folder(self.c.checkpoints, trial.number)
        ckpt = checkpoint_of(folder)
        history = record.get("history", job.history)
        written = self.db(
            self.store.finish_run,
            job.run_id,
            status=status.value,
            reason=reason,
            history=history,
            epochs=len(history),
            best_val_acc=(record.get("best") or {}).get("val_acc"),
            val_correct=record.get("val_correct"),  # the best epoch's per-image record (None: a VAE)
            checkpoint=str(ckpt) if ckpt else None,
            device=f"{record.get('device', w.device)}@{socket.gethostname()}"[:64],
            wall_seconds=wall,
            train_seconds=record.get("train_seconds"),
        )
        told = False
        attrs = {"status": status.value, COUNTED: status.counts, **({"reason": reason[:500]} if reason else {})}
        attrs.update({k: record[k] for k in ("threads", "resumed") if record.get(k) is not None})
        if written and self.db(self.optuna.set, trial, **attrs):
            state = COMPLETE if values is not None else PRUNED if status is RunStatus.PRUNED else FAIL
            told = self.tell(trial, values, state)
        else:
            self.c.beats.release(trial)
        if not told:  # failed as stale by another host meanwhile (the database was away past the grace
            # period): that host queued the retry; the run is lost whatever it had reached
            self.db(
                self.store.finish_run,
                job.run_id,
                only_running=False,
                status=RunStatus.LOST.value,
                reason=f"failed as stale by another host while it was finishing as {status}",
            )
        elif not status.counts:
            self.c.retry(trial)
        if status.counts and told:
            key = "done" if values is not None else "pruned" if status is RunStatus.PRUNED else "failed"
            self.state.counts[key] += 1
            self.state.trial_seconds.append(wall)
            self.state.offer_best(trial.number, score if values is not None else None, job.arch, job.cost)
        w.job = None
        if status is RunStatus.CRASHED and job.retry_of is not None:
            discard(folder)  # a retry that crashed again is not tried a third time: its state is of no use
        if status.counts:
            self.keeper.settle()
        self.keeper.measure(force=True)
        self.c.refresh_counts(force=True, quiet=True)
