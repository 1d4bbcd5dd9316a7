"""Every YAML file resnas reads (templates, arch, recipe, study and experiment files, exported files read
back) goes through `nas_res.yamlfile`: an alias bomb, an alias loop or a key given twice is one message
naming the file and the line, in milliseconds; and a command refuses a broken file before it imports
torch (issue 23: items 1, 3a and 7)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from nas_res.cli.main import app
from typer.testing import CliRunner

from nas_res.errors import ResnasError
from nas_res.results.store import Store
from nas_res.yamlfile import MAX_DEPTH, MAX_VALUES, parse_stored_json, parse_yaml, read_yaml

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

# nine levels of nine aliases: 9**9 (387 million) values written out, in under 1 KB
BOMB = "".join(
    [
        "experiment: bomb\ndataset: digits\n",
        'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n',
        *(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)),
        "notes: *l8\n",
    ]
)
LOOP = "a: &a [1, *a]\n"
DUPLICATE_ARM = """experiment: twice
dataset: digits
arms:
  a: {zoo: resnet20_cifar}
  b: {zoo: resnet32_cifar}
  c: {zoo: resnet44_cifar}
  a: {zoo: resnet56_cifar}
checks: []
"""


def builtin_files() -> list[Path]:
    return sorted([*(ROOT / "search_spaces").glob("*.yaml"), *(ROOT / "studies").rglob("*.yaml")])


# ---- the reader -------------------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_in_milliseconds_naming_the_line(tmp_path):
    assert len(BOMB) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(ResnasError, match=r"bomb\.yaml: not a usable experiment file: line \d+: holds more than") as e:
        read_yaml(path, "experiment file")
    assert time.perf_counter() - start < 1  # milliseconds, on a busy machine too
    assert f"{MAX_VALUES:,} values with its aliases written out (*l0, *l1, *l2, ...)" in str(e.value)


def test_a_bomb_of_merges_and_mappings_is_refused_too():
    levels = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}\n"]
    levels += [
        f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(10))}}}\n" for i in range(1, 7)
    ]  # 10**6 and more
    with pytest.raises(ResnasError, match="holds more than"):
        parse_yaml("".join(levels), "m.yaml")
    merged = "base: &b {x: 1}\n" + "".join(
        f"m{i}: &m{i} {{<<: *{'b' if i == 0 else f'm{i - 1}'}, y{i}: 2}}\n" for i in range(50)
    )
    assert parse_yaml(merged, "m.yaml")["m49"]["x"] == 1  # merges add up, they do not multiply


def test_an_alias_inside_the_node_it_names_is_refused():
    with pytest.raises(ResnasError, match=r"l\.yaml: not a usable file: line 1: alias \*a is inside the node it names"):
        parse_yaml(LOOP, "l.yaml")
    with pytest.raises(ResnasError, match="line 3: alias \\*m is inside"):
        parse_yaml("m: &m\n  k: 1\n  self: *m\n", "l.yaml")


def test_nesting_is_capped():
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(ResnasError, match=rf"nested too deeply \(more than {MAX_DEPTH} levels\)"):
        parse_yaml(deep, "d.yaml")
    with pytest.raises(ResnasError, match="d.yaml"):  # far deeper than Python's stack: still one message
        parse_yaml("[" * 100_000, "d.yaml")


@pytest.mark.parametrize(
    "text,message",
    [
        ("a: 1\nb: 2\na: 3\n", "key 'a' appears twice (lines 1 and 3)"),
        ("top:\n  inner:\n    lr: 0.1\n    lr: 0.2\n", "key 'lr' appears twice (lines 3 and 4)"),
        ("- {x: 1, x: 2}\n", "key 'x' appears twice (line 1)"),
        ('{"a": 1, "b": {"c": 2, "c": 3}}', "key 'c' appears twice (line 1)"),  # JSON too
        ("1: a\n0x1: b\n", "key '0x1' (line 2) is the same key as '1' (line 1)"),
        ("k: &k name\nm: {*k : 1, *k : 2}\n", "key 'name' appears twice"),  # one node, as two keys
    ],
)
def test_a_key_given_twice_is_refused_with_both_lines(text, message):
    with pytest.raises(ResnasError, match="^f.yaml: not a usable file: ") as e:
        parse_yaml(text, "f.yaml")
    assert message in str(e.value)


def test_a_merged_key_given_again_is_an_override_not_a_duplicate():
    data = parse_yaml("net: &n {block: basic, shortcut: A}\nb: {<<: *n, shortcut: B}\n", "f.yaml")
    assert data["b"] == {"block": "basic", "shortcut": "B"}


@pytest.mark.parametrize("path", builtin_files(), ids=lambda p: p.name)
def test_every_built_in_file_reads_as_yaml_safe_load_reads_it(path):
    assert read_yaml(path) == yaml.safe_load(path.read_text())  # cardinality, shortcuts, degradation use anchors


def test_syntax_errors_say_line_and_column_once():
    with pytest.raises(ResnasError) as e:
        parse_yaml("a: [1, 2\nb: {c\n", "s.yaml")
    text = str(e.value)
    assert text.startswith("s.yaml: not valid YAML: line 2, column 2: expected ',' or ']'")
    assert "<unicode string>" not in text and "^" not in text


def test_stored_json_read_back_refuses_a_damaged_value(tmp_path):
    assert parse_stored_json('{"a": [1, {"b": 2}]}', "w") == {"a": [1, {"b": 2}]}
    with pytest.raises(ResnasError, match="^w: damaged: .*key 'a' appears twice"):
        parse_stored_json('{"a": 1, "a": 2}', "w")
    with pytest.raises(ResnasError, match="^w: damaged: .*not usable"):
        parse_stored_json("{not json", "w")
    with pytest.raises(ResnasError, match="^w: damaged: .*nested too deeply"):
        parse_stored_json("[" * 200_000 + "]" * 200_000, "w")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Store(url, create=True).add_study("s", {"space": "resnext"})
    with sqlite3.connect(tmp_path / "db.sqlite") as c:  # tampered with: the space given twice
        c.execute("UPDATE resnas_studies SET config = ? WHERE name = 's'", ('{"space": "a", "space": "b"}',))
    with pytest.raises(ResnasError, match="study 's' in .*: damaged: .*key 'space' appears twice"):
        Store(url).study_config("s")


# ---- the commands -----------------------------------------------------------------------------------

COMMANDS = {  # how each command is given a file, and the kind of file it reads
    "experiment run": (lambda p: ["experiment", "run", p], "experiment file"),
    "search STUDY_FILE": (lambda p: ["search", p], "study file"),
    "search --space": (lambda p: ["search", "--space", p], "template"),
    "space show": (lambda p: ["space", "show", p], "template"),
    "space sample": (lambda p: ["space", "sample", p], "template"),
    "cost": (lambda p: ["cost", p], "arch file"),
    "iso --like": (lambda p: ["iso", "--like", p, "--cardinality", "1,2"], "arch file"),
    "train": (lambda p: ["train", p], "arch file"),
    "train --recipe": (lambda p: ["train", "mnist_resnet", "--recipe", p], "recipe file"),
}
BROKEN = {
    "bomb": (BOMB, "holds more than"),
    "loop": (LOOP, "is inside the node it names"),
    "twice": ("a: 1\nb:\n  c: 2\n  c: 3\n", "key 'c' appears twice (lines 3 and 4)"),
    "typo": ("a: {b: 1\n", "not valid YAML: line 2"),
}


def one_error(result, *needles: str) -> str:
    text = result.stdout + result.stderr
    assert result.exit_code == 2, text
    assert "Traceback" not in text and text.count("error:") == 1 and not result.stdout.strip(), text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.mark.parametrize("broken", BROKEN)
@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_refuses_a_broken_file_in_one_line(command, broken, tmp_path):
    args, what = COMMANDS[command]
    path = tmp_path / f"{broken}.yaml"
    path.write_text(BROKEN[broken][0])
    start = time.perf_counter()
    text = one_error(runner.invoke(app, [str(a) for a in args(path)]), str(path), BROKEN[broken][1])
    assert time.perf_counter() - start < 30, "refused after the work began"  # written out: minutes, GBs
    if broken != "typo":
        assert f"not a usable {what}" in text


def test_an_arm_defined_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text(DUPLICATE_ARM)
    one_error(
        runner.invoke(app, ["experiment", "run", str(path)]), f"{path}: ", "key 'a' appears twice (lines 4 and 7)"
    )


# the command in a fresh interpreter: which heavy packages it had imported when it exited
PROBE = """
import sys
sys.argv = ["resnas", *sys.argv[1:]]
from nas_res.cli.main import app
try:
    app()
