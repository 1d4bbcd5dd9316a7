"""Template (design-space YAML) validation.

Every mistake in a template ends in one `ResnasError` whose message names the file, the field path and
what is allowed; the CLI prints it as one `error:` line and exits 2, never with a traceback. A fuzz over
mutated built-in templates checks that nothing but a `ResnasError` ever escapes.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from nas_res.cli.main import app

from nas_res import DesignSpace, ResnasError, load_space
from nas_res.arch.description import BLOCKS, MODULATIONS, SHORTCUTS, STEMS, STRIDE_ON, UNIT_ORDERS
from nas_res.space.budget_fit import extremes
from nas_res.space.dims import DIM_KEYS
from nas_res.space.template import TOP_KEYS, builtin_spaces, parse_spec

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
BUILTIN_FILES = sorted(SPACES.glob("*.yaml"))
BUILTIN_DATA = {p.stem: yaml.safe_load(p.read_text()) for p in BUILTIN_FILES}

# A small valid template; each mistake below is one change to it.
BASE = {
    "name": "tiny",
    "resolution": 32,
    "classes": 10,
    "stem": {"kind": "cifar", "width": 16},
    "strides": [1, 2, 2],
    "block": "bottleneck",
    "depth": {"per_stage": [1, 2, {"range": [1, 3]}]},
    "width": [64, 128],
    "cardinality": [1, 2],
    "bottleneck_width": 4,
    "shortcut": "B",
}
DROP = object()  # marks a key to delete


def variant(**changes) -> dict:
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def write(tmp_path: Path, data, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(path: Path) -> ResnasError:
    with pytest.raises(ResnasError) as info:
        load_space(path)
    return info.value


# ---- one class of mistake per case: (template, field path, words saying what is allowed) ------------

MISTAKES = {
    # unknown keys
    "unknown top-level key": (variant(widht=64), "widht", ["unknown key", "did you mean width", "allowed:"]),
    "unknown key in a DIM": (
        variant(width={"range": [16, 64], "stpe": 16}),
        "width",
        ["unknown key", "stpe", "allowed: choices, range, step, log"],
    ),
    "unknown key in stem": (
        variant(stem={"kind": "cifar", "wdth": 16}),
        "stem.wdth",
        ["unknown key", "imagenet, cifar, deep", "width: DIM of ints | inner"],
    ),
    "unknown key in depth": (
        variant(depth={"per_stage": [1, 1, 1], "total": 20}),
        "depth",
        ["per_stage", "total", "split"],
    ),
    # wrong types
    "width a word": (variant(width="wide"), "width", ["positive integer", "'wide'"]),
    "width a float": (variant(width=64.5), "width", ["positive integer"]),
    "width a bool": (variant(width=True), "width", ["positive integer"]),
    "choice of wrong type": (variant(width=[64, "x"]), "width[1]", ["positive integer"]),
    "strides a number": (variant(strides=2), "strides", ["list of 1 or 2", "one per stage"]),
    "stride of 3": (variant(strides=[1, 3, 2]), "strides", ["list of 1 or 2"]),
    "shortcut unknown": (variant(shortcut="E"), "shortcut", ["one of A, B, C, D, none"]),
    "block in a list": (variant(block=["basic", "resnet"]), "block[1]", ["one of basic, bottleneck"]),
    "stem a number": (variant(stem=3), "stem", ["imagenet, cifar, deep"]),
    "stem kind unknown": (variant(stem={"kind": "huge"}), "stem.kind", ["one of imagenet, cifar, deep"]),
    "stem width a word": (
        variant(stem={"kind": "cifar", "width": "wide"}),
        "stem.width",
        ["positive integer", "inner"],
    ),
    "stem width choice a word": (
        variant(stem={"kind": "cifar", "width": [16, "wide"]}),
        "stem.width[1]",
        ["positive integer", "'wide'"],
    ),
    "stem width choice a float": (variant(stem={"width": [8, 12.5]}), "stem.width[1]", ["positive integer"]),
    "stem width choice zero": (variant(stem={"width": [0, 16]}), "stem.width[0]", ["positive integer"]),
    "stem width choice twice": (variant(stem={"width": [16, 16]}), "stem.width", ["listed twice"]),
    "stem width inner among choices": (variant(stem={"width": [16, "inner"]}), "stem.width", ["inner", "alone"]),
    "stem width range from zero": (variant(stem={"width": {"range": [0, 16]}}), "stem.width.range[0]", ["positive"]),
    "stem width range of floats": (
        variant(stem={"width": {"range": [8, 16], "step": 0.5}}),
        "stem.width.step",
        ["positive integer"],
    ),
    "stem width empty": (variant(stem={"width": []}), "stem.width", ["at least one value"]),
    "stem width too large": (variant(stem={"width": [16, 10**7]}), "stem.width[1]", ["at most 1000000"]),
    "stem widths wider than option A allows": (
        variant(stem={"kind": "cifar", "width": [32, 96]}, shortcut=["A", "B"]),
        "shortcut",
        ["option A cannot shrink 96 stem channels (stem.width) to width 64"],
    ),
    "resolution null": (variant(resolution=None), "resolution", ["positive integer"]),
    "classes zero": (variant(classes=0), "classes", ["positive integer"]),
    "too large": (variant(width=10**40), "width", ["at most 1000000"]),
    "ratio infinite": (
        variant(bottleneck_width=DROP, bottleneck_ratio=float("inf")),
        "bottleneck_ratio",
        ["positive number"],
    ),
    "ratio nan": (
        variant(bottleneck_width=DROP, bottleneck_ratio=float("nan")),
        "bottleneck_ratio",
        ["positive number"],
    ),
    "choices not a list": (variant(width={"choices": 64}), "width.choices", ["must be a list"]),
    "range not a pair": (variant(width={"range": [16]}), "width.range", ["[low, high]"]),
    "log not a bool": (variant(width={"range": [16, 64], "log": "yes"}), "width.log", ["true or false"]),
    "zero_init not a bool": (variant(zero_init_last_bn="yes"), "zero_init_last_bn", ["true or false"]),
    "modulation_value a word": (variant(modulation_value="half"), "modulation_value", ["number"]),
    "name not text": (variant(name=3), "name", ["text"]),
    "split a word": (variant(depth={"total": 29, "split": "even"}), "depth.split", ["one positive integer per stage"]),
    # empty, inverted or malformed ranges and choices
    "empty choices": (variant(width=[]), "width", ["at least one value"]),
    "empty choices mapping": (variant(width={"choices": []}), "width", ["at least one value"]),
    "empty DIM mapping": (variant(width={}), "width", ["exactly one of choices or range"]),
    "inverted range": (variant(width={"range": [64, 16]}), "width.range", ["low must not exceed high"]),
    "zero step": (variant(width={"range": [16, 64], "step": 0}), "width.step", ["positive integer"]),
    "negative step": (variant(width={"range": [16, 64], "step": -16}), "width.step", ["positive integer"]),
    "negative bound": (variant(width={"range": [-16, 64]}), "width.range[0]", ["positive integer"]),
    "fractional step for ints": (variant(width={"range": [16, 64], "step": 0.5}), "width.step", ["positive integer"]),
    "float range without step": (
        variant(bottleneck_width=DROP, bottleneck_ratio={"range": [0.25, 0.5]}),
        "bottleneck_ratio.step",
        ["needs a step"],
    ),
    "step with choices": (variant(width={"choices": [64, 128], "step": 2}), "width", ["step/log go with range"]),
    "both choices and range": (
        variant(width={"choices": [64], "range": [16, 64]}),
        "width",
        ["exactly one of choices or range"],
    ),
    "log with step not dividing low": (
        variant(width={"range": [20, 64], "step": 16, "log": True}),
        "width.range",
        ["multiple of step"],
    ),
    "range too long": (variant(width={"range": [1, 1_000_000]}), "width", ["more than 100000 values"]),
    "duplicate choices": (variant(width=[64, 128, 64]), "width", ["listed twice", "distinct"]),
    "duplicate stem via alias": (variant(stem={"kind": ["cifar", "mnist"]}), "stem.kind", ["listed twice"]),
    # inner widths
    "inner not divisible by cardinality": (
        variant(width=[64], bottleneck_width=DROP, bottleneck_ratio=0.25, cardinality=[3]),
        "bottleneck_ratio",
        ["cardinality 3", "divisible by the cardinality"],
    ),
    "inner not whole": (
        variant(width=[64, 96], bottleneck_width=DROP, bottleneck_ratio=0.3, cardinality=1),
        "bottleneck_ratio",
        ["not a whole number", "positive integers"],
    ),
    "inner below one": (
        variant(width=[64], bottleneck_width=DROP, bottleneck_ratio=0.001, cardinality=1),
        "bottleneck_ratio",
        ["positive integers"],
    ),
    "both bottleneck_width and ratio": (
        variant(bottleneck_ratio=0.25),
        "bottleneck_ratio",
        ["bottleneck_width or bottleneck_ratio, not both"],
    ),
    # contradictions
    "basic with open cardinality": (variant(block="basic"), "cardinality", ["basic", "fix it to one value"]),
    "basic with cardinality 2": (variant(block="basic", cardinality=2), "cardinality", ["cardinality must be 1"]),
    "basic with open bottleneck_width": (
        variant(block="basic", cardinality=1, bottleneck_width=[4, 8]),
        "bottleneck_width",
        ["basic", "fix it to one value"],
    ),
    "plain net with modulation": (variant(shortcut="none", modulation="scale"), "modulation", ["use modulation: none"]),
    "plain net with open modulation": (
        variant(shortcut=["B", "none"], modulation=["none", "gate"]),
        "modulation",
        ["use modulation: none"],
    ),
    "modulation_value out of [0, 1]": (
        variant(modulation="scale", modulation_value=2),
        "modulation_value",
        ["between 0 and 1"],
    ),
    "total depth does not split": (
        variant(depth={"total": 30, "split": [1, 1, 1]}),
        "depth.total",
        ["cannot be split", "divisible by 9"],
    ),
    "total depth never splits": (
        variant(block=["basic", "bottleneck"], cardinality=1, depth={"total": [20, 21], "split": [1, 1, 1]}),
        "depth.total",
        ["21 layers", "divisible by 6", "divisible by 9"],
    ),
    "per_stage too short": (variant(depth={"per_stage": [1, 2]}), "depth.per_stage", ["one DIM per stage (3 stages)"]),
    "per_stage too long": (
        variant(depth={"per_stage": [1, 2, 3, 4]}),
        "depth.per_stage",
        ["one DIM per stage (3 stages)"],
    ),
    "per_stage entry zero": (variant(depth={"per_stage": [1, 0, 2]}), "depth.per_stage[1]", ["positive integer"]),
    "per_stage entry inverted": (
        variant(depth={"per_stage": [1, {"range": [3, 1]}, 2]}),
        "depth.per_stage[1].range",
        ["low must not exceed high"],
    ),
    "split of wrong length": (
        variant(depth={"total": 29, "split": [1, 1]}),
        "depth.split",
        ["one positive integer per stage (3)"],
    ),
    "a stem no total splits for": (
        variant(
            stem={"kind": ["cifar", "deep"]}, width=64, cardinality=1, depth={"total": [29, 56], "split": [1, 1, 1]}
        ),
        "depth.total",
        ["with the deep stem", "(depth - 4) divisible by 9", "drop"],
    ),
    "option A with a wider stem": (
        variant(stem={"kind": "cifar", "width": 64}, width=[32, 64], shortcut=["A", "B"]),
        "shortcut",
        ["option A", "use shortcut B"],
    ),
    "option A with an inner stem wider than the width": (
        variant(
            stem={"kind": "cifar", "width": "inner"},
            bottleneck_width=DROP,
            bottleneck_ratio=2,
            cardinality=1,
            shortcut="A",
        ),
        "shortcut",
        ["option A", "use shortcut B"],
    ),
    "option A with C x d wider than the width": (
        variant(stem={"kind": "cifar", "width": "inner"}, cardinality=[1, 32], bottleneck_width=4, shortcut="A"),
        "shortcut",
        ["cardinality 32 x bottleneck_width 4", "use shortcut B"],
    ),
    # missing required keys
    **{
        f"missing {key}": (variant(**{key: DROP}), key, ["missing", "expected"])
        for key in ("resolution", "classes", "strides", "depth", "width")
    },
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistake_names_file_field_and_what_is_allowed(tmp_path, case):
    data, field, allowed = MISTAKES[case]
    path = write(tmp_path, data)
    err = load_error(path)
    message = str(err)
    assert err.where == str(path)
    assert err.field == field
    assert message.startswith(f"{path}: {field}: "), message
    for words in allowed:
        assert words in message, (words, message)
    assert "\n" not in message  # one message, one line


# ---- mistakes in the file itself: no field path, the file named -----------------------------------

FILE_MISTAKES = {
    "YAML syntax error": ("resolution: 32\nwidth: [16, 32\n", ["not valid YAML", "line"]),
    "bad indentation": ("resolution: 32\n  classes: 10\n", ["not valid YAML"]),
    "a list, not a mapping": ("- resolution: 32\n- classes: 10\n", ["must be a mapping", "got a list"]),
    "a scalar": ("just text\n", ["must be a mapping", "got a str"]),
    "an empty file": ("", ["must be a mapping", "empty file"]),
    "python tag": ("resolution: !!python/object/apply:os.system [ls]\n", ["not valid YAML"]),
    "nested too deeply": ("width: " + "[" * 3000 + "]" * 3000 + "\n", ["nested too deeply"]),
}


@pytest.mark.parametrize("case", list(FILE_MISTAKES))
def test_file_mistake_names_file(tmp_path, case):
    text, allowed = FILE_MISTAKES[case]
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.where == str(path) and err.field == ""
    assert str(err).startswith(f"{path}: ")
    for words in allowed:
        assert words in str(err), (words, str(err))


def test_not_utf8(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"resolution: 32\nname: \xff\xfe\x00\x81\n")
    err = load_error(path)
    assert err.where == str(path) and "not a text file" in str(err) and "UTF-8" in str(err)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    err = load_error(path)
    assert err.where == str(path)
    assert str(err) == f"{path}: cannot read template (No such file or directory)"


def test_directory_named_like_a_template(tmp_path):
    path = tmp_path / "dir.yaml"
    path.mkdir()
    err = load_error(path)
    assert err.where == str(path) and "cannot read template" in str(err)


def test_unknown_name_lists_builtins(tmp_path):
    err = load_error(tmp_path / "nope")  # no suffix, not a file: taken as a built-in name
    assert str(tmp_path / "nope") in str(err)
    assert all(name in str(err) for name in builtin_spaces())


def test_unknown_key_far_from_any_allowed_lists_all(tmp_path):
    err = load_error(write(tmp_path, variant(zzzzzz=1)))
    assert err.field == "zzzzzz" and "did you mean" not in str(err)
    assert all(key in str(err) for key in TOP_KEYS)


def test_non_string_keys_are_unknown_keys():
    with pytest.raises(ResnasError, match="unknown key"):
        parse_spec({**BASE, 3: "x"}, "t.yaml")
    with pytest.raises(ResnasError, match=r"unknown key\(s\) \['1', 'x'\]"):
        parse_spec(variant(width={"range": [16, 64], 1: 2, "x": 3}), "t.yaml")


# ---- the same through the CLI: one `error:` line, exit 2, no traceback -----------------------------


def invoke(runner, *args):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def assert_cli_error(result, *words):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for words_ in words:
        assert words_ in lines[0], (words_, lines[0])


@pytest.mark.parametrize("case", list(MISTAKES))
def test_cli_mistake(runner, tmp_path, case):
    data, field, _ = MISTAKES[case]
    path = write(tmp_path, data)
    assert_cli_error(invoke(runner, "space", "show", str(path)), f"{path}: {field}: ")


@pytest.mark.parametrize("case", list(FILE_MISTAKES))
def test_cli_file_mistake(runner, tmp_path, case):
    path = write(tmp_path, FILE_MISTAKES[case][0])
    assert_cli_error(invoke(runner, "space", "show", str(path)), f"error: {path}: ")


@pytest.mark.parametrize("command", ["show", "sample"])
def test_cli_missing_file(runner, tmp_path, command):
    path = tmp_path / "nope.yaml"
    assert_cli_error(invoke(runner, "space", command, str(path)), str(path), "cannot read template")


def test_cli_valid_template_still_works(runner, tmp_path):
    result = invoke(runner, "space", "show", "--json", str(write(tmp_path, BASE)))
    assert result.exit_code == 0, result.output


def test_cli_keeps_brackets_in_messages(runner, tmp_path):
    path = write(tmp_path, variant(width={"range": [16]}))
    assert_cli_error(invoke(runner, "space", "show", str(path)), "must be [low, high]")


def test_cli_markup_in_a_value_is_not_a_traceback(runner, tmp_path):
    path = write(tmp_path, variant(width="[/]"))
    assert_cli_error(invoke(runner, "space", "show", str(path)), "got '[/]'")


# ---- valid edge cases still load -------------------------------------------------------------------


@pytest.mark.parametrize("name", builtin_spaces())
def test_builtin_loads_by_name_and_path(name):
    by_name = load_space(name)
    by_path = load_space(SPACES / f"{name}.yaml")
    assert by_name.size() == by_path.size() > 0
    assert by_name.name == name


def test_log_range_with_step(tmp_path):
    s = load_space(write(tmp_path, variant(width={"range": [16, 64], "step": 16, "log": True})))
    d = s.dims["width"]
    assert d.values == (16, 32, 48, 64) and d.kind == "range" and d.log and d.step == 16


def test_float_log_range_on_a_noisy_grid(tmp_path):
    data = variant(
        bottleneck_width=DROP,
        bottleneck_ratio={"range": [0.3, 0.9], "step": 0.1, "log": True},
        width=[10, 20],
        cardinality=1,
    )  # 0.3 % 0.1 is not 0 in floats, yet 0.3 is on the grid
    d = load_space(write(tmp_path, data)).dims["bottleneck_ratio"]
    assert d.values == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9) and d.log


def test_float_range_with_step(tmp_path):
    data = variant(
        bottleneck_width=DROP,
        bottleneck_ratio={"range": [0.25, 1.0], "step": 0.25},
        width=[64, 128],
        cardinality=[1, 2, 4],
    )
    d = load_space(write(tmp_path, data)).dims["bottleneck_ratio"]
    assert d.values == (0.25, 0.5, 0.75, 1.0)


def test_range_of_one_value_is_fixed(tmp_path):
    d = load_space(write(tmp_path, variant(width={"range": [64, 64]}))).dims["width"]
    assert d.values == (64,) and not d.open


def test_choices_mapping(tmp_path):
    d = load_space(write(tmp_path, variant(width={"choices": [64, 128]}))).dims["width"]
    assert d.values == (64, 128) and d.open


def test_fixed_scalar_wherever_a_dim_goes(tmp_path):
    data = variant(
        stem={"kind": "deep", "width": 32},
        block="bottleneck",
        depth={"per_stage": [1, 2, 1]},
        width=64,
        cardinality=4,
        bottleneck_width=8,
        shortcut="D",
        unit_order="preact",
        stride_on="1x1",
        modulation="scale",
        modulation_value=0.25,
    )
    s = load_space(write(tmp_path, data))
    assert s.open_dims == [] and s.size() == 1
    arch = next(s.enumerate())
    assert (arch.stem, arch.stem_width, arch.stages[0].groups, arch.stages[0].mid) == ("deep", 32, 4, 32)
    total = load_space(write(tmp_path, variant(depth={"total": 29, "split": [1, 1, 1]}, width=64, cardinality=1)))
    assert total.size() == 1 and next(total.enumerate()).depth == 29


@pytest.mark.parametrize("stem, kind", [("cifar", "cifar"), ("imagenet", "imagenet"), ("mnist", "cifar")])
def test_stem_as_a_plain_string(tmp_path, stem, kind):
    s = load_space(write(tmp_path, variant(stem=stem)))
    assert s.dims["stem"].values == (kind,) and s.spec.stem_width == 64


def test_yaml_text_with_comments_and_flow_style(tmp_path):
    text = """# comment
