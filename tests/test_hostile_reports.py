"""Reports as an outside user meets them: exported models that say what input they expect, plots that
read right, leaderboards that say why a trial failed, comparisons and output paths refused early.

One real study (digits, two trials failed on purpose by tests/faults) serves every case.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from nas_res.cli.main import app
from servers import sqlite_url
from typer.testing import CliRunner

from nas_res.data.dataset import load_data
from nas_res.results import Store, leaderboard
from nas_res.training.evaluation import evaluate_checkpoint

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(args: list) -> object:
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *needles: str):
    """Exit 2, one `error:` line naming every needle, no traceback, nothing on stdout."""
    text = result.stdout + result.stderr
    assert result.exit_code == 2, (result.exit_code, text)
    assert "Traceback" not in text and text.count("error:") == 1, text
    assert result.stdout.strip() == "", result.stdout
    flat = " ".join(text.split())
    for needle in needles:
        assert " ".join(str(needle).split()) in flat, (needle, text)


def copy_db(src: str, dst: Path) -> str:
    with sqlite3.connect(src.removeprefix("sqlite:///")) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()
    return sqlite_url(dst.parent, dst.name)


SPACE = """name: small-residual
description: shallow residual nets that learn the 8x8 digits in two epochs
resolution: 28
in_channels: 1
classes: 10
stem: {kind: cifar, width: inner}
strides: [1, 2, 2]
block: basic
depth:
  total: {range: [8, 14], step: 6}
  split: [1, 1, 1]
width: [16, 32, 64]
shortcut: [A, B]
unit_order: post
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory, worker_id):
    """Study `s` on digits (about a minute): five trials, the first raising and the third diverging
    (injected faults), the others trained networks (around 90 %). Made once for all xdist workers:
    the cases only read it (those that write use a copy)."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    tmp = shared / "reports-study"
    tmp.mkdir(exist_ok=True)
    url = sqlite_url(tmp, "s.db")
    with open(shared / "reports-study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker searches; the others wait, then read
        if not (tmp / "done").exists():
            (tmp / "space.yaml").write_text(SPACE)
            env = {
                **os.environ,
                "PYTHONPATH": f"{ROOT / 'tests' / 'faults'}{os.pathsep}{ROOT}",
                "RESNAS_TEST_FAULTS": "raise,ok,diverge",
                "RESNAS_TEST_FAULTS_COUNTER": str(tmp / "n"),
            }
            args = ["search", "--space", "space.yaml", "--budget", "40MFLOPs", "--trials", "5", "--epochs", "2"]
            args += ["--pruner", "none", "--storage", url, "--study", "s"]
            r = subprocess.run(
                [sys.executable, "-m", "nas_res.cli.main", *args],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert r.returncode == 0, r.stderr
            (tmp / "done").write_text("")
    return tmp, url


# ---- exports: the preprocessing travels with the model -------------------------------------------


def test_onnx_takes_plain_pixels_and_predicts_as_evaluate_does(study, tmp_path):
    import onnx
    from onnx.reference import ReferenceEvaluator

    _, url = study
    out = tmp_path / "raw"
    r = invoke(["export", "s", "--storage", url, "--out", out, "--onnx", "--weights"])
    assert r.exit_code == 0, r.output
    record = yaml.safe_load(next(out.glob("*.yaml")).read_text())
    pre = record["preprocessing"]
    data = load_data("digits", test=True, val_size=record["provenance"]["val_size"], split_seed=0)
    assert pre["mean"] == pytest.approx(data.mean, abs=1e-6) and pre["std"] == pytest.approx(data.std, abs=1e-6)
    assert (pre["channels"], pre["height"], pre["width"]) == (1, 8, 8)
    assert pre["class_names"] == [str(i) for i in range(10)] and record["onnx"]["input"] == "raw"
    model = onnx.load(next(out.glob("*.onnx")))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["resnas.input"] == "raw" and json.loads(meta["resnas.preprocessing"]) == pre

    assert data.test is not None and data.test.images is not None
    images, labels = data.test.images, data.test.labels.numpy()
    pixels = (images.float() / 255).numpy()  # what an ONNX user has: images in [0, 1]
    got = ReferenceEvaluator(model).run(None, {"images": pixels})[0].argmax(1)
    evaluated = evaluate_checkpoint(next(out.glob("*.pt")), device="cpu")
    assert 100 * (got == labels).mean() == pytest.approx(evaluated["top1"])
    assert evaluated["top1"] > 50  # a trained network, not chance (10 %): the check means something

    r = invoke(["export", "s", "--storage", url, "--out", tmp_path / "u8", "--onnx", "--onnx-input", "uint8"])
    assert r.exit_code == 0, r.output
    model8 = onnx.load(next((tmp_path / "u8").glob("*.onnx")))
    assert ReferenceEvaluator(model8).run(None, {"images": images.numpy()})[0].argmax(1).tolist() == got.tolist()

    r = invoke(["export", "s", "--storage", url, "--out", tmp_path / "n", "--onnx", "--onnx-input", "normalized"])
    assert r.exit_code == 0, r.output
    plain = onnx.load(next((tmp_path / "n").glob("*.onnx")))
    mean, std = torch.tensor(pre["mean"]).view(1, -1, 1, 1), torch.tensor(pre["std"]).view(1, -1, 1, 1)
    normalised = ((torch.from_numpy(pixels) - mean) / std).numpy()
    assert ReferenceEvaluator(plain).run(None, {"images": normalised})[0].argmax(1).tolist() == got.tolist()
    assert {p.key: p.value for p in plain.metadata_props}["resnas.input"] == "normalized"


def test_yaml_export_records_preprocessing_without_onnx(study, tmp_path):
    _, url = study
    r = invoke(["export", "s", "--storage", url, "--out", tmp_path, "--top", "2", "--format", "json"])
    assert r.exit_code == 0, r.output
    records = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.json"))]
    assert len(records) == 2 and all(len(rec["preprocessing"]["mean"]) == 1 for rec in records)
    assert all("onnx" not in rec for rec in records)


def test_onnx_input_must_be_known(study, tmp_path):
    _, url = study
    refused(invoke(["export", "s", "--storage", url, "--out", tmp_path / "o", "--onnx-input", "rgb"]), "--onnx-input")
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_holding_another_network_is_refused_before_anything_is_written(study, tmp_path):
    """Two studies given one --checkpoints folder overwrite each other's trial-N checkpoints."""
    _, url = study
    copy = copy_db(url, tmp_path / "c.db")
    first, second = leaderboard(Store(copy), "s")[:2]
    with sqlite3.connect(tmp_path / "c.db") as c:
        c.execute("UPDATE resnas_runs SET checkpoint=? WHERE trial=?", (first["checkpoint"], second["trial"]))
    c.close()
    for extra in (["--weights"], ["--onnx"]):
        r = invoke(["export", "s", "--storage", copy, "--out", tmp_path / "o", "--top", "2", *extra])
        refused(r, f"trial {second['trial']}", "holds another network", extra[0])
        assert not (tmp_path / "o").exists()


