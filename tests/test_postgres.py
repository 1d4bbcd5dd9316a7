"""Search over a real PostgreSQL server: Optuna's scale-out storage and resnas's tables side by side.

Each test run creates its own database on the local server (127.0.0.1:5432, trust auth) and drops
it afterwards; without a reachable server the tests are skipped and say why.
"""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
import sqlalchemy as sa

from nas_res.coordinator import COUNTED, Coordinator
from nas_res.report import leaderboard
from nas_res.search import plan
from nas_res.store import Store

SERVER = os.environ.get("RESNAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url():
    try:
        admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:  # no server, no driver, no permission: say which
        pytest.skip(f"no PostgreSQL reachable at {SERVER} ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    name = f"resnas_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def test_search_with_two_workers_on_postgresql(pg_url, tmp_path):
    config, existed = plan({"space": "plain-vs-residual", "budget": "20MFLOPs", "trials": 6, "epochs": 1,
                            "workers": 2, "study": "pg", "storage": pg_url, "checkpoints": str(tmp_path)})
    state = Coordinator(config).run()
    assert not existed and state.counted == 6 and not state.interrupted
    trials = optuna.load_study(study_name="pg", storage=pg_url).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # every trial number unique
    assert all(t.state.is_finished() for t in trials)  # every trial in a terminal state
    counted = {t.number for t in trials if t.user_attrs.get(COUNTED)}
    runs = Store(pg_url).runs("pg")
    assert {r["trial"] for r in runs} == counted and len(runs) == len(counted)  # one run row per counted trial
    board = leaderboard(Store(pg_url), "pg")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.number in counted]
    assert max(t.value for t in complete) == board[0]["val_acc"]  # the best is the one the leaderboard shows
    # resuming from another process' point of view: the stored study pins the options
    again, existed = plan({"study": "pg", "storage": pg_url})
    assert existed and again.space.name == "plain-vs-residual" and again.trials == 6
