"""What resnas says when an option would silently change what runs, or a message would send the user the
wrong way: a VAE checkpoint, data it was not trained on, a foreign pickle, SIGTERM, grammar."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
import warnings

import pytest
import torch
from nas_res.cli.main import app

from nas_res import Arch, ResnasError, build
from nas_res.data.dataset import load_data
from nas_res.errors import a, count
from nas_res.training.checkpoint import WEIGHTS_FORMAT, load
from nas_res.training.plan import plan_training
from nas_res.training.recipe import Recipe

STAGES = [{"depth": 1, "width": 8}, {"depth": 1, "width": 16, "stride": 2}]
TINY = dict(block="basic", stem="cifar", stem_width=8, in_channels=1, resolution=8, stages=STAGES)
OTHER = "synthetic:1x8x8:10:300"  # the digits' shape and classes, other images


def _weights(path, arch: Arch) -> str:
    """A weights file as `keep_weights` leaves it, of an untrained net on the digits (no training: quick)."""
    torch.manual_seed(0)
    state = {
        "format": WEIGHTS_FORMAT,
        "arch": arch.to_dict(),
        "recipe": Recipe().to_dict(),
        "data": load_data("digits").describe(),
        "epoch": 0,
        "history": [],
        "model": build(arch).state_dict(),
    }
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nets")
    arch_file = tmp / "tiny.yaml"
    arch_file.write_text(Arch(**TINY, classes=10).to_yaml())
    return {
        "file": str(arch_file),
        "classifier": _weights(tmp / "classifier.pt", Arch(**TINY, classes=10)),
        "vae": _weights(tmp / "vae.pt", Arch(**TINY, task="vae", latent=4)),
    }


def _one_error(r) -> str:
    """The output of a refused command: exit 2, one `error:` line, no traceback."""
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    return lines[0]


# ---- options that would silently train another kind of net ----------------------------------------------
@pytest.mark.parametrize(
    "flags", [["--latent", "8"], ["--likelihood", "gaussian"], ["--latent", "8", "--likelihood", "gaussian"]]
)
def test_a_vae_option_alone_does_not_turn_a_classifier_into_a_vae(runner, nets, tmp_path, flags):
    args = ["train", nets["file"], *flags, "--epochs", "1", "--out", str(tmp_path / "o")]
    line = _one_error(runner.invoke(app, args))
    assert flags[0] in line and "--task vae" in line and "classifier" in line
    assert not (tmp_path / "o").exists()
    vae_file = tmp_path / "vae.yaml"
    vae_file.write_text(Arch(**TINY, task="vae").to_yaml())
    plan = plan_training(str(vae_file), latent=8, out=tmp_path / "v")  # a VAE's own latent: changed, no --task
    assert plan.arch.task == "vae" and plan.arch.latent == 8
    with pytest.raises(ResnasError, match="--latent: only a VAE has one, and space plain-vs-residual holds"):
        from nas_res.search import plan

        plan({"space": "plain-vs-residual", "latent": 4, "storage": f"sqlite:///{tmp_path / 'db.sqlite'}"})


def test_image_size_is_refused_where_it_would_be_ignored(tmp_path):
    with pytest.raises(ResnasError, match="--image-size: applies to imagefolder data only.*digits images"):
        plan_training("mnist_resnet", dataset="digits", image_size=64, out=tmp_path / "o")


# ---- a VAE checkpoint: what works, and what is refused with what to use instead --------------------------
def test_evaluate_and_activations_work_on_a_vae_and_gradients_says_what_does(runner, nets, tmp_path):
    r = runner.invoke(app, ["evaluate", nets["vae"], "--json"])
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["task"] == "vae" and "top1" not in record and "NaN" not in r.stdout
    assert record["loss"] == pytest.approx(record["recon"] + record["kl"]) and record["images"] == 359
    table = runner.invoke(app, ["evaluate", nets["vae"]])
    assert table.exit_code == 0 and "-ELBO" in table.output and "after 0 epochs" in table.output, table.output
    assert "classes" not in table.output
    shown = runner.invoke(app, ["activations", nets["vae"], "--out", str(tmp_path / "vae.png"), "--images", "2"])
    assert shown.exit_code == 0 and (tmp_path / "vae.png").stat().st_size > 1000, shown.output
    line = _one_error(runner.invoke(app, ["gradients", nets["vae"]]))
    assert "is a VAE" in line and f"resnas activations {nets['vae']}" in line and "resnas evaluate" in line
    other = _one_error(runner.invoke(app, ["evaluate", nets["vae"], "--dataset", "synthetic:1x16x16:10:100"]))
    assert "a VAE for 1-channel 8x8 images" in other and "16x16" in other and "predicts" not in other


def test_a_classifier_on_other_data_says_so_and_a_misfit_says_what_works(runner, nets, tmp_path):
    note = f"note: {nets['classifier']} was trained on digits (8x8 images); these are {OTHER}'s (8x8)"
    for args in (
        ["evaluate", nets["classifier"], "--dataset", OTHER],
        ["activations", nets["classifier"], "--dataset", OTHER, "--out", str(tmp_path / "a.png"), "--images", "2"],
        ["gradients", nets["classifier"], "--dataset", OTHER, "--batch", "8"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and note in r.output and "never saw" in r.output, (args, r.output)
    same = runner.invoke(app, ["evaluate", nets["classifier"], "--dataset", "digits"])
    assert same.exit_code == 0 and "note:" not in same.output, same.output
    misfit = _one_error(runner.invoke(app, ["evaluate", nets["classifier"], "--dataset", "synthetic:3x8x8:4:100"]))
    assert "Leave out --dataset to use digits, or give data of 1 channel(s) and 10 classes" in misfit


# ---- a foreign pickle: the error line only ---------------------------------------------------------------
def test_a_raw_pickle_is_one_error_without_torch_warnings(tmp_path):
    path = tmp_path / "raw.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "x", "w": [1, 2]}, f, protocol=4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ResnasError, match="raw.pt: unreadable"):
            load(path)
    assert [str(w.message) for w in seen] == []


# ---- SIGTERM: stopped as Ctrl-C is, with the shell's code for it -----------------------------------------
def test_sigterm_stops_train_as_ctrl_c_does_but_exits_143(runner, nets, tmp_path, monkeypatch):
    import nas_res.training.plan

    def terminated(plan, data, **_):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises in here
        raise AssertionError("SIGTERM was not turned into an interrupt")

    def as_ctrl_c(signum, frame):  # what SIGTERM did before: nothing, or Ctrl-C's handling at best
        raise KeyboardInterrupt

    monkeypatch.setattr(nas_res.training.plan, "run_training", terminated)
    previous = signal.signal(signal.SIGTERM, as_ctrl_c)
    try:
        r = runner.invoke(app, ["train", nets["file"], "--epochs", "1", "--out", str(tmp_path / "o")])
        assert signal.getsignal(signal.SIGTERM) is as_ctrl_c  # put back as it was
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert r.exit_code == 143, r.output
    assert "interrupted before the first epoch ended; nothing was saved" in r.output and "Traceback" not in r.output


# ---- grammar of messages built from values ---------------------------------------------------------------
def test_articles_and_counts_follow_the_word():
    assert [a(w) for w in ("experiment file", "arch file", "int", "list", "unit", "'identity'")] == [
        "an experiment file",
        "an arch file",
        "an int",
        "a list",
        "a unit",
        "an 'identity'",
    ]
    assert (count(1, "epoch"), count(3, "epoch"), count(1200, "image")) == ("1 epoch", "3 epochs", "1,200 images")


def test_an_experiment_file_that_is_not_text_says_an(tmp_path):
    from nas_res.experiments.spec import load_experiment

    path = tmp_path / "e.yaml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ResnasError, match="is not UTF-8; an experiment file is YAML text"):
        load_experiment(str(path))