resolution: 32
classes: 10
stem: cifar
strides: [1, 2, 2]
block: [basic, bottleneck]
depth: {total: [20, 29, 56], split: [1, 1, 1]}   # 20: basic only, 29: bottleneck only, 56: both
width: {choices: [64, 128]}
bottleneck_ratio: 0.25
shortcut: [A, B]
unit_order: [post, preact]
"""
    s = load_space(write(tmp_path, text))
    assert s.dims["depth"].values == (20, 29, 56) and s.size() > 0


# ---- fuzz: mutated built-in templates raise nothing but ResnasError --------------------------------

WORDS = [
    "inner",
    "basic",
    "bottleneck",
    "A",
    "B",
    "C",
    "D",
    "none",
    "post",
    "preact",
    "3x3",
    "1x1",
    "scale",
    "dropout",
    "conv",
    "cifar",
    "deep",
    "imagenet",
    "mnist",
    "range",
    "choices",
    "step",
    "log",
    "",
    "wide",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.sampled_from([0, -1, 256, 999_999, 1_000_000, 1_000_001, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.25, 0.3, 0.5, 1.5, 1e-300, 1e300]),
    st.text(max_size=6),
    st.sampled_from(WORDS),
)
small_number = st.one_of(st.integers(-2, 40), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1e-12, 1e6, 10**30]))
dim_like = st.one_of(
    st.lists(scalars, max_size=5),
    st.fixed_dictionaries(
        {"range": st.lists(small_number, min_size=0, max_size=3)},
        optional={"step": st.one_of(small_number, scalars), "log": st.one_of(st.booleans(), scalars)},
    ),
    st.fixed_dictionaries(
        {"choices": st.one_of(st.lists(scalars, max_size=4), scalars)}, optional={"step": small_number}
    ),
)
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(list(TOP_KEYS) + list(DIM_KEYS)), st.text(max_size=5)), inner, max_size=4
        ),
    ),
    max_leaves=8,
)
any_value = st.one_of(scalars, dim_like, json_like)
new_key = st.one_of(
    st.sampled_from(list(TOP_KEYS) + list(DIM_KEYS) + ["kind", "width", "per_stage", "total", "split"]),
    st.text(max_size=6),
    st.integers(-2, 3),
)


def dim_of(values, numbers):
    """A DIM over a domain: one value, a list of distinct ones, {choices}, or (numbers only) a range."""
    options = [
        values,
        st.lists(values, min_size=1, max_size=4, unique=True),
        st.fixed_dictionaries({"choices": st.lists(values, min_size=1, max_size=3, unique=True)}),
    ]
    if numbers:
        options.append(
            st.fixed_dictionaries(
                {"range": st.lists(values, min_size=2, max_size=2)}, optional={"step": values, "log": st.booleans()}
            )
        )
    return st.one_of(*options)


ints = st.one_of(st.integers(1, 40), st.sampled_from([48, 64, 96, 128, 256]))
ratios = st.sampled_from([0.125, 0.25, 0.3, 0.5, 1.0, 1.5, 2.0, 4.0])
# Plausible values per top-level key: they pass the per-field checks, so the consistency checks get exercised.
PLAUSIBLE = {
    "resolution": ints,
    "in_channels": ints,
    "classes": ints,
    "stem": st.one_of(
        st.sampled_from(STEMS),
        st.fixed_dictionaries(
            {},
            optional={
                "kind": dim_of(st.sampled_from(STEMS), False),
                "width": st.one_of(dim_of(ints, True), st.just("inner")),
            },
        ),
    ),
    "strides": st.lists(st.sampled_from([1, 2]), min_size=1, max_size=5),
    "block": dim_of(st.sampled_from(BLOCKS), False),
    "depth": st.one_of(
        st.fixed_dictionaries({"per_stage": st.lists(dim_of(st.integers(1, 6), True), min_size=1, max_size=5)}),
        st.fixed_dictionaries(
            {"total": dim_of(st.integers(1, 120), True), "split": st.lists(st.integers(1, 3), min_size=1, max_size=5)}
        ),
    ),
    "width": dim_of(ints, True),
    "cardinality": dim_of(st.sampled_from([1, 2, 3, 4, 8, 32]), True),
    "bottleneck_width": dim_of(ints, True),
    "bottleneck_ratio": dim_of(ratios, True),
    "shortcut": dim_of(st.sampled_from(SHORTCUTS), False),
    "unit_order": dim_of(st.sampled_from(UNIT_ORDERS), False),
    "stride_on": dim_of(st.sampled_from(STRIDE_ON), False),
    "modulation": dim_of(st.sampled_from(MODULATIONS), False),
    "modulation_value": st.one_of(st.none(), st.floats(-1, 2)),
    "zero_init_last_bn": st.booleans(),
}


def paths(node, prefix=()):
    """Every (path) into a nested template, containers included."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def at(node, path):
    for p in path:
        node = node[p]
    return node


