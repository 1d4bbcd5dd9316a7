"""Progress and output (issue 23, item 7): a run cut short keeps the epochs it finished, and what is printed
or drawn reads right in logs and on pictures."""

from __future__ import annotations

import io
import itertools
import json

import torch
import yaml
from nas_res.cli import common
from nas_res.cli.common import mean_sd
from nas_res.cli.experiment import _cell
from nas_res.cli.live import run_live
from nas_res.cli.main import app
from servers import sqlite_url

import nas_res
from nas_res.arch.description import Arch
from nas_res.experiments import experiment_report, run_experiment
from nas_res.experiments.plots import _curves
from nas_res.experiments.report import build_report
from nas_res.inspect.activations import Activations, UnitMaps
from nas_res.results import Run, Store
from nas_res.results.activation_plot import activation_figure
from nas_res.results.final import final_name
from nas_res.search.pool import Worker
from nas_res.search.state import SearchState
from nas_res.training import checkpoint
from nas_res.training.status import RunStatus

DATA = "synthetic:1x8x8:4:300"
NET = {"block": "basic", "stem": "cifar", "stem_width": 4, "stages": [{"depth": 1, "width": 4}]}
ARCH = Arch.from_dict({**NET, "in_channels": 1, "classes": 2, "resolution": 4})


def _cut_after(epochs: int):
    """An on_update that stops the run as Ctrl-C would once a worker has reported `epochs` epochs."""

    def interrupt(state) -> None:
        if any(w.job is not None and w.job.epoch >= epochs for w in state.workers):
            raise KeyboardInterrupt

    return interrupt


def _cut_run(storage: str, study: str):
    (cut,) = [r for r in Store(storage).runs(study) if r.status == "interrupted"]
    return cut


