"""A coordinator killed outright (SIGKILL) leaves no process behind: its workers and multiprocessing's
resource tracker are gone within seconds, whether a worker was mid-trial or still starting, for
`resnas search` and for a joining `resnas worker` (itself the coordinator of its local workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from servers import sqlite_url
from studycheck import ROOT, search_args

from nas_res.results import Store
from nas_res.search.liveness import alive

GONE_WITHIN = 5.0  # seconds after the kill


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children, theirs, ...)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if p.name.isdigit():
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(p.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _start(tmp: Path, command: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`resnas COMMAND ARGS` writing to files: a process left behind holding a pipe would hang the test."""
    log = open(tmp / f"{command}-{time.time_ns()}.log", "w")  # noqa: SIM115 - the child holds it
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", "nas_res.cli.main", command, *args, "--json"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        )


def _until(what, seconds: float = 180, every: float = 0.3):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with contextlib.suppress(Exception):  # the tables may not exist yet
            found = what()
            if found:
                return found
        time.sleep(every)
    raise AssertionError("waited in vain")


def _mid_trial(storage: str, study: str, pid: int) -> bool:
    """A trial of process `pid` has reported an epoch: its worker is training."""
    running = optuna.load_study(study_name=study, storage=storage).get_trials(states=[optuna.trial.TrialState.RUNNING])
    return any(str(t.user_attrs.get("owner", "")).endswith(f":{pid}") and t.intermediate_values for t in running)


def _kill_all_go(proc: subprocess.Popen, within: float = GONE_WITHIN) -> list[int]:
    """SIGKILL the coordinator; every process below it must be gone within `within` seconds (and if not,
    is killed here, so that a failing test leaves nothing behind). Returns what was below it."""
    below = _descendants(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.time() + within
    while time.time() < deadline and any(alive(p) for p in below):
        time.sleep(0.1)
    left = [p for p in below if alive(p)]
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    assert not left, f"left behind {within:g} s after the kill: {left} of {below}"
    return below


def _commands(pids: list[int]) -> str:
    """The command lines of these processes, as one string."""
    found = []
    for p in pids:
        with contextlib.suppress(OSError):
            found.append(Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return " ".join(found)


def test_a_search_and_a_joining_worker_killed_mid_trial_leave_no_process(tmp_path):
    storage = sqlite_url(tmp_path)
    args = ["--trials", "4", "--epochs", "50", "--pruner", "none"]
    search = _start(tmp_path, "search", *search_args(storage, "k", *args, "--checkpoints", str(tmp_path / "a")))
    _until(lambda: _mid_trial(storage, "k", search.pid))
    below = _descendants(search.pid)
    assert "resource_tracker" in _commands(below) and "--multiprocessing-fork" in _commands(below)
    _kill_all_go(search)

    joiner = _start(tmp_path, "worker", "--study", "k", "--storage", storage, "--checkpoints", str(tmp_path / "b"))
    _until(lambda: _mid_trial(storage, "k", joiner.pid))
    assert len(_kill_all_go(joiner)) >= 2  # its worker and the tracker
    # the killed search's trial was found by the joiner at once (its process is gone) and tried again
    lost = [r for r in Store(storage).runs("k") if r.status == "lost"]
    assert len(lost) == 1 and "exited before the trial finished" in lost[0].reason


def test_a_coordinator_killed_while_its_worker_starts_leaves_no_process(tmp_path):
    """The worker's own code runs after its coordinator is gone: it must not take init for its parent."""
    env = {"PYTHONPATH": f"{ROOT / 'tests' / 'faults'}{os.pathsep}{ROOT}", "RESNAS_TEST_SLOW_START": "3"}
    storage = sqlite_url(tmp_path)
    search = _start(tmp_path, "search", *search_args(storage, "s", "--trials", "2"), env=env)
    _until(lambda: "--multiprocessing-fork" in _commands(_descendants(search.pid)), every=0.05)
    # killed within the worker's 3 s start; the worker then still imports the CLI and torch (seconds on a
    # busy machine) before its own code runs and sees that its coordinator is gone
    _kill_all_go(search, within=30)
