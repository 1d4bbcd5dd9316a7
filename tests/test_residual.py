"""`Residual`: any layer made residual (Linear, convolutions, recurrent layers), errors, gradient flow."""

from __future__ import annotations

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
        (nn.Linear(6, 4), torch.randn(2, 6), "Residual(Linear): the layer's output has shape (2, 4)"),
        (nn.Conv2d(3, 3, 3), torch.randn(1, 3, 8, 8), "(1, 3, 6, 6) but the shortcut's (1, 3, 8, 8)"),
        (nn.GRU(5, 7, batch_first=True), torch.randn(2, 3, 5), "Residual(GRU)"),
    ],
)
def test_shape_mismatch_names_both_shapes_and_the_fix(layer, x, words):
    with pytest.raises(ResnasError) as e:
        Residual(layer)(x)
    assert words in str(e.value) and "projection=" in str(e.value)


def test_bad_projection_arguments_are_clear():
    with pytest.raises(ResnasError, match="must be None, linear, conv1x1"):
        Residual(nn.Linear(2, 2), projection="dense")
    with pytest.raises(ResnasError, match="cannot tell ReLU's input and output sizes"):
        Residual(nn.ReLU(), projection="linear")
    with pytest.raises(ResnasError, match="needs a convolutional layer"):
        Residual(nn.Linear(2, 3), projection="conv1x1")


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