finally:
    heavy = sorted(m for m in ("torch", "optuna", "scipy", "sklearn", "matplotlib") if m in sys.modules)
    print("HEAVY", heavy, file=sys.stderr)
"""


def probe(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_yaml_typo_is_refused_before_torch_is_imported(command, tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("a: {b: 1\n")
    done = probe(COMMANDS[command][0](path), tmp_path)
    assert done.returncode == 2, done.stderr
    assert "error:" in done.stderr and "not valid YAML" in done.stderr, done.stderr
    assert "HEAVY []" in done.stderr, done.stderr


@pytest.mark.parametrize("args", [["--help"], ["finalize", "--help"], ["export", "--help"], ["gradients", "--help"]])
def test_help_lists_every_command_without_importing_torch(args, tmp_path):
    done = probe(args, tmp_path)  # --help reads every command's module for its line in the listing
    assert done.returncode == 0 and "HEAVY []" in done.stderr, done.stderr


def test_importing_the_package_and_its_light_modules_imports_no_torch(tmp_path):
    code = (
        "import sys, nas_res, nas_res.yamlfile, nas_res.errors, nas_res.arch.description, nas_res.arch.budget, "
        "nas_res.space.template, nas_res.training.recipe, nas_res.arch.zoo, nas_res.data.names, "
        "nas_res.experiments.spec, nas_res.cli.main\n"
        "print(sorted(m for m in ('torch', 'optuna', 'scipy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_public_names_resolve_as_before():
    import importlib

    import nas_res

    for name in nas_res.__all__:
        assert getattr(nas_res, name) is not None, name
    assert importlib.import_module("nas_res.arch.cost").cost is nas_res.cost
    assert importlib.import_module("nas_res.training.trainer").train is nas_res.train
    assert nas_res.zoo is importlib.import_module("nas_res.arch.zoo")
    from nas_res import cost, train

    assert cost is nas_res.cost and train is nas_res.train
    import nas_res.arch.cost  # binds the subpackage, never a public name
    import nas_res.training.trainer

    assert callable(nas_res.cost) and callable(nas_res.train)
    import nas_res.results
    import nas_res.search

    assert callable(nas_res.search.plan) and callable(nas_res.results.export)
    assert json.dumps(sorted(dir(nas_res))) and set(nas_res.__all__) <= set(dir(nas_res))


def test_help_lists_every_command_in_order():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    order = ["train", "evaluate", "search", "worker", "finalize", "fidelity", "studies", "leaderboard", "compare"]
    order += ["plot", "export", "gradients", "activations", "zoo", "cost", "iso", "spaces", "space", "study"]
    at = [result.output.find(f"│ {name} ") for name in [*order, "experiment"]]
    assert -1 not in at and at == sorted(at), result.output
