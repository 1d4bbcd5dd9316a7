"""`resnas study copy`: a study moved between storages keeps its trials, runs and reports; refusals and
failures leave the source and the target as they were.

The source studies are built directly (Optuna trials told by hand, resnas rows through `Store`) rather
than searched: the copy must not depend on training, and this way every trial state and every kind of
`reused_from` pointer is there on purpose. The PostgreSQL round trip uses its own database on the local
server (127.0.0.1:5432, trust auth), created and dropped here; without a server it is skipped, saying why.
"""

from __future__ import annotations

import json

import optuna
import pytest
import sqlalchemy as sa
from nas_res.cli.main import app
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from servers import scratch_database, sqlite_url

from nas_res import ResnasError, cost
from nas_res.results import Store, copy_study, leaderboard, safe_url, studies
from nas_res.results.schema import runs as runs_table
from nas_res.search import plan

SPACE, BUDGET = "plain-vs-residual", "20MFLOPs"
STATUS = ["ok", "ok", "pruned", "error", "ok"]  # one run per trial; trial 5 is over budget and has none
STATE = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "error": TrialState.FAIL}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(url: str, name: str, seed: int = 0) -> list[int]:
    """A finished study as a search leaves it: 6 trials (complete, pruned, failed, over budget), 5 runs.
    Returns the run ids by trial."""
    config, _ = plan(
        {"space": SPACE, "budget": BUDGET, "trials": 5, "epochs": 1, "study": name, "storage": url, "seed": seed}
    )
    store = Store(url, create=True)
    store.add_study(name, config.pinned())
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("space", SPACE)
    dists = {"arch": IntDistribution(0, 80), "lr": FloatDistribution(1e-4, 1e-1, log=True)}
    ids = []
    for number, arch in enumerate(config.space.sample(5, config.budget, seed)):
        c = cost(arch)
        store.put_arch(arch, c)
        status = STATUS[number]
        acc = 50.0 + 7 * number + seed if status == "ok" else None
        study.add_trial(
            optuna.trial.create_trial(
                state=STATE[status],
                value=acc,
                params={"arch": 7 * number + seed, "lr": 0.01 * (number + 1)},
                distributions=dists,
                user_attrs={"arch_key": arch.key, "status": status, "flops": c.flops},
                intermediate_values={0: acc or 10.0},
            )
        )
        ids.append(
            store.add_run(
                study=name,
                trial=number,
                arch_key=arch.key,
                recipe_key="r1",
                recipe=config.recipe.to_dict(),
                data_key=config.data_key,
                status=status,
                reason="" if status == "ok" else f"{status} at epoch 1",
                history=[{"epoch": 1, "val_acc": acc or 10.0}],
                epochs=1,
                best_val_acc=acc,
                test_acc=None,
                checkpoint=f"/ckpt/{name}/{number}.pt",
                device="cpu",
                wall_seconds=1.5,
                train_seconds=1.0,
            )
        )
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.PRUNED,
            params={"arch": 80, "lr": 0.1},
            distributions=dists,
            user_attrs={"status": "over_budget"},
        )
    )
    store.dispose()
    return ids


