"""ResNeXt's rule (ii) as a dimension: `width_multiplier` (the width's factor at each x2 downsample) and a
geometric per-stage depth ratio (`depth: {first, ratio}`), priced exactly (fvcore is the referee), counted
as distinct networks, written back by refine; and a depth total the chosen blocks cannot split is an
infeasible suggestion, not a crashed search."""

from __future__ import annotations

import random

import optuna
import pytest
import yaml
from servers import sqlite_url

from nas_res import ResnasError, cost, fvcore_cost, load_space
from nas_res.search import Coordinator, plan
from nas_res.space.budget_fit import extremes
from nas_res.space.design_space import DesignSpace, NotACandidate
from nas_res.space.refined import narrowed_text
from nas_res.space.rules import geometric_depths, grown
from nas_res.space.template import builtin_spaces, load_spec, parse_spec

RULES = {
    "name": "rules",
    "resolution": 28,
    "in_channels": 1,
    "classes": 10,
    "stem": {"kind": "cifar", "width": 16},
    "strides": [1, 2, 2],
    "block": ["basic", "bottleneck"],
    "depth": {"first": {"range": [1, 4]}, "ratio": [0.5, 1.0, 1.5, 2.0]},
    "width": [16, 24],
    "width_multiplier": [1.0, 1.5, 2.0, 3.0],
    "cardinality": [1, 4],
    "bottleneck_width": [4, 8],
    "shortcut": ["B", "C"],
}


def rules(**changes) -> DesignSpace:
    return DesignSpace(parse_spec({**RULES, **changes}, "rules.yaml"))


def test_the_default_multiplier_is_the_doubling_rule_and_old_spaces_keep_their_keys():
    for name in set(builtin_spaces()) - {"small-rules"}:  # the one that opens them
        assert "width_multiplier" not in load_spec(name).dims and "depth_ratio" not in load_spec(name).dims
    old = load_space("cifar-resnext")
    data = yaml.safe_load(narrowed_text(old.spec, {}, {}, name=old.name)[0])
    doubled = DesignSpace(parse_spec({**data, "width_multiplier": 2}, "doubled.yaml"))
    assert [a.key for a in doubled.enumerate()] == [a.key for a in old.enumerate()]


def test_widths_grow_by_the_multiplier_and_inner_widths_keep_the_cardinality():
    s = rules()
    v = {"block": "bottleneck", "shortcut": "B", "depth1": 2, "depth_ratio": 1.0, "width": 16}
    arch = s.arch_from({**v, "width_multiplier": 1.5, "cardinality": 4, "bottleneck_width": 4})
    assert [st.width for st in arch.stages] == [16, 24, 36]
    assert [(st.mid, st.groups) for st in arch.stages] == [(16, 4), (24, 4), (36, 4)]  # d: 4, 6, 9
    flat = s.arch_from({**v, "width_multiplier": 1.0, "cardinality": 1, "bottleneck_width": 8})
    assert {st.width for st in flat.stages} == {16} and {st.mid for st in flat.stages} == {8}
    assert grown(24, 1.5, 2) == 54 and grown(3, 0.5, 1) == 2  # half up, as written in the template docs


def test_the_depth_ratio_gives_geometric_depths_at_least_one_each():
    assert geometric_depths(2, 1.5, 3) == (2, 3, 5)  # 2, 3, 4.5 -> 5
    assert geometric_depths(1, 0.5, 3) == (1, 1, 1)  # never a stage without units
    assert geometric_depths(3, 2.0, 3) == (3, 6, 12)


def test_cost_is_exact_against_fvcore_for_every_multiplier_and_ratio():
    s, rng = rules(resolution=8), random.Random(0)  # small maps and shallow nets: fvcore traces each quickly
    for m, r in zip(RULES["width_multiplier"], RULES["depth"]["ratio"]):  # every value of each, once
        values = {k: v for k, v in s.random_values(rng).items() if k != "depths"}
        arch = s.arch_from({**values, "width_multiplier": m, "depth1": 1, "depth_ratio": r})
        ours, theirs = cost(arch), fvcore_cost(arch)
        assert (ours.flops, ours.params) == (theirs.flops, theirs.params), arch.summary()


def test_size_counts_distinct_networks_when_ratios_round_to_the_same_depths():
    s = rules()
    keys = [a.key for a in s.enumerate()]
    assert len(keys) == len(set(keys)) == s.size()
    depths = s.depth_options("basic", "cifar")
    assert len(set(depths)) < 4 * 4  # (1, 1, 1) from first 1 at ratios 0.5 and 1.0, and more
    cheap, big = extremes(s)
    assert cost(cheap).flops == min(cost(a).flops for a in s.enumerate())
    assert cost(big).flops == max(cost(a).flops for a in s.enumerate())