# ---- plots ----------------------------------------------------------------------------------------


def test_pareto_of_a_single_objective_study_is_refused_naming_the_kinds(study, tmp_path):
    _, url = study
    r = invoke(["plot", "s", tmp_path / "p.png", "--kind", "pareto", "--storage", url])
    refused(r, "--kind", "one objective", "history, importance, edf, parallel")
    assert not (tmp_path / "p.png").exists()


def test_edf_starts_at_zero():
    from nas_res.results.plots import compare_figure, edf

    assert edf([3.0, 1.0, 2.0]) == ([1.0, 1.0, 2.0, 3.0], [0.0, 1 / 3, 2 / 3, 1.0])
    rows = [{"val_acc": a, "flops": f} for a, f in ((90.0, 2e6), (80.0, 3e6), (70.0, 4e6))]
    fig = compare_figure({"a": rows})
    line = fig.axes[0].lines[0]
    assert line.get_ydata()[0] == 0 and line.get_xdata()[0] == pytest.approx(10.0)
    assert fig.axes[0].get_ylim()[0] == 0


def _labels(fig, ax) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.parametrize("low,high,least", [(2_370_000, 2_430_000, 2), (2e6, 9e6, 3), (2e6, 5e8, 3)])
def test_flops_axis_is_labelled_whatever_the_span(low, high, least):
    from nas_res.results.plots import compare_figure, pareto_figure

    rows = [{"trial": i, "val_acc": 60.0 + i, "flops": low + (high - low) * i / 4} for i in range(5)]
    compared, front = compare_figure({"a": rows}), pareto_figure("a", rows, "flops", "FLOPs")
    for fig, ax in ((compared, compared.axes[1]), (front, front.axes[0])):
        shown = _labels(fig, ax)
        assert len(shown) >= least and all(s.endswith((" K", " M", " G")) for s in shown), shown


