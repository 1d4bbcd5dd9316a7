"""Trial workers: one process per GPU (or CPU slot), the typed messages they exchange with the
coordinator, and starting, restarting and stopping them.

Training in a separate process means a crash, an out-of-memory kill or a hang costs one trial, not
the study. A worker loads the data once, then trains the jobs it is sent; after each epoch it
reports and waits for the coordinator's decision (go on or prune), so pruning stays with the one
process that speaks to Optuna.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from ..arch import Arch
from ..data import load_data
from ..errors import ResnasError
from ..recipe import Recipe
from ..train import Pruned, train

# ---- the protocol ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """Coordinator -> worker: train this architecture with this recipe; checkpoints into this folder."""

    trial: int
    arch: dict
    recipe: dict
    checkpoint_dir: str


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
    """Training ended (any status: ok, pruned, diverged, ...); `record` is `Result.to_dict()`."""

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
    started: float = field(default_factory=time.time)
    epoch: int = 0
    val_acc: float | None = None


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
        ctx = context()
        self.jobs, self.control, self.ready, self.job = ctx.Queue(), ctx.Queue(), False, None
        self.process = ctx.Process(
            target=main,
            name=f"resnas-worker-{self.index}",
            daemon=True,
            args=(self.index, self.device, self.threads, self.data_args, self.jobs, self.control, self.out),
        )
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def send(self, job: Job, assignment: Assignment) -> None:
        self.job = assignment
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
    """This host's workers: one per GPU, or `count` on the CPU, sharing the cores between them."""

    def __init__(self, gpus: tuple[int, ...], count: int, data_args: dict):
        self.out = context().Queue()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        devices = [f"cuda:{g}" for g in gpus] or ["cpu"] * count
        threads = max(1, cores // len(devices))
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


def main(index: int, device: str, threads: int, data_args: dict, jobs, control, out) -> None:
    """Worker entry point: load the data, then train jobs until told to stop (a None job)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    torch.set_num_threads(max(1, threads))
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
                raise Pruned(f"pruned after epoch {m.epoch} (val acc {m.val_acc:.2f}%)")

        try:
            start = time.perf_counter()
            result = train(
                Arch.from_dict(job.arch),
                data,
                Recipe.from_dict(job.recipe),
                device=device,
                on_epoch=on_epoch,
                out=job.checkpoint_dir,
            )
            out.put(Done(index, job.trial, result.to_dict(), time.perf_counter() - start - waited[0]))
        except Exception as e:  # noqa: BLE001 - a candidate must not take the worker down with it
            tail = traceback.format_exc(limit=-3).strip().splitlines()
            out.put(Raised(index, job.trial, f"{type(e).__name__}: {e} ({' | '.join(tail[-3:])})"[:2000]))


def _exit_with_parent(parent: int) -> None:
    """A coordinator killed outright (SIGKILL, a lost host) cannot stop its workers: they notice and go,
    rather than train on for nobody and hold the GPU."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
