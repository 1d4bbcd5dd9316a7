"""The trainer: convergence on real data, reproducibility, statuses, checkpoints and resume."""

from __future__ import annotations

import copy
import importlib
import io
import itertools
import math

import pytest
import torch

from nas_res import Arch, ResnasError, zoo
from nas_res.arch.build import build
from nas_res.data.dataset import load_data
from nas_res.training import checkpoint
from nas_res.training.device import channels_last_safe
from nas_res.training.recipe import Recipe, load_recipe, lr_factor
from nas_res.training.trainer import Pruned, check_fit, evaluate, make_optimizer, train

train_module = importlib.import_module("nas_res.training.trainer")  # the package's `train` attribute is the function

NET = zoo.get("mnist_resnet")  # 1 channel, 10 classes: digits' shape
FAST = Recipe(epochs=2, batch_size=64, lr=0.1)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", test=True)


def _numbers(result):
    return [(m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr) for m in result.history]


def test_converges_on_digits(digits):
    r = train(NET, digits, Recipe(epochs=8, batch_size=64, lr=0.1), device="cpu")
    assert r.status == "ok" and len(r.history) == 8
    assert r.history[-1].train_loss < r.history[0].train_loss
    assert r.best.val_acc >= 90
    test = evaluate(r.model, digits, "test", device="cpu")
    assert test["images"] == 359 and test["top1"] >= 90 and "top5" not in test  # the benchmark reaches >= 97
    assert r.images_per_s > 0 and r.cost["data_resolution"] == 8 and r.cost["resolution"] == 28
    assert r.cost["flops_at_data"] < r.cost["flops"]


def test_same_seed_same_numbers_on_cpu(digits):
    a, b = train(NET, digits, FAST, device="cpu"), train(NET, digits, FAST, device="cpu")
    assert _numbers(a) == _numbers(b)
    c = train(NET, digits, FAST.replace(seed=1), device="cpu")
    assert _numbers(c) != _numbers(a)


def test_nan_loss_is_diverged_not_an_exception(digits, monkeypatch, tmp_path):
    real_build = train_module.build

    def poisoned(arch):
        model = real_build(arch)
        model.fc.register_forward_hook(lambda m, i, o: o * float("nan"))
        return model

    monkeypatch.setattr(train_module, "build", poisoned)
    r = train(NET, digits, FAST, device="cpu", out=tmp_path)
    assert r.status == "diverged" and "nan" in r.reason and len(r.history) == 1
    assert not (tmp_path / "checkpoint.pt").exists()  # NaN weights never overwrite a checkpoint
    assert r.to_dict()["final"]["train_loss"] is None  # JSON-safe


