"""finalize and fidelity end to end on a tiny digits study, and what a search picks when told only a budget."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from nas_res.cli.main import app
from scipy import stats
from servers import sqlite_url

import nas_res
from nas_res import ResnasError
from nas_res.results import Store
from nas_res.results.final import final_name
from nas_res.results.references import describe_final, final_versus_reference
from nas_res.results.report import final_ranking
from nas_res.search import defaults, plan
from nas_res.search.finalize import plan_finalize
from nas_res.space.budget_fit import extremes
from nas_res.space.design_space import load_space

DATA = "synthetic:1x8x8:4:300"  # 270 training and 30 validation images after the 10% split


@pytest.fixture(scope="module")
def finalized(tmp_path_factory):
    """A 3-trial proxy search on 100 of 270 training images, its top 3 re-trained on all, 2 seeds each (random
    images: what is tested is the machinery, not what it learns)."""
    tmp = tmp_path_factory.mktemp("final")
    storage = _proxy_study(tmp, "proxy")
    result = nas_res.finalize_study(
        "proxy", top=3, seeds=2, epochs=1, test=True, storage=storage, checkpoints=str(tmp / "final")
    )
    return tmp, storage, result


def test_finalize_retrains_the_proxy_top_with_seeds_on_the_whole_split(finalized):
    _tmp, storage, result = finalized
    store = Store(storage)
    proxy = nas_res.leaderboard("proxy", storage=storage)
    assert store.config_of("proxy")["train_size"] == 100 and store.config_of("proxy")["val_images"] == 30
    final_config = store.config_of(final_name("proxy"))
    assert final_config["train_size"] is None and final_config["recipe"]["epochs"] == 1
    assert final_config["val_images"] == 30  # the same validation images as the proxy: rankings comparable
    runs = [r for r in store.runs(final_name("proxy")) if r.status.ranks]
    assert len(runs) == 6 and sorted(r.recipe["seed"] for r in runs) == [0, 0, 0, 1, 1, 1]
    assert all(r.epochs == 1 and r.test_acc is not None for r in runs)  # --test: every network evaluated
    assert {r.arch_key for r in runs} == {row["arch_key"] for row in proxy[:3]}
    table = result["final"]
    assert [r["final_rank"] for r in table] == [1, 2, 3]
    assert sorted(r["proxy_rank"] for r in table) == [1, 2, 3]
    for row in table:
        mine = [r.best_val_acc for r in runs if r.arch_key == row["arch_key"]]
        assert row["val_mean"] == pytest.approx(sum(mine) / 2) and row["seeds"] == [0, 1]
        assert 0 <= row["val_lo"] <= row["val_mean"] <= row["val_hi"] <= 100
    assert table == sorted(table, key=lambda r: -r["val_mean"])
    fid = result["fidelity"]
    assert fid["n"] == 3 and set(fid) >= {"proxy", "flops", "params"}
    # the leaderboard carries the final columns beside the proxy's
    board = {r["arch_key"]: r for r in nas_res.leaderboard("proxy", storage=storage)}
    for row in table:
        assert board[row["arch_key"]]["final_rank"] == row["final_rank"]
        assert board[row["arch_key"]]["final_val_mean"] == pytest.approx(row["val_mean"])


def test_finalize_again_resumes_and_export_takes_the_final_ranking(finalized, runner):
    tmp, storage, result = finalized
    args = ["finalize", "proxy", "--top", "3", "--seeds", "2", "--epochs", "1", "--storage", storage]
    again = runner.invoke(app, [*args, "--checkpoints", str(tmp / "final"), "--json"])
    assert again.exit_code == 0, again.output
    shown = json.loads(again.stdout)
    assert shown["counts"]["done"] == 0 and shown["final"] == result["final"]  # resumed: nothing trained twice
    out = tmp / "exported"
    written = nas_res.export_study("proxy", out, storage=storage, top=1, weights=True)
    record = yaml.safe_load(next(p for p in written if p.suffix == ".yaml").read_text())
    best = result["final"][0]
    assert record["provenance"]["study"] == final_name("proxy") and record["metrics"]["rank"] == 1
    assert record["arch"]["stages"] and record["metrics"]["final"]["val_mean"] == pytest.approx(best["val_mean"])
    assert record["provenance"]["trial"] == best["best_trial"] and any(p.suffix == ".pt" for p in written)
    shown = runner.invoke(app, ["fidelity", "proxy", "--storage", storage, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["fidelity"]["n"] == 3
    table = runner.invoke(app, ["fidelity", "proxy", "--storage", storage])
    assert "proxy fidelity" in table.output and "Kendall" in table.output


def test_finalize_refusals(finalized, runner):
    _tmp, storage, _ = finalized
    with pytest.raises(ResnasError, match="finalized before with other settings.*epochs 1 -> 5"):
        nas_res.finalize_study("proxy", top=3, seeds=2, epochs=5, storage=storage)
    with pytest.raises(ResnasError, match="re-training of 'proxy'; finalize that study"):
        nas_res.finalize_study(final_name("proxy"), storage=storage)
    with pytest.raises(ResnasError, match="--seeds"):
        nas_res.finalize_study("proxy", seeds=0, storage=storage)
    bad = runner.invoke(app, ["finalize", "nope", "--storage", storage])
    assert bad.exit_code == 2 and "nope" in bad.output and "Traceback" not in bad.output
    never = runner.invoke(app, ["fidelity", "nope", "--storage", storage])
    assert never.exit_code == 2


def test_fidelity_of_the_retraining_itself_names_the_study_to_ask(finalized, runner):
    _tmp, storage, _ = finalized
    assert final_ranking(Store(storage), final_name("proxy")) == []
    shown = runner.invoke(app, ["fidelity", final_name("proxy"), "--storage", storage])
    assert shown.exit_code == 2 and "'proxy.final' is the re-training of 'proxy'" in shown.output, shown.output
    assert "`resnas fidelity proxy`" in shown.output and "finalize" not in shown.output  # finalize would refuse it


def _copy(finalized, tmp_path, proxy_epochs: int, proxy_acc: float) -> tuple[str, dict]:
    """The finalized storage copied, with the final best architecture's proxy run at `proxy_acc` and the
    proxy's recipe at `proxy_epochs`: a proxy that beat its re-training, which was shorter."""
    _tmp, storage, result = finalized
    # sqlite's backup reads through the write-ahead log, which a file copy would miss while the store is open
    with (
        contextlib.closing(sqlite3.connect(storage.removeprefix("sqlite:///"))) as source,
        contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite")) as copy,
    ):
        source.backup(copy)
    best = result["final"][0]
    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite")) as db, db:
        db.execute(
            "UPDATE resnas_runs SET best_val_acc = ? WHERE study = 'proxy' AND trial = ?",
            (proxy_acc, best["proxy_trial"]),
        )
        (text,) = db.execute("SELECT config FROM resnas_studies WHERE name = 'proxy'").fetchone()
        config = json.loads(text)
        config["recipe"]["epochs"] = proxy_epochs
        db.execute("UPDATE resnas_studies SET config = ? WHERE name = 'proxy'", (json.dumps(config),))
    return sqlite_url(tmp_path), best


