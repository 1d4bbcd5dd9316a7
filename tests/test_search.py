"""Search end to end: Optuna over SQLite, worker processes, budget, reuse, resume, reports, export."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from nas_res.cli.main import app
from servers import sqlite_url

from nas_res import ResnasError, load_arch
from nas_res.results import Store, export, leaderboard, pareto, studies
from nas_res.search import COUNTED, Coordinator, plan, read_study_file

SPACE = "plain-vs-residual"  # 81 candidates, 28x28 reference; digits are 8x8, so trials are quick
BUDGET = "20MFLOPs"  # 24 of the 81 fit


def _search(tmp_path: Path, **options):
    options = {
        "space": SPACE,
        "budget": BUDGET,
        "trials": 4,
        "epochs": 1,
        "storage": sqlite_url(tmp_path),
        **options,
    }
    options.setdefault("checkpoints", str(tmp_path / "ckpt" / options.get("study", "default")))  # one per study
    config, existed = plan(options)
    return config, existed, Coordinator(config).run()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    config, existed, state = _search(tmp, study="first")
    return tmp, config, existed, state


def _trials(tmp: Path, study: str):
    return optuna.load_study(study_name=study, storage=sqlite_url(tmp)).get_trials()


def test_a_tiny_search_trains_counts_and_respects_the_budget(searched):
    tmp, config, existed, state = searched
    assert not existed and state.counted == 4 and not state.interrupted
    assert state.counts["done"] + state.counts["pruned"] + state.counts["reused"] + state.counts["failed"] == 4
    # One epoch is Hyperband's top rung: a trial that trained all its epochs is complete, never pruned there
    assert state.counts["pruned"] == 0 and all(r.status != "pruned" for r in Store(config.storage).runs("first"))
    trials = _trials(tmp, "first")
    counted = [t for t in trials if t.user_attrs.get(COUNTED)]
    over = [t for t in trials if t.user_attrs.get("status") == "over_budget"]
    repeats = [t for t in trials if t.user_attrs.get("status") == "repeat"]
    assert len(counted) == 4 and len(trials) == 4 + len(over) + len(repeats)  # neither kind counts
    for t in repeats:  # told the result of the trial it repeats, so the sampler learns, but not trained again
        first = next(u for u in trials if u.number == t.user_attrs["repeat_of"])
        assert t.values == first.values and t.user_attrs["arch_key"] == first.user_attrs["arch_key"]
    for t in over:
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["flops"] > 20e6
        assert t.constraints["budget"] > 0 and not t.intermediate_values  # never built, never trained
    for t in counted:
        assert t.user_attrs["flops"] <= 20e6 and t.constraints["budget"] <= 0
        assert {"arch_key", "summary", "params", "acts", "status"} <= set(t.user_attrs)
    runs = Store(config.storage).runs("first")
    assert len(runs) == 4 and all(r.flops <= 20e6 and r.params > 0 and r.acts > 0 for r in runs)
    trained = [r for r in runs if r.reused_from is None and r.status == "ok"]
    assert trained and all(len(r.history) == 1 and Path(r.checkpoint).exists() for r in trained)
    assert all(r.arch["in_channels"] == 1 and r.arch["classes"] == 10 for r in runs)  # set from the data


def test_resume_respects_the_total_and_pins_the_study(tmp_path):
    config, _, first = _search(tmp_path, study="grow", trials=2)
    storage = config.storage
    _, existed, state = _search(tmp_path, study="grow", trials=3)
    assert existed and first.counted == 2 and state.counted == 3
    assert sum(state.counts[k] for k in ("done", "pruned", "failed", "reused")) == 1  # one more, not three
    assert len(Store(storage).runs("grow")) == 3
    # options not given come from the stored study
    resumed, existed = plan({"study": "grow", "storage": storage})
    assert existed and resumed.space.name == SPACE and resumed.budget == config.budget
    assert resumed.recipe.epochs == 1 and resumed.trials == 3
    with pytest.raises(ResnasError, match="different budget"):
        plan({"study": "grow", "storage": storage, "budget": "10MFLOPs"})
    with pytest.raises(ResnasError, match=r"recipe \(epochs 1 -> 3\)"):
        plan({"study": "grow", "storage": storage, "epochs": 3})
    with pytest.raises(ResnasError, match="different space"):
        plan({"study": "grow", "storage": storage, "space": "cifar-resnet"})


def test_known_architecture_is_reused_not_retrained(tmp_path, searched):
    tmp, config, _, _ = searched
    best = leaderboard(Store(config.storage), "first")[0]
    exported = export(Store(config.storage), "first", tmp_path, top=1)[0]
    arch = load_arch(exported)
    assert arch.key == best["arch_key"]  # the exported file rebuilds the same network
    one = tmp_path / "one.yaml"  # a space of exactly that architecture
    one.write_text(f"""name: one
