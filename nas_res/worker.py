"""A trial worker: a subprocess that loads the data once and trains the trials the coordinator sends.

Training in a separate process means a crash, an out-of-memory kill or a hang costs one trial,
not the study. The worker reports each epoch and waits for the coordinator's decision (go on or
prune), so pruning stays with the one process that owns the Optuna study.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

CONTINUE, PRUNE = "continue", "prune"


def context() -> Any:
    """Spawned, not forked: a CUDA context and threads do not survive fork."""
    return mp.get_context("spawn")


@dataclass
class Handle:
    """The coordinator's side of one worker process."""

    index: int
    device: str
    threads: int
    data_args: dict
    out: Any  # the queue all workers write to
    process: Any = None
    jobs: Any = None
    control: Any = None
    trial: Any = None  # the Optuna trial it is training, or None
    failed_starts: int = 0  # deaths in a row before reporting ready
    info: dict = field(default_factory=dict)  # what the live view shows: arch summary, epoch, started

    def start(self) -> None:
        ctx = context()
        self.jobs, self.control = ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(
            target=main,
            name=f"resnas-worker-{self.index}",
            daemon=True,
            args=(self.index, self.device, self.threads, self.data_args, self.jobs, self.control, self.out),
        )
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.is_alive():
            try:
                self.jobs.put(None)
            except (OSError, ValueError):
                pass
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


def main(index: int, device: str, threads: int, data_args: dict, jobs, control, out) -> None:
    """Worker entry point: load the data, then train jobs until told to stop (a None job)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import torch

    from .arch import Arch
    from .data import load_data
    from .errors import ResnasError
    from .recipe import Recipe
    from .train import Pruned, train

    torch.set_num_threads(max(1, threads))
    try:
        data = load_data(**data_args)
    except ResnasError as e:
        out.put(("fatal", index, None, str(e)))
        return
    out.put(("ready", index, None, None))
    while True:
        job = jobs.get()
        if job is None:
            return
        trial, arch_dict, recipe_dict, ckpt_dir = job

        waited = [0.0]  # time spent waiting for the coordinator's decision: orchestration, not training

        def on_epoch(m, trial=trial) -> None:
            start = time.perf_counter()
            out.put(("epoch", index, trial, m.to_dict()))
            decision = control.get()
            waited[0] += time.perf_counter() - start
            if decision == PRUNE:
                raise Pruned(f"pruned after epoch {m.epoch} (val acc {m.val_acc:.2f}%)")

        try:
            start = time.perf_counter()
            result = train(
                Arch.from_dict(arch_dict),
                data,
                Recipe.from_dict(recipe_dict),
                device=device,
                on_epoch=on_epoch,
                out=ckpt_dir,
            )
            record = result.to_dict()
            record["worker_seconds"] = time.perf_counter() - start - waited[0]  # the rest is orchestration
            out.put(("done", index, trial, record))
        except Exception as e:  # a candidate must not take the worker down with it
            tail = traceback.format_exc(limit=-3).strip().splitlines()
            out.put(("error", index, trial, f"{type(e).__name__}: {e} ({' | '.join(tail[-3:])})"[:2000]))


def _exit_with_parent(parent: int) -> None:
    """A coordinator killed outright (SIGKILL, a lost host) cannot stop its workers: they notice and go,
    rather than train on for nobody and hold the GPU."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)