def test_fidelity_without_a_final_ranking_says_why_and_what_to_run(finalized, tmp_path, runner):
    storage, _ = _copy(finalized, tmp_path, proxy_epochs=1, proxy_acc=50.0)
    db = tmp_path / "db.sqlite"
    for sql, said in (
        ("DELETE FROM resnas_runs WHERE study = 'proxy.final'", "the re-training of 'proxy' ('proxy.final') has no"),
        ("DELETE FROM resnas_studies WHERE name = 'proxy.final'", "'proxy' has not been finalized yet: run resnas"),
    ):
        with contextlib.closing(sqlite3.connect(db)) as con, con:
            con.execute(sql)
        shown = runner.invoke(app, ["fidelity", "proxy", "--storage", storage])
        assert shown.exit_code == 1 and said in shown.output, shown.output


def _proxy_study(tmp: Path, study: str) -> str:
    """A 3-trial proxy search on the tiny synthetic data; its storage URL."""
    storage = sqlite_url(tmp)
    nas_res.run_search(
        study=study,
        space="plain-vs-residual",
        budget="20MFLOPs",
        dataset=DATA,
        train_size=100,
        trials=3,
        epochs=1,
        storage=storage,
        checkpoints=str(tmp / "ckpt"),
    )
    return storage


def test_with_test_a_narrow_keep_policy_waits_until_every_network_is_tested(tmp_path):
    storage = _proxy_study(tmp_path, "narrow")
    folder = tmp_path / "final"
    common = {"top": 2, "seeds": 1, "epochs": 1, "storage": storage, "checkpoints": str(folder)}
    result = nas_res.finalize_study("narrow", test=True, keep_checkpoints="best:1", **common)
    runs = [r for r in Store(storage).runs(final_name("narrow")) if r.status.ranks]
    assert len(runs) == 2 and all(r.test_acc is not None for r in runs)  # before: deleted, then an error
    kept = [r for r in runs if r.checkpoint]
    assert len(kept) == 1 and Path(kept[0].checkpoint).is_file()  # then best:1, as asked
    best = max(runs, key=lambda r: r.best_val_acc)
    assert kept[0].trial == best.trial
    assert len([p for p in folder.glob("trial-*") if any(p.iterdir())]) == 1
    assert any("--keep-checkpoints best:1 applies once the test split is evaluated" in n for n in result["notes"])


