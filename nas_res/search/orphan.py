"""Worker processes that end with their coordinator, however it ends.

A coordinator stopped by Ctrl-C or SIGTERM stops its workers itself; one killed outright (SIGKILL, the
OS for memory) cannot, and a worker left behind trains on for nobody and holds its memory and GPU.
Three checks, since each alone has a gap:

- the parent's pid, as the parent gave it: a worker whose parent died while it was still starting
  (importing torch takes seconds) must not take its new parent (init) for the coordinator;
- a watchdog thread that waits for the parent's end of the spawn pipe to close (or its pid to change);
- on Linux, `PR_SET_PDEATHSIG`, which works even while the worker's Python is stuck. The kernel sends
  it when the parent *thread* that started the worker ends, so it is asked for only when that was
  the parent's main thread (whose end is the process's end).

The resource tracker of multiprocessing needs nothing of its own: it exits when the last process
holding its pipe (the coordinator and its workers) is gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import wait

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CHECK_EVERY = 1.0  # seconds between checks of the parent's pid, besides the pipe


@dataclass(frozen=True)
class Parent:
    """The process starting a worker, as it sees itself: its pid, and whether this is its main thread."""

    pid: int
    main_thread: bool

    @classmethod
    def here(cls) -> Parent:
        return cls(os.getpid(), threading.current_thread() is threading.main_thread())


def die_with_parent(parent: Parent) -> None:
    """Called first thing in a worker: exit now if the parent is already gone, else as soon as it goes."""
    if parent.main_thread:
        _pdeathsig(signal.SIGKILL)
    if os.getppid() != parent.pid:  # gone before the signal was asked for: it will never come
        os._exit(0)
    up = mp.parent_process()
    sentinel = up.sentinel if up is not None and up.pid == parent.pid else None
    threading.Thread(target=_watch, args=(parent.pid, sentinel), name="resnas-orphan-watch", daemon=True).start()


def _watch(pid: int, sentinel: int | None) -> None:
    """Exit when the parent's end of the spawn pipe closes (it died, or let go of the worker's handle and
    could not reach it any more) or the parent pid changes (within CHECK_EVERY)."""
    while os.getppid() == pid:
        if sentinel is None:
            time.sleep(CHECK_EVERY)
        elif wait([sentinel], timeout=CHECK_EVERY):
            break
    os._exit(0)


def _pdeathsig(sig: int) -> bool:
    """Ask Linux for `sig` when the parent thread ends; False where there is no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