def test_an_interrupted_experiment_run_keeps_the_epochs_it_finished(tmp_path, runner):
    raw = {
        "experiment": "cut",
        "title": "one arm",
        "dataset": DATA,
        "val_size": 60,
        "seeds": 1,
        "recipe": {"preset": "fast", "batch_size": 32},
        "epochs": 4,
        "arms": {"plain": {"arch": {**NET, "shortcut": "none"}}, "residual": {"arch": {**NET, "shortcut": "B"}}},
        "checks": [
            {"claim": "plain is worse", "metric": "train_loss", "kind": "increasing", "arms": ["residual", "plain"]}
        ],
    }
    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump(raw))
    storage = sqlite_url(tmp_path)
    _, state = run_experiment(path, storage=storage, checkpoints=str(tmp_path / "ckpt"), on_update=_cut_after(2))
    assert state.interrupted
    cut = _cut_run(storage, "cut-quick")
    saved = checkpoint.load(cut.checkpoint)
    # the worker may finish (and checkpoint) one more epoch before the interrupt reaches it on a loaded machine
    done = cut.epochs
    assert 2 <= done <= saved["epoch"] <= done + 1 and [h["epoch"] for h in cut.history] == list(range(1, done + 1))
    assert [h["val_acc"] for h in cut.history] == [h["val_acc"] for h in saved["history"][:done]]
    shown = runner.invoke(app, ["leaderboard", "cut-quick", "--all", "--storage", storage, "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["epochs"] for r in json.loads(shown.stdout) if r["status"] == "interrupted"] == [done]
    failed = [why for arm in experiment_report("cut", storage=storage)["arms"] for why in arm["failed"]]
    assert len(failed) == 1 and failed[0].startswith(f"interrupted after {done} of 4 epochs: ")


def test_an_interrupted_finalize_run_keeps_the_epochs_it_finished(tmp_path):
    storage = sqlite_url(tmp_path)
    search = {"space": "plain-vs-residual", "budget": "20MFLOPs", "dataset": DATA, "trials": 1, "epochs": 1}
    nas_res.run_search(study="p", storage=storage, checkpoints=str(tmp_path / "p"), **search)
    cut_after = _cut_after(1)
    result = nas_res.finalize_study(
        "p", top=1, seeds=1, epochs=3, storage=storage, checkpoints=str(tmp_path / "final"), on_update=cut_after
    )
    assert result["state"].interrupted
    cut = _cut_run(storage, final_name("p"))
    assert cut.epochs == 1 and [h["epoch"] for h in cut.history] == [1] and cut.history[0]["val_acc"] is not None


# ---- output -------------------------------------------------------------------------------------


class _Done:
    """A coordinator that has finished: what run_live needs of one."""

    def __init__(self):
        self.state = SearchState("s1", 4, workers=[Worker(0, "cpu", 1, {}, None)])
        self.on_update = None

    def run(self) -> SearchState:
        if self.on_update is not None:  # as the coordinator does on its way out
            self.on_update(self.state)
        return self.state


def test_piped_output_is_whole_lines_and_the_live_view_ends_its_last(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(common.err, "_file", log)  # piped: not a terminal
    monkeypatch.setattr(common.err, "width", 80)
    banner = "experiment tiny (quick) in study tiny-quick: 2 arms, 4 runs of 1 epochs on all training images of " * 2
    common.err.print(banner.strip(), highlight=False)
    run_live(_Done())
    common.err.print("evaluated 4 network(s) on the test split")
    lines = log.getvalue().splitlines()
    assert lines[0] == banner.strip()  # one line, not broken at 80 columns
    head = next(line for line in lines if line.startswith("s1  trials"))
    assert "elapsed" in head  # the live view's lines whole, not cropped at 80
    assert lines[-2].rstrip().endswith("idle") and lines[-1] == "evaluated 4 network(s) on the test split"


def _commands(command, path=()):
    """Every command's path under the CLI, the groups' too."""
    yield list(path)
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_breaks_a_line_where_the_next_word_would_have_fit(runner):
    """Typer keeps the source's line breaks in a docstring's later paragraphs: at 80 columns `finalize --help`
    read 'a larger --top adds to' / 'it). Prints ...'. Every line of prose ends where the width ends it."""
    import typer

    for path in _commands(typer.main.get_command(app)):
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERM": "dumb"}).output
        prose = [line.strip() for line in shown.splitlines() if not line.strip().startswith(("│", "╭", "╰"))]
        for line, after in itertools.pairwise(prose):
            if line and after and not line.startswith("Usage:"):
                assert len(line) + 1 + len(after.split()[0]) > 76, f"resnas {' '.join(path)} --help: {line!r}"


def _run(val_acc: float, train_loss: float) -> Run:
    history = [{"epoch": 1, "train_loss": train_loss, "train_acc": 50.0, "val_loss": 1.0, "val_acc": val_acc}]
    fields = dict.fromkeys(("checkpoint", "device", "wall_seconds", "train_seconds", "reused_from", "test_acc"))
    return Run(
        **fields, id=1, study="x-quick", trial=0, arch_key=ARCH.key, recipe_key="r", recipe={}, data_key="d",
        status=RunStatus.OK, reason="", history=history, epochs=1, best_val_acc=val_acc, version="", created=0.0,
        arch=ARCH.to_dict(), summary="", flops=1, params=1, acts=1,
    )  # fmt: skip


def test_report_intervals_stay_inside_0_100_and_print_as_finalize_does():
    runs = [_run(5.0, 0.1), _run(40.0, 2.0)]  # two seeds far apart: a t-interval from -200 to 245
    snapshot = {"arms": [{"name": "a", "label": "a", "sampled": False, "archs": [ARCH.to_dict()]}], "checks": []}
    metrics = build_report(snapshot, runs, "x-quick")["arms"][0]["metrics"]
    acc = metrics["val_acc"]
    assert (acc["lo"], acc["hi"]) == (0.0, 100.0) and acc["mean"] == 22.5
    assert _cell(acc, "val_acc") == "22.50 ± 24.75 [0.00, 100.00]"  # as finalize prints its own
    assert _cell(acc, "val_acc").startswith(mean_sd(22.5, 24.75))
    assert metrics["train_loss"]["lo"] < 0  # a loss is not bounded (a VAE's negative ELBO can be below 0)


def test_one_epoch_curves_have_whole_epoch_ticks():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    _curves(ax, [{"name": "a", "curves": {"train_loss": [[1.0], [1.2]]}}], "train_loss", "loss")
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0]
    plt.close(fig)


def test_the_activation_picture_says_its_channels_are_the_same_for_every_image():
    maps = torch.zeros(2, 3, 4, 4)
    maps[:, 2] = 5.0  # channel 2 strongest over the images, then 0 (as strong on image 0 only)
    maps[0, 0] = 1.0
    unit = UnitMaps(0, "stem", 0, maps)
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    acts = Activations("net", ARCH, "init", "digits", images, (0, 1), ("zero", "one"), (unit,))
    assert unit.strongest(2) == [2, 0]
    fig = activation_figure([acts], channels=2)
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "the same channels for every image" in title and "of each image" not in title
