"""`Residual`: any layer made residual (Linear, convolutions, recurrent layers), errors, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas_res import Residual, ResnasError


def test_linear_identity_shortcut_adds_the_input():
    layer = nn.Linear(6, 6)
    x = torch.randn(4, 6)
    assert torch.allclose(Residual(layer)(x), layer(x) + x)
    assert torch.allclose(Residual(layer, activation=nn.ReLU())(x), torch.relu(layer(x) + x))
    assert torch.allclose(Residual(layer, scale=0.5)(x), layer(x) + 0.5 * x)


def test_projections_where_shapes_change():
    linear = Residual(nn.Linear(6, 10), projection="linear")
    assert linear(torch.randn(4, 6)).shape == (4, 10)
    assert isinstance(linear.shortcut, nn.Linear) and linear.shortcut.weight.shape == (10, 6)
    conv = Residual(nn.Conv2d(3, 8, 3, stride=2, padding=1), projection="conv1x1")
    assert conv(torch.randn(2, 3, 16, 16)).shape == (2, 8, 8, 8)
    assert conv.shortcut.kernel_size == (1, 1) and conv.shortcut.stride == (2, 2)
    stack = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 8, 3, stride=2, padding=1))
    assert Residual(stack, projection="conv1x1")(torch.randn(2, 4, 10)).shape == (2, 8, 5)
    given = Residual(nn.Linear(6, 3), projection=nn.Linear(6, 3))
    assert given(torch.randn(1, 6)).shape == (1, 3)


def test_recurrent_layers_pass_their_state_through():
    gru = nn.GRU(5, 5, batch_first=True)
    x, h0 = torch.randn(3, 7, 5), torch.randn(1, 3, 5)
    seq, state = gru(x, h0)
    out, out_state = Residual(gru)(x, h0)
    assert torch.allclose(out, seq + x) and torch.allclose(out_state, state)
    lstm = Residual(nn.LSTM(5, 8, num_layers=2, batch_first=True), projection="linear")
    y, (h, c) = lstm(x)
    assert y.shape == (3, 7, 8) and h.shape == c.shape == (2, 3, 8)
    bi = Residual(nn.GRU(5, 4, batch_first=True, bidirectional=True), projection="linear")
    assert bi(x)[0].shape == (3, 7, 8)


@pytest.mark.parametrize(
    "layer, x, words",
    [
        (nn.Conv2d(3, 3, 3), torch.randn(1, 3, 8, 8), "(1, 3, 6, 6) but the shortcut's (1, 3, 8, 8)"),
        (nn.MaxPool2d(2), torch.randn(1, 3, 8, 8), "module that maps (1, 3, 8, 8) to (1, 3, 4, 4)"),
        (nn.Flatten(), torch.randn(1, 3, 8, 8), "Residual(Flatten): the layer's output has shape (1, 192)"),
        (nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 4)), torch.randn(2, 6), "projection='linear'"),
    ],
)
def test_shape_mismatch_names_both_shapes_and_the_fix(layer, x, words):
    with pytest.raises(ResnasError) as e:
        Residual(layer)(x)
    assert words in str(e.value) and "projection" in str(e.value)


@pytest.mark.parametrize(
    "layer, words",
    [
        (nn.Linear(6, 4), "Residual(Linear): the layer maps 6 features to 4"),
        (
            nn.Conv2d(3, 8, 3),
            "maps 3 channels to 8, so the identity shortcut cannot be added to its output; pass projection='conv1x1'",
        ),
        (nn.GRU(5, 4, bidirectional=True), "Residual(GRU): the layer maps 5 features to 8"),
    ],
)
def test_a_layer_that_changes_its_size_needs_a_projection_at_construction(layer, words):
    with pytest.raises(ResnasError) as e:
        Residual(layer)
    assert words in str(e.value)


def test_bad_projection_arguments_are_clear():
    with pytest.raises(ResnasError, match="must be None, linear, conv1x1"):
        Residual(nn.Linear(2, 2), projection="dense")
    with pytest.raises(ResnasError, match="cannot tell ReLU's input and output sizes"):
        Residual(nn.ReLU(), projection="linear")
    with pytest.raises(ResnasError, match="needs a convolutional layer"):
        Residual(nn.Linear(2, 3), projection="conv1x1")


def test_a_projection_that_does_not_fit_the_layer_is_refused_at_construction():
    conv_then_linear = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 10))
    cases = [
        (
            nn.Conv2d(3, 8, 3, padding=1),
            "linear",
            "Conv2d takes its 3 channels on dimension 1; pass projection='conv1x1'",
        ),
        (conv_then_linear, "linear", "pass projection=nn.Sequential(nn.Flatten(), nn.LazyLinear(10))"),
        (conv_then_linear, "conv1x1", "'conv1x1' maps channels to channels, but the layer ends with Linear"),
        (nn.ConvTranspose2d(3, 4, 2, stride=2), "conv1x1", "cannot upsample"),
        (nn.Linear(6, 10), nn.Linear(5, 10), "the layer maps 6 to 10 but the projection Linear 5 to 10"),
    ]
    for layer, projection, words in cases:
        with pytest.raises(ResnasError) as e:
            Residual(layer, projection=projection)
        assert words in str(e.value) and f"Residual({type(layer).__name__})" in str(e.value)
    fixed = Residual(conv_then_linear, projection=nn.Sequential(nn.Flatten(), nn.LazyLinear(10)))
    assert fixed(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_a_projection_that_fails_or_misses_at_forward_names_the_shapes():
    bad = Residual(nn.Sequential(nn.Flatten(), nn.Linear(12, 5)), projection=nn.Linear(3, 5))
    with pytest.raises(ResnasError, match=r"Residual\(Sequential\): the projection Linear fails on the input of shape"):
        bad(torch.randn(2, 3, 4))
    pooled = Residual(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2)), projection="conv1x1")
    with pytest.raises(ResnasError, match=r"strides: pass a module that maps \(2, 3, 8, 8\) to \(2, 4, 4, 4\)"):
        pooled(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"layer": None}, "layer: must be a module such as nn.Linear(8, 8); got None"),
        ({"layer": nn.Linear}, "pass an instance: Linear(...)"),
        ({"projection": nn.Identity}, "pass an instance: Identity(...)"),
        ({"activation": "relu"}, "activation: must be None, a module such as nn.ReLU()"),
        ({"activation": nn.ReLU}, "pass an instance: ReLU(...)"),
        ({"scale": math.nan}, "scale: must be a finite number >= 0"),
        ({"scale": math.inf}, "got inf"),
        ({"scale": -1.0}, "got -1.0"),
        ({"scale": "0.5"}, "got '0.5'"),
        ({"scale": True}, "got True"),
        ({"scale": torch.tensor(0.5)}, "got a Tensor"),
    ],
)
def test_bad_arguments_are_one_error_at_construction(kwargs, words):
    args = {"layer": nn.Linear(2, 2), **kwargs}
    with pytest.raises(ResnasError) as e:
        Residual(args.pop("layer"), **args)
    assert words in str(e.value)


def test_any_callable_layer_and_a_zero_scale_are_allowed():
    x = torch.randn(3, 4)
    assert torch.allclose(Residual(torch.tanh)(x), torch.tanh(x) + x)
    assert torch.allclose(Residual(nn.Tanh(), scale=0)(x), torch.tanh(x))


class _Returns(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


@pytest.mark.parametrize(
    "make, got",
    [
        (lambda x: {"y": x}, "returned a dict"),
        (lambda x: [x], "returned a list"),
        (lambda x: (), "returned ()"),
        (lambda x: None, "returned None"),
        (lambda x: (None, x), "returned a tuple starting with None"),
    ],
)
def test_a_layer_output_that_is_not_a_tensor_is_one_clear_error(make, got):
    with pytest.raises(ResnasError) as e:
        Residual(_Returns(make))(torch.randn(2, 3))
    assert f"Residual(_Returns): the layer {got}; the shortcut is added to a tensor" in str(e.value)


def test_a_one_element_tuple_stays_a_tuple():
    out = Residual(_Returns(lambda x: (2 * x,)))(torch.ones(2))
    assert isinstance(out, tuple) and len(out) == 1 and torch.equal(out[0], torch.full((2,), 3.0))


def test_an_input_that_is_not_a_tensor_is_one_clear_error():
    packed = nn.utils.rnn.pack_sequence([torch.randn(3, 5), torch.randn(2, 5)])
    with pytest.raises(ResnasError, match=r"input: Residual\(GRU\): must be a tensor .*got a PackedSequence"):
        Residual(nn.GRU(5, 5))(packed)


def test_gradient_reaches_the_input_through_the_shortcut():
    """With the layer's weights at zero its branch passes no gradient: all of it comes through the
    identity, so d(sum y)/dx is exactly one everywhere."""
    layer = nn.Linear(4, 4)
    nn.init.zeros_(layer.weight)
    x = torch.randn(3, 4, requires_grad=True)
    Residual(layer)(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    x.grad = None
    layer(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_a_deep_wrapped_stack_keeps_the_gradient_a_plain_one_loses():
    torch.manual_seed(0)

    def first_layer_grad(wrap: bool) -> float:
        layers = [nn.Sequential(nn.Linear(32, 32), nn.Tanh()) for _ in range(30)]
        net = nn.Sequential(*(Residual(m) if wrap else m for m in layers))
        net(torch.randn(16, 32)).pow(2).mean().backward()
        return float(layers[0][0].weight.grad.norm())

    assert first_layer_grad(True) > 100 * first_layer_grad(False)
