"""Paired statistics: per-image correctness stored with every run, McNemar's exact test, and the schema
migration that adds the columns to databases written before them.

McNemar is checked against hand-worked binomial tails (and statsmodels where installed); the stored
bitmaps against the accuracies they must reproduce; the migration on real version-1 databases
(SQLite here, PostgreSQL and MariaDB where a local server answers).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import sqlalchemy as sa
from nas_res.cli.main import app
from servers import scratch_database, sqlite_url

from nas_res import ResnasError, cost, load_space
from nas_res.results import SCHEMA_VERSION, Store, compare, copy_study, leaderboard
from nas_res.results.migrate import upgrade
from nas_res.results.paired import compare_runs, pooled_over_seeds, run_correct
from nas_res.results.report import best_run
from nas_res.results.schema import ADDED_COLUMNS
from nas_res.results.uncertainty import McNemar, mcnemar, mcnemar_counts, per_image
from nas_res.training.evaluation import pack_correct

# ---- McNemar's exact test ------------------------------------------------------------------------


def bits(right: list[int]) -> bytes:
    return np.packbits(np.array(right, dtype=bool)).tobytes()


def test_mcnemar_matches_hand_worked_tables():
    # b=1, c=9: p = 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * (1 + 10) / 1024
    assert mcnemar_counts(1, 9) == McNemar(1, 9, pytest.approx(22 / 1024))
    # b=3, c=5: 2 * (1 + 8 + 28 + 56) / 256
    assert mcnemar_counts(3, 5).p == pytest.approx(186 / 256)
    assert mcnemar_counts(0, 0).p == 1.0 and mcnemar_counts(4, 4).p == 1.0
    assert mcnemar_counts(0, 20).p == pytest.approx(2 / 2**20)
    # 12 images: both right on 0-4, only a right on 5-6, only b right on 7, both wrong on 8-11
    a = [1] * 5 + [1, 1] + [0] + [0] * 4
    b = [1] * 5 + [0, 0] + [1] + [0] * 4
    m = mcnemar(bits(a), bits(b), 12)
    assert (m.b, m.c) == (2, 1) and m.p == 1.0  # 2 * P(X <= 1 | 3) = 2 * 4/8, capped at 1
    assert mcnemar(np.array(a), np.array(b, dtype=bool), 12) == m  # arrays of 0/1 or bool: the same
    assert mcnemar(bits(b), bits(a)) == McNemar(1, 2, 1.0)  # swapped, and without n
    assert m.to_dict() == {"b": 2, "c": 1, "p": 1.0}


def test_mcnemar_agrees_with_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.contingency_tables", reason="statsmodels not installed (optional)")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(300) < rng.random(), rng.random(300) < rng.random()
        m = mcnemar(a, b, 300)
        table = [[int((a & b).sum()), m.b], [m.c, int((~a & ~b).sum())]]
        assert m.p == pytest.approx(sm.mcnemar(table, exact=True).pvalue)


def test_bitmaps_round_trip_and_damage_is_one_message():
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 6000):
        right = rng.random(n) < 0.8
        packed = pack_correct(right)
        assert isinstance(packed, bytes) and len(packed) == math.ceil(n / 8)
        assert (per_image(packed, n) == right).all()
    assert len(pack_correct(np.ones(6000, bool))) == 750
    with pytest.raises(ResnasError, match="10 images need 2"):
        per_image(b"\xff", 10)
    with pytest.raises(ResnasError, match="bits set past image 10"):
        per_image(b"\xff\xff", 10)
    with pytest.raises(ResnasError, match="not the same images"):
        mcnemar(b"\x00", b"\x00\x00")
    with pytest.raises(ResnasError, match="0/1 or bool"):
        mcnemar(np.array([0, 2]), np.array([0, 1]))


# ---- leaderboard, compare and finalize on stored bitmaps ------------------------------------------

N = 1000


def correct(k: int, wrong_from: int = 0) -> np.ndarray:
    """`k` of N right: all but images wrong_from .. wrong_from + (N - k) - 1."""
    right = np.ones(N, bool)
    right[wrong_from : wrong_from + N - k] = False
    return right


def paired_study(url: str, name: str, rows: list[tuple[float, bytes | None]], data_key: str = "d") -> None:
    """A finished study written straight into the store: one ok run per (accuracy, val bitmap)."""
    store = Store(url, create=True)
    config = {"space_name": "plain-vs-residual", "budget_text": "20MFLOPs", "dataset": "digits"}
    store.add_study(name, {**config, "objective": "accuracy", "trials": len(rows), "val_images": N})
    archs = load_space("plain-vs-residual").sample(len(rows), "20MFLOPs", seed=0)
    for trial, (acc, val_correct) in enumerate(rows):
        store.put_arch(archs[trial], cost(archs[trial]))
        store.add_run(
            study=name,
            trial=trial,
            arch_key=archs[trial].key,
            recipe_key="r",
            recipe={"epochs": 1, "seed": 0},
            data_key=data_key,
            status="ok",
            history=[{"epoch": 1, "val_acc": acc}],
            epochs=1,
            best_val_acc=acc,
            val_correct=val_correct,
        )
    store.dispose()


@pytest.fixture
def board(tmp_path):
    """best 900/1000; 880 = the best less 20 images (b=20, c=0: apart, though 2 points on 1000 images
    is a tie unpaired); 894 with b=13, c=7 (tied); 88.5% with no per-image record (unpaired: tied)."""
    url = sqlite_url(tmp_path)
    best = correct(900)  # wrong on images 0..99
    mixed = best.copy()
    mixed[100:113] = False  # 13 the best got right, this one not
    mixed[:7] = True  # 7 the best got wrong, this one right: 900 - 13 + 7 = 894
    rows = [(90.0, pack_correct(best)), (88.0, pack_correct(best & correct(980, 100)))]
    rows += [(89.4, pack_correct(mixed)), (88.5, None)]
    paired_study(url, "s", rows)
    return url


def test_leaderboard_ties_by_mcnemar_with_counts(board):
    rows = leaderboard(Store(board), "s")
    assert [r["trial"] for r in rows] == [0, 2, 3, 1]
    by = {r["trial"]: r for r in rows}
    assert (by[0]["tied"], by[0]["vs_best_b"], by[0]["vs_best_c"], by[0]["vs_best_p"]) == (True, 0, 0, 1.0)
    assert (by[1]["tied"], by[1]["vs_best_b"], by[1]["vs_best_c"]) == (False, 20, 0)
    assert by[1]["vs_best_p"] == pytest.approx(2 / 2**20) and by[1]["tie_test"] == "mcnemar"
    assert (by[2]["tied"], by[2]["vs_best_b"], by[2]["vs_best_c"]) == (True, 13, 7)
    assert by[3]["tie_test"] == "agresti-caffo" and by[3]["tied"] is True and by[3]["vs_best_b"] is None


def test_leaderboard_command_shows_counts_and_says_which_rows_are_unpaired(board, runner):
    r = runner.invoke(app, ["leaderboard", "s", "--storage", board])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.stdout.split())
    assert "20/0, p<0.001" in flat and "13/7, p=0.26" in flat
    assert "McNemar's exact test" in flat
    assert "ties for 1 row use the unpaired test: no per-image record" in flat
    r = runner.invoke(app, ["leaderboard", "s", "--storage", board, "--json"])
    data = json.loads(r.stdout)
    assert {"vs_best_b", "vs_best_c", "vs_best_p", "tie_test"} <= set(data[1])


def test_compare_pairs_studies_on_the_same_images_only(board, runner):
    better = correct(950)  # right wherever the other's best is, and on 50 more
    paired_study(board, "same", [(95.0, pack_correct(better))])
    paired_study(board, "other", [(95.0, pack_correct(better))], data_key="another split")
    store = Store(board)
    names = ("s", "same", "other")
    stats = compare({n: leaderboard(store, n) for n in names}, {n: best_run(store, n) for n in names})
    assert stats[0]["best_paired"] is None
    assert (stats[1]["best_paired"], stats[1]["best_vs_first_b"], stats[1]["best_vs_first_c"]) == (True, 0, 50)
    assert stats[1]["best_vs_first_p"] == pytest.approx(2 / 2**50)
    assert stats[2]["best_paired"] is False and stats[2]["best_vs_first_p"] is None
    r = runner.invoke(app, ["compare", *names, "--storage", board])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.stdout.split())
    assert "0/50, p<0.001" in flat and "other: not on the same validation images" in flat
    r = runner.invoke(app, ["compare", *names, "--storage", board, "--json"])
    assert json.loads(r.stdout)["studies"][1]["best_vs_first_c"] == 50


def test_finalize_pools_seeds_on_test_images_where_tested(board):
    run = Store(board).runs("s")[0]

    def seeded(seed: int, val: bytes | None, test: bytes | None):
        val_acc = 100 * per_image(val, 3).mean() if val else None  # the accuracy each bitmap stands for
        test_acc = 100 * per_image(test, 4).mean() if test else None
        return dataclasses.replace(
            run, recipe={"seed": seed}, val_correct=val, test_correct=test, best_val_acc=val_acc, test_acc=test_acc
        )

    a = [seeded(0, bits([1, 1, 0]), bits([1, 1, 1, 0])), seeded(1, bits([1, 0, 0]), bits([1, 1, 0, 0]))]
    b = [seeded(0, bits([0, 1, 1]), bits([0, 0, 1, 1])), seeded(1, bits([1, 1, 0]), bits([0, 0, 0, 0]))]
    # test images: seed 0 b=2 (images 0, 1), c=1 (image 3); seed 1 b=2, c=0
    pooled = pooled_over_seeds(a, b)
    assert pooled == {"vs_best_split": "test", "vs_best_seeds": 2, "vs_best_b": 4, "vs_best_c": 1,
                      "vs_best_p": mcnemar_counts(4, 1).p, "vs_best_means": [62.5, 25.0]}  # fmt: skip
    # a third seed only the best trained: neither the test nor the means the test speaks of count it
    third = pooled_over_seeds([*a, seeded(2, bits([0, 0, 0]), bits([0, 0, 0, 0]))], b)
    assert third == pooled
    b[1] = seeded(1, bits([1, 1, 0]), None)  # one seed untested: the validation images for all
    assert pooled_over_seeds(a, b)["vs_best_split"] == "val"
    assert (pooled_over_seeds(a, b)["vs_best_b"], pooled_over_seeds(a, b)["vs_best_c"]) == (1, 1 + 1)
    assert pooled_over_seeds(a, b)["vs_best_means"] == pytest.approx([50.0, 200 / 3])
    assert pooled_over_seeds(a, [seeded(5, bits([1, 1, 1]), None)])["vs_best_means"] is None  # no seed shared
    assert compare_runs(a[0], b[0], "test") == mcnemar(bits([1, 1, 1, 0]), bits([0, 0, 1, 1]))
    assert run_correct(a[0], "test") == bits([1, 1, 1, 0])
    with pytest.raises(ResnasError, match="val or test"):
        run_correct(a[0], "train")


# ---- the migration from schema 1 ------------------------------------------------------------------


def version_1(url: str) -> None:
    """A database as resnas wrote it before per-image records: schema 1, no val_correct/test_correct,
    one study with one finished run."""
    paired_study(url, "old", [(90.0, None)])
    engine = sa.create_engine(url)
    with engine.begin() as c:
        for column in ADDED_COLUMNS[2]:
            c.execute(sa.text(f"ALTER TABLE resnas_runs DROP COLUMN {column}"))
        c.execute(sa.text("UPDATE resnas_schema SET version = 1"))
    assert not {"val_correct", "test_correct"} & {c["name"] for c in sa.inspect(engine).get_columns("resnas_runs")}
    engine.dispose()


def check_migrated(url: str) -> None:
    """A version-1 database opened by this resnas: the columns are there, the old run reads as before
    (no per-image record, ties unpaired), new runs store bitmaps."""
    store = Store(url)  # a report's open (not create): migrated all the same
    assert store._versions() == [SCHEMA_VERSION]
    (old,) = store.runs("old")
    assert old.best_val_acc == 90.0 and old.val_correct is None and old.test_correct is None
    assert leaderboard(store, "old")[0]["tie_test"] == "agresti-caffo"
    store.set_test_acc(old.id, 91.0, bits([1, 0, 1]))
    assert store.runs("old")[0].test_correct == bits([1, 0, 1])
    store.dispose()
    paired_study(url, "new", [(90.0, pack_correct(correct(900)))])
    again = Store(url, create=True)  # migrated once: opening again changes nothing
    assert again._versions() == [SCHEMA_VERSION]
    assert again.runs("new")[0].val_correct == pack_correct(correct(900))
    assert per_image(again.runs("new")[0].val_correct, N).mean() == 0.9
    again.dispose()


def test_a_version_1_sqlite_database_is_migrated_in_place(tmp_path):
    url = sqlite_url(tmp_path)
    version_1(url)
    check_migrated(url)


def test_a_concurrent_migration_is_not_an_error(tmp_path, monkeypatch):
    url = sqlite_url(tmp_path)
    version_1(url)
    engine = sa.create_engine(url)
    assert upgrade(engine, 1) == list(ADDED_COLUMNS[2])
    with engine.begin() as c:
        c.execute(sa.text("UPDATE resnas_schema SET version = 1"))
    from nas_res.results import migrate

    calls = []

    def stale_then_real(e):  # another process added the columns between our look and our ALTER
        calls.append(1)
        return set() if len(calls) % 2 else {c["name"] for c in sa.inspect(e).get_columns("resnas_runs")}

    monkeypatch.setattr(migrate, "_columns", stale_then_real)
    assert upgrade(engine, 1) == []
    engine.dispose()
    assert Store(url)._versions() == [SCHEMA_VERSION]


def test_a_copied_study_keeps_its_per_image_records(tmp_path):
    from test_transfer import make_study

    source, target = sqlite_url(tmp_path, "a.db"), sqlite_url(tmp_path, "b.db")
    ids = make_study(source, "s")
    engine = sa.create_engine(source)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE resnas_runs SET val_correct = :v, test_correct = :t WHERE id = :i"),
                  {"v": bits([1, 0, 1]), "t": bits([0, 1]), "i": ids[0]})  # fmt: skip
    engine.dispose()
    copy_study("s", source, target)
    copied = {r.trial: r for r in Store(target).runs("s")}
    assert copied[0].val_correct == bits([1, 0, 1]) and copied[0].test_correct == bits([0, 1])
    assert copied[1].val_correct is None


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_version_1_server_database_is_migrated_in_place(kind):
    with scratch_database(kind) as url:
        version_1(url)
        check_migrated(url)


# ---- runs store their best epoch's record ----------------------------------------------------------


def test_training_keeps_the_best_epochs_record_through_a_resume(tmp_path):
    from nas_res import zoo
    from nas_res.data.dataset import load_data
    from nas_res.training import checkpoint
    from nas_res.training.recipe import Recipe
    from nas_res.training.trainer import Pruned, train

    data, net, recipe = load_data("digits"), zoo.get("mnist_resnet"), Recipe(epochs=2, batch_size=64, lr=0.1)
    whole = train(net, data, recipe, device="cpu")
    n = len(data.val)
    right = per_image(whole.val_correct, n)
    assert 100.0 * right.sum() / n == whole.best.val_acc  # the best epoch's, exactly
    assert "val_correct" not in whole.to_dict()

    def stop(m):
        raise Pruned("cut short")

    cut = train(net, data, recipe, device="cpu", on_epoch=stop, out=tmp_path)
    assert cut.status == "pruned" and len(cut.history) == 1
    kept = checkpoint.load(tmp_path / checkpoint.FILE_NAME)["val_correct"]  # for a resume whose best came before
    assert kept.numpy().tobytes() == cut.val_correct
    resumed = train(net, data, recipe, device="cpu", out=tmp_path, resume=True)
    assert [m.val_acc for m in resumed.history] == [m.val_acc for m in whole.history]
    assert resumed.val_correct == whole.val_correct


def test_a_search_stores_each_runs_record_and_test_evaluation_adds_one(tmp_path):
    from nas_res.results import export
    from nas_res.search import Coordinator, plan

    url = sqlite_url(tmp_path)
    options = {"space": "plain-vs-residual", "budget": "20MFLOPs", "trials": 1, "epochs": 1, "storage": url}
    config, _ = plan({**options, "study": "p", "checkpoints": str(tmp_path / "ckpt")})
    Coordinator(config).run()
    store = Store(url)
    n = store.config_of("p")["val_images"]
    runs = [r for r in store.runs("p") if r.best_val_acc is not None]
    assert runs
    for r in runs:
        assert 100.0 * per_image(r.val_correct, n).sum() / n == r.best_val_acc
    export(store, "p", tmp_path / "out", top=1, test=True)
    (tested,) = [r for r in store.runs("p") if r.test_acc is not None]
    m = store.config_of("p")["test_images"]
    assert 100.0 * per_image(tested.test_correct, m).sum() / m == pytest.approx(tested.test_acc)