def test_out_of_memory_is_a_status_with_the_reason(digits, monkeypatch):
    class Hungry(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(train_module, "build", lambda arch: Hungry())
    r = train(NET, digits, FAST, device="cpu")
    assert r.status == "out_of_memory" and "80.00 GiB" in r.reason and r.model is None

    def too_big(arch):  # already building the model does not fit
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")

    monkeypatch.setattr(train_module, "build", too_big)
    r = train(NET, digits, FAST, device="cpu")
    assert r.status == "out_of_memory" and "3.00 GiB" in r.reason and r.history == []


def test_pruned_by_the_epoch_callback(digits):
    seen = []

    def on_epoch(m):
        seen.append(m)
        if m.epoch == 2:
            raise Pruned("trial 7 pruned at epoch 2")

    r = train(NET, digits, FAST.replace(epochs=5), device="cpu", on_epoch=on_epoch)
    assert r.status == "pruned" and r.reason == "trial 7 pruned at epoch 2" and len(r.history) == 2
    assert [m.epoch for m in seen] == [1, 2] and all(0 <= m.val_acc <= 100 for m in seen)
    assert seen[0].images_per_s > 0 and seen[0].lr > 0


def test_early_stopping_on_validation_loss(digits, monkeypatch):
    losses = iter([1.0, 0.8, 0.9, 0.85, 0.7, 0.6])
    monkeypatch.setattr(train_module, "run_eval", lambda *a, **k: {"loss": next(losses), "top1": 50.0, "images": 1})
    r = train(NET, digits, FAST.replace(epochs=6, patience=2), device="cpu")
    assert r.status == "stopped_early" and len(r.history) == 4 and "2 epochs" in r.reason


def test_checkpoint_resume_matches_an_uninterrupted_run(digits, tmp_path):
    recipe = FAST.replace(epochs=3)
    whole = train(NET, digits, recipe, device="cpu")

    def stop_after_two(m):
        if m.epoch == 2:
            raise KeyboardInterrupt  # a crash after epoch 2's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(NET, digits, recipe, device="cpu", out=tmp_path, on_epoch=stop_after_two)
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 2 and state["arch"] == NET.to_dict() and state["recipe"] == recipe.to_dict()
    resumed = train(NET, digits, recipe, device="cpu", out=tmp_path, resume=True)
    assert resumed.status == "ok" and _numbers(resumed) == _numbers(whole)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ResnasError, match="lr=0.1 .now 0.2."):
        train(NET, digits, recipe.replace(lr=0.2), device="cpu", out=tmp_path, resume=True)
    with pytest.raises(ResnasError, match="another arch"):
        train(zoo.get("mnist_plain"), digits, recipe, device="cpu", out=tmp_path, resume=True)
    with pytest.raises(ResnasError, match="no such checkpoint"):
        train(NET, digits, recipe, device="cpu", out=tmp_path / "elsewhere", resume=True)


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_tampered_truncated_and_foreign_checkpoints_are_refused(digits, tmp_path):
    train(NET, digits, FAST.replace(epochs=1), device="cpu", out=tmp_path)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    state = checkpoint.load(tmp_path)
    assert set(checkpoint.REQUIRED) <= set(state)

    bad = tmp_path / "bad.pt"
    tampered = dict(state, extra=Payload())
    buf = io.BytesIO()
    torch.save(tampered, buf)
    bad.write_bytes(buf.getvalue())
    with pytest.raises(ResnasError, match="refused.*tampered"):
        checkpoint.load(bad)
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ResnasError, match="truncated or corrupt"):
        checkpoint.load(bad)
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ResnasError, match="bad.pt"):
        checkpoint.load(bad)
    torch.save({"model": {}}, bad)
    with pytest.raises(ResnasError, match="not a resnas checkpoint"):
        checkpoint.load(bad)
    torch.save({"format": checkpoint.FORMAT, "model": {}}, bad)
    with pytest.raises(ResnasError, match="missing arch"):
        checkpoint.load(bad)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_arch_must_fit_the_data(digits):
    with pytest.raises(ResnasError, match="in_channels 3 but digits images have 1.*classes: 10"):
        check_fit(zoo.get("resnet20_cifar").replace(classes=10), digits)
    with pytest.raises(ResnasError, match="classes 100 but digits has 10"):
        train(NET.replace(classes=100), digits, FAST, device="cpu")


def test_top5_above_ten_classes_and_bf16_on_cpu():
    d = load_data("synthetic:1x8x8:20:200", val_size=40, test=True)
    arch = NET.replace(classes=20)
    r = train(arch, d, Recipe(epochs=1, batch_size=50, precision="bf16", optimizer="adamw", lr=1e-3), device="cpu")
    assert r.status == "ok"
    res = evaluate(r.model, d, "test", device="cpu")
    assert res["images"] == 40 and 0 <= res["top1"] <= res["top5"] <= 100


def test_compiled_training_reports_compile_time(digits):
    r = train(NET, digits, FAST.replace(epochs=1, compile=True), device="cpu")
    assert r.status == "ok" and r.compile_seconds > 0 and r.images_per_s > 0


def test_schedules_and_weight_decay_groups():
    steps = 10
    for schedule in ("cosine", "linear", "onecycle", "constant"):
        f = lr_factor(Recipe(epochs=5, warmup_epochs=1, schedule=schedule), steps)
        values = [f(s) for s in range(50)]
        assert values[9] == pytest.approx(1.0)  # peak at the end of warmup
        assert all(a <= b for a, b in itertools.pairwise(values[:10]))  # warmup rises
        if schedule == "constant":
            assert values[-1] == 1.0
        else:
            assert all(a >= b for a, b in itertools.pairwise(values[10:])) and values[-1] < 0.03
    assert lr_factor(Recipe(epochs=2, warmup_epochs=0), steps)(0) == 1.0
    assert lr_factor(Recipe(epochs=2, schedule="cosine", warmup_epochs=0), steps)(10) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 0.5))
    )
    from nas_res import build

    model = build(NET)
    decay, no_decay = make_optimizer(model, Recipe()).param_groups
    assert all(p.ndim == 4 or p.ndim == 2 for p in decay["params"]) and decay["weight_decay"] == 5e-4
    assert no_decay["weight_decay"] == 0 and {p.ndim for p in no_decay["params"]} == {1}
    bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert bn <= {id(p) for p in no_decay["params"]}


