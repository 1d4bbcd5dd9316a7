"""Host memory a dataset may take: refuse one that cannot fit before allocating it, in words a user reads."""

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