@st.composite
def mutated_templates(draw):
    data = copy.deepcopy(BUILTIN_DATA[draw(st.sampled_from(sorted(BUILTIN_DATA)))])
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["delete", "replace", "add", "plausible", "plausible"]))
        if op == "plausible":  # a top-level key set (or deleted) to a value of the right kind
            if not isinstance(data, dict):
                continue
            key = draw(st.sampled_from(sorted(PLAUSIBLE)))
            data[key] = draw(PLAUSIBLE[key])
            if data[key] is None:
                del data[key]
            continue
        candidates = list(paths(data))
        if op == "add":
            containers = [p for p in candidates if isinstance(at(data, p), (dict, list))]
            if not containers:
                continue
            target = at(data, draw(st.sampled_from(containers)))
            if isinstance(target, dict):
                target[draw(new_key)] = draw(any_value)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(any_value))
            continue
        candidates = [p for p in candidates if p]  # not the root itself
        if not candidates:
            data = draw(any_value)
            continue
        path = draw(st.sampled_from(candidates))
        parent = at(data, path[:-1])
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(any_value)
    return data


def exercise(data) -> None:
    """What loading and sizing a template does, and the only exception it may raise."""
    try:
        space = DesignSpace(parse_spec(data, "fuzz.yaml"))
        # size() enumerates (slowly: one Arch per candidate) when no stage has stride 2; keep the fuzz cheap
        if 2 in space.spec.strides or space._weights[-1] <= 2_000:
            assert space.size() >= 1
        space.describe()
        space.random_arch(random.Random(0))  # candidates are real networks: Arch's own checks pass
        extremes(space, "flops")
    except ResnasError as err:
        assert err.where == "fuzz.yaml", f"no file in: {err}"
        assert str(err).startswith("fuzz.yaml: ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_templates())
def test_fuzz_mutated_templates_raise_only_resnas_error(data):
    exercise(data)


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_fuzz_raw_file_contents(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("fuzz") / "raw.yaml"
    path.write_bytes(content)
    try:
        load_space(path)
    except ResnasError as err:
        assert err.where == str(path)


@pytest.mark.parametrize(
    "data",
    [
        {**BUILTIN_DATA["resnext"], "bottleneck_width": {"range": [0.1, 1e6], "step": 1e-12}},
        {**BUILTIN_DATA["preact"], "bottleneck_ratio": {"range": [1e-300, 1e300], "step": 1e-300}},
        {**BUILTIN_DATA["preact"], "bottleneck_ratio": 1e300},
        {**BUILTIN_DATA["preact"], "bottleneck_ratio": 10**400},
        {**BUILTIN_DATA["preact"], "width": {"range": [1, 10**400]}},
        {**BUILTIN_DATA["cifar-resnext"], "cardinality": {"range": [1, 50_000]}},
        {
            **BUILTIN_DATA["resnet"],
            "width": {"range": [1, 99_999]},
            "bottleneck_ratio": {"range": [0.5, 5000], "step": 0.5},
        },
        {**BUILTIN_DATA["resnet"], "width": {1: 2, "x": 3}},
        {
            **BUILTIN_DATA["cifar-resnet"],
            "shortcut": "A",
            "stem": {"kind": "cifar", "width": "inner"},
            "block": "bottleneck",
            "bottleneck_width": 64,
        },
        {**BUILTIN_DATA["cifar-resnet"], "modulation": "dropout", "modulation_value": float("nan")},
        {**BUILTIN_DATA["cifar-resnext"], "stem": {"kind": ["imagenet", "deep"]}},
        {**BUILTIN_DATA["preact"], "bottleneck_ratio": {"range": [1e6, 1e6], "step": 5e-324, "log": True}},
        {**BUILTIN_DATA["preact"], "bottleneck_ratio": {"range": [0.3, 0.9], "step": 0.1, "log": True}},
    ],
)
def test_fuzz_regressions(data):
    """Inputs that once escaped as OverflowError, TypeError or a ResnasError without the file."""
    exercise(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_templates())
def test_fuzz_cli_never_shows_a_traceback(tmp_path_factory, data):
    from typer.testing import CliRunner

    try:
        space = DesignSpace(parse_spec(data, "fuzz.yaml"))
        assume(2 in space.spec.strides or space._weights[-1] <= 2_000)  # size() enumerates without a stride
    except ResnasError:
        pass
    path = tmp_path_factory.mktemp("cli") / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    result = CliRunner().invoke(app, ["space", "show", "--json", str(path)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.stderr.startswith(f"error: {path}: "), result.stderr
