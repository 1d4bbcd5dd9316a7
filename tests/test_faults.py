"""Faults during a search on one host (SQLite): a trial that raises, runs out of memory, diverges or has
its worker killed; a coordinator killed outright and started again. Nothing may be lost or counted twice.

Faults are injected into the worker processes by tests/faults/sitecustomize.py (see there).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna

from nas_res.coordinator import COUNTED, _alive
from nas_res.store import UNCOUNTED, Store

ROOT = Path(__file__).resolve().parents[1]
SPACE, BUDGET = "plain-vs-residual", "20MFLOPs"
W, C, F = optuna.trial.TrialState.WAITING, optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


def _search(storage: str, study: str, *extra: str, env: dict | None = None, wait: bool = True):
    args = [sys.executable, "-m", "cli.main", "search", "--space", SPACE, "--budget", BUDGET, "--study", study,
            "--storage", storage, "--pruner", "none", "--json", *extra]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})
    if not wait:
        return proc
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    return json.loads(stdout)


def _check_consistent(storage: str, study: str, target: int) -> tuple[list, list]:
    """The invariants every fault must leave intact: every trial finished, one run row per counted trial
    whose status matches the trial's state, exactly `target` counted."""
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    runs = Store(storage).runs(study)
    assert all(t.state.is_finished() for t in trials), [(t.number, t.state) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    by_trial = {r["trial"]: r for r in runs}
    assert len(by_trial) == len(runs)  # at most one run row per trial
    counted = [r for r in runs if r["status"] not in UNCOUNTED]
    assert len(counted) == target
    state = {t.number: t for t in trials}
    for r in runs:
        t = state[r["trial"]]  # no run row without its trial
        assert t.user_attrs.get(COUNTED, False) == (r["status"] not in UNCOUNTED) or r["status"] == "lost"
        expected = C if r["status"] in ("ok", "stopped_early") else F
        assert t.state == expected and (r["status"] == "lost" or t.user_attrs["status"] == r["status"])
    return trials, runs


def test_failing_trials_fail_alone_and_a_killed_worker_is_retried(tmp_path):
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {"PYTHONPATH": f"{ROOT / 'tests' / 'faults'}{os.pathsep}{ROOT}",
           "RESNAS_TEST_FAULTS": "raise,oom,diverge,kill", "RESNAS_TEST_FAULTS_COUNTER": str(tmp_path / "n")}
    out = _search(storage, "faults", "--trials", "6", "--epochs", "1", "--checkpoints", str(tmp_path / "ck"),
                  env=env)
    trials, runs = _check_consistent(storage, "faults", 6)
    status = [r["status"] for r in sorted(runs, key=lambda r: r["trial"])]
    assert status[:4] == ["error", "out_of_memory", "diverged", "crashed"]  # each with its reason
    reasons = {r["status"]: r["reason"] for r in runs}
    assert "injected fault" in reasons["error"] and "80.00 GiB" in reasons["out_of_memory"]
    assert "nan" in reasons["diverged"] and "worker process died" in reasons["crashed"]
    assert status[4:] == ["ok"] * 3  # the worker carried on; the killed trial was tried again
    killed = next(t for t in trials if t.user_attrs.get("status") == "crashed")
    again = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(again) == 1 and again[0].params == killed.params and again[0].state == C
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
    storage = f"sqlite:///{tmp_path / 'db.sqlite'}"
    args = ("--trials", "3", "--epochs", "3", "--checkpoints", str(tmp_path / "ck"))
    proc = _search(storage, "killed", *args, wait=False)
    deadline, running = time.time() + 180, False
    while time.time() < deadline and not running:
        time.sleep(0.3)
        try:
            running = Store(storage).counts("killed").get("running", 0) > 0
        except Exception:  # the tables may not exist yet
            pass
    assert running, "no trial started"
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)  # no chance to mark anything
    proc.communicate(timeout=30)
    time.sleep(3)
    assert workers and not [p for p in workers if _alive(p)], "the killed coordinator's workers went on"
    started = time.time()
    out = _search(storage, "killed", *args, "--grace", "600")  # the same command; no grace period to wait out
    assert time.time() - started < 300
    trials, runs = _check_consistent(storage, "killed", 3)
    lost = [r for r in runs if r["status"] == "lost"]
    assert len(lost) == 1 and "exited before the trial finished" in lost[0]["reason"]
    before = next(t for t in trials if t.number == lost[0]["trial"])
    again = [t for t in trials if t.user_attrs.get("retry_of") == before.number]
    assert len(again) == 1 and again[0].params == before.params and again[0].state == C
    assert out["counted"] == 3
