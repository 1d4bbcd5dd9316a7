"""How many CPU threads one training process uses, decided once for `train` and for every search worker.

torch's default (one thread per core) is right for a lone process on an idle machine and badly wrong
otherwise: two workers that each take every core, or a run beside another job, spend their time
fighting over cores (a one-epoch tiny-net trial took 92 s instead of 1 s). So the user's word wins
(`--threads`, then `OMP_NUM_THREADS`), and without one the cores this process may use are split
evenly among the processes that train at once.
"""

from __future__ import annotations

import os

import torch

from .errors import ResnasError


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def env_threads() -> int | None:
    """`OMP_NUM_THREADS` when it is a positive integer; unset or unusable: None."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def plan_threads(requested: int | None = None, processes: int = 1, field: str = "--threads") -> int:
    """Threads for each of `processes` training processes: `requested`, else `OMP_NUM_THREADS`, else
    the usable cores divided evenly (at least one each)."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ResnasError(f"must be a positive integer; got {requested!r}", field=field)
        return requested
    return env_threads() or max(1, usable_cores() // max(1, processes))


GPU_THREADS = 4  # a GPU worker's CPU threads launch kernels and do the little host work: a few suffice


def worker_threads(requested: int | None, gpus: tuple[int, ...], count: int) -> int:
    """CPU threads per worker: `requested` (--threads), else OMP_NUM_THREADS, else the usable cores split
    among the CPU workers (so that workers x threads never exceeds them), or a few per GPU worker."""
    processes = len(gpus) or count
    if gpus and requested is None and env_threads() is None:
        return min(GPU_THREADS, plan_threads(None, processes))
    return plan_threads(requested, processes)


def use_threads(count: int) -> None:
    """Make this process's torch use `count` threads for its operators."""
    torch.set_num_threads(max(1, count))
