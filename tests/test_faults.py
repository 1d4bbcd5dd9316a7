"""Faults during a search on one host (SQLite): a trial that raises, runs out of memory, diverges or has
its worker killed; a coordinator killed outright and started again. Nothing may be lost or counted twice.

Faults are injected into the worker processes by tests/faults/sitecustomize.py (see there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import optuna
from servers import sqlite_url
from studycheck import ROOT, check_consistent, finish, retried, search_args, start

from nas_res.results import Store
from nas_res.search.liveness import alive as _alive

COMPLETE = optuna.trial.TrialState.COMPLETE


def test_failing_trials_fail_alone_and_a_killed_worker_is_retried(tmp_path):
    storage = sqlite_url(tmp_path)
    env = {
        "PYTHONPATH": f"{ROOT / 'tests' / 'faults'}{os.pathsep}{ROOT}",
        "RESNAS_TEST_FAULTS": "raise,oom,diverge,kill",
        "RESNAS_TEST_FAULTS_COUNTER": str(tmp_path / "n"),
    }
    out = finish(
        start(
            "search",
            *search_args(
                storage,
                "faults",
                "--trials",
                "6",
                "--epochs",
                "1",
                "--pruner",
                "none",
                "--checkpoints",
                str(tmp_path / "ck"),
            ),
            env=env,
        )
    )
    trials, runs = check_consistent(storage, "faults", 6)
    status = [r.status for r in sorted(runs, key=lambda r: r.trial)]
    assert status[:4] == ["error", "out_of_memory", "diverged", "crashed"]  # each with its reason
    reasons = {r.status.value: r.reason for r in runs}
    assert "injected fault" in reasons["error"] and "80.00 GiB" in reasons["out_of_memory"]
    assert "nan" in reasons["diverged"] and "worker process died" in reasons["crashed"]
    assert status[4:] == ["ok"] * 3  # the worker carried on; the killed trial was tried again
    killed = next(t for t in trials if t.user_attrs.get("status") == "crashed")
    again = retried(trials, killed.number)
    assert len(again) == 1 and again[0].params == killed.params and again[0].state == COMPLETE
    assert out["counts"]["retried"] == 1 and out["counted"] == 6


def _children(pid: int) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(p.name))
        except OSError:
            pass
    return found


def test_a_killed_coordinator_resumes_without_counting_twice(tmp_path):
    storage = sqlite_url(tmp_path)
    args = search_args(
        storage, "killed", "--trials", "3", "--epochs", "3", "--pruner", "none", "--checkpoints", str(tmp_path / "ck")
    )
    proc = start("search", *args)
    deadline, running = time.time() + 180, False
    while time.time() < deadline and not running:
        time.sleep(0.3)
        with contextlib.suppress(Exception):  # the tables may not exist yet
            running = Store(storage).counts("killed").get("running", 0) > 0
    assert running, "no trial started"
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)  # no chance to mark anything
    proc.communicate(timeout=30)
    time.sleep(3)
    assert workers and not [p for p in workers if _alive(p)], "the killed coordinator's workers went on"
    started = time.time()
    out = finish(start("search", *args, "--grace", "600"))  # the same command; no grace period to wait out
    assert time.time() - started < 300
    trials, runs = check_consistent(storage, "killed", 3)
    lost = [r for r in runs if r.status == "lost"]
    assert len(lost) == 1 and "exited before the trial finished" in lost[0].reason
    before = next(t for t in trials if t.number == lost[0].trial)
    again = retried(trials, before.number)
    assert len(again) == 1 and again[0].params == before.params and again[0].state == COMPLETE
    assert out["counted"] == 3