def set_reused(url: str, run_id: int, reused_from: int, reason: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(runs_table.update().where(runs_table.c.id == run_id).values(reused_from=reused_from, reason=reason))
    engine.dispose()


def dump(url: str) -> dict:
    """Every row of every table: what "untouched" is checked against."""
    engine = sa.create_engine(url)
    with engine.connect() as c:
        tables = sa.MetaData()
        tables.reflect(c)
        rows = {name: sorted(map(repr, c.execute(sa.select(t)).all())) for name, t in tables.tables.items()}
    engine.dispose()
    return rows


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """`first`, and `second` whose runs were reused: from `first` (outside the copy), from a later run of
    its own (inside, a forward pointer), and from a run no longer there."""
    url = sqlite_url(tmp_path_factory.mktemp("transfer"), "src.db")
    first = make_study(url, "first")
    second = make_study(url, "second", seed=1)
    set_reused(url, second[0], first[0], "reused from first trial 0")
    set_reused(url, second[1], second[4], "reused from second trial 4")
    set_reused(url, second[3], 9999, "reused from gone trial 3")
    return url, dump(url)


def trials(url: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def same_trials(a: list, b: list) -> None:
    assert [t.number for t in a] == [t.number for t in b] == list(range(len(a)))
    for x, y in zip(a, b):
        assert (
            x.state,
            x.values,
            x.params,
            x.distributions,
            x.user_attrs,
            x.intermediate_values,
            x.datetime_start,
            x.datetime_complete,
        ) == (
            y.state,
            y.values,
            y.params,
            y.distributions,
            y.user_attrs,
            y.intermediate_values,
            y.datetime_start,
            y.datetime_complete,
        )


def runs_without_ids(url: str, name: str, leave_out: tuple = ()) -> list[dict]:
    return [
        {k: v for k, v in r.to_dict().items() if k not in ("id", "study", *leave_out)} for r in Store(url).runs(name)
    ]


def assert_same_study(src: str, dst: str, name: str, new_name: str | None = None, leave_out: tuple = ()) -> None:
    """Everything equal; `leave_out`: run columns a copy may change (the reuse pointers of `second`)."""
    new_name = new_name or name
    same_trials(trials(src, name), trials(dst, new_name))
    a, b = optuna.load_study(study_name=name, storage=src), optuna.load_study(study_name=new_name, storage=dst)
    assert (a.directions, a.user_attrs) == (b.directions, b.user_attrs)
    assert Store(src).study_config(name) == Store(dst).study_config(new_name)
    assert runs_without_ids(src, name, leave_out) == runs_without_ids(dst, new_name, leave_out)
    assert leaderboard(Store(src), name, include_all=True) == leaderboard(Store(dst), new_name, include_all=True)


# ---- SQLite to SQLite ------------------------------------------------------------------------------


def test_a_copy_keeps_trials_runs_and_the_leaderboard(source, tmp_path):
    src, before = source
    dst = sqlite_url(tmp_path, "dst.db")
    summary = copy_study("first", src, dst)
    assert summary == {
        "study": "first",
        "as": "first",
        "from": src,
        "to": dst,
        "trials": 6,
        "runs": 5,
        "archs_added": 5,
        "reused_elsewhere": 0,
    }
    assert_same_study(src, dst, "first")
    assert [r["study"] for r in studies(Store(dst))] == ["first"]
    assert dump(src) == before  # the source is only read


def test_as_names_the_copy_and_a_study_can_be_copied_within_its_storage(source, tmp_path):
    src, before = source
    dst = sqlite_url(tmp_path, "dst.db")
    copy_study("first", src, dst)
    summary = copy_study("first", src, dst, "first-again")
    assert summary["as"] == "first-again" and summary["archs_added"] == 0  # the architectures are there already
    assert_same_study(src, dst, "first", "first-again")
    assert {r.study for r in Store(dst).runs("first-again")} == {"first-again"}
    assert optuna.get_all_study_names(dst) == ["first", "first-again"]
    copy_study("first", dst, dst, "first-3")  # source and target the same database
    assert_same_study(src, dst, "first", "first-3")
    with pytest.raises(ResnasError, match="--as") as e:
        copy_study("first", src, dst, "../up")
    assert "'../up'" in str(e.value)
    assert dump(src) == before


def test_reused_from_follows_the_copy(source, tmp_path):
    src, before = source
    dst = sqlite_url(tmp_path, "dst.db")
    summary = copy_study("second", src, dst)
    assert summary["runs"] == 5 and summary["reused_elsewhere"] == 2
    runs = {r.trial: r for r in Store(dst).runs("second")}
    assert runs[1].reused_from == runs[4].id  # inside the study: its copy (a forward pointer too)
    assert runs[0].reused_from == 0 and runs[3].reused_from == 0  # their originals stay behind
    assert "first trial 0" in runs[0].reason and src in runs[0].reason
    assert runs[0].reason.startswith("reused from first trial 0")  # what the search wrote is kept
    assert "run 9999, no longer in" in runs[3].reason
    assert runs[2].reused_from is None
    # reports still show them as reused, and nothing offers them as an original training
    assert studies(Store(dst))[0]["reused"] == 3
    board = {r["trial"]: r for r in leaderboard(Store(dst), "second", include_all=True)}
    assert [t for t, r in sorted(board.items()) if r["reused"]] == [0, 1, 3]
    first_run = runs[0]
    assert Store(dst).find_trained(first_run.arch_key, "r1", first_run.data_key, study="other") is None

    # with `first` copied before, the pointer finds its original again
    dst2 = sqlite_url(tmp_path, "dst2.db")
    copy_study("first", src, dst2)
    assert copy_study("second", src, dst2)["reused_elsewhere"] == 1
    first0 = next(r for r in Store(dst2).runs("first") if r.trial == 0)
    again = {r.trial: r for r in Store(dst2).runs("second")}
    assert again[0].reused_from == first0.id and again[0].reason == "reused from first trial 0"
    assert dump(src) == before


# ---- refusals and failures -------------------------------------------------------------------------


def test_a_target_that_has_the_study_is_refused(source, tmp_path):
    src, before = source
    dst = sqlite_url(tmp_path, "dst.db")
    copy_study("first", src, dst)
    target = dump(dst)
    with pytest.raises(ResnasError, match=r"already has a study 'first'.*--as NEWNAME"):
        copy_study("first", src, dst)
    only_optuna, only_resnas = sqlite_url(tmp_path, "optuna.db"), sqlite_url(tmp_path, "resnas.db")
    optuna.create_study(study_name="first", storage=only_optuna)
    Store(only_resnas, create=True).add_study("first", {})
    for url in (only_optuna, only_resnas):
        with pytest.raises(ResnasError, match="already has a study 'first'"):
            copy_study("first", src, url)
    assert dump(dst) == target and dump(src) == before
    assert optuna.get_all_study_names(only_resnas) == [] and Store(only_optuna).study_names() == []


def test_a_study_with_running_trials_is_refused(tmp_path):
    src = sqlite_url(tmp_path, "src.db")
    make_study(src, "busy")
    study = optuna.load_study(study_name="busy", storage=src)
    study.ask()
    study.ask()
    before = dump(src)
    with pytest.raises(ResnasError, match="2 trials of 'busy' still running: copy it when its workers have stopped"):
        copy_study("busy", src, sqlite_url(tmp_path, "dst.db"))
    assert not (tmp_path / "dst.db").exists() and dump(src) == before


def test_missing_studies_and_storages_are_named(source, tmp_path):
    src, before = source
    with pytest.raises(ResnasError, match="no study 'nope' in .*; resnas studies there: first, second"):
        copy_study("nope", src, sqlite_url(tmp_path, "dst.db"))
    with pytest.raises(ResnasError, match="no SQLite file at"):
        copy_study("first", sqlite_url(tmp_path, "absent.db"), sqlite_url(tmp_path, "dst.db"))
    plain = sqlite_url(tmp_path, "plain.db")
    optuna.create_study(study_name="bare", storage=plain)
    with pytest.raises(ResnasError, match="'bare' in .* is an Optuna study without resnas's records"):
        copy_study("bare", plain, sqlite_url(tmp_path, "dst.db"))
    with pytest.raises(ResnasError, match="in memory"):
        copy_study("first", src, "sqlite://")
    with pytest.raises(ResnasError, match="not a storage URL") as e:
        copy_study("first", src, "not a url")
    assert e.value.field == "--to"
    with pytest.raises(ResnasError, match="cannot use storage") as e:
        copy_study("first", src, "postgresql://u:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(e.value) and "***" in str(e.value)
    assert not (tmp_path / "dst.db").exists() and dump(src) == before


def test_a_failure_after_the_optuna_copy_leaves_nothing_behind(source, tmp_path, monkeypatch):
    src, before = source
    dst = sqlite_url(tmp_path, "dst.db")

    def broken(*args, **kwargs):
        raise ResnasError("disk full")

    monkeypatch.setattr(Store, "add_study_copy", broken)
    with pytest.raises(ResnasError, match="disk full"):
        copy_study("first", src, dst)
    assert optuna.get_all_study_names(dst) == [] and Store(dst).study_names() == []
    monkeypatch.undo()

    real = optuna.copy_study

    def renumbering(**kwargs):  # a copy whose trial numbers would not match the runs'
        real(**kwargs)
        optuna.load_study(study_name=kwargs["to_study_name"], storage=dst).add_trial(
            optuna.trial.create_trial(state=TrialState.FAIL)
        )

    monkeypatch.setattr(optuna, "copy_study", renumbering)
    with pytest.raises(ResnasError, match="numbered its trials differently"):
        copy_study("first", src, dst)
    assert optuna.get_all_study_names(dst) == [] and Store(dst).study_names() == []
    rows = dump(dst)
    assert not rows["resnas_runs"] and not rows["resnas_archs"] and not rows["trials"]
    assert dump(src) == before


# ---- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url():
    with scratch_database("postgresql") as url:
        yield url


def test_sqlite_to_postgresql_and_back(source, pg_url, tmp_path):
    src, before = source
    moved = ("reused_from", "reason")
    for name in ("first", "second"):
        copy_study(name, src, pg_url)
        assert_same_study(src, pg_url, name, leave_out=moved if name == "second" else ())
    back = sqlite_url(tmp_path, "back.db")
    for name in ("first", "second"):
        summary = copy_study(name, pg_url, back)
        assert summary["from"] == safe_url(pg_url) and summary["trials"] == 6
        assert_same_study(src, back, name, leave_out=moved if name == "second" else ())
    assert runs_without_ids(pg_url, "second", ("reused_from",)) == runs_without_ids(back, "second", ("reused_from",))
    runs = {r.trial: r for r in Store(back).runs("second")}
    first0 = next(r for r in Store(back).runs("first") if r.trial == 0)
    assert runs[0].reused_from == first0.id and runs[1].reused_from == runs[4].id
    assert runs[3].reused_from == 0 and runs[3].reason.count("not copied here") == 1
    with pytest.raises(ResnasError, match="already has a study 'first'"):
        copy_study("first", src, pg_url)
    assert dump(src) == before


# ---- command line ----------------------------------------------------------------------------------


def test_the_command(source, tmp_path, runner):
    src, _ = source
    dst = sqlite_url(tmp_path, "dst.db")
    result = runner.invoke(app, ["study", "copy", "first", "--from", src, "--to", dst])
    assert result.exit_code == 0, result.output
    assert "copied study first: 6 trials, 5 runs, 5 new architectures" in result.output
    result = runner.invoke(app, ["study", "copy", "first", "--from", src, "--to", dst, "--as", "f2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["as"] == "f2"
    result = runner.invoke(
        app, ["study", "copy", "first", "--from", src, "--to", "postgresql://u:s3cret@127.0.0.1:1/x"]
    )
    assert result.exit_code == 2
    assert "s3cret" not in result.output and "Traceback" not in result.output and "error:" in result.output
    result = runner.invoke(app, ["study", "copy", "first", "--from", src, "--to", dst])
    assert result.exit_code == 2 and "--as NEWNAME" in result.output
