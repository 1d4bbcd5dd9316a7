"""The small-image design space (small-resnext): its size, budgets, reference points, and the stem-width dim."""

import collections
import copy
import itertools
import json
import random

import optuna
import pytest
import yaml

from nas_res import Budget, cost, load_space, zoo
from nas_res.search import defaults
from nas_res.search.config import space_from_snapshot, space_snapshot
from nas_res.space.budget_fit import check_budget, extremes, feasible_fraction
from nas_res.space.design_space import DesignSpace
from nas_res.space.template import builtin_spaces, parse_spec

NAME = "small-resnext"
REFERENCES = ["resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar", "mnist_resnet"]
OUTSIDE = ["resnet18", "plain20_cifar", "resnet110_cifar", "preact_resnet164", "resnext50_32x4d"]


@pytest.fixture(scope="module")
def space():
    return load_space(NAME)


def template() -> dict:
    from importlib import resources

    return yaml.safe_load((resources.files("nas_res.search_spaces") / f"{NAME}.yaml").read_text())


def fitted(name: str):
    return zoo.get(name).replace(in_channels=1, resolution=28)


def test_the_space_is_large_and_opens_every_promised_dimension(space):
    assert NAME in builtin_spaces()
    opened = {d.name for d in space.open_dims}
    assert opened == {
        "stem_width", "block", "depth1", "depth2", "depth3", "width",
        "cardinality", "bottleneck_width", "shortcut", "unit_order",
    }  # fmt: skip
    assert space.spec.strides == (1, 2, 2) and space.spec.stem_width is None
    d = space.dims
    basic = 9**3 * len(d["width"].values) * len(d["stem_width"].values) * 3 * 2
    bottleneck = basic * len(d["cardinality"].values) * len(d["bottleneck_width"].values)
    assert space.size() == basic + bottleneck >= 100_000
    assert space.describe()["dims"]["stem_width"] == [8, 12, 16]


def cut_down(**changes) -> DesignSpace:
    """The template with the same kinds of dims (stem width too), few values each."""
    data = copy.deepcopy(template())
    data.update(
        depth={"per_stage": [[1, 2], [1, 2], [1, 2]]},
        width=[16, 24],
        cardinality=[1, 2],
        bottleneck_width=[4, 8],
        stem={"kind": "cifar", "width": {"range": [8, 16], "step": 8}},
    )
    data.update(changes)
    return DesignSpace(parse_spec(data, "cut.yaml"))


def every_key(space: DesignSpace) -> set:
    """Keys of every combination of every dim's values (bottleneck dims even for basic blocks): by brute force."""
    names = [k for k, d in space.dims.items()]
    keys = set()
    for combo in itertools.product(*(space.dims[k].values for k in names)):
        keys.add(space.arch_from(dict(zip(names, combo))).key)
    return keys


def test_size_is_exact_on_a_cut_down_copy():
    s = cut_down()
    keys = every_key(s)
    assert s.size() == len(keys) == 8 * 2 * 2 * 6 * (1 + 2 * 2)
    assert {a.key for a in s.enumerate()} == keys
    # uniform over distinct networks: each value tuple is one network, drawn about equally often
    rng = random.Random(0)
    counts = collections.Counter(tuple(map(str, s.random_values(rng).values())) for _ in range(48_000))
    assert len(counts) == s.size() and min(counts.values()) > 20 and max(counts.values()) < 90


def test_without_downsampling_a_stem_as_wide_as_the_stage_makes_option_a_b():
    s = cut_down(strides=[1, 1, 1], block="basic", cardinality=1, bottleneck_width=4, width=16, shortcut=["A", "B"])
    keys = every_key(s)
    assert s.size() == len(keys) == 8 * 2 * 2 * 2 - 8 * 2  # stem 16 = width 16: A is B
    assert {a.key for a in s.enumerate()} == keys


def test_the_zoo_references_are_points_with_the_parameters_suggest_asks_for(space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for name in REFERENCES:
        arch = fitted(name)
        params = space.params_of(arch)
        assert params is not None and space.contains(arch) and space.contains(zoo.get(name)), name
        assert space.params_of(zoo.get(name)) == params  # a search fits in_channels/classes/resolution anyway
        assert space.suggest(optuna.trial.FixedTrial(params)).key == arch.key
        assert space.values_of(arch) == params
        study.enqueue_trial(params)
        assert space.suggest(study.ask()).key == arch.key
    assert space.params_of(fitted("resnet20_cifar"))["shortcut"] == "A"
    assert space.params_of(fitted("mnist_resnet"))["shortcut"] == "B"
    for name in OUTSIDE:
        assert space.params_of(fitted(name)) is None and not space.contains(zoo.get(name)), name


def test_a_bottleneck_point_round_trips_through_params(space):
    trial = optuna.trial.FixedTrial(
        {"stem_width": 12, "block": "bottleneck", "depth1": 2, "depth2": 3, "depth3": 1, "width": 32,
         "cardinality": 4, "bottleneck_width": 8, "shortcut": "C", "unit_order": "preact"}
    )  # fmt: skip
    arch = space.suggest(trial)
    assert arch.stem_width == 12 and arch.stages[1].mid == 64 and arch.stages[1].groups == 4
    assert space.params_of(arch) == trial.params


def test_budgets_around_resnet20(space):
    budget = Budget(flops_max=cost(fitted("resnet20_cifar")).flops)
    assert 31.0e6 < budget.flops_max < 31.2e6
    cheap, big = extremes(space, "flops")
    assert cost(cheap).flops < budget.flops_max / 10 and cost(big).flops > 10 * budget.flops_max
    assert 0.2 < feasible_fraction(space, budget, samples=4000).value < 0.6
    assert budget.admits(cost(fitted("mnist_resnet")))
    check_budget(space, budget)
    got = space.sample(20, budget, seed=1)
    assert len({a.key for a in got}) == 20 and all(budget.admits(cost(a)) for a in got)
    assert len({a.stem_width for a in got}) > 1


def test_extremes_try_each_stem_width():
    # a stem as wide as the first stage spares its projection: the narrowest stem is not always cheapest
    s = cut_down(block="basic", cardinality=1, bottleneck_width=4, width=16, shortcut="B",
                 stem={"kind": "cifar", "width": [15, 16]})  # fmt: skip
    cheap, _ = extremes(s, "flops")
    assert min(cost(a).flops for a in s.enumerate()) == cost(cheap).flops


def test_snapshot_round_trip_keeps_the_stem_width_dim(space):
    snap = json.loads(json.dumps(space_snapshot(space)))
    again = space_from_snapshot(snap, "study")
    assert again.dims == space.dims and again.size() == space.size() and again.spec.stem_width is None
    params = space.params_of(fitted("resnet32_cifar"))
    assert again.arch_from(params).key == space.arch_from(params).key


def test_a_search_on_small_images_picks_this_space():
    for dataset in ("fashion-mnist", "cifar10", "synthetic:1x28x28"):
        given = {"dataset": dataset}
        notes = defaults.pick(given, 0)
        assert given["space"] == NAME and any(NAME in n for n in notes)
    given = {"dataset": "imagefolder:/x"}
    defaults.pick(given, 0)
    assert given["space"] == "resnext"


@pytest.mark.parametrize("name", builtin_spaces())
def test_every_sampled_point_of_every_builtin_space_has_its_params(name):
    s = load_space(name)
    rng = random.Random(0)
    for _ in range(40):
        arch = s.random_arch(rng)
        params = s.params_of(arch)
        assert params is not None and s.suggest(optuna.trial.FixedTrial(params)).key == arch.key
