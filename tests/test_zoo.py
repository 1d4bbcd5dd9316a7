"""Zoo entries against outside referees: torchvision's models and the papers' parameter tables."""

import pytest
import torch
import torchvision

from nas_res import build, cost, zoo

TORCHVISION = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_and_outputs(name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    ours = build(zoo.get(name)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)  # fully convolutional: a small input exercises every weight
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert cost(zoo.get(name)).params == sum(p.numel() for p in theirs.parameters())


# Parameter counts as printed in the papers' tables (ResNet paper Table 6; Identity Mappings Table 3).
PAPER_PARAMS_M = {
    "resnet20_cifar": 0.27,
    "resnet32_cifar": 0.46,
    "resnet44_cifar": 0.66,
    "resnet56_cifar": 0.85,
    "resnet110_cifar": 1.7,
    "resnet1202_cifar": 19.4,
    "preact_resnet164": 1.7,
}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_paper_parameter_counts(name):
    stated = PAPER_PARAMS_M[name]
    decimals = len(str(stated).split(".")[1])
    assert round(cost(zoo.get(name)).params / 1e6, decimals) == stated


def test_preact_1001_parameter_count():
    """The paper prints 10.2M; counting every tensor gives 10.33M, and its 10.2M is the count without
    BatchNorm's affine parameters (10.18M), so both readings are pinned here."""
    model = build(zoo.get("preact_resnet1001"))
    total = sum(p.numel() for p in model.parameters())
    without_bn = sum(
        p.numel()
        for m in model.modules()
        if not isinstance(m, torch.nn.BatchNorm2d)
        for p in m.parameters(recurse=False)
    )
    assert total == cost(zoo.get("preact_resnet1001")).params == 10_327_706
    assert round(without_bn / 1e6, 1) == 10.2


def test_plain_twins_have_the_same_weights_but_no_shortcuts():
    for depth in (20, 56):
        res, plain = zoo.get(f"resnet{depth}_cifar"), zoo.get(f"plain{depth}_cifar")
        assert cost(res).params == cost(plain).params  # option A shortcuts carry no weights
        assert plain.shortcut == "none" and res.shortcut == "A"
    assert cost(zoo.get("mnist_resnet")).params > cost(zoo.get("mnist_plain")).params  # 1x1 projections


def test_preact_resnet1001_runs_a_cifar_forward_pass():
    # Train mode, as a training step sees it: untrained running statistics make 333 identity-summed
    # units overflow in eval mode, which is expected of any freshly initialised 1001-layer net.
    model = build(zoo.get("preact_resnet1001")).train()
    assert sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d)) == 3 * 333 + 1 + 3
    with torch.no_grad():
        y = model(torch.randn(4, 3, 32, 32))
    assert y.shape == (4, 10) and torch.isfinite(y).all()


def test_mnist_net_shape_and_structure():
    arch = zoo.get("mnist_resnet")
    model = build(arch)
    y = model(torch.randn(4, 1, 28, 28))
    assert y.shape == (4, 10)
    projections = [m for m in model.modules() if hasattr(m, "downsample")]
    assert len(projections) == 2  # the two stride-2 units, 1x1 stride-2 convs
    for unit in projections:
        conv = unit.downsample[0]
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert all(
        m.kernel_size == (3, 3) for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)
    )


def test_paper_initialisation():
    model = build(zoo.get("resnet50").replace(zero_init_last_bn=True))
    conv = model.layer1[0].conv2
    std = conv.weight.std().item()
    fan_out = conv.out_channels * 9
    assert abs(std - (2 / fan_out) ** 0.5) / (2 / fan_out) ** 0.5 < 0.1  # Kaiming normal, fan-out
    assert torch.all(model.layer1[0].bn1.weight == 1) and torch.all(model.layer1[0].bn1.bias == 0)
    assert torch.all(model.layer1[0].bn3.weight == 0)  # zero-init of each branch's last BN
    assert torch.all(build(zoo.get("resnet50")).layer1[0].bn3.weight == 1)


def test_unknown_zoo_name_lists_known_ones():
    from nas_res import ResnasError

    with pytest.raises(ResnasError, match="resnet50"):
        zoo.get("resnet51")
