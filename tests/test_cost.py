"""Analytic cost against the referee: fvcore's FLOP and activation counts, the module's parameter count."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas_res import Arch, Budget, Stage, build, cost, fvcore_cost, load_space, zoo
from nas_res.arch.description import MODULATIONS, SHORTCUTS, UNIT_ORDERS
from nas_res.space.template import builtin_spaces

# DESIGN.md's reference numbers (fvcore 0.1.5, eval, batch 1, 224x224).
REFERENCE = {
    "resnet18": (11_689_512, 1_819_065_856),
    "resnet34": (21_797_672, 3_671_262_720),
    "resnet50": (25_557_032, 4_111_512_576),
    "resnext50_32x4d": (25_028_904, 4_259_381_248),
}
TOO_DEEP_TO_TRACE = {"resnet1202_cifar", "preact_resnet1001"}  # traced separately below


def assert_matches_fvcore(arch, resolution=None):
    ours, ref = cost(arch, resolution), fvcore_cost(arch, resolution)
    assert (ours.flops, ours.params, ours.acts) == (ref.flops, ref.params, ref.acts), arch.to_dict()
    assert {k: t.flops for k, t in ours.parts.items()} == {k: t.flops for k, t in ref.parts.items()}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_numbers(name):
    params, flops = REFERENCE[name]
    c = cost(zoo.get(name))
    assert (c.params, c.flops) == (params, flops)


@pytest.mark.parametrize("name", [n for n in zoo.names() if n not in TOO_DEEP_TO_TRACE])
def test_zoo_cost_equals_fvcore(name):
    assert_matches_fvcore(zoo.get(name))


@pytest.mark.parametrize("name", sorted(TOO_DEEP_TO_TRACE))
def test_very_deep_params_equal_module(name):
    arch = zoo.get(name)
    assert cost(arch).params == sum(p.numel() for p in build(arch).parameters())


def test_cost_at_other_resolution_equals_fvcore():
    assert_matches_fvcore(zoo.get("resnet18"), resolution=96)
    assert_matches_fvcore(zoo.get("resnet20_cifar"), resolution=28)


@pytest.mark.parametrize("space", builtin_spaces())
def test_space_samples_equal_fvcore(space):
    s = load_space(space)
    # ImageNet spaces reach hundreds of GFLOPs; trace a cheap but varied slice of them.
    budget = Budget.parse("2.5GFLOPs") if s.spec.resolution == 224 else None
    for arch in s.sample(4, budget, seed=7):
        assert_matches_fvcore(arch)


GRID = list(itertools.product(("basic", "bottleneck"), SHORTCUTS, UNIT_ORDERS))


@pytest.mark.parametrize("block,shortcut,order", GRID)
def test_every_unit_variant_equals_fvcore(block, shortcut, order):
    g = 2 if block == "bottleneck" else 1
    arch = Arch(
        stages=(Stage(2, 32, 1, 8, g), Stage(1, 64, 2, 16, g)),
        block=block,
        stem="cifar",
        stem_width=16,
        shortcut=shortcut,
        unit_order=order,
        stride_on="1x1",
        classes=10,
        resolution=16,
    )
    assert_matches_fvcore(arch)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    block=st.sampled_from(["basic", "bottleneck"]),
    stem=st.sampled_from(["imagenet", "cifar", "deep"]),
    shortcut=st.sampled_from(SHORTCUTS),
    order=st.sampled_from(UNIT_ORDERS),
    modulation=st.sampled_from(MODULATIONS),
    stride_on=st.sampled_from(["3x3", "1x1"]),
    depths=st.lists(st.integers(1, 2), min_size=1, max_size=3),
    width=st.sampled_from([8, 16, 24]),
    groups=st.sampled_from([1, 2, 4]),
    stem_width=st.sampled_from([4, 8]),
    resolution=st.integers(9, 40),
    in_channels=st.sampled_from([1, 3]),
)
def test_random_archs_equal_fvcore(
    block, stem, shortcut, order, modulation, stride_on, depths, width, groups, stem_width, resolution, in_channels
):
    if shortcut == "none":
        modulation = "none"
    g = groups if block == "bottleneck" else 1
    stages = tuple(Stage(d, width * 2**i, 1 if i == 0 else 2, 4 * g * 2**i, g) for i, d in enumerate(depths))
    arch = Arch(
        stages=stages,
        block=block,
        stem=stem,
        stem_width=stem_width,
        shortcut=shortcut,
        unit_order=order,
        stride_on=stride_on,
        modulation=modulation,
        classes=7,
        in_channels=in_channels,
        resolution=resolution,
    )
    assert_matches_fvcore(arch)


def test_budget_parsing():
    assert Budget.parse("4GFLOPs") == Budget(4_000_000_000)
    assert Budget.parse("600MFLOPs") == Budget(600_000_000)
    assert Budget.parse("4e9") == Budget(4_000_000_000)
    assert Budget.parse("3.8-4.2GFLOPs") == Budget(4_200_000_000, 3_800_000_000)
    assert Budget.parse("1G-2G", "25M") == Budget(2_000_000_000, 1_000_000_000, 25_000_000)
    resnet50 = cost(zoo.get("resnet50"))
    assert not Budget.parse("4GFLOPs").admits(resnet50)  # fvcore counts BN and pooling: 4.11 G
    assert Budget.parse("4.2GFLOPs", "26M").admits(resnet50)
    assert not Budget.parse("4.2GFLOPs", "25M").admits(resnet50)


@pytest.mark.parametrize("bad", ["4 GigaFLOPs", "-3G", "G", "", "4.2-3.8G", "0"])
def test_bad_budgets_are_user_errors(bad):
    from nas_res import ResnasError

    if bad == "":
        assert Budget.parse(bad).unbounded
        return
    with pytest.raises(ResnasError):
        Budget.parse(bad)
