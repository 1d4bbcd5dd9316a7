"""`Arch`: canonical form, stable keys, serialisation round-trips, clear errors."""

import json

import pytest
import yaml

from nas_res import Arch, ResnasError, Stage, build, cost, load_arch, zoo


@pytest.mark.parametrize("name", zoo.names())
def test_round_trips_keep_the_key(name, tmp_path):
    arch = zoo.get(name)
    assert Arch.from_dict(arch.to_dict()) == arch
    assert Arch.from_dict(yaml.safe_load(arch.to_yaml())).key == arch.key
    assert Arch.from_dict(json.loads(arch.to_json())).key == arch.key
    (tmp_path / "a.yaml").write_text(arch.to_yaml())
    (tmp_path / "a.json").write_text(arch.to_json())
    (tmp_path / "wrapped.yaml").write_text(yaml.safe_dump({"arch": arch.to_dict(), "cost": {"flops": 1}}))
    for f in ("a.yaml", "a.json", "wrapped.yaml"):
        assert load_arch(tmp_path / f).key == arch.key


def test_keys_differ_between_zoo_entries():
    keys = {zoo.get(n).key for n in zoo.names()}
    assert len(keys) == len(zoo.names())


def test_key_is_stable_across_processes():
    # Pinned: results are cached and deduplicated by key across studies, so it must never drift silently.
    assert zoo.get("resnet50").key == "95361f09420a9454"


def base(**kw):
    fields = dict(
        stages=(Stage(2, 16, 1), Stage(2, 32, 2)), block="basic", stem="cifar", stem_width=16, classes=10, resolution=32
    )
    fields.update(kw)
    return Arch(**fields)


def test_equivalent_configurations_share_a_key():
    # Basic units: stride placement, inner width and cardinality cannot change the network.
    assert base(stride_on="1x1").key == base().key
    assert base(stages=(Stage(2, 16, 1, mid=99), Stage(2, 32, 2, mid=7))).key == base().key
    # Aliases of the 3x3 stem.
    assert base(stem="mnist").key == base(stem="small").key == base().key
    # No unit changes shape: option A, B and D shortcuts are all the identity.
    flat = dict(stages=(Stage(3, 16, 1),))
    assert base(shortcut="A", **flat).key == base(shortcut="B", **flat).key == base(shortcut="D", **flat).key
    assert base(shortcut="A").key != base(shortcut="B").key
    # Zero-init of a last BN that does not exist (branch ends in a conv).
    assert base(unit_order="preact", zero_init_last_bn=True).key == base(unit_order="preact").key
    assert base(zero_init_last_bn=True).key != base().key
    # Modulation strength: defaults are explicit, irrelevant values dropped.
    assert base(modulation="scale").key == base(modulation="scale", modulation_value=0.5).key
    assert base(modulation="conv", modulation_value=3).key == base(modulation="conv").key
    assert base(shortcut="C", modulation="conv").key == base(shortcut="C").key
    # int vs float inputs.
    assert base(modulation="scale", modulation_value=1).key == base(modulation="scale", modulation_value=1.0).key


def test_equal_keys_build_identical_networks():
    a, b = base(stride_on="1x1"), base()
    assert a.key == b.key
    names = lambda m: [(n, tuple(p.shape)) for n, p in m.state_dict().items()]  # noqa: E731
    assert names(build(a)) == names(build(b))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(block="triple"), "block"),
        (dict(shortcut="E"), "shortcut"),
        (dict(unit_order="sideways"), "unit_order"),
        (dict(stem_width=0), "stem_width"),
        (dict(stages=()), "stages"),
        (dict(stages=(Stage(0, 16, 1),)), "stages[0].depth"),
        (dict(stages=(Stage(1, 16, 3),)), "stages[0].stride"),
        (dict(stages=(Stage(1, 16, 1, 0, 2),)), "stages[0].groups"),
        (dict(block="bottleneck", stages=(Stage(1, 64, 1, 30, 4),)), "stages[0].mid"),
        (dict(shortcut="none", modulation="gate"), "modulation"),
        (dict(modulation="dropout", modulation_value=2.0), "modulation_value"),
        (dict(shortcut="A", stem_width=64), "shortcut"),
    ],
)
def test_invalid_fields_name_the_field(kwargs, field):
    with pytest.raises(ResnasError) as info:
        base(**kwargs)
    assert info.value.field == field


def test_from_dict_rejects_unknown_keys_and_names_the_file():
    d = base().to_dict()
    d["colour"] = "red"
    with pytest.raises(ResnasError, match=r"x\.yaml: unknown key\(s\) \['colour'\]"):
        Arch.from_dict(d, where="x.yaml")
    d = base().to_dict()
    d["stages"][1]["width"] = "wide"
    with pytest.raises(ResnasError, match=r"x\.yaml: stages\[1\]\.width"):
        Arch.from_dict(d, where="x.yaml")


def test_load_arch_errors(tmp_path):
    with pytest.raises(ResnasError, match="cannot read"):
        load_arch(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [1, 2\n")
    with pytest.raises(ResnasError, match="not valid YAML"):
        load_arch(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ResnasError, match="mapping"):
        load_arch(tmp_path / "list.yaml")


def test_summary_and_depth():
    assert zoo.get("resnet50").depth == 50
    assert zoo.get("resnet110_cifar").depth == 110
    assert zoo.get("preact_resnet164").depth == 164
    assert "32x4d" in zoo.get("resnext50_32x4d").summary()


def test_every_variant_builds_and_runs():
    import torch

    for shortcut in ("A", "B", "C", "D", "none"):
        for order in ("post", "bn_after_add", "relu_before_add", "relu_preact", "preact"):
            for mod in ("none", "scale", "gate", "shortcut_gate", "conv", "dropout"):
                if shortcut == "none" and mod != "none":
                    continue
                arch = base(
                    shortcut=shortcut,
                    unit_order=order,
                    modulation=mod,
                    block="bottleneck",
                    stages=(Stage(1, 32, 1, 8, 2), Stage(1, 64, 2, 16, 2)),
                    stem="deep",
                )
                y = build(arch).train()(torch.randn(2, 3, 32, 32))
                assert y.shape == (2, 10)
                assert cost(arch).params == sum(p.numel() for p in build(arch).parameters())
