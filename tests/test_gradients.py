"""Gradient flow at initialisation: exact on a linear stack, the plain-vs-residual direction at depth, the CLI."""

import json
import math

import pytest
import torch
from nas_res.cli.main import app
from torch import nn

from nas_res import Arch, ResnasError, Stage, build, gradient_flow, zoo
from nas_res.inspect.gradients import layer_gradients, resnet_parts
from nas_res.training.checkpoint import WEIGHTS_FORMAT
from nas_res.training.recipe import Recipe


def scaled_identity(n: int, a: float) -> nn.Linear:
    layer = nn.Linear(n, n, bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(a * torch.eye(n, dtype=torch.float64))
    return layer


class Residual(nn.Module):
    """lam * x + W x: lam = 1 is an identity shortcut, lam = 0.5 the scaled one, lam = 0 a plain layer."""

    def __init__(self, n: int, a: float, lam: float):
        super().__init__()
        self.lin, self.lam = scaled_identity(n, a), lam

    def forward(self, x):
        return self.lam * x + self.lin(x)


@pytest.mark.parametrize(("a", "lam"), [(0.8, 0.0), (1.3, 0.0), (0.2, 1.0), (0.1, 0.5), (0.0, 0.5)])
def test_linear_stack_matches_the_closed_form(a, lam):
    """x_{k+1} = c x_k with c = lam + a. With loss = sum(y): dL/dx_k = c^(L-k) everywhere, so its norm is
    c^(L-k) sqrt(B n); dL/dW_k = sum over the batch of c^(L-k-1) 1 (c^k x_b)^T, norm c^(L-1) sqrt(n) |sum_b x_b|.
    A plain stack (lam 0) is a^(L-k), an identity shortcut (1+a)^(L-k), a scaled one (lam+a)^(L-k): lam^L."""
    L, n, B = 6, 5, 3
    torch.manual_seed(0)
    x = torch.randn(B, n, dtype=torch.float64)
    stack = nn.Sequential(*[Residual(n, a, lam) for _ in range(L)])
    loss, layers = layer_gradients(stack, x, lambda y: y.sum())
    c = lam + a
    assert loss == pytest.approx(c**L * x.sum().item())
    assert [g.name for g in layers] == [str(k) for k in range(L)]
    for k, g in enumerate(layers):
        assert g.input_norm == pytest.approx(c ** (L - k) * math.sqrt(B * n), rel=1e-12)
        assert g.weight_norm == pytest.approx(c ** (L - 1) * math.sqrt(n) * x.sum(0).norm().item(), rel=1e-12)


def test_linear_stack_with_a_squared_loss():
    """loss = 0.5 |y|^2, y = c^L x: dL/dx_k = c^L x c^(L-k), norm c^(2L-k) |x|."""
    L, n, c = 4, 3, 1.5
    x = torch.arange(1.0, 7.0, dtype=torch.float64).view(2, n)
    stack = nn.Sequential(*[scaled_identity(n, c) for _ in range(L)])
    _, layers = layer_gradients(stack, x, lambda y: 0.5 * y.pow(2).sum())
    assert [g.input_norm for g in layers] == pytest.approx([c ** (2 * L - k) * x.norm().item() for k in range(L)])


def test_the_hooks_measure_what_a_plain_backward_computes():
    """Against loss.backward() with retain_grad on the image and .grad on the weights, on a small net."""
    torch.manual_seed(1)
    model = build(zoo.get("resnet20_cifar"))
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    loss_fn = lambda out: nn.functional.cross_entropy(out, y)  # noqa: E731
    loss, layers = layer_gradients(model, x, loss_fn, resnet_parts(model))
    assert [g.name for g in layers][:3] == ["stem", "layer1.0", "layer1.1"] and len(layers) == 10
    assert [g.stage for g in layers] == [0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    image = x.clone().requires_grad_(True)
    model.train()
    reference = loss_fn(model(image))
    reference.backward()
    last = model.layer3[2]
    assert loss == pytest.approx(reference.item())
    assert layers[0].input_norm == pytest.approx(image.grad.norm().item(), rel=1e-5)
    expected = math.sqrt(sum(p.grad.pow(2).sum().item() for p in last.parameters()))
    assert layers[-1].weight_norm == pytest.approx(expected, rel=1e-5)


def test_the_model_is_left_as_it_was():
    model = build(zoo.get("resnet20_cifar")).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flow = gradient_flow(model, batch=4)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert flow.source == "model" and flow.batch == 4 and len(flow.units) == 9


@pytest.fixture(scope="module")
def deep():
    """The papers' 56-layer CIFAR nets at initialisation, seed 0, 8 synthetic images."""
    variants = {
        "plain": "plain56_cifar",
        "residual": "resnet56_cifar",
        "scaled": "resnet56_cifar[modulation=scale,modulation_value=0.5]",
    }
    return {k: gradient_flow(t, batch=8, seed=0) for k, t in variants.items()}


def test_plain_vs_residual_at_depth(deep):
    """With BN in train mode the gradient grows on its way back through the plain net (measured x15,000
    from the last unit to the first, seed 0) far more than through identity shortcuts (x34)."""
    plain, residual = deep["plain"], deep["residual"]
    assert len(plain.units) == len(residual.units) == 27
    assert plain.first_to_last > 1_000
    assert residual.first_to_last < 200
    assert plain.first_to_last > 50 * residual.first_to_last


def test_scaled_shortcuts_lose_what_the_identity_keeps(deep):
    """λ = 0.5 in every unit: the shortcut path alone carries 0.5^27 back, so the branches' growth rules
    and the flow sits between plain and identity (measured x3,200)."""
    plain, residual, scaled = deep["plain"], deep["residual"], deep["scaled"]
    assert scaled.label == "resnet56_cifar[modulation=scale,modulation_value=0.5]"
    assert scaled.arch.modulation == "scale" and scaled.arch.modulation_value == 0.5
    assert 10 * residual.first_to_last < scaled.first_to_last < plain.first_to_last


def test_the_same_seed_gives_the_same_numbers_and_leaves_the_callers_random_state():
    state = torch.get_rng_state()
    a = gradient_flow("resnet20_cifar", batch=4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = gradient_flow(zoo.get("resnet20_cifar"), batch=4, seed=3)
    assert a.to_dict()["layers"] == b.to_dict()["layers"]
    assert a.to_dict()["layers"] != gradient_flow("resnet20_cifar", batch=4, seed=4).to_dict()["layers"]


def test_a_checkpoint_is_measured_with_its_weights(tmp_path):
    arch = Arch(stages=(Stage(1, 8, 1),), block="basic", stem="cifar", stem_width=8, classes=10, resolution=8)
    torch.manual_seed(0)
    state = {
        "format": WEIGHTS_FORMAT,
        "arch": arch.to_dict(),
        "recipe": Recipe().to_dict(),
        "data": {"name": "synthetic", "spec": "synthetic", "train": 9, "val": 1, "split_seed": 0, "size": 8},
        "epoch": 0,
        "history": [],
        "model": build(arch).state_dict(),
    }
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    from_file = gradient_flow(str(path), batch=4)
    assert from_file.source == str(path)
    assert from_file.to_dict()["layers"] == gradient_flow(arch, batch=4).to_dict()["layers"]  # seed 0 both
    with pytest.raises(ResnasError, match="predicts 10 classes; synthetic:3x8x8:5:40 has 3 channel"):
        gradient_flow(str(path), "synthetic:3x8x8:5:40", batch=4)


def test_an_arch_is_fitted_to_the_data():
    flow = gradient_flow("mnist_resnet", "synthetic:1x12x12:4:20", batch=4)
    assert (flow.arch.in_channels, flow.arch.classes) == (1, 4) and flow.dataset == "synthetic:1x12x12:4:20"
    x, y = torch.randn(2, 1, 12, 12), torch.tensor([0, 9])
    assert gradient_flow("mnist_resnet", (x, y)).batch == 2
    with pytest.raises(ResnasError, match="labels in 0..9"):
        gradient_flow("mnist_resnet", (x, torch.tensor([0, 10])))


def run(runner, *args, code=0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_cli_table_plot_and_json(runner, tmp_path):
    png, page = tmp_path / "g.png", tmp_path / "g.html"
    targets = ("plain20_cifar", "resnet20_cifar[modulation=gate]")
    text = run(runner, "gradients", *targets, "--batch", "4", "--plot", str(png)).output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "#2 resnet20_cifar[modulation=gate]:" in text and "layer3.2" in text and f"saved {png}" in text
    data = json.loads(run(runner, "gradients", *targets, "--batch", "4", "--json", "--plot", str(page)).output)
    assert [d["label"] for d in data] == list(targets)
    assert [d["name"] for d in data[0]["layers"]][:2] == ["stem", "layer1.0"] and len(data[1]["layers"]) == 10
    first = data[0]["layers"][1]
    assert set(first) == {"index", "name", "stage", "input_norm", "weight_norm"} and first["input_norm"] > 0
    assert data[0]["first_to_last"] == first["input_norm"] / data[0]["layers"][-1]["input_norm"]
    assert "<table" in page.read_text() and "layer2.0" in page.read_text()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_net", "neither a zoo name"),
        ("resnet20_cifar[modulation=bogus]", "modulation: must be one of none, scale"),
        ("resnet20_cifar[colour=red]", "unknown key(s) ['colour']"),
        ("plain20_cifar[modulation=scale]", "a plain network (shortcut: none) has no shortcut to modulate"),
        ("resnet20_cifar[modulation]", "is not field=value"),
        ("missing.pt", "no such checkpoint file"),
    ],
)
def test_cli_refuses_a_bad_target_in_one_line(runner, target, message):
    result = run(runner, "gradients", "resnet20_cifar", target, code=2)
    assert message in result.output and result.output.count("error:") == 1
    assert "resnet20_cifar:" not in result.output  # refused before anything is measured


def test_cli_refuses_bad_options(runner, tmp_path):
    assert (
        "--batch: must be a positive integer"
        in run(runner, "gradients", "resnet20_cifar", "--batch", "0", code=2).output
    )
    assert (
        "format 'xyz'" in run(runner, "gradients", "resnet20_cifar", "--plot", str(tmp_path / "a.xyz"), code=2).output
    )