def test_a_network_whose_weights_are_gone_is_left_untested_with_a_note_the_rest_tested(tmp_path, runner):
    storage = _proxy_study(tmp_path, "gone")
    common = {"top": 2, "seeds": 1, "epochs": 1, "storage": storage, "checkpoints": str(tmp_path / "final")}
    nas_res.finalize_study("gone", keep_checkpoints="best:1", **common)  # no --test: one network's weights go
    runs = {r.trial: r for r in Store(storage).runs(final_name("gone")) if r.status.ranks}
    (lost,) = [r for r in runs.values() if not r.checkpoint]
    result = runner.invoke(
        app, ["finalize", "gone", "--top", "2", "--seeds", "1", "--epochs", "1", "--test", "--storage", storage,
              "--checkpoints", str(tmp_path / "final")]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    after = {r.trial: r for r in Store(storage).runs(final_name("gone")) if r.status.ranks}
    assert after[lost.trial].test_acc is None
    assert all(r.test_acc is not None for t, r in after.items() if t != lost.trial)
    assert f"trial {lost.trial} of 'gone.final'" in result.output and "kept no weights" in result.output
    assert "Traceback" not in result.output


def test_a_shorter_final_recipe_and_a_proxy_that_beat_it_are_said(finalized, tmp_path, runner):
    storage, best = _copy(finalized, tmp_path, proxy_epochs=6, proxy_acc=99.5)
    points = f"{99.5 - best['best_val_acc']:.2f} points below its proxy run's (trial {best['proxy_trial']} of 'proxy'"
    said = f"`resnas export proxy` takes its re-trained weights (proxy.final trial {best['best_trial']}"
    shown = runner.invoke(app, ["fidelity", "proxy", "--storage", storage])
    assert shown.exit_code == 0 and said in shown.output and points in shown.output, shown.output
    exported = runner.invoke(app, ["export", "proxy", "--storage", storage, "--out", str(tmp_path / "out")])
    assert exported.exit_code == 0 and said in exported.output and points in exported.output, exported.output
    args = ["finalize", "proxy", "--top", "3", "--seeds", "2", "--epochs", "1", "--storage", storage]
    again = runner.invoke(app, [*args, "--checkpoints", str(tmp_path / "final")])  # all trained: resumes, says
    assert again.exit_code == 0, again.output
    assert "note: the final recipe trains 1 epoch(s), fewer than the proxy's 6" in again.output
    assert "runs of 1 epoch on" in again.output and points in again.output
    api = nas_res.finalize_study(
        "proxy", top=3, seeds=2, epochs=1, storage=storage, checkpoints=str(tmp_path / "final")
    )
    shorter, below = api["notes"]  # the Python API says what the CLI says
    assert shorter.startswith("the final recipe trains 1 epoch(s), fewer than the proxy's 6")
    assert said in below and points in below


def test_sigterm_stops_finalize_with_143_and_the_same_command_resumes(finalized, tmp_path, runner, monkeypatch):
    import nas_res.cli.finalize as finalize_cli

    storage, _ = _copy(finalized, tmp_path, proxy_epochs=1, proxy_acc=0.0)
    real = finalize_cli.run_live

    def terminated(coordinator):
        def once(state):
            coordinator.on_update = lambda state: None
            os.kill(os.getpid(), signal.SIGTERM)  # the coordinator's handler turns it into an interrupt

        coordinator.on_update = once
        return real(coordinator)

    monkeypatch.setattr(finalize_cli, "run_live", terminated)
    args = ["finalize", "proxy", "--top", "3", "--seeds", "3", "--epochs", "1", "--storage", storage]
    r = runner.invoke(app, [*args, "--checkpoints", str(tmp_path / "final")])  # a third seed: 3 runs to train
    assert r.exit_code == 143 and "run the same command to resume" in r.output and "Traceback" not in r.output


# ---- what a search picks when told only a budget --------------------------------------------------------
def test_a_budget_alone_picks_fashion_mnist_a_small_image_space_and_a_cpu_proxy(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "find_published", lambda name, root: Path("/usr/share/datasets/fashion-mnist"))
    monkeypatch.setattr(sys.modules["nas_res.search.plan"], "cuda_devices", lambda: 0)
    config, _ = plan({"budget": "4GFLOPs", "storage": sqlite_url(tmp_path)})
    assert config.dataset == "fashion-mnist" and config.space.name == "small-resnext"
    assert config.train_size == defaults.PROXY_IMAGES and config.gpus == ()
    # 4 GFLOPs would train for an hour a trial on 2 cores: held to what trains in minutes, and said so
    assert config.budget.flops_max < 200e6 and config.study == f"small-resnext-fashion-mnist-{config.budget_input}"
    text = " ".join(config.notes)
    assert "fashion-mnist" in text and "small-resnext" in text and "no GPU" in text and "4.00 G" in text
    assert "reference resolution" not in text  # the space is priced at 28x28, the images' own side
    again, _existed = plan({"budget": "4GFLOPs", "storage": sqlite_url(tmp_path)})
    assert again.study == config.study  # the same command names the same study (and resumes it)


def test_a_gpu_gets_the_whole_budget_and_no_dataset_means_digits_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "find_published", lambda name, root: None)
    monkeypatch.setattr(sys.modules["nas_res.search.plan"], "cuda_devices", lambda: 2)
    config, _ = plan({"budget": "4GFLOPs", "storage": sqlite_url(tmp_path), "workers": None})
    assert config.dataset == "digits" and config.gpus == (0, 1) and config.budget.flops_max == 4e9
    assert config.train_size is None and "apt-get install dataset-fashion-mnist" in " ".join(config.notes)


