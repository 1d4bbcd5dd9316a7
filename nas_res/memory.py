"""Memory a dataset or a pass may take: refuse what cannot fit before allocating it, in words a user reads."""

from __future__ import annotations

import os

from .errors import ResnasError


def available() -> int:
    """Bytes of host memory free for new allocations (Linux MemAvailable; else all physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return 1 << 40  # unknown platform: no limit worth guessing below the allocator's own


def human_bytes(n: float) -> str:
    """1.8e15 -> '1.80 PB' (decimal units, as disk and memory sizes are sold)."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} bytes"


def check_room(nbytes: int, what: str, *, field: str = "dataset", copies: int = 2) -> None:
    """Refuse `what` (`nbytes` as uint8 images) when `copies` of it would not fit in the memory available:
    splitting a training set copies its images, so a dataset needs about twice its size while it loads."""
    free = available()
    if nbytes * copies > free:
        raise ResnasError(
            f"{what} needs {human_bytes(nbytes)} ({nbytes:,} bytes) as uint8 images, and loading it takes "
            f"{copies}x that; this machine has {human_bytes(free)} of memory available, so at most "
            f"{human_bytes(free // copies)} of images fit",
            field=field,
        )


def device_available(device: object = "cpu") -> int:
    """Bytes free where a pass on `device` keeps its tensors: a CUDA device's free memory, else the host's."""
    if str(device).startswith("cuda"):
        import torch  # only here: the host's figure needs no torch

        return int(torch.cuda.mem_get_info(torch.device(str(device)))[0])
    return available()


def check_need(need: int, what: str, basis: str, *, field: str, fix: str, device: object = "cpu") -> str | None:
    """Refuse `what` when its estimated `need` (in bytes, reckoned as `basis` says) is more than the memory
    available where it runs; over half of it, a note to print, since the estimate is not exact (None below).
    Refused before the work: a pass that does not fit swaps the machine to a halt or is killed mid-way."""
    free = device_available(device)
    where = "GPU memory" if str(device).startswith("cuda") else "memory"
    if need > free:
        raise ResnasError(
            f"{what} needs about {human_bytes(need)} ({basis}), more than the {human_bytes(free)} of {where} "
            f"available here; {fix}",
            field=field,
        )
    if need > free // 2:
        return f"{what} takes about {human_bytes(need)} of the {human_bytes(free)} of {where} available ({basis})"
    return None