def test_parallel_coordinates_show_the_best_trial_and_keep_the_title_clear(study):
    import optuna

    from nas_res.results.plots import BEST, study_figure

    _, url = study
    rows = leaderboard(Store(url), "s")
    fig = study_figure(optuna.load_study(study_name="s", storage=url), "parallel", rows)
    fig.canvas.draw()
    ax = fig.axes[0]
    best = [ln for ln in ax.lines if ln.get_color() == BEST and ln.get_linewidth() >= 3 and len(ln.get_xdata())]
    assert best and all(ln.get_ydata()[0] == pytest.approx(rows[0]["val_acc"]) for ln in best)  # the top
    legend, title = ax.get_legend(), ax.title
    assert legend is not None and str(rows[0]["trial"]) in legend.get_texts()[0].get_text()
    renderer = fig.canvas.get_renderer()
    assert not legend.get_window_extent(renderer).overlaps(title.get_window_extent(renderer))


def test_html_report_shows_flops_in_units_with_the_exact_count(study, tmp_path):
    _, url = study
    other = copy_db(url, tmp_path / "other.db")
    page = tmp_path / "cmp.html"
    r = invoke(["compare", "s", "s", "--storage", url, "--storage", other, "--plot", page])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    flops = leaderboard(Store(url), "s")[0]["flops"]
    assert f"title='{flops:,} FLOPs'" in text and f"<td>{flops}</td>" not in text
    assert f"data-sort='{flops}'" in text  # sorted by the count, not by the text "2.43 M"


# ---- leaderboard: why a trial has no result -------------------------------------------------------


def test_leaderboard_gives_the_failure_reason(study, monkeypatch):
    from nas_res.cli import reports

    monkeypatch.setattr(reports.out, "width", 400)  # the table as a wide terminal shows it
    _, url = study
    r = invoke(["leaderboard", "s", "--storage", url, "--all", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    reasons = {row["status"]: row["reason"] for row in rows}
    assert "injected fault" in reasons["error"] and "nan" in reasons["diverged"].lower()
    assert all(row["reason"] is None for row in rows if row["rank"] is not None)
    r = invoke(["leaderboard", "s", "--storage", url, "--all", "--csv"])
    assert r.exit_code == 0 and "reason" in r.stdout.splitlines()[0] and "injected fault" in r.stdout
    r = invoke(["leaderboard", "s", "--storage", url, "--all"])
    assert r.exit_code == 0 and "injected fault" in " ".join(r.stdout.split())


# ---- compare: a study against itself -------------------------------------------------------------


def test_compare_refuses_the_same_study_twice(study, tmp_path):
    tmp, url = study
    refused(invoke(["compare", "s", "s", "--storage", url]), "'s'", "given twice")
    (tmp_path / "link").symlink_to(tmp)
    spelled = sqlite_url(tmp_path / "link", "s.db")  # another path to the same file
    refused(invoke(["compare", "s", "s", "--storage", url, "--storage", spelled]), "given twice")
    other = copy_db(url, tmp_path / "other.db")
    r = invoke(["compare", "s", "s", "--storage", url, "--storage", other, "--json"])
    assert r.exit_code == 0 and len(json.loads(r.stdout)["studies"]) == 2


# ---- output paths checked before any work ---------------------------------------------------------


def test_targets_under_a_file_are_refused_before_any_work(study, tmp_path):
    _, url = study
    copy = copy_db(url, tmp_path / "c.db")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    refused(invoke(["plot", "s", blocker / "p.png", "--kind", "edf", "--storage", copy]), str(blocker))
    refused(invoke(["compare", "s", "--storage", copy, "--plot", blocker / "c.html"]), "--plot", str(blocker))
    refused(invoke(["export", "s", "--storage", copy, "--test", "--out", blocker / "out"]), "--out", str(blocker))
    assert all(r["test_acc"] is None for r in leaderboard(Store(copy), "s"))  # nothing was evaluated
    assert blocker.read_text() == "x"


@contextlib.contextmanager
def read_only_folder(path: Path):
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_a_read_only_place_is_refused_before_any_work(study, tmp_path):
    _, url = study
    with read_only_folder(tmp_path / "ro") as ro:
        refused(invoke(["plot", "s", ro / "p.png", "--kind", "edf", "--storage", url]), str(ro), "read-only")
        refused(invoke(["compare", "s", "--storage", url, "--plot", ro / "c.png"]), "--plot", "read-only")
        refused(invoke(["export", "s", "--storage", url, "--onnx", "--out", ro / "out"]), "--out", "read-only")
        assert list(ro.iterdir()) == []
    shutil.rmtree(tmp_path / "ro")