def test_a_named_space_keeps_the_default_data_and_a_misfit_is_said():
    space = load_space("resnext")
    notes = " ".join(defaults.fit_notes(space, nas_res.Budget.parse("4GFLOPs"), "digits"))
    assert "224x224 reference resolution" in notes and "1x1 maps" in notes and "--space small-resnext" in notes
    assert defaults.fit_notes(load_space("cifar-resnext"), nas_res.Budget.parse("4GFLOPs"), "cifar10") == []
    assert defaults.stage_maps(extremes(space, "flops")[0], 224) == [56, 28, 14, 7]
    given = {"space": "cifar-resnet", "budget": "40MFLOPs"}
    defaults.pick(given, 0)
    assert given["dataset"] == "digits" and "train_size" not in given  # a named space: documented defaults


# ---- a trial that trains all its epochs is complete -----------------------------------------------------
def test_the_last_epoch_is_never_pruned():
    """Hyperband's top rung is the last epoch (with --epochs 1, the only one): the pruner may say "prune"
    there, and a fully trained network must not be dropped from the ranking for it."""
    from types import SimpleNamespace

    from nas_res.search.trials import Trials

    decisions = []
    job = SimpleNamespace(
        trial="t", epochs=3, epoch=0, val_acc=None, val_loss=None, reference=False, history=[], run_id=1
    )
    worker = SimpleNamespace(job=job, decide=decisions.append)
    trials = SimpleNamespace(
        config=SimpleNamespace(multi_objective=False, task="classify", score_key="val_acc"),
        keeper=SimpleNamespace(measure=lambda: None),
        db=lambda fn, *args, **values: fn(*args, **values),
        store=SimpleNamespace(finish_run=lambda run_id, **values: True),  # each epoch stored as it ends
        optuna=SimpleNamespace(report=lambda trial, value, step: True),  # a pruner that always says stop
    )
    for epoch in (1, 2, 3):
        Trials.epoch(trials, worker, {"epoch": epoch, "val_acc": 50.0, "val_loss": 1.0})  # type: ignore[arg-type]
    assert decisions == [True, True, False]


def _bits(run) -> np.ndarray:
    return np.unpackbits(np.frombuffer(run.test_correct, np.uint8)).astype(bool)  # padding: False in both


