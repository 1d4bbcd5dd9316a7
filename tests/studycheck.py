"""Running resnas commands as separate processes, and the invariants a study must keep through any fault."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna

from nas_res.results import Store, leaderboard
from nas_res.search import COUNTED

ROOT = Path(__file__).resolve().parents[1]
SPACE, BUDGET = "plain-vs-residual", "20MFLOPs"  # 24 candidates fit; quick on 8x8 digits


def start(command: str, *args: str, env: dict | None = None, prefix: list[str] = ()) -> subprocess.Popen:
    """`resnas COMMAND ARGS --json` in its own process (as on another host: nothing shared but the database)."""
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "nas_res.cli.main", command, *args, "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> dict:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr[-3000:]
    return json.loads(stdout)


def search_args(storage: str, study: str, *extra: str, dataset: str = "synthetic:1x8x8:4:256") -> list[str]:
    """A search whose trials are cheap: what is tested is the bookkeeping around them."""
    return ["--space", SPACE, "--budget", BUDGET, "--study", study, "--storage", storage, "--dataset", dataset, *extra]


def check_consistent(storage: str, study: str, target: int) -> tuple[list, list]:
    """Every trial finished and numbered once; one run row per trial that has one, none without its
    trial; the run's status matches the trial's state; exactly `target` runs count; the leaderboard's
    best is Optuna's best."""
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    runs = Store(storage).runs(study)
    assert all(t.state.is_finished() for t in trials), [(t.number, t.state.name) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert len({r.trial for r in runs}) == len(runs)
    assert len([r for r in runs if r.status.counts]) == target
    state = {t.number: t for t in trials}
    for r in runs:
        t = state[r.trial]
        if r.status != "lost":  # a lost trial was failed by another process, which cannot set its attributes
            assert t.user_attrs["status"] == r.status and t.user_attrs[COUNTED] == r.status.counts
        ok = r.status in ("ok", "stopped_early")
        assert t.state == (
            optuna.trial.TrialState.COMPLETE
            if ok
            else optuna.trial.TrialState.PRUNED
            if r.status == "pruned"
            else optuna.trial.TrialState.FAIL
        ), (r.trial, r.status, t.state.name)
    counted = {t.number for t in trials if t.user_attrs.get(COUNTED)}
    assert counted == {r.trial for r in runs if r.status.counts}
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.number in counted]
    board = leaderboard(Store(storage), study)
    if complete:
        assert max(t.values[0] for t in complete) == board[0]["val_acc"]
    return trials, runs


def retried(trials: list, number: int) -> list:
    """The trials that tried trial `number`'s parameters again."""
    return [t for t in trials if t.user_attrs.get("retry_of") == number]
