"""Design-space operations: size, uniform sampling under a budget, feasibility, iso-complexity, Optuna."""

import collections

import optuna
import pytest

from nas_res import Budget, ResnasError, cost, load_space, zoo
from nas_res.space.budget_fit import check_budget, extremes, feasible_fraction
from nas_res.space.design_space import ENUMERATE_LIMIT
from nas_res.space.iso import iso_cardinality, iso_depth
from nas_res.space.template import builtin_spaces

SMALL = ["cifar-resnet", "cifar-resnext", "plain-vs-residual", "preact"]


def test_builtin_spaces_are_shipped():
    assert {"resnet", "resnext", "cifar-resnet", "cifar-resnext", "preact", "plain-vs-residual"} <= set(
        builtin_spaces()
    )


@pytest.mark.parametrize("name", SMALL)
def test_size_equals_distinct_keys(name):
    s = load_space(name)
    keys = [a.key for a in s.enumerate()]
    assert len(keys) == len(set(keys)) == s.size()


def test_size_counts_collapsed_dimensions_once(tmp_path):
    # Basic and bottleneck in one space: cardinality/d/stride placement only multiply bottlenecks.
    path = tmp_path / "mixed.yaml"
    path.write_text("""
resolution: 32
classes: 10
stem: {kind: cifar, width: 16}
strides: [1, 2]
block: [basic, bottleneck]
depth: {per_stage: [[1, 2], [1, 2]]}
width: [32, 64]
cardinality: [1, 2]
bottleneck_width: [4, 8]
stride_on: [3x3, 1x1]
""")
    s = load_space(path)
    assert s.size() == 4 * 2 * 1 + 4 * 2 * 2 * 2 * 2  # basic: depths x widths; bottleneck: x C x d x stride_on
    assert s.size() == len({a.key for a in s.enumerate()})


def test_zoo_nets_lie_in_their_spaces():
    # the bottleneck spaces zero-init each unit's last BN (they train short proxies); torchvision does not
    resnext = load_space("resnext")
    keys = {zoo.get(n).key for n in ("resnet50", "resnext50_32x4d")}
    for name in ("resnet50", "resnext50_32x4d"):
        arch = zoo.get(name).replace(zero_init_last_bn=True)
        assert resnext.arch_from(resnext.values_of(arch)).key == arch.key
    assert len(keys) == 2
    assert zoo.get("resnet20_cifar").key in {a.key for a in load_space("cifar-resnet").enumerate()}
    assert zoo.get("preact_resnet164").key in {a.key for a in load_space("preact").enumerate()}


def test_rule_two_doubles_widths_at_each_downsample():
    s = load_space("resnext")
    arch = s.sample(1, seed=3)[0]
    for prev, nxt in zip(arch.stages, arch.stages[1:]):
        assert nxt.width == 2 * prev.width and nxt.mid == 2 * prev.mid and nxt.groups == prev.groups


@pytest.mark.parametrize("budget", ["4GFLOPs", "3.8-4.2GFLOPs", "4e9"])
def test_sampling_is_seeded_distinct_and_inside_the_budget(budget):
    s = load_space("resnext")
    b = Budget.parse(budget, "40M")
    a = s.sample(200, b, seed=1)
    assert len(a) == 200 and len({x.key for x in a}) == 200
    assert all(b.admits(cost(x)) for x in a)
    assert [x.key for x in s.sample(200, b, seed=1)] == [x.key for x in a]
    assert [x.key for x in s.sample(200, b, seed=2)] != [x.key for x in a]
    by_text = [x.key for x in s.sample(5, budget=budget, seed=1)]
    assert by_text == [x.key for x in s.sample(5, Budget.parse(budget), seed=1)]


def test_sampling_is_uniform_over_distinct_architectures(tmp_path):
    # 2 basic + 8 bottleneck architectures: a uniform sampler picks basic about 20% of the time,
    # whereas sampling each dimension independently would pick it 50% of the time.
    path = tmp_path / "u.yaml"
    path.write_text("""
resolution: 16
classes: 2
stem: {kind: cifar, width: 8}
strides: [1]
block: [basic, bottleneck]
depth: {per_stage: [[1, 2]]}
width: [16]
cardinality: [1, 2]
bottleneck_width: [2, 4]
""")
    s = load_space(path)
    assert s.size() == 10
    import random

    rng = random.Random(0)
    counts = collections.Counter(s.random_arch(rng).block for _ in range(5000))
    assert 0.17 < counts["basic"] / 5000 < 0.23


