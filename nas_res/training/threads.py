"""How many CPU threads one training process uses, decided once for `train` and for every search worker.

torch's default (one thread per core) is right for a lone process on an idle machine and badly wrong
otherwise: two workers that each take every core, or a run beside another job, spend their time
fighting over cores (a one-epoch tiny-net trial took 92 s instead of 1 s). So the user's word wins
(`--threads`, then `OMP_NUM_THREADS`) up to the cores this process may use (beyond them it is cut, with a
note), and without one those cores are split evenly among the processes that train at once.
"""

from __future__ import annotations

import os

from ..errors import ResnasError


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def env_threads() -> int | None:
    """`OMP_NUM_THREADS` when it is a positive integer; unset or unusable: None."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def thread_plan(requested: int | None = None, processes: int = 1, field: str = "--threads") -> tuple[int, str | None]:
    """Threads for each of `processes` training processes, and a note when an ask was cut: `requested`, else
    `OMP_NUM_THREADS`, else the usable cores divided evenly (at least one each). An ask beyond each
    process's share of the cores is cut to it: more threads than cores only wait for one another (16 on 2
    cores trained 17x slower; 1000 printed nothing in a minute)."""
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 1):
        raise ResnasError(f"must be a positive integer; got {requested!r}", field=field)
    cores, processes = usable_cores(), max(1, processes)
    share = max(1, cores // processes)
    asked, source = (requested, field) if requested is not None else (env_threads(), "OMP_NUM_THREADS")
    if asked is None or asked <= share:
        return asked or share, None
    among = f"; {processes} processes share them, {share} each" if processes > 1 else ""
    return share, (
        f"{source} {asked} is more threads than the {cores} core(s) this process may use{among}: using {share} "
        "(threads beyond the cores only wait for one another)"
    )


def plan_threads(requested: int | None = None, processes: int = 1, field: str = "--threads") -> int:
    """Threads for each of `processes` training processes (`thread_plan` without its note)."""
    return thread_plan(requested, processes, field)[0]


GPU_THREADS = 4  # a GPU worker's CPU threads launch kernels and do the little host work: a few suffice


def worker_thread_plan(
    requested: int | None, gpus: tuple[int, ...], count: int, field: str = "--threads"
) -> tuple[int, str | None]:
    """CPU threads per worker and a note when an ask was cut: `requested` (--threads), else OMP_NUM_THREADS,
    else the usable cores split among the CPU workers (so that workers x threads never exceeds them), or a
    few per GPU worker."""
    processes = len(gpus) or count
    if gpus and requested is None and env_threads() is None:
        return min(GPU_THREADS, plan_threads(None, processes)), None
    return thread_plan(requested, processes, field)


def worker_threads(requested: int | None, gpus: tuple[int, ...], count: int) -> int:
    """CPU threads per worker (`worker_thread_plan` without its note)."""
    return worker_thread_plan(requested, gpus, count)[0]


def plan_workers(count: int, gpus: tuple[int, ...] = (), field: str = "--workers") -> tuple[int, str | None]:
    """CPU worker processes, cut to the usable cores with a note: two trials on one core take turns, each
    as slow as the two together, and each holds its own copy of the data."""
    cores = usable_cores()
    if gpus or count <= cores:
        return count, None
    return cores, (
        f"{field} {count} is more worker processes than the {cores} core(s) this process may use: using {cores} "
        "(workers beyond the cores take turns, and each holds its own copy of the data)"
    )


def plan_host(
    workers: int, threads: int | None, gpus: tuple[int, ...] = (), fields: tuple[str, str] = ("--workers", "--threads")
) -> tuple[int, list[str]]:
    """The worker processes this host runs, and a note for each ask cut to its cores (`fields` name where
    the workers and threads were asked for)."""
    workers, cut = plan_workers(workers, gpus, fields[0])
    said = worker_thread_plan(threads, gpus, workers, fields[1])[1]
    return workers, [n for n in (cut, said) if n]


def use_threads(count: int) -> None:
    """Make this process's torch use `count` threads for its operators."""
    import torch  # here, not above: planning threads (a search's plan, its notes) needs no torch

    torch.set_num_threads(max(1, count))
