"""Many coordinators on one study over a real PostgreSQL server: Optuna's scale-out path with resnas's
tables, and the faults a cluster meets (a host killed mid-trial, the database restarting).

Every `resnas search` / `resnas worker` here is its own process, as on separate hosts: they share
nothing but the database. Each test makes its own database on the local server and drops it
afterwards; without a reachable server the tests are skipped and say why.
"""

from __future__ import annotations

import signal
import subprocess
import time

import optuna
import pytest
import sqlalchemy as sa
from servers import admin_engine, scratch_database
from studycheck import check_consistent, finish, retried, search_args, start

from nas_res.results import Store
from nas_res.search import plan

TrialState = optuna.trial.TrialState
COMPLETE, FAIL, RUNNING = TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING


@pytest.fixture
def pg_url():
    with scratch_database("postgresql") as url:
        yield url


def _wait_for(what, timeout: float = 180, every: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = what()
        except Exception:  # tables or study not there yet
            found = None
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what.__doc__}")


def test_eight_workers_on_two_hosts_share_one_study(pg_url, tmp_path):
    args = ("--heartbeat", "2", "--grace", "30")
    first = start(
        "search",
        *search_args(
            pg_url,
            "many",
            "--trials",
            "12",
            "--epochs",
            "3",  # long enough that the joining host starts before the first has trained all 12 (loaded CI)
            "--workers",
            "4",
            "--checkpoints",
            str(tmp_path / "a"),
            *args,
        ),
    )

    def created():
        """the study"""
        return Store(pg_url).study_config("many")

    _wait_for(created)
    joined = [
        start(
            "worker",
            "--study",
            "many",
            "--storage",
            pg_url,
            "--workers",
            "4",
            "--checkpoints",
            str(tmp_path / "b"),
            *args,
        )
    ]
    outs = [finish(p) for p in [first, *joined]]
    trials, runs = check_consistent(pg_url, "many", 12)
    owners = {t.user_attrs["owner"] for t in trials if t.number in {r.trial for r in runs}}
    assert len(owners) >= 2  # trained by more than one of the processes
    assert all(o["counted"] == 12 and not o["interrupted"] for o in outs)
    assert (
        sum(o["counts"]["done"] + o["counts"]["pruned"] + o["counts"]["failed"] + o["counts"]["reused"] for o in outs)
        == 12
    )  # each counted trial counted by exactly one process
    again, existed = plan({"study": "many", "storage": pg_url})  # any host sees the pinned study
    assert existed and again.space.name == "plain-vs-residual" and again.trials == 12


def _other_host() -> list[str]:
    """A command prefix that runs a process as if on another host: its own PID namespace, so that its
    process ids mean nothing here (util-linux unshare; killed with everything in it when it is killed)."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--kill-child", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace to play another host: {probe.stderr.decode().strip()[:200]}")
    return ["unshare", "--pid", "--fork", "--kill-child"]


def test_a_host_killed_mid_trial_is_failed_within_the_grace_period_and_retried(pg_url, tmp_path):
    args = ("--heartbeat", "1", "--grace", "5")
    first = start(
        "search",
        *search_args(
            pg_url,
            "kill",
            "--trials",
            "3",
            "--epochs",
            "20",
            "--pruner",
            "none",
            "--checkpoints",
            str(tmp_path / "a"),
            *args,
        ),
    )
    _wait_for(lambda: Store(pg_url).study_config("kill"))
    victim = start(
        "worker",
        "--study",
        "kill",
        "--storage",
        pg_url,
        "--checkpoints",
        str(tmp_path / "b"),
        *args,
        prefix=_other_host(),
    )

    def victims_trial():
        """a trial on the host that will be killed"""
        study = optuna.load_study(study_name="kill", storage=pg_url)
        # a trial just asked has no owner yet: it may be the first host's, so only an owned one is taken
        owners = {t.number: str(t.user_attrs.get("owner", "")) for t in study.get_trials(states=(RUNNING,))}
        theirs = [n for n, owner in owners.items() if owner and not owner.endswith(f":{first.pid}")]
        running = {r.trial for r in Store(pg_url).runs("kill") if r.status == "running"}
        return next((study.trials[n] for n in theirs if n in running), None)

    trial = _wait_for(victims_trial)
    victim.send_signal(signal.SIGKILL)  # the host is gone: no process of it says anything
    killed_at = time.time()
    victim.communicate(timeout=30)

    def failed():
        """the lost host's trial to be failed"""
        return optuna.load_study(study_name="kill", storage=pg_url).trials[trial.number].state == FAIL

    _wait_for(failed, timeout=60, every=0.2)
    assert time.time() - killed_at <= 5 + 1 + 6  # grace, one heartbeat, and slack for a loaded machine
    out = finish(first)
    trials, runs = check_consistent(pg_url, "kill", 3)
    lost = next(r for r in runs if r.trial == trial.number)
    assert lost.status == "lost" and "no heartbeat" in lost.reason
    again = retried(trials, trial.number)
    assert len(again) == 1 and again[0].params == trial.params and again[0].state == COMPLETE
    assert out["counted"] == 3 and out["counts"]["retried"] == 1


def test_the_database_restarting_under_a_search_loses_nothing(pg_url, tmp_path):
    name = sa.engine.make_url(pg_url).database
    search = start(
        "search",
        *search_args(
            pg_url,
            "restart",
            "--trials",
            "2",
            "--epochs",
            "12",
            "--pruner",
            "none",
            "--checkpoints",
            str(tmp_path / "a"),
        ),
    )

    def training():
        """a trial in training"""
        return any(r.status == "running" for r in Store(pg_url).runs("restart"))

    _wait_for(training)
    admin = admin_engine("postgresql")
    with admin.connect() as c:  # what a restart does to clients: connections cut, new ones refused a while
        c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        time.sleep(4)
        c.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    admin.dispose()
    out = finish(search)
    _trials, runs = check_consistent(pg_url, "restart", 2)
    assert out["db_errors"] > 0  # it did meet the outage, and waited it out
    assert [r.status for r in runs] == ["ok", "ok"]  # the trial trained across the outage too