resolution: 28
in_channels: 1
classes: 10
stem: {{kind: cifar, width: inner}}
strides: [1, 2, 2]
block: basic
depth: {{per_stage: {[s.depth for s in arch.stages]}}}
width: {arch.stages[0].width}
shortcut: {arch.shortcut}
unit_order: post
zero_init_last_bn: {str(arch.zero_init_last_bn).lower()}
""")
    _, _, state = _search(tmp, study="second", space=str(one), budget=None, trials=1)
    assert state.counts["reused"] == 1 and state.counts["done"] == 0
    run = Store(config.storage).runs("second")[0]
    assert run.reused_from is not None and run.best_val_acc == best["val_acc"]
    assert "reused from first trial" in run.reason
    rows = leaderboard(Store(config.storage), "second")
    assert rows[0]["reused"] is True


def test_reports_and_their_cli(runner, searched, tmp_path):
    _tmp, config, _, _ = searched
    storage = config.storage
    rows = leaderboard(Store(storage), "first")
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a["val_acc"] >= b["val_acc"] for a, b in itertools.pairwise(rows))
    assert {"depths", "width", "cxd", "shortcut", "unit_order", "flops", "params", "epochs"} <= set(rows[0])
    front = pareto(rows)
    assert all(a["flops"] < b["flops"] and a["val_acc"] < b["val_acc"] for a, b in itertools.pairwise(front))
    names = [s["study"] for s in studies(Store(storage))]
    assert "first" in names

    r = runner.invoke(app, ["leaderboard", "first", "--storage", storage, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["arch_key"] == rows[0]["arch_key"]
    r = runner.invoke(app, ["leaderboard", "first", "--storage", storage, "--csv"])
    table = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.exit_code == 0 and table[0]["arch_key"] == rows[0]["arch_key"]
    r = runner.invoke(app, ["leaderboard", "first", "--storage", storage])
    assert r.exit_code == 0 and "leaderboard: first" in r.stdout and rows[0]["summary"] not in r.stderr
    r = runner.invoke(app, ["studies", "--storage", storage, "--json"])
    assert r.exit_code == 0 and "first" in [s["study"] for s in json.loads(r.stdout)]
    r = runner.invoke(app, ["leaderboard", "nope", "--storage", storage])
    assert r.exit_code == 2 and "no study 'nope'" in r.stderr and "first" in r.stderr
    out = tmp_path / "exp"
    r = runner.invoke(
        app, ["export", "first", "--storage", storage, "--pareto", "--format", "json", "--weights", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    files = sorted(out.glob("*.json"))
    assert len(files) == len(front) and len(list(out.glob("*.pt"))) == len(front)
    record = json.loads(files[0].read_text())
    assert {"arch", "cost", "metrics", "provenance"} <= set(record)
    assert record["provenance"]["study"] == "first" and record["provenance"]["recipe"]["epochs"] == 1
    assert load_arch(files[0]).key == record["provenance"]["arch_key"]
    r = runner.invoke(app, ["evaluate", str(out / (files[0].stem + ".pt")), "--device", "cpu", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["images"] == 359  # exported weights evaluate on test
    r = runner.invoke(app, ["export", "first", "--storage", storage, "--test", "--top", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    best = leaderboard(Store(storage), "first")[0]
    assert best["test_acc"] is not None and yaml_test_acc(out, best["trial"]) == best["test_acc"]
    weights = next(out.glob(f"*trial{best['trial']:04d}.pt"))  # the best model is on the Pareto front
    r = runner.invoke(app, ["evaluate", str(weights), "--device", "cpu", "--json"])
    assert json.loads(r.stdout)["top1"] == pytest.approx(best["test_acc"])


def yaml_test_acc(folder: Path, trial: int):
    import yaml

    return yaml.safe_load(next(folder.glob(f"*trial{trial:04d}.yaml")).read_text())["metrics"]["test_acc"]


def test_a_failing_trial_does_not_stop_the_study(tmp_path):
    # a 1 s limit on 20-epoch trials: each is killed, failed with its reason, its worker replaced
    _, _, state = _search(tmp_path, study="slow", trials=2, epochs=20, trial_timeout=1)
    assert state.counts["failed"] == 2 and state.counted == 2
    trials = [t for t in _trials(tmp_path, "slow") if t.user_attrs.get(COUNTED)]
    assert all(t.state == optuna.trial.TrialState.FAIL and "timed out" in t.user_attrs["reason"] for t in trials)
    assert all(r.status == "timeout" for r in Store(sqlite_url(tmp_path)).runs("slow"))


def test_multi_objective_search_has_two_directions(tmp_path):
    config, _, state = _search(tmp_path, study="mo", trials=2, objective="accuracy+flops", sampler="nsga2")
    study = optuna.load_study(study_name="mo", storage=config.storage)
    assert len(study.directions) == 2 and state.counted == 2
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.values[1] == t.user_attrs["flops"] for t in done)


def test_storage_and_option_mistakes(tmp_path):
    with pytest.raises(ResnasError) as e:
        Store("postgresql://alice:s3cret@127.0.0.1:1/nowhere")
    assert "s3cret" not in str(e.value) and "***" in str(e.value)
    with pytest.raises(ResnasError, match="not a storage URL"):
        Store("not a url")
    url = sqlite_url(tmp_path, "v.sqlite")
    Store(url, create=True)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE resnas_schema SET version = 99"))
    with pytest.raises(ResnasError, match="newer resnas.*schema 99"):
        Store(url)
    for bad, match in (
        ({"sampler": "cmaes"}, "tpe, random"),
        ({"objective": "speed"}, "accuracy"),
        ({"timeout": "soon"}, "duration"),
        ({"budget": "1KFLOPs"}, "no candidate"),
        ({"trials": "many"}, "trials: must be an integer >= 1"),
        ({"gpus": ["x"]}, "gpus"),
        ({"study": "../../outside"}, "--study: must be"),
        ({"study": "a b"}, "--study"),
    ):
        with pytest.raises(ResnasError, match=match):
            plan({"space": SPACE, "storage": sqlite_url(tmp_path, "o.sqlite"), **bad})
    f = tmp_path / "s.yaml"
    f.write_text("space: plain-vs-residual\nbudgets: 4GFLOPs\n")
    with pytest.raises(ResnasError, match="s.yaml.*unknown option.*budgets"):
        read_study_file(f)


def test_shipped_study_recipe_reads():
    root = Path(__file__).resolve().parents[1] / "studies"
    for f in root.glob("*.yaml"):
        raw = read_study_file(f)
        assert raw["study"] == f.stem and "space" in raw


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_cleanly_and_the_study_resumes(tmp_path, sig):
    storage = sqlite_url(tmp_path)
    args = [
        sys.executable,
        "-m",
        "nas_res.cli.main",
        "search",
        "--space",
        SPACE,
        "--budget",
        BUDGET,
        "--trials",
        "3",
        "--epochs",
        "30",
        "--study",
        "cc",
        "--storage",
        storage,
    ]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    deadline = time.time() + 120
    running = False
    while time.time() < deadline and not running:  # wait until a trial is being trained
        time.sleep(1)
        with contextlib.suppress(Exception):  # the study may not exist yet
            running = Store(storage).counts("cc").get("running", 0) > 0  # a claimed trial, training
    assert running, "no trial started"
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr  # 130 for Ctrl-C, 143 for SIGTERM: the shell's codes
    assert "Traceback" not in stderr and "resume" in stderr
    trials = optuna.load_study(study_name="cc", storage=storage).trials
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    stopped = [t for t in trials if t.user_attrs.get("status") == "interrupted" and t.state.is_finished()]
    assert stopped and all(t.state == optuna.trial.TrialState.FAIL and not t.user_attrs[COUNTED] for t in stopped)
    runs = Store(storage).runs("cc")
    assert {r.trial for r in runs if r.status == "interrupted"} == {t.number for t in stopped}
    assert not any(r.status == "running" for r in runs)
    queued = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]  # tried again on resume
    assert sorted(t.params.items() for t in queued) == sorted(t.params.items() for t in stopped)
    config, existed = plan({"study": "cc", "storage": storage})
    assert existed and config.trials == 3 and config.recipe.epochs == 30


def test_compare_plot_and_onnx(runner, searched, tmp_path):
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    from nas_res import build
    from nas_res.results import compare
    from nas_res.results.plots import edf
    from nas_res.training.checkpoint import load

    _tmp, config, _, _ = searched
    storage = config.storage
    assert edf([3.0, 1.0, 2.0]) == ([1.0, 1.0, 2.0, 3.0], [0.0, 1 / 3, 2 / 3, 1.0])  # from 0 at the best
    rows = leaderboard(Store(storage), "first")
    stats = compare({"a": rows, "b": rows[:1]})
    assert stats[0]["best"] == rows[0]["val_acc"] and stats[0]["models"] == len(rows)
    assert stats[1]["matched_flops"] == [rows[0]["flops"], rows[0]["flops"]]  # the range both cover
    assert stats[0]["matched_models"] == sum(r["flops"] == rows[0]["flops"] for r in rows)
    png, page = tmp_path / "cmp.png", tmp_path / "cmp.html"
    r = runner.invoke(app, ["compare", "first", "--storage", storage, "--plot", str(png), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["compare", "first", "--storage", storage, "--plot", str(page)])
    text = page.read_text()
    assert r.exit_code == 0 and "data:image/png;base64," in text and "<table class='sortable'>" in text
    r = runner.invoke(app, ["compare", "first", "--storage", storage, "--storage", storage, "--storage", storage])
    assert r.exit_code == 2 and "one per study" in r.stderr
    for kind in ("history", "edf", "parallel"):  # pareto needs two objectives (test_hostile_reports.py)
        f = tmp_path / f"{kind}.png"
        r = runner.invoke(app, ["plot", "first", str(f), "--kind", kind, "--storage", storage])
        assert r.exit_code == 0 and f.stat().st_size > 10_000, (kind, r.output)
    r = runner.invoke(app, ["plot", "first", str(tmp_path / "x.png"), "--kind", "violin", "--storage", storage])
    assert r.exit_code == 2 and "history, pareto" in r.stderr

    out = str(tmp_path / "o")
    r = runner.invoke(
        app, ["export", "first", "--storage", storage, "--onnx", "--onnx-input", "normalized", "--out", out]
    )
    assert r.exit_code == 0, r.output
    model_file = next((tmp_path / "o").glob("*.onnx"))
    graph = onnx.load(model_file)
    onnx.checker.check_model(graph)
    arch = load_arch(model_file.with_suffix(".yaml"))
    net = build(arch).eval()
    net.load_state_dict(load(rows[0]["checkpoint"])["model"])  # the trained weights went into the ONNX file
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # batch and image size are dynamic
    got = ReferenceEvaluator(graph).run(None, {"images": x.numpy()})[0]
    want = net(x).detach().numpy()
    # float32 rounding grows with the logits (hundreds for raw noise input): equal to 1e-4, relative to their size
    assert abs(got - want).max() < 1e-4 * max(1.0, abs(want).max())


def test_given_archs_train_once_per_seed_through_the_same_loop(tmp_path):
    """`train_archs`: each (arch, seed) is one trial of the study; a resumed call trains only what is new."""
    import nas_res
    from nas_res import load_space

    archs = load_space(SPACE).sample(2, BUDGET, seed=1)
    storage = sqlite_url(tmp_path)
    common = {
        "study": "given",
        "dataset": "synthetic:1x8x8:4:128",
        "epochs": 1,
        "storage": storage,
        "checkpoints": str(tmp_path / "ckpt"),
    }
    state = nas_res.train_archs(archs, seeds=(0, 1), **common)
    assert state.counted == 4 and state.counts["done"] == 4
    runs = Store(storage).runs("given")
    pairs = {(r.arch_key, r.recipe["seed"]) for r in runs}
    assert (
        len(runs) == 4
        and len(pairs) == 4
        and {k for k, _ in pairs} == {a.replace(in_channels=1, classes=4).key for a in archs}
    )
    again = nas_res.train_archs(archs, seeds=(0, 1, 2), **common)  # only the new seed trains
    assert again.counted == 6 and again.counts["done"] == 2 and len(Store(storage).runs("given")) == 6
    assert len(nas_res.leaderboard("given", storage=storage)) == 6
    trials = optuna.load_study(study_name="given", storage=storage).get_trials()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials) and len(trials) == 6
