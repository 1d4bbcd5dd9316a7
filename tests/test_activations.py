"""Activation pictures: the maps caught are the network's own, for every block type, unit order and the
plain twins; PNG and HTML written; a trained checkpoint read with its data; mistakes are one message."""

from __future__ import annotations

import pytest
import torch
import yaml
from nas_res.cli.main import app

from nas_res import Arch, Recipe, ResnasError, Stage, build, load_data, train
from nas_res.arch.description import UNIT_ORDERS
from nas_res.inspect.activations import activations, parse_units, unit_maps
from nas_res.results.activation_plot import save_activations

DATA = "synthetic:1x8x8:3:90"


def tiny(**changes) -> Arch:
    base = Arch(
        stages=(Stage(2, 4, 1), Stage(1, 8, 2)), block="basic", stem="cifar", stem_width=4, in_channels=1, classes=3,
        resolution=8,
    )  # fmt: skip
    return base.replace(**changes)


def test_maps_are_the_units_outputs_in_order():
    torch.manual_seed(0)
    model = build(tiny()).eval()
    x = torch.randn(2, 1, 8, 8)
    maps = unit_maps(model, x)
    assert [m.name for m in maps] == ["stem", "layer1.0", "layer1.1", "layer2.0"]
    assert [tuple(m.maps.shape) for m in maps] == [(2, 4, 8, 8), (2, 4, 8, 8), (2, 4, 8, 8), (2, 8, 4, 4)]
    with torch.no_grad():  # by hand: the stem's output through each unit
        h = model.relu(model.bn1(model.conv1(x)))
        assert torch.allclose(maps[0].maps, h)
        for m, unit in zip(maps[1:], [model.layer1[0], model.layer1[1], model.layer2[0]]):
            h = unit(h)
            assert torch.allclose(m.maps, h)
    assert model.training is False and [m.depth for m in unit_maps(model, x, (0, 3))] == [0, 3]
    strongest = maps[3].strongest(3)
    means = maps[3].maps.abs().mean(dim=(0, 2, 3))
    assert means[strongest[0]] == means.max() and len(strongest) == 3


@pytest.mark.parametrize("order", UNIT_ORDERS)
@pytest.mark.parametrize("block, shortcut", [("basic", "B"), ("basic", "none"), ("bottleneck", "B")])
def test_pictures_for_every_unit_order_and_plain_twins(tmp_path, order, block, shortcut):
    arch = tiny(unit_order=order, block=block, shortcut=shortcut)
    if block == "bottleneck":
        arch = arch.replace(stages=(Stage(1, 8, 1, 2), Stage(1, 16, 2, 4)))
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(arch.to_dict()))
    (a,) = activations(str(path), DATA, images=2)
    assert a.source == "init" and len(a.units) == 1 + sum(s.depth for s in arch.stages)
    assert a.images.dtype == torch.uint8 and a.images.shape == (2, 1, 8, 8) and len(set(a.labels)) == 2
    png = save_activations([a], tmp_path / "maps.png", channels=2)
    page = save_activations([a], tmp_path / "maps.html", channels=2)
    assert png.stat().st_size > 5_000 and page.read_text().count("data:image/png;base64") == 1 + len(a.units)


def test_a_trained_checkpoint_is_shown_on_its_own_test_images(tmp_path):
    data = load_data(DATA, test=True, val_size=30)
    train(tiny(), data, Recipe(epochs=1, batch_size=16), device="cpu", out=tmp_path / "run")
    plain = tiny(shortcut="none")
    train(plain, data, Recipe(epochs=1, batch_size=16), device="cpu", out=tmp_path / "plain")
    a, b = activations([str(tmp_path / "run"), str(tmp_path / "plain")], images=3, units="0,3")
    assert a.source.endswith("run") and a.dataset == DATA and [u.depth for u in a.units] == [0, 3]
    assert torch.equal(a.images, b.images) and a.labels == b.labels  # side by side: the same images
    test = data.test
    assert torch.equal(a.images[0], test.images[int((test.labels == a.labels[0]).nonzero()[0])])


def test_units_and_targets_are_checked():
    assert parse_units("all") is None and parse_units("5,0,5") == (0, 5)
    for bad in ("x", "-1", ","):
        with pytest.raises(ResnasError, match="--units|must be all"):
            parse_units(bad)
    with pytest.raises(ResnasError, match="has 3 units"):
        unit_maps(build(tiny()), torch.randn(1, 1, 8, 8), (0, 4))
    with pytest.raises(ResnasError, match="not a trained checkpoint"):
        activations("resnet20_cifar")


def test_cli_writes_the_picture_and_refuses_mistakes(tmp_path, runner):
    out = tmp_path / "maps.png"
    ok = runner.invoke(
        app, ["activations", "mnist_resnet", "--dataset", DATA, "--images", "2", "--units", "0,2", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert "depths 0, 2 on 2 test images" in ok.stdout and out.stat().st_size > 5_000
    bad = runner.invoke(app, ["activations", "mnist_resnet", "--dataset", DATA, "--units", "0,99", "--out", str(out)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "depths 0-" in bad.output
    wrong = runner.invoke(app, ["activations", "mnist_resnet", "--dataset", DATA, "--out", str(tmp_path / "x.txt")])
    assert wrong.exit_code == 2 and "--out" in wrong.output
