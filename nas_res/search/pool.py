"""Trial workers: one process per GPU (or CPU slot), the typed messages they exchange with the
coordinator, and starting, restarting and stopping them.

Training in a separate process means a crash, an out-of-memory kill or a hang costs one trial, not
the study. A worker loads the data once, then trains the jobs it is sent; after each epoch it
reports and waits for the coordinator's decision (go on or prune), so pruning stays with the one
process that speaks to Optuna.

Each worker uses the CPU threads its job says (`threads.worker_threads`): torch's default of one per
core, in every worker, had them fighting over the cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..arch.description import Arch
from ..data.dataset import load_data
from ..data.splits import Data
from ..errors import ResnasError
from ..training import checkpoint
from ..training.recipe import Recipe
from ..training.status import RunStatus
from ..training.threads import use_threads, worker_threads
from ..training.trainer import Pruned, train
from .keep import KeepPolicy, end_files, take_over, trial_folder
from .orphan import Parent, die_with_parent

# ---- the protocol ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Coordinator -> worker: train this architecture with this recipe, on this many threads; checkpoints
    into this folder, kept at the end as `keep` says; `resume_from`: the trial it retries, whose folder
    (beside this one) may hold a checkpoint to continue."""

    trial: int
    arch: dict
    recipe: dict
    checkpoint_dir: str
    threads: int
    keep: str
    resume_from: int | None = None


@dataclass(frozen=True)
class Ready:
    """The worker loaded the data and waits for jobs."""

    worker: int


@dataclass(frozen=True)
class Fatal:
    """The worker cannot work at all (the data did not load): the search stops with this message."""

    worker: int
    message: str


@dataclass(frozen=True)
class Epoch:
    """An epoch finished; the worker waits for a `prune` decision (True or False) before going on."""

    worker: int
    trial: int
    metrics: dict


@dataclass(frozen=True)
class Done:
    """Training ended (any status: ok, pruned, diverged, ...); `record` is `Result.to_dict()` with the
    threads it ran on, `val_correct` (the best epoch's per-image record: bytes, or None) and, for a retry
    that continued its predecessor, `resumed` (trial and epochs)."""

    worker: int
    trial: int
    record: dict
    worker_seconds: float  # time in train() less the time spent waiting for decisions


@dataclass(frozen=True)
class Raised:
    """The candidate raised: the trial fails with this message, the worker goes on."""

    worker: int
    trial: int
    message: str


Message = Ready | Fatal | Epoch | Done | Raised


def context() -> Any:
    """Spawned, not forked: a CUDA context and threads do not survive fork."""
    return mp.get_context("spawn")


# ---- the coordinator's side ---------------------------------------------------------------------


@dataclass
class Assignment:
    """A trial a worker is training, as the coordinator and the live view see it."""

    trial: Any  # the Optuna trial
    number: int
    arch: Any  # Arch
    cost: Any  # Cost
    run_id: int
    epochs: int
    asked: float  # when the suggestion was asked for (orchestration time starts here)
    retry_of: int | None = None  # the trial whose parameters this one tries again
    reference: bool = False  # a hand pick queued first: trained in full, never pruned
    started: float = field(default_factory=time.time)
    epoch: int = 0
    val_acc: float | None = None
    val_loss: float | None = None  # a VAE's score: its validation negative ELBO
    history: list = field(default_factory=list)  # its epochs so far, as its run row holds them