@pytest.mark.parametrize("name", builtin_spaces())
def test_budget_check_before_building_agrees_with_cost(name):
    import random

    s = load_space(name)
    rng = random.Random(0)
    b = Budget.parse(f"{cost(extremes(s, 'flops')[1]).flops // 3}", "20M")
    for _ in range(300):
        values = s.random_values(rng)
        assert s.admits(values, b) == b.admits(cost(s.arch_from(values)))


def test_small_spaces_sample_without_replacement():
    s = load_space("plain-vs-residual")
    b = Budget.parse("50MFLOPs")
    every = [a for a in s.enumerate() if b.admits(cost(a))]
    got = s.sample(10_000, b, seed=0)
    assert {a.key for a in got} == {a.key for a in every}


def test_exact_feasible_fraction_on_small_spaces():
    s = load_space("cifar-resnet")
    b = Budget.parse("100MFLOPs")
    f = feasible_fraction(s, b)
    truth = sum(b.admits(cost(a)) for a in s.enumerate())
    assert f.exact and f.feasible == truth and f.total == s.size()


def test_estimated_feasible_fraction_covers_the_truth():
    s = load_space("resnet")  # 27,648 candidates: estimated, and small enough to check exactly here
    assert s.size() > ENUMERATE_LIMIT
    b = Budget.parse("4GFLOPs")
    f = feasible_fraction(s, b, samples=4000, seed=0)
    truth = sum(b.admits(cost(a)) for a in s.enumerate()) / s.size()
    assert not f.exact and f.low <= truth <= f.high


def test_impossible_budget_names_the_cheapest_candidate():
    s = load_space("resnext")
    cheapest, _ = extremes(s, "flops")
    assert (
        cost(cheapest).flops == min(cost(s.random_arch(__import__("random").Random(i))).flops for i in range(2000))
        or cost(cheapest).flops < 300e6
    )
    with pytest.raises(ResnasError, match=f"cheapest candidate needs {cost(cheapest).flops:,} FLOPs"):
        check_budget(s, Budget.parse("100MFLOPs"))
    with pytest.raises(ResnasError, match="smallest candidate has"):
        check_budget(s, Budget.parse(None, "10K"))
    with pytest.raises(ResnasError, match="largest candidate needs only"):
        check_budget(load_space("cifar-resnet"), Budget.parse("100-200GFLOPs"))
    check_budget(s, Budget.parse("4GFLOPs"))  # a possible budget passes


def test_extremes_are_exact_on_an_enumerable_space():
    s = load_space("cifar-resnext")
    every = list(s.enumerate())
    lo, hi = extremes(s, "flops")
    assert cost(lo).flops == min(cost(a).flops for a in every)
    assert cost(hi).flops == max(cost(a).flops for a in every)
    lo_p, _ = extremes(s, "params")
    assert cost(lo_p).params == min(cost(a).params for a in every)


def test_iso_cardinality_reproduces_resnext_table_2():
    """ResNeXt paper, Table 2: ResNet-50's complexity kept at C = 1, 2, 4, 8, 32 gives d = 64, 40, 24, 14, 4."""
    results = iso_cardinality(zoo.get("resnet50"), [1, 2, 4, 8, 32], "params")
    assert [r.label for r in results] == ["1x64d", "2x40d", "4x24d", "8x14d", "32x4d"]
    assert results[-1].arch.key == zoo.get("resnext50_32x4d").key
    assert all(abs(r.deviation("params")) < 0.025 for r in results)
    by_flops = iso_cardinality(zoo.get("resnet50"), [1, 32], "flops")
    assert by_flops[0].label == "1x64d" and abs(by_flops[1].deviation("flops")) < 0.05


def test_iso_depth_finds_the_reference_width():
    results = iso_depth(zoo.get("resnet50"), [(3, 4, 6, 3), (2, 2, 2, 2), (3, 4, 23, 3)], "flops")
    assert results[0].arch.key == zoo.get("resnet50").key
    assert results[1].arch.stages[0].width > 256 > results[2].arch.stages[0].width
    assert all(abs(r.deviation("flops")) < 0.02 for r in results)


def test_optuna_suggestions_map_to_architectures_and_back():
    s = load_space("resnext")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        arch = s.suggest(trial)
        assert s.values_of(arch) == trial.params
        assert s.arch_from(trial.params).key == arch.key
        study.tell(trial, 0.0)
    mixed = load_space("preact")
    trial = optuna.create_study().ask()
    arch = mixed.suggest(trial)
    assert mixed.arch_from(trial.params).key == arch.key


def test_unknown_space_lists_the_builtins():
    with pytest.raises(ResnasError, match="resnext"):
        load_space("resnoxt")
