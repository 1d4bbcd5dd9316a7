"""The residual VAE: its arch fields, its cost against fvcore, its loss by hand, training, search, export."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from nas_res.cli.main import app
from PIL import Image
from servers import sqlite_url

from nas_res import Arch, ResnasError, build
from nas_res.arch.cost import cost
from nas_res.arch.referee import fvcore_cost
from nas_res.arch.vae import VAE
from nas_res.data.dataset import load_data
from nas_res.results import Store, compare, export, leaderboard
from nas_res.search import Coordinator, plan
from nas_res.space.design_space import load_space
from nas_res.training.elbo import (
    bernoulli_nll,
    bits_per_dim,
    discretised_gaussian_nll,
    kl_to_prior,
    negative_elbo,
    pixels_from,
)
from nas_res.training.evaluation import evaluate
from nas_res.training.recipe import PRESETS
from nas_res.training.trainer import Pruned, train

RECIPE = PRESETS["vae-fast"].replace(epochs=2, batch_size=32, patience=None)


def _vae(**fields) -> Arch:
    base = dict(
        task="vae",
        latent=4,
        block="basic",
        stem="cifar",
        stem_width=8,
        in_channels=1,
        resolution=8,
        stages=[{"depth": 1, "width": 8}, {"depth": 1, "width": 16, "stride": 2}],
    )
    return Arch(**{**base, **fields})


def _random_vae(rng: random.Random) -> Arch:
    """A small VAE with every field drawn: block, stem, shortcut, order, stride, modulation, likelihood."""
    block = rng.choice(["basic", "bottleneck"])
    shortcut = rng.choice(["A", "B", "C", "D", "none"])
    width = rng.choice([8, 16])
    groups = rng.choice([1, 2]) if block == "bottleneck" else 1
    stages = []
    for i in range(rng.choice([1, 2, 3])):
        w = width * 2**i
        stages.append(
            {"depth": rng.choice([1, 2]), "width": w, "stride": 1 if i == 0 else 2, "mid": w // 2, "groups": groups}
        )
    modulation = "none" if shortcut == "none" else rng.choice(["none", "scale", "gate", "shortcut_gate", "conv"])
    return Arch(
        task="vae",
        latent=rng.choice([2, 8]),
        likelihood=rng.choice(["bernoulli", "gaussian"]),
        block=block,
        stem=rng.choice(["cifar", "imagenet", "deep"]),
        stem_width=width,
        shortcut=shortcut,
        unit_order=rng.choice(["post", "bn_after_add", "relu_before_add", "relu_preact", "preact"]),
        stride_on=rng.choice(["3x3", "1x1"]),
        modulation=modulation,
        in_channels=rng.choice([1, 3]),
        resolution=rng.choice([28, 29, 32]),
        stages=stages,
    )


# ---- the arch ---------------------------------------------------------------------------------------


def test_a_classifier_keeps_its_fields_and_key_and_a_vae_adds_its_own():
    plain = Arch(stages=[{"depth": 1, "width": 8}], block="basic", stem="cifar", stem_width=8, classes=10)
    assert set(plain.to_dict()).isdisjoint({"task", "latent", "likelihood"}) and plain.task == "classify"
    vae = plain.replace(task="vae")
    assert (vae.latent, vae.likelihood, vae.classes) == (32, "bernoulli", 1)  # defaults; a VAE has no classes
    d = vae.to_dict()
    assert d["task"] == "vae" and "classes" not in d and Arch.from_dict(d) == vae and vae.key != plain.key
    assert vae.replace(classes=7) == vae  # classes cannot change a VAE
    assert "vae z32 bernoulli" in vae.summary()
    with pytest.raises(ResnasError, match="only a VAE has a latent"):
        plain.replace(latent=8)
    with pytest.raises(ResnasError, match="likelihood"):
        vae.replace(likelihood="poisson")
    with pytest.raises(ResnasError, match="latent"):
        vae.replace(latent=0)


# ---- the cost: fvcore is the referee ------------------------------------------------------------------


def test_cost_equals_fvcore_on_random_vaes():
    rng = random.Random(14)
    for _ in range(10):
        arch = _random_vae(rng)
        ours, theirs = cost(arch), fvcore_cost(arch)
        assert (ours.flops, ours.params, ours.acts) == (theirs.flops, theirs.params, theirs.acts), arch.summary()
        assert {k: t.flops for k, t in ours.parts.items()} == {k: t.flops for k, t in theirs.parts.items()}


def test_the_decoder_mirrors_the_encoder_back_to_the_image():
    arch = _vae(resolution=28, stages=[{"depth": 2, "width": 8}, {"depth": 2, "width": 16, "stride": 2}])
    model = build(arch)
    assert isinstance(model, VAE)
    decoded, mu, logvar = model(torch.rand(3, 1, 28, 28))
    assert decoded.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 4)
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert ups and all(m.stride == (2, 2) for m in ups)  # each downsample is undone by a transposed conv
    assert len(model.up2) == 2 and len(model.up1) == 2  # same units, same depth, stages in reverse
    assert cost(arch).flops > cost(arch.replace(task="classify", latent=None, likelihood=None, classes=10)).flops


# ---- the loss, by hand --------------------------------------------------------------------------------


def test_loss_terms_on_constructed_cases():
    d = 1 * 4 * 4
    pixels = torch.randint(0, 256, (2, 1, 4, 4)).float()
    # logits 0: p = 1/2 for every pixel, whatever its intensity, so -log p(x|z) is d ln 2
    assert torch.allclose(bernoulli_nll(torch.zeros(2, 1, 4, 4), pixels), torch.full((2,), d * math.log(2)))
    mu, logvar = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # KL(N(1, 4) || N(0, 1)) = (1 + 4 - 1 - ln 4) / 2; the first dimension is the prior itself
    assert kl_to_prior(mu, logvar).item() == pytest.approx((1 + 4 - 1 - math.log(4)) / 2)
    arch = _vae(resolution=4)
    terms = negative_elbo(arch, torch.zeros(2, 1, 4, 4), torch.zeros(2, 4), torch.zeros(2, 4), pixels)
    assert torch.allclose(terms.nelbo, torch.full((2,), d * math.log(2))) and torch.all(terms.kl == 0)
    assert bits_per_dim(d * math.log(2) * 8, d, "gaussian") == pytest.approx(8.0)
    assert bits_per_dim(1.0, d, "bernoulli") is None  # intensities as targets: not a likelihood of 8-bit data


def test_the_discretised_gaussian_is_a_distribution_over_the_256_values():
    values = torch.arange(256.0).view(256, 1, 1, 1)
    for mean, log_scale in ((0.3, -3.0), (0.0, 1.0), (0.999, -6.9)):
        nll = discretised_gaussian_nll(torch.full((256, 1, 1, 1), mean), torch.tensor([log_scale]), values)
        assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-6)
    # one value's mass by hand: Phi((v + h - m) / s) - Phi((v - h - m) / s)
    m, s, k = 0.4, math.exp(-3.0), 100
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    by_hand = -math.log(phi((k / 255 + 0.5 / 255 - m) / s) - phi((k / 255 - 0.5 / 255 - m) / s))
    ours = discretised_gaussian_nll(torch.full((1, 1, 1, 1), m), torch.tensor([-3.0]), torch.full((1, 1, 1, 1), k))
    assert ours.item() == pytest.approx(by_hand, rel=1e-5)
    # far in a tail the mass is tiny but finite, and so is its gradient
    means = torch.full((1, 1, 1, 1), 0.999, requires_grad=True)
    far = discretised_gaussian_nll(means, torch.tensor([-7.0]), torch.full((1, 1, 1, 1), 30.0))
    far.sum().backward()
    assert math.isfinite(far.item()) and far.item() > 1000 and torch.isfinite(means.grad).all()


def test_pixels_come_back_exactly_from_normalised_batches():
    k = torch.arange(256.0).view(1, 1, 16, 16)
    mean, std = (0.2860,), (0.3530,)
    x = (k / 255 - mean[0]) / std[0]
    assert torch.equal(pixels_from(x, mean, std), k)


# ---- training ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", val_size=200, test=True)


def test_a_vae_trains_validates_and_resumes(digits, tmp_path):
    arch = _vae()
    result = train(arch, digits, RECIPE, out=tmp_path)
    assert result.status == "ok" and len(result.history) == 2
    first = result.history[0].to_dict()
    assert first["train_acc"] is None and first["val_acc"] is None  # a VAE has no accuracy
    assert first["val_loss"] == pytest.approx(first["val_recon"] + first["val_kl"])
    assert "val_bpd" not in first  # a Bernoulli on intensities has no bits/dim
    assert result.best is not None and result.best.val_loss == min(m.val_loss for m in result.history)
    assert result.history[1].train_loss < result.history[0].train_loss  # it learns
    # the validation ELBO draws its latents from a fixed seed: the same model, the same number
    again = evaluate(result.model, digits, "val", recipe=RECIPE)
    assert again["loss"] == pytest.approx(evaluate(result.model, digits, "val", recipe=RECIPE)["loss"])

    def stop(m):  # cut short after its first epoch, as an interrupt would
        raise Pruned("stopped")

    cut = train(arch, digits, RECIPE, out=tmp_path / "cut", on_epoch=stop)
    resumed = train(arch, digits, RECIPE, out=tmp_path / "cut", resume=True)
    assert [m.epoch for m in cut.history] == [1] and [m.epoch for m in resumed.history] == [1, 2]
    assert resumed.history[1].val_loss == pytest.approx(result.history[1].val_loss)  # as if never stopped


def test_a_gaussian_vae_reports_bits_per_dim(digits):
    result = train(_vae(likelihood="gaussian"), digits, RECIPE.replace(epochs=1))
    m = result.history[0]
    assert m.val_bpd == pytest.approx(m.val_loss / (64 * math.log(2))) and 0 < m.val_bpd < 8.5


def test_resnas_train_task_vae_writes_metrics_checkpoint_and_picture(runner, tmp_path):
    out = tmp_path / "run"
    args = ["train", "resnet20_cifar", "--task", "vae", "--latent", "4", "--epochs", "1", "--batch-size", "32"]
    r = runner.invoke(app, [*args, "--out", str(out), "--test"])
    assert r.exit_code == 0, r.output
    assert "VAE on digits" in r.output and "val -ELBO" in r.output and "test: -ELBO" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"]["task"] == "vae" and metrics["arch"]["resolution"] == 8  # fitted to the 8x8 digits
    assert metrics["recipe"]["optimizer"] == "adamw" and metrics["recipe"]["patience"] == 5  # the vae recipe
    with Image.open(out / "vae.png") as picture:
        assert picture.size[0] > 300 and len(np.unique(np.asarray(picture.convert("L")))) > 10  # drawn, not blank
    for bad, message in (
        (["--task", "vae", "--latent", "0"], "--latent"),
        (["--latent", "4"], "--latent: only a VAE has one, and the arch is a classifier: add --task vae"),
        (["--task", "classify", "--latent", "4"], "a VAE's"),
        (["--task", "gan"], "classify or vae"),
        (["--task", "vae", "--likelihood", "poisson"], "bernoulli, gaussian"),
    ):
        r = runner.invoke(app, ["train", "resnet20_cifar", *bad, "--out", str(tmp_path / "bad")])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output


# ---- templates and search ---------------------------------------------------------------------------------


def test_a_template_can_be_a_vae_space(tmp_path):
    path = tmp_path / "vae.yaml"
    path.write_text(
        "resolution: 8\nin_channels: 1\ntask: vae\nlatent: 4\nstrides: [1, 2]\nblock: basic\n"
        "stem: {kind: cifar, width: 8}\ndepth: {per_stage: [[1, 2], 1]}\nwidth: 8\n"
    )
    space = load_space(str(path))
    assert space.task == "vae" and space.size() == 2
    assert all(a.task == "vae" and a.latent == 4 for a in space.enumerate())
    path.write_text(path.read_text().replace("task: vae\n", "classes: 10\n"))
    with pytest.raises(ResnasError, match="latent.*only a VAE"):
        load_space(str(path))


def test_a_tiny_vae_search_ranks_by_negative_elbo_and_exports(runner, tmp_path):
    storage = sqlite_url(tmp_path)
    options = {
        "space": "plain-vs-residual",
        "task": "vae",
        "latent": 4,
        "budget": "20MFLOPs",
        "trials": 3,
        "epochs": 1,
        "storage": storage,
        "checkpoints": str(tmp_path / "ckpt"),
        "study": "vae",
    }
    config, _ = plan(options)
    assert config.objective == "nelbo" and config.recipe.optimizer == "adamw" and config.task == "vae"
    assert any("8x8" in note for note in config.notes)  # built at the digits' side
    state = Coordinator(config).run()
    assert state.counted == 3 and state.best is not None
    rows = leaderboard(Store(storage), "vae")
    scores = [r["val_nelbo"] for r in rows]
    assert len(rows) >= 2 and scores == sorted(scores) and state.best.value == scores[0]  # lowest first
    r = runner.invoke(app, ["leaderboard", "vae", "--storage", storage])
    assert r.exit_code == 0 and "val -ELBO" in r.output, r.output
    written = export(Store(storage), "vae", tmp_path / "out", test=True)
    picture = [p for p in written if p.suffix == ".png"]
    assert picture and picture[0].stat().st_size > 1000
    import yaml

    record = yaml.safe_load(next(p for p in written if p.suffix == ".yaml").read_text())
    assert record["metrics"]["val_nelbo"] == scores[0] and record["metrics"]["test_nelbo"] > 0
    with pytest.raises(ResnasError, match="ONNX export is for classifiers"):
        export(Store(storage), "vae", tmp_path / "onnx", onnx=True)
    with pytest.raises(ResnasError, match="not an objective of a vae search"):
        plan({**options, "objective": "accuracy", "study": "other"})
    refused = runner.invoke(app, ["finalize", "vae", "--storage", storage])
    assert refused.exit_code == 2 and "a VAE search" in refused.output and "Traceback" not in refused.output
    for args, said in (
        (["plot", "vae", str(tmp_path / "edf.png"), "--kind", "edf"], "is a VAE search: edf draws classification"),
        (["export", "vae", "--pareto", "--out", str(tmp_path / "front")], "holds VAEs: --pareto is the accuracy"),
    ):
        r = runner.invoke(app, [*args, "--storage", storage])
        assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output, r.output
    refused = runner.invoke(app, ["fidelity", "vae", "--storage", storage])  # not "run resnas finalize"
    assert refused.exit_code == 2 and "a VAE search" in refused.output and "resnas train FILE.yaml" in refused.output
    with pytest.raises(ResnasError, match="vae: a VAE search"):
        compare({"vae": rows, "copy": rows})