def test_recipe_validation_and_files(tmp_path):
    for bad, field in (
        ({"epochs": 0}, "epochs"),
        ({"lr": -1}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"schedule": "step"}, "schedule"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"patience": 0}, "patience"),
        ({"precision": "fp16"}, "precision"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"compile": "yes"}, "compile"),
    ):
        with pytest.raises(ResnasError, match=f"recipe.{field}"):
            Recipe(**bad)
    assert Recipe.from_dict(Recipe().to_dict()) == Recipe()
    f = tmp_path / "r.yaml"
    f.write_text("epochs: 3\nlr: 0.05\nschedule: onecycle\n")
    assert load_recipe(f) == Recipe(epochs=3, lr=0.05, schedule="onecycle")
    f.write_text("epochs: 3\nlearning_rate: 0.05\n")
    with pytest.raises(ResnasError, match="r.yaml.*learning_rate"):
        load_recipe(f)
    f.write_text("epochs: [3\n")
    with pytest.raises(ResnasError, match="r.yaml.*not valid YAML"):
        load_recipe(f)
    f.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ResnasError, match="r.yaml"):
        load_recipe(f)
    f.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ResnasError, match="r.yaml.*not a text file"):
        load_recipe(f)


def test_channels_last_is_refused_only_where_onednn_writes_past_its_workspace():
    """A 1x1 strided convolution on < 16 channels (oneDNN's block: 8 with AVX2, 16 with AVX-512) on a CPU
    trains NCHW; anywhere else the recipe's channels_last stands."""
    narrow, wide = torch.nn.Conv2d(12, 8, 1, stride=2), torch.nn.Conv2d(16, 32, 1, stride=2)
    plain = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, stride=2), torch.nn.Conv2d(4, 8, 1))
    cpu = torch.device("cpu")
    assert not channels_last_safe(torch.nn.Sequential(plain, narrow), cpu)
    assert channels_last_safe(wide, cpu) and channels_last_safe(plain, cpu)
    assert channels_last_safe(narrow, torch.device("cuda"))


def test_a_narrow_nets_weight_gradients_match_float64_in_the_layout_it_trains_in():
    """The referee: the same net's gradients in float64 NCHW. In NHWC, oneDNN's 1x1 stride-2 backward got
    them wrong by tens (2 threads, AVX2) for the 4-channel shortcut below; on one thread it corrupts the
    heap, which the subprocess test below covers."""
    arch = Arch.from_dict(
        {"block": "basic", "stem": "cifar", "stem_width": 4, "classes": 4, "in_channels": 1, "shortcut": "B",
         "stages": [{"depth": 1, "width": 4}, {"depth": 1, "width": 8, "stride": 2}]}
    )  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        net = build(arch)
        reference = copy.deepcopy(net).double()
        x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 4, (32,))
        if channels_last_safe(net, torch.device("cpu")):
            net = net.to(memory_format=torch.channels_last)
        for _ in range(3):  # the workspace overrun shows on any call, not just the first
            net.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
        torch.nn.functional.cross_entropy(reference(x.double()), y).backward()
        for (name, p), q in zip(net.named_parameters(), reference.parameters()):
            assert torch.allclose(p.grad.double(), q.grad, atol=1e-4), name
    finally:
        torch.set_num_threads(before)


def test_a_narrow_net_trains_on_one_thread_without_crashing(tmp_path):
    """The crash itself, in a process of its own: stem width 4 and a shortcut-B downsample on 1x1 images'
    crops, one thread, the default (channels_last) recipe. Before the fix this aborted on the first epoch."""
    import subprocess
    import sys

    script = tmp_path / "narrow.py"
    script.write_text(
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "from nas_res.arch.description import Arch\n"
        "from nas_res.data.dataset import load_data\n"
        "from nas_res.training.recipe import Recipe\n"
        "from nas_res.training.trainer import train\n"
        "arch = Arch.from_dict({'block': 'basic', 'stem': 'cifar', 'stem_width': 4, 'classes': 4, 'in_channels': 1,\n"
        "    'stages': [{'depth': 1, 'width': 4}, {'depth': 1, 'width': 8, 'stride': 2}]})\n"
        "data = load_data('synthetic:1x16x16:4:2000')\n"
        "r = train(arch, data, Recipe(epochs=2, batch_size=16), device='cpu')\n"
        "print(r.status)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
