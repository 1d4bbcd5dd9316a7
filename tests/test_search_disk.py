"""What a search leaves on disk (the keep policy), a cut-short trial continuing from its checkpoint, and
the CPU threads each worker trains on."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from nas_res.cli.main import app
from servers import sqlite_url

from nas_res import ResnasError
from nas_res.results import Store, export, leaderboard
from nas_res.search import Coordinator, plan, read_study_file
from nas_res.search.keep import KeepPolicy
from nas_res.training import checkpoint
from nas_res.training.threads import plan_threads, usable_cores, worker_threads

SPACE, BUDGET = "plain-vs-residual", "20MFLOPs"  # 24 candidates fit
DATA = "synthetic:1x8x8:4:128"  # trials of a second or less: what is tested is the files around them


def _options(tmp: Path, study: str, **extra) -> dict:
    return {
        "space": SPACE,
        "budget": BUDGET,
        "dataset": DATA,
        "trials": 2,
        "epochs": 1,
        "pruner": "none",
        "study": study,
        "storage": sqlite_url(tmp),
        "checkpoints": str(tmp / study),
        **extra,
    }


def _files(folder: Path) -> list[str]:
    """The trials' files (not the folder's study marker)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("trial-*/*") if p.is_file())


def _trained(storage: str, study: str) -> list:
    return [r for r in Store(storage).runs(study) if r.status.counts and r.reused_from is None]