def test_values_round_trip_and_a_collided_depth_reads_as_the_nearest_ratio():
    s, rng = rules(), random.Random(1)
    for _ in range(60):
        arch = s.random_arch(rng)
        assert s.arch_from(s.values_of(arch)).key == arch.key
        assert s.params_of(arch) is not None
    v = {"block": "basic", "shortcut": "B", "width": 16, "width_multiplier": 2.0, "depth1": 1}
    ones = s.arch_from({**v, "depth_ratio": 0.5})  # (1, 1, 1): ratio 1.0 is the depths' own
    assert [st.depth for st in ones.stages] == [1, 1, 1] and s.values_of(ones)["depth_ratio"] == 1.0
    bumpy = ones.replace(stages=(ones.stages[0], ones.stages[1].__class__(3, 32, 2, 32, 1), ones.stages[2]))
    assert s.params_of(bumpy) is None  # 1-3-1 is no first depth times a ratio per stage


def test_optuna_suggests_the_new_dimensions_and_maps_back():
    s = rules()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        arch = s.suggest(trial)
        assert {"width_multiplier", "depth1", "depth_ratio"} <= set(trial.params)
        assert s.arch_from(trial.params).key == arch.key
        study.tell(trial, 0.0)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"width_multiplier": [1.5, 1.51]}, "1.5 and 1.51 give width 16 the same stage widths 16-24-36"),
        ({"strides": [1, 1, 1]}, "width_multiplier: is open but no stage after the first downsamples"),
        ({"shortcut": ["A", "B"], "width_multiplier": [0.5, 2]}, "0.5 shrinks the width"),
        ({"width_multiplier": [0, 2]}, "width_multiplier[0]: must be a positive number"),
        ({"depth": {"first": 2, "ratio": "steep"}}, "depth.ratio: must be a positive number"),
        ({"depth": {"first": 2}}, "{first: DIM, ratio: DIM}"),
    ],
)
def test_template_mistakes_name_the_field(changes, needle):
    with pytest.raises(ResnasError) as e:
        rules(**changes)
    assert needle in str(e.value), str(e.value)


def test_a_refined_template_keeps_the_new_dimensions_and_reads_back():
    spec = rules().spec
    text, cut = narrowed_text(
        spec, {"width_multiplier": (1.5, 2.0), "depth_ratio": (1.0, 1.5)}, {"width_multiplier": "refined: x"}, name="c"
    )
    assert "width_multiplier: [1.5, 2.0]  # refined: x" in text and "ratio: [1.0, 1.5]" in text
    assert cut.dims["width_multiplier"].values == (1.5, 2.0) and cut.dims["depth1"].values == (1, 2, 3, 4)
    again = DesignSpace(parse_spec(yaml.safe_load(text), "again.yaml"))
    assert again.size() == len({a.key for a in again.enumerate()}) < rules().size()


def test_a_depth_total_the_block_cannot_split_is_infeasible_not_a_crash(tmp_path):
    # 29 and 47 layers split into bottleneck units only (27 = 3 x 9, 45 = 5 x 9): basic there is no network.
    # Four networks in all (basic 20, bottleneck 20, 29 and 47): four trials ask until each is found
    path = tmp_path / "mixed.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "resolution": 8,
                "in_channels": 1,
                "classes": 10,
                "stem": {"kind": "cifar", "width": 8},
                "strides": [1, 2, 2],
                "block": ["basic", "bottleneck"],
                "depth": {"total": [20, 29, 47], "split": [1, 1, 1]},
                "width": 8,
                "bottleneck_width": 2,
            }
        )
    )
    space = load_space(path)
    with pytest.raises(NotACandidate, match="depth 29 does not split"):
        space.arch_from({"block": "basic", "depth": 29})
    options = {"space": str(path), "dataset": "synthetic:1x8x8:4:128", "trials": 4, "epochs": 1}
    options |= {"storage": sqlite_url(tmp_path), "sampler": "tpe", "reference": "none", "seed": 3}
    config, _ = plan({**options, "checkpoints": str(tmp_path / "ckpt")})
    state = Coordinator(config).run()
    assert state.counted == 4 and state.counts["no_candidate"] >= 1
    trials = optuna.load_study(study_name=config.study, storage=config.storage).trials
    bad = [t for t in trials if t.user_attrs.get("status") == "no_candidate"]
    assert bad and all(t.params["depth"] in (29, 47) and t.params["block"] == "basic" for t in bad)


def test_space_show_says_the_width_rule_in_force(runner, tmp_path):
    from nas_res.cli.main import app

    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(RULES))
    shown = runner.invoke(app, ["space", "show", str(path)])
    assert shown.exit_code == 0 and "each x2 multiplies the width by 1/1.5/2/3" in " ".join(shown.stdout.split())
    assert "each x2 doubles the width" in " ".join(runner.invoke(app, ["space", "show", "preact"]).stdout.split())


def test_the_builtin_rules_space_counts_its_nets_and_holds_the_mnist_net():
    from nas_res import zoo

    s = load_space("small-rules")
    assert s.size() == len({a.key for a in s.enumerate()}) == 2580
    fitted = zoo.get("mnist_resnet").replace(in_channels=1, classes=10, resolution=28)
    assert s.params_of(fitted) == {
        "depth1": 2, "depth_ratio": 1.0, "width": 16, "width_multiplier": 2.0, "unit_order": "post"
    }  # fmt: skip