@dataclass
class Worker:
    """One worker process and the trial it trains (`job`), if any."""

    index: int
    device: str
    threads: int
    data_args: dict
    out: Any  # the queue every worker writes to
    process: Any = None
    jobs: Any = None
    control: Any = None
    ready: bool = False
    failed_starts: int = 0  # deaths in a row before reporting ready
    job: Assignment | None = None

    def start(self) -> None:
        ctx, here = context(), Parent.here()
        self.jobs, self.control, self.ready, self.job = ctx.Queue(), ctx.Queue(), False, None
        self.process = ctx.Process(
            target=main,
            name=f"resnas-worker-{self.index}",
            daemon=True,
            args=(self.index, self.device, self.threads, self.data_args, self.jobs, self.control, self.out, here),
        )
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def send(self, job: Job, assignment: Assignment) -> None:
        self.job, self.threads = assignment, job.threads
        self.jobs.put(job)

    def decide(self, prune: bool) -> None:
        self.control.put(prune)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask it to finish (no more jobs), then kill it if it does not."""
        if self.process is None:
            return
        if self.process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                self.jobs.put(None)
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        for q in (self.jobs, self.control):
            q.close()
            q.cancel_join_thread()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        self.stop(timeout=5.0)


class Pool:
    """This host's workers: one per GPU, or `count` on the CPU, sharing the cores between them (each job
    then says its own thread count: `Job.threads`)."""

    def __init__(self, gpus: tuple[int, ...], count: int, data_args: dict):
        self.out = context().Queue()
        devices = [f"cuda:{g}" for g in gpus] or ["cpu"] * count
        threads = worker_threads(None, gpus, count)
        self.workers = [Worker(i, d, threads, data_args, self.out) for i, d in enumerate(devices)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def idle(self) -> list[Worker]:
        return [w for w in self.workers if w.ready and w.job is None]

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.job is not None)

    def receive(self, timeout: float = 0.2) -> Message | None:
        try:
            return self.out.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self, kill: bool = False) -> None:
        for w in self.workers:
            w.kill() if kill else w.stop()


# ---- the worker's side ----------------------------------------------------------------------------


def main(index: int, device: str, threads: int, data_args: dict, jobs, control, out, parent: Parent) -> None:
    """Worker entry point: load the data, then train jobs until told to stop (a None job)."""
    die_with_parent(parent)  # a coordinator killed outright cannot stop its workers: they go by themselves
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    use_threads(threads)
    try:
        data = load_data(**data_args)
    except ResnasError as e:
        out.put(Fatal(index, str(e)))
        return
    out.put(Ready(index))
    while True:
        job: Job | None = jobs.get()
        if job is None:
            return
        waited = [0.0]  # time spent waiting for the coordinator's decision: orchestration, not training

        def on_epoch(m, trial=job.trial, waited=waited) -> None:
            start = time.perf_counter()
            out.put(Epoch(index, trial, m.to_dict()))
            prune = control.get()
            waited[0] += time.perf_counter() - start
            if prune:
                seen = f"val -ELBO {m.val_loss:.2f}" if m.val_recon is not None else f"val acc {m.val_acc:.2f}%"
                raise Pruned(f"pruned after epoch {m.epoch} ({seen})")

        folder, keep = Path(job.checkpoint_dir), KeepPolicy.parse(job.keep)
        try:
            use_threads(job.threads)
            arch, recipe = Arch.from_dict(job.arch), Recipe.from_dict(job.recipe)
            resumed = _resume(job, folder, arch, recipe, data, (index, out, control))
            start = time.perf_counter()
            result = train(
                arch,
                data,
                recipe,
                device=device,
                on_epoch=on_epoch,
                out=folder,
                resume=resumed is not None,
            )
            seconds = time.perf_counter() - start - waited[0]
            end_files(folder, result.status, keep)
            record = {**result.to_dict(), "threads": torch.get_num_threads(), "resumed": resumed}
            record["val_correct"] = result.val_correct  # bytes: for the run row, not for JSON
            out.put(Done(index, job.trial, record, seconds))
        except Exception as e:  # noqa: BLE001 - a candidate must not take the worker down with it
            tail = traceback.format_exc(limit=-3).strip().splitlines()
            end_files(folder, RunStatus.ERROR, keep)
            out.put(Raised(index, job.trial, f"{type(e).__name__}: {e} ({' | '.join(tail[-3:])})"[:2000]))


def _resume(job: Job, folder: Path, arch: Arch, recipe: Recipe, data: Data, link: tuple) -> dict | None:
    """Continue the attempt this trial retries, if its checkpoint is on this host and fits: move it here
    and report the epochs it holds again, so that Optuna has every step of this trial (the pruner decided
    on them when they ran: its answers now are not acted on). None when the trial starts over."""
    if job.resume_from is None or not take_over(trial_folder(folder.parent, job.resume_from), folder):
        return None
    try:
        history = checkpoint.load_matching(folder / checkpoint.FILE_NAME, arch, recipe, data)["history"]
    except ResnasError:  # damaged, or written by another recipe or data: start over
        (folder / checkpoint.FILE_NAME).unlink(missing_ok=True)
        return None
    index, out, control = link
    for row in history:  # as stored: non-finite values already None
        out.put(Epoch(index, job.trial, dict(row)))
        control.get()
    return {"trial": job.resume_from, "epochs": len(history)}