def test_finalize_re_trains_the_best_reference_beyond_the_top_and_says_if_the_search_beat_it(tmp_path, runner):
    storage = sqlite_url(tmp_path)
    nas_res.run_search(
        study="hand", space="small-resnext", budget="31112896", dataset=DATA, train_size=100, trials=3, epochs=1,
        reference="resnet20_cifar", storage=storage, checkpoints=str(tmp_path / "ckpt"),
    )  # fmt: skip
    (ref_key,) = Store(storage).study_config("hand")["references"].values()
    with contextlib.closing(sqlite3.connect(storage.removeprefix("sqlite:///"))) as con, con:
        con.execute("UPDATE resnas_runs SET best_val_acc = 0.5 WHERE study = 'hand' AND arch_key = ?", (ref_key,))
    planned = plan_finalize("hand", storage=storage, top=1, seeds=2, epochs=1, reference=False)
    assert planned.reference_row is None and ref_key not in {g.arch.key for g in planned.given}
    result = runner.invoke(
        app, ["finalize", "hand", "--top", "1", "--seeds", "2", "--epochs", "1", "--test", "--storage", storage,
              "--checkpoints", str(tmp_path / "final")]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "top 1 of 'hand' by proxy and its best reference, resnet20_cifar (proxy rank 3)," in said
    assert "final: the re-trained best" in said  # is the reference, or is set against it
    runs = [r for r in Store(storage).runs(final_name("hand")) if r.status.ranks]
    assert len(runs) == 4 and sum(r.arch_key == ref_key for r in runs) == 2  # the top 1 and the reference, 2 seeds
    with contextlib.closing(sqlite3.connect(storage.removeprefix("sqlite:///"))) as con, con:
        con.execute("UPDATE resnas_runs SET best_val_acc = 1 WHERE study = 'hand.final' AND arch_key = ?", (ref_key,))
    versus = json.loads(runner.invoke(app, ["fidelity", "hand", "--storage", storage, "--json"]).output)["vs_reference"]
    assert versus == nas_res.vs_reference("hand", storage=storage, final=True)
    assert versus["reference"] == "resnet20_cifar" and versus["split"] == "test" and versus["seeds"] == 2
    best = [r for r in runs if r.arch_key != ref_key]  # the final best, now that the reference ranks below it
    ref = {r.recipe["seed"]: r for r in runs if r.arch_key == ref_key}
    b = sum(int((_bits(r) & ~_bits(ref[r.recipe["seed"]])).sum()) for r in best)  # summed over seed pairs, by hand
    c = sum(int((~_bits(r) & _bits(ref[r.recipe["seed"]])).sum()) for r in best)
    p = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert (versus["b"], versus["c"]) == (b, c) and versus["p"] == pytest.approx(p)
    assert versus["verdict"] == ("tied" if p >= 0.05 else "beats" if b > c else "below")
    for command in ("fidelity", "leaderboard"):  # the leaderboard: the proxy's line, then the re-trained one
        said = " ".join(runner.invoke(app, [command, "hand", "--storage", storage]).output.split())
        assert f"final: the re-trained best ({versus['best_summary']}" in said
        assert f"{b} images only the best got right, {c} only the reference" in said


def _row(summary: str, test: float, reference: str | None = None, b=None, c=None, p=None) -> dict:
    split = None if b is None else "test"
    counts = {"vs_best_split": split, "vs_best_seeds": 2 if b is not None else 0, "vs_best_b": b, "vs_best_c": c}
    return {"summary": summary, "flops": 1, "seeds": [0, 1], "val_mean": 90.0, "test_mean": test,
            "reference": reference, **counts, "vs_best_p": p}  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "verdict", "said"),
    [
        ([_row("a", 93.0), _row("r", 93.3, "resnet20_cifar", 319, 382, 0.019)], "below", "below the hand pick"),
        ([_row("a", 93.6), _row("r", 93.3, "resnet20_cifar", 382, 319, 0.019)], "beats", "it beats the hand pick"),
        ([_row("a", 93.4), _row("r", 93.3, "resnet20_cifar", 357, 347, 0.73)], "tied", "not told apart"),
        ([_row("a", 93.4), _row("r", 93.3, "resnet20_cifar")], "tied", "no per-image record to pair"),
        ([_row("r", 93.3, "resnet20_cifar"), _row("a", 93.4, None, 3, 4, 1.0)], "is", "nothing better than the hand"),
    ],
)
def test_the_final_verdict_on_the_hand_pick(rows, verdict, said):
    versus = final_versus_reference(rows)
    assert versus is not None and versus["verdict"] == verdict and said in describe_final(versus)
    assert final_versus_reference([_row("a", 93.0)]) is None  # no reference re-trained: no line


def test_the_final_verdict_speaks_of_the_seeds_both_trained():
    """A best trained with a third seed the reference lacks (an older finalize): the means compared are over
    the two seed pairs McNemar used, not the best's three seeds."""
    best = {**_row("a", 95.0), "seeds": [0, 1, 2]}
    ref = {**_row("r", 93.3, "resnet20_cifar", 300, 310, 0.72), "vs_best_means": [93.1, 93.3]}
    versus = final_versus_reference([best, ref])
    assert versus is not None and (versus["best_acc"], versus["reference_acc"]) == (93.1, 93.3)
    assert versus["difference"] == pytest.approx(-0.2) and versus["seeds"] == 2
    assert "93.10% test, mean over seeds) vs the best reference re-trained, resnet20_cifar (93.30% test): -0.20" in (
        describe_final(versus)
    )
