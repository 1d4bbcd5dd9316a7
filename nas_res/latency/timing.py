"""Timing a module on a device, the way benchmarks must: in a fresh process, warmed up, synchronised, repeated.

Each call of `measure` starts new processes (spawn), so one measurement never inherits another's allocator,
caches, compiled kernels or thread pool, and a crash or out-of-memory there is a message here. In each every
module is run `warmup` times, then timed `repeats` times; each timed run makes `inner` calls, as many as
fill `MIN_RUN_S` (a single call of a tiny unit is shorter than the timer's noise). On a GPU every timed run
starts and ends with a synchronisation. The figure kept is the median per call with the median's 95%
interval from order statistics (no assumption on the shape of the noise), from the fastest of
`PROCESSES` processes: a process can land in a slow state for its whole life (on this project's 2-core VM
at 2 threads, 2 of 8 ran a net 2.4x slower throughout, at 1 thread none did), which no number of repeats
inside it reveals; the slowest process's ratio to the fastest is kept as `spread`.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import version

from ..errors import ResnasError
from ..results.latencies import Timing
from .setting import Setting, cpu_name

REPEATS = 20
WARMUP = 5
PROCESSES = 3  # on a 2-core VM at 2 threads, 2 of 8 fresh processes ran a net 2.4x slower throughout
MIN_RUN_S = 0.01
MAX_INNER = 1000
LEVEL = 0.95


def median_interval(times: list[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(median, low, high): the median and its `level` interval from the order statistics of `times` (the
    binomial(n, 1/2) ranks that cover the true median with at least that probability)."""
    from scipy.stats import binom

    xs = sorted(times)
    n = len(xs)
    k = int(binom.ppf((1 - level) / 2, n, 0.5))  # the k-th smallest and the k-th largest bound it
    median = (xs[(n - 1) // 2] + xs[n // 2]) / 2
    return median, xs[max(k - 1, 0)], xs[min(n - k, n - 1)]


def fastest(runs: list[tuple[list[float], int]]) -> Timing:
    """One thing's timing from its runs in several processes, (times, inner) each: the fastest process's
    median and interval (as timeit keeps its minimum: interference only ever adds time), and how far the
    slowest process's median was from it."""
    medians = [median_interval(times) for times, _ in runs]
    best = min(range(len(runs)), key=lambda i: medians[i][0])
    median, low, high = medians[best]
    spread = max(m for m, _, _ in medians) / median
    return Timing(median, low, high, len(runs[best][0]), runs[best][1], len(runs), spread)


def torch_version() -> str:
    return version("torch")


@functools.cache
def device_name(device: str) -> str:
    """The name timings on `device` are keyed by: the CPU's model, or the GPU's (asked in a fresh process,
    so this one never initialises CUDA)."""
    if device == "cpu":
        return cpu_name()
    return _fresh(_gpu_name, device)


def measure(
    jobs: list[tuple[str, dict, tuple]],
    setting: Setting,
    repeats: int = REPEATS,
    warmup: int = WARMUP,
    processes: int = PROCESSES,
) -> list[Timing]:
    """Time each (what, build, input shape) in `processes` fresh processes, one after another: a Timing
    each, in order."""
    check_repeats(repeats, processes)
    raw = [_fresh(_measure_here, jobs, setting.to_dict(), repeats, warmup) for _ in range(processes)]
    return [fastest([r[i] for r in raw]) for i in range(len(jobs))]


def check_repeats(repeats: int, processes: int) -> None:
    if repeats < 3:
        raise ResnasError(f"must be at least 3 (a median with an interval); got {repeats}", field="--repeats")
    if processes < 1:
        raise ResnasError(f"must be at least 1; got {processes}", field="--processes")


def _fresh(fn, *args):
    """`fn(*args)` in a new process; its errors come back as a ResnasError."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(fn, *args).result()
        except ResnasError:
            raise
        except BrokenProcessPool:
            raise ResnasError("the measuring process died (out of memory?)", field="latency") from None
        except RuntimeError as e:  # CUDA errors, out of memory, a device that is not there
            raise ResnasError(f"measuring failed: {str(e).splitlines()[0]}", field="latency") from None


def _gpu_name(device: str) -> str:
    import torch

    if not torch.cuda.is_available():
        raise ResnasError(f"{device}: this host has no CUDA device (torch {torch.__version__})", field="--device")
    index = torch.device(device).index or 0
    if index >= torch.cuda.device_count():
        raise ResnasError(f"{device}: this host has {torch.cuda.device_count()} CUDA device(s)", field="--device")
    return torch.cuda.get_device_name(index)


def _measure_here(jobs: list, setting_dict: dict, repeats: int, warmup: int) -> list[tuple[list[float], int]]:
    """In the fresh process: build and time each job."""
    import torch

    from .parts import module

    setting = Setting.from_dict(setting_dict)
    if setting.cuda:
        _gpu_name(setting.device)
    assert setting.threads is not None, "a Setting resolves its threads"
    torch.set_num_threads(setting.threads)
    device = torch.device(setting.device)
    out = []
    for what, build, shape in jobs:
        model = module(what, build).to(device)
        step = _step(model, shape, setting, device)
        for _ in range(warmup):
            step()
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        one = max(time.perf_counter() - start, 1e-7)
        inner = max(1, min(MAX_INNER, math.ceil(MIN_RUN_S / one)))
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                step()
            _sync(device)
            times.append((time.perf_counter() - start) * 1000 / inner)
        out.append((times, inner))
        del model, step
    return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(model, shape: tuple, setting: Setting, device):
    """One call as the setting asks: a forward pass (infer), or forward, backward and an SGD step (train)."""
    import torch

    x = torch.randn(setting.batch, *shape, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(setting.precision)
    cast = functools.partial(torch.autocast, device.type, dtype=dtype, enabled=dtype is not None)
    if setting.mode == "infer":
        model.eval()

        @torch.inference_mode()
        def infer():
            with cast():
                model(x)

        return infer
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train():
        opt.zero_grad(set_to_none=True)
        with cast():
            loss = model(x).float().square().mean()
        loss.backward()
        opt.step()

    return train
