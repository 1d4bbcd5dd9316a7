"""How coordinators on many hosts know of each other's trials: heartbeats, host identity, dead processes,
and database calls that wait out a restart. They share nothing but the database, so each of these is
either a row in it (the heartbeat) or something a host can tell about itself (its processes)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.exc import InterfaceError, OperationalError

from ..errors import ResnasError

DB_PATIENCE = 300  # seconds a coordinator waits out an unreachable database before giving up


class Heartbeat:
    """The heartbeat of the trials one coordinator holds (Optuna's ask-and-tell has none of its own): a
    thread calls `beat(trial)` for each every `interval` seconds; a trial whose beats stop goes stale."""

    def __init__(self, beat: Callable[[Any], None], interval: int):
        self.beat, self.interval = beat, interval
        self.trials: dict[int, Any] = {}  # by trial number
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resnas-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def hold(self, trial: Any) -> None:
        """Beat now (a trial without any beat can never go stale) and from now on."""
        self.trials[trial.number] = trial
        self.beat(trial)

    def release(self, trial: Any) -> None:
        self.trials.pop(trial.number, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for trial in list(self.trials.values()):
                with contextlib.suppress(Exception):  # the database is restarting: the next beat tries again
                    self.beat(trial)


def patiently(fn: Callable, *args, patience: float, what: str, on_retry: Callable[[Exception], None], **kwargs):
    """Call `fn`, waiting out a database that is restarting or unreachable for up to `patience` seconds
    (pooled connections are checked before use; a call cut off mid-way is made again). `what` names the
    storage, without its password, in the message if it does not come back."""
    give_up, delay = time.time() + patience, 0.25
    while True:
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError, optuna.exceptions.StorageInternalError) as e:
            cause = e if isinstance(e, (OperationalError, InterfaceError)) else e.__cause__
            if not isinstance(cause, (OperationalError, InterfaceError)):
                raise  # not the connection: a real error, not something to wait out
            full = storage_full(e, what)
            if full:
                raise full from None  # waiting does not free a disk
            if time.time() > give_up:
                first = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0][:200]
                raise ResnasError(f"lost the storage {what}: {first}") from None
            on_retry(e)
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


FULL = ("database or disk is full", "no space left on device", "disk full", "could not extend file", "disk i/o error")


def storage_full(error: BaseException, what: str) -> ResnasError | None:
    """The error a database call raises when its disk is full (or refuses writes: SQLite says "disk I/O
    error" past a file-size limit), as one message naming the storage; None for any other error. What
    was committed before stays, so the same command resumes once there is room."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(getattr(seen, "orig", None) or seen).strip()
        if any(f in text.lower() for f in FULL):
            return ResnasError(
                f"cannot write to the storage {what} ({text.splitlines()[0][:120]}): the results so far are "
                "kept; make room on its disk, then run the same command to resume"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def host_id() -> str:
    """This host as a coordinator's process ids are meaningful on it: the host name, plus the boot and
    the PID namespace (containers sharing a host name and network do not share process ids)."""
    parts = []
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(source).read_text().strip() if "random" in source else os.readlink(source))
        except OSError:
            parts.append("")
    return f"{socket.gethostname()}/{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:8]}"


def owner_gone(owner: str, host: str) -> bool:
    """A trial's owner (`host:pid`) is a process of this host (`host_id()`) that no longer runs. One of
    another host cannot be seen from here: its heartbeat tells."""
    owner_host, _, pid = owner.rpartition(":")
    return owner_host == host and pid.isdigit() and not alive(int(pid))


def alive(pid: int) -> bool:
    """Whether a process of this host is still there (a zombie, killed and not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