def test_the_default_keeps_the_five_best_final_weights_and_cpu_workers_split_the_cores(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    config, _ = plan(_options(tmp_path, "kept", trials=6, workers=2))
    state = Coordinator(config).run()
    assert str(config.keep_checkpoints) == "best:5" and state.counted == 6
    rows = leaderboard(Store(config.storage), "kept")
    best = {row["trial"] for row in rows[:5]}
    folder = tmp_path / "kept"
    assert _files(folder) == sorted(f"trial-{n:05d}/weights.pt" for n in best)  # no optimizer state left
    for r in _trained(config.storage, "kept"):
        assert r.checkpoint == (str(folder / f"trial-{r.trial:05d}" / "weights.pt") if r.trial in best else None)
    weights = checkpoint.load(folder / f"trial-{min(best):05d}")  # a folder means the weights it holds
    assert weights["format"] == checkpoint.WEIGHTS_FORMAT and not set(checkpoint.RESUMABLE) & set(weights)
    assert state.disk.bytes == sum(p.stat().st_size for p in folder.rglob("*.pt")) and state.disk.trials == 5

    share = max(1, usable_cores() // 2)  # two workers: half the cores each
    assert state.to_dict()["threads"] == [share, share]
    trials = optuna.load_study(study_name="kept", storage=config.storage).get_trials()
    reported = [t.user_attrs["threads"] for t in trials if "threads" in t.user_attrs]  # as each worker measured
    assert len(reported) == 6 and set(reported) == {share}

    r = runner.invoke(app, ["evaluate", rows[0]["checkpoint"], "--device", "cpu", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["arch_key"] == rows[0]["arch_key"], r.output
    written = export(Store(config.storage), "kept", tmp_path / "out", top=5, weights=True)
    assert len([p for p in written if p.suffix == ".pt"]) == 5
    r = runner.invoke(app, ["evaluate", str(written[-1]), "--device", "cpu", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["split"] == "test", r.output
    with pytest.raises(ResnasError, match=f"trial {rows[5]['trial']} of 'kept' kept no weights"):
        export(Store(config.storage), "kept", tmp_path / "all", top=6, weights=True)
    resumed = tmp_path / "resume"  # final weights are not a state to continue training from
    resumed.mkdir()
    (resumed / "checkpoint.pt").write_bytes(Path(rows[0]["checkpoint"]).read_bytes())
    arch = str(next(p for p in written if p.suffix == ".yaml"))
    train = ["train", arch, "--dataset", DATA, "--epochs", "1", "--batch-size", "32", "--out", str(resumed)]
    r = runner.invoke(app, [*train, "--resume"])
    assert r.exit_code == 2 and "final weights only" in r.stderr, r.output


def test_none_keeps_nothing_and_threads_is_an_option(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = max(1, usable_cores() - 1)  # within the cores (beyond them it is cut: tests/test_resources.py)
    o = _options(tmp_path, "none")
    args = ["search", "--space", SPACE, "--budget", BUDGET, "--dataset", DATA, "--trials", "2", "--epochs", "1"]
    args += ["--pruner", "none", "--study", "none", "--storage", o["storage"], "--checkpoints", o["checkpoints"]]
    r = runner.invoke(app, [*args, "--keep-checkpoints", "none", "--threads", str(threads), "--json"])
    assert r.exit_code == 0, r.output
    assert f"({threads} thread(s) each), keeping none checkpoints" in " ".join(r.stderr.split())  # the banner
    out = json.loads(r.stdout)
    assert out["checkpoints"]["bytes"] == 0 and out["threads"] == [threads]
    assert _files(tmp_path / "none") == [] and all(r.checkpoint is None for r in _trained(o["storage"], "none"))


def test_an_interrupted_trial_continues_from_its_checkpoint_and_all_keeps_it_whole(tmp_path, monkeypatch):
    threads = max(1, usable_cores() - 1)  # not the default (on 2+ cores): what the worker reports is what it was told
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))
    options = _options(tmp_path, "cut", trials=1, epochs=3, keep_checkpoints="all")
    config, _ = plan(options)

    def interrupt(state) -> None:
        if any(w.job is not None and w.job.epoch >= 1 for w in state.workers):
            raise KeyboardInterrupt

    first = Coordinator(config, interrupt).run()
    assert first.interrupted
    (cut,) = Store(config.storage).runs("cut")
    assert cut.status == "interrupted" and cut.checkpoint.endswith("checkpoint.pt")
    saved = checkpoint.load(cut.checkpoint)  # kept whole: the retry resumes from it
    assert saved["format"] == checkpoint.FORMAT and saved["epoch"] >= 1
    again = Coordinator(plan(options)[0]).run()
    assert again.counted == 1 and again.counts["done"] == 1 and again.to_dict()["threads"] == [threads]
    run = next(r for r in Store(config.storage).runs("cut") if r.status == "ok")
    assert run.history[: saved["epoch"]] == saved["history"]  # the same epochs, timings included: not retrained
    assert len(run.history) == 3
    assert _files(tmp_path / "cut") == [f"trial-{run.trial:05d}/checkpoint.pt"]  # the cut-short folder moved over
    trial = optuna.load_study(study_name="cut", storage=config.storage).trials[run.trial]
    assert trial.user_attrs["resumed"] == {"trial": cut.trial, "epochs": saved["epoch"]}
    assert sorted(trial.intermediate_values) == [1, 2, 3]  # Optuna has every step of it

    full = checkpoint.load(run.checkpoint)  # `all`: resumable, optimizer, schedule and generators kept
    assert full["format"] == checkpoint.FORMAT and set(checkpoint.REQUIRED) <= set(full)
    size = Path(run.checkpoint).stat().st_size
    kept = checkpoint.keep_weights(Path(run.checkpoint).parent)  # what the default would have kept
    assert kept.stat().st_size < 0.8 * size and not Path(run.checkpoint).exists()


def test_policy_and_threads_options(tmp_path, monkeypatch):
    assert KeepPolicy.parse("best:3") == KeepPolicy("best", 3) and str(KeepPolicy.parse(" best ")) == "best:5"
    assert [str(KeepPolicy.parse(t)) for t in ("ranked", "ALL", "none")] == ["ranked", "all", "none"]
    storage = sqlite_url(tmp_path)
    for bad in ("best:0", "top:3", "some", ""):
        with pytest.raises(ResnasError, match="--keep-checkpoints: must be best:K"):
            plan({"space": SPACE, "storage": storage, "keep_checkpoints": bad})
    with pytest.raises(ResnasError, match="--threads: must be an integer >= 1"):
        plan({"space": SPACE, "storage": storage, "threads": 0})
    f = tmp_path / "s.yaml"
    f.write_text(f"space: {SPACE}\nkeep-checkpoints: ranked\nthreads: 3\n")
    config, _ = plan({"storage": storage}, file=f)
    assert str(config.keep_checkpoints) == "ranked" and config.threads == 3 and read_study_file(f)["threads"] == 3
    f.write_text(f"space: {SPACE}\nkeep_checkpoints: best:-1\n")
    with pytest.raises(ResnasError, match=r"s\.yaml.*keep_checkpoints"):
        plan({"storage": storage}, file=f)

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("nas_res.training.threads.usable_cores", lambda: 16)
    assert [plan_threads(None, n) for n in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
    assert all(n * worker_threads(None, (), n) <= 16 for n in range(1, 17))  # never more than the cores
    assert worker_threads(None, (0,), 1) == 4 and worker_threads(None, tuple(range(8)), 8) == 2  # GPU workers
    assert worker_threads(6, (0,), 1) == 6 and worker_threads(3, (), 4) == 3  # asked for: as asked
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_threads(None, (), 2) == 3 and worker_threads(None, (0,), 1) == 3 and plan_threads(None, 4) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")  # unusable: as if unset
    assert worker_threads(None, (), 2) == 8
