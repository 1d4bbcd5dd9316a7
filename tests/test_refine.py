"""Refining a design space from a uniformly sampled study (`resnas refine`, `nas_res.refine`).

The statistics are checked against outside referees: the one-sided KS p against scipy and an exact count,
the bootstrap good range against a hand computation on the same draws. End to end, on studies written
straight into a `Store` (no training) with a planted effect: basic blocks far better than bottlenecks, the
width irrelevant.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3

import numpy as np
import pytest
import yaml
from nas_res.cli.main import app
from scipy import stats
from servers import sqlite_url

import nas_res
from nas_res import Budget, ResnasError, cost, load_space
from nas_res.results import Store
from nas_res.results.refine import KEPT, NARROWED, TOO_FEW, bootstrap_best, good_values, ks_lower, refine_dim
from nas_res.search.config import space_snapshot
from nas_res.search.refinement import _template
from nas_res.space.design_space import DesignSpace
from nas_res.space.refined import narrowed_text
from nas_res.space.template import builtin_spaces, load_spec, parse_spec

REPEATS = "200"  # bootstrap samples in the tests: enough for a planted effect, fast

TEMPLATE = """name: tiny
resolution: 28
in_channels: 1
classes: 10
stem: {kind: cifar, width: 16}
strides: [1, 2, 2]
block: [basic, bottleneck]
depth:
  per_stage: [{range: [1, 3]}, {range: [1, 3]}, {range: [1, 3]}]
width: [16, 32]
cardinality: 1
bottleneck_width: 16
shortcut: [A, B]
unit_order: [post, preact]
"""


# ---- the statistics, against referees -------------------------------------------------------------


def test_ks_is_scipys_one_sided_test_and_an_exact_count():
    low, high = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    assert ks_lower(low, high) == stats.ks_2samp(low, high, alternative="greater").pvalue
    # every one of the 35 ways to pick 3 of 7 ranks, only the lowest three reach D+ = 1
    assert ks_lower(low, high) == pytest.approx(1 / 35)
    assert ks_lower(high, low) == 1.0  # the worse group is never "lower"
    mixed = [1.5, 4.5, 6.5]
    assert ks_lower(mixed, high) == stats.ks_2samp(mixed, high, alternative="greater").pvalue


def hand_percentile(xs: list[float], q: float) -> float:
    """numpy's default (linear) percentile, by hand."""
    xs = sorted(xs)
    at = q / 100 * (len(xs) - 1)
    below = int(at)
    above = min(below + 1, len(xs) - 1)
    return xs[below] + (at - below) * (xs[above] - xs[below])


def test_good_range_matches_a_hand_bootstrap_on_the_same_draws():
    rng = random.Random(3)
    values = [rng.choice([1, 2, 3, 4, 5, 6]) for _ in range(40)]
    errors = [abs(v - 3) + rng.random() * 2 for v in values]  # the best models sit near 3
    n, k, repeats = 40, 10, 300
    drawn = np.random.default_rng(7).integers(0, n, size=(repeats, k))
    winners = []
    for row in drawn.tolist():
        best = row[0]
        for i in row:  # the first of the lowest errors drawn, as np.argmin
            if errors[i] < errors[best]:
                best = i
        winners.append(best)
    assert bootstrap_best(errors, 0.25, repeats, seed=7).tolist() == winners
    won = [values[i] for i in winners]
    low, high = hand_percentile(won, 2.5), hand_percentile(won, 97.5)
    good, pct, wins = good_values(values, np.array(winners), (1, 2, 3, 4, 5, 6), numeric=True, level=0.95)
    assert pct is not None and pct[0] == pytest.approx(low) and pct[2] == pytest.approx(high)
    grid_low = max(g for g in range(1, 7) if g <= low + 1e-12)
    grid_high = min(g for g in range(1, 7) if g >= high - 1e-12)
    assert good == tuple(range(grid_low, grid_high + 1))
    assert 3 in good and 6 not in good
    assert sum(wins.values()) == pytest.approx(1.0) and wins[3] == won.count(3) / repeats
    assert bootstrap_best(errors, 0.25, repeats, seed=7).tolist() == winners  # seeded: the same every time


def test_a_categorical_range_is_the_fewest_values_holding_the_level():
    def winners_of(counts: dict[str, int]) -> tuple[list[str], np.ndarray]:
        values = [v for v, c in counts.items() for _ in range(c)]
        return values, np.arange(len(values))

    values, won = winners_of({"a": 96, "b": 4})
    assert good_values(values, won, ("a", "b"), numeric=False)[0] == ("a",)
    values, won = winners_of({"a": 90, "b": 6, "c": 4})
    assert good_values(values, won, ("c", "b", "a"), numeric=False)[0] == ("b", "a")  # the template's order
    values, won = winners_of({"a": 90, "b": 5, "c": 5})
    assert good_values(values, won, ("a", "b", "c"), numeric=False)[0] == ("a", "b", "c")  # a tie is kept


def test_verdicts_on_plain_lists():
    rng = random.Random(0)
    blocks = ["basic", "bottleneck"] * 30
    planted = [(2.0 if b == "basic" else 12.0) + rng.random() for b in blocks]
    d = refine_dim("block", ("basic", "bottleneck"), blocks, planted, numeric=False, repeats=200)
    assert d.verdict == NARROWED and d.good == ("basic",) and d.p is not None and d.p < 1e-6
    assert (d.inside, d.outside, d.n) == (30, 30, 60)
    widths = [rng.choice([16, 32]) for _ in blocks]
    noise = [rng.random() for _ in blocks]
    d = refine_dim("width", (16, 32), widths, noise, numeric=True, repeats=200)
    assert d.verdict == KEPT and d.good == (16, 32)
    few = ["a"] * 40 + ["b"] * 3
    d = refine_dim("x", ("a", "b"), few, [1.0 + rng.random() for _ in range(40)] + [9.0] * 3, numeric=False)
    assert d.verdict == TOO_FEW and d.good == ("a",) and "3 outside" in d.reason
    empty = refine_dim("cardinality", (1, 2), [], [], numeric=True)
    assert empty.verdict == TOO_FEW and empty.n == 0


# ---- the template written back ----------------------------------------------------------------------


@pytest.mark.parametrize("name", builtin_spaces())
def test_every_builtin_template_is_written_back_as_it_was(name):
    spec = load_spec(name)
    text, again = narrowed_text(spec, {}, {}, name=spec.name)
    assert dataclasses.replace(again, source="") == dataclasses.replace(spec, source="")
    assert parse_spec(yaml.safe_load(text), "again").dims == spec.dims


def both_blocks_by_total():
    """plain-vs-residual with bottleneck blocks too: its depth totals split into basic blocks at 8, 14, 20...
    (6 layers a stage step), into bottlenecks only at 20, 38 and 56 (9 a step)."""
    spec = load_spec("plain-vs-residual")
    data = yaml.safe_load(narrowed_text(spec, {}, {}, name="both")[0])
    data.update(block=["basic", "bottleneck"], bottleneck_width=8)
    return parse_spec(data, "both.yaml")


def test_a_cut_that_breaks_the_template_is_refused_naming_the_field():
    with pytest.raises(ResnasError, match="depth.total"):
        narrowed_text(both_blocks_by_total(), {"depth": (8, 14)}, {}, name="cut")


def test_a_cut_the_template_cannot_take_is_undone_with_a_note():
    space = DesignSpace(both_blocks_by_total())
    grid = space.dims["depth"].values
    found = refine_dim("depth", grid, [8, 14] * 10, [1.0] * 20, numeric=True, repeats=50)
    cut = dataclasses.replace(found, verdict=NARROWED, good=(8, 14))
    text, refined, dims, notes = _template(space, [cut], "header")
    assert dims[0].verdict == KEPT and "invalid template" in dims[0].reason and "depth kept" in notes[0]
    assert refined.size() == space.size() and "# refined" not in text


def test_a_space_left_with_basic_blocks_fixes_its_bottleneck_dimensions():
    text, spec = narrowed_text(load_spec("small-resnext"), {"block": ("basic",)}, {"block": "refined: x"}, name="b")
    assert spec.dims["cardinality"].values == (1,) and not spec.dims["bottleneck_width"].open
    assert "block: basic  # refined: x" in text and "cardinality: 1  # fixed: every block is basic" in text


def test_a_cut_range_stays_a_range_and_a_gapped_cut_is_a_list():
    spec = load_spec("small-resnext")
    text, cut = narrowed_text(spec, {"depth1": (2, 3), "depth2": (1, 3), "width": (24, 32)}, {}, name="c")
    assert "    - {range: [2, 3]}\n    - [1, 3]\n    - {range: [1, 9]}\n" in text and "width: [24, 32]\n" in text
    assert (cut.dims["depth1"].values, cut.dims["depth2"].values) == ((2, 3), (1, 3))
    data = yaml.safe_load(narrowed_text(spec, {}, {}, name="r")[0])
    del data["bottleneck_width"]
    data.update(width=[16, 32], bottleneck_ratio={"range": [0.25, 1.0], "step": 0.25}, cardinality=[1, 2, 4])
    ratios = parse_spec(data, "ratio.yaml")
    text, cut = narrowed_text(ratios, {"bottleneck_ratio": (0.5, 0.75)}, {"bottleneck_ratio": "refined"}, name="r")
    assert "bottleneck_ratio: {range: [0.5, 0.75], step: 0.25}  # refined" in text
    assert cut.dims["bottleneck_ratio"].values == (0.5, 0.75)


# ---- studies, end to end ----------------------------------------------------------------------------


def make_study(url: str, name: str, n: int, folder, **config) -> None:
    """A finished study of `n` models of the tiny space sampled uniformly (unless `config` says otherwise),
    basic blocks about 10 points better than bottlenecks, written straight into the store."""
    path = folder / "tiny.yaml"
    path.write_text(TEMPLATE)
    space = load_space(path)
    store = Store(url, create=True)
    stored = {
        "space": space_snapshot(space),
        "space_name": space.name,
        "budget": dataclasses.asdict(Budget()),
        "budget_text": "no budget",
        "sampler": "random",
        "pruner": "none",
        "objective": "accuracy",
        "dataset": "digits",
        "trials": n,
    }
    store.add_study(name, {**stored, **config})
    rng = random.Random(0)
    for trial, arch in enumerate(space.sample(n, seed=0)):
        store.put_arch(arch, cost(arch))
        error = (5.0 if arch.block == "basic" else 15.0) + rng.gauss(0, 1)
        store.add_run(
            study=name,
            trial=trial,
            arch_key=arch.key,
            recipe_key="r",
            recipe={"epochs": 1},
            data_key="d",
            status="ok",
            reason="",
            history=[{"epoch": 1, "val_acc": 100 - error}],
            epochs=1,
            best_val_acc=100 - error,
        )
    store.dispose()


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refine")
    u = sqlite_url(folder)
    make_study(u, "u", 80, folder)
    make_study(u, "tpe", 30, folder, sampler="tpe")
    make_study(u, "pruned", 30, folder, pruner="asha")
    make_study(u, "few", 10, folder)
    make_study(u, "u.final", 30, folder)
    make_study(u, "vae", 30, folder, space={"task": "vae"})
    make_study(u, "refs", 30, folder)
    store = Store(u)
    store.set_study_values("refs", references={"resnet20_cifar": store.runs("refs")[0].arch_key})
    store.dispose()
    return u


def test_the_api_narrows_the_planted_dimension_and_keeps_the_irrelevant_one(url, tmp_path):
    r = nas_res.refine("u", storage=url, repeats=200, out=tmp_path / "refined.yaml")
    dims = {d.name: d for d in r.dims}
    assert dims["block"].verdict == NARROWED and dims["block"].good == ("basic",)
    assert dims["width"].verdict == KEPT and dims["width"].good == (16, 32)
    assert r.narrowed == ["block"] and [d.name for d in r.dims][:2] == ["block", "depth1"]  # the template's order
    assert r.size < r.old_size and r.size == load_space(tmp_path / "refined.yaml").size()
    assert r.kept["exact"] and r.kept["value"] == pytest.approx(r.size / r.old_size)  # no budget: all feasible
    inside = [m for m in r.models if m.inside]
    assert inside and all(m.values["block"] == "basic" for m in inside)
    assert r.errors["inside"]["n"] == len(inside) and r.errors["inside"]["mean"] < r.errors["all"]["mean"]
    assert nas_res.refine("u", storage=url, repeats=200).dims == r.dims  # seeded: the same verdicts again


def test_reference_nets_are_left_out_with_a_note(url):
    r = nas_res.refine("refs", storage=url, repeats=50)
    assert len(r.models) == 29 and 0 not in [m.trial for m in r.models]
    assert any("1 reference net(s) left out" in n for n in r.notes)


def test_the_command_writes_a_template_space_show_loads_and_a_picture(url, tmp_path, runner):
    out, png = tmp_path / "refined.yaml", tmp_path / "refine.png"
    r = runner.invoke(
        app, ["refine", "u", "--storage", url, "--out", str(out), "--plot", str(png), "--repeats", REPEATS]
    )
    assert r.exit_code == 0, r.output
    flat = " ".join(r.stdout.split())
    assert "narrowed" in flat and "in-sample" in flat and "only sampling the refined space anew tests it" in flat
    assert "refined space: 216 architectures (was 432" in flat and "keeps 50.0%" in flat
    text = out.read_text()
    assert "block: basic  # refined: values {basic} of 2 values, n=80" in text and "KS p=" in text
    assert "width: [16, 32]\n" in text  # kept as it was
    shown = runner.invoke(app, ["space", "show", str(out)])
    assert shown.exit_code == 0 and "216" in shown.stdout, shown.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    page = tmp_path / "refine.html"
    r = runner.invoke(app, ["refine", "u", "--storage", url, "--plot", str(page), "--repeats", REPEATS])
    assert r.exit_code == 0 and "<table" in page.read_text() and "not written: give --out" in r.stderr


def test_the_json_has_every_dimension_and_the_refined_space(url, runner):
    r = runner.invoke(app, ["refine", "u", "--storage", url, "--json", "--repeats", REPEATS])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    keys = {"study", "space", "budget", "dims", "fixed", "template", "size", "old_size", "kept", "errors", "models"}
    assert keys <= set(data) and data["narrowed"] == ["block"]
    block = next(d for d in data["dims"] if d["name"] == "block")
    assert {"values", "good", "range", "low", "high", "wins", "n", "inside", "outside", "p", "verdict", "tests"} <= set(
        block
    )
    assert block["verdict"] == "narrowed" and block["good"] == ["basic"] and block["tests"][0]["p"] < 1e-6
    assert data["errors"]["inside"]["n"] == sum(m["inside"] for m in data["models"]) == block["inside"]
    assert parse_spec(yaml.safe_load(data["template"]), "json").dims["block"].values == ("basic",)


@pytest.mark.parametrize(
    ("study", "needles"),
    [
        ("tpe", ("'tpe'", "sampled by tpe", "not uniform samples", "--sampler random --pruner none")),
        ("pruned", ("pruned (asha)", "not comparable across models")),
        ("few", ("10 ranked model(s)", "at least 20")),
        ("u.final", ("re-trains the best of 'u'", "hand-picked")),
        ("vae", ("VAE",)),
        ("nope", ("no study 'nope'", "u, tpe, pruned")),
    ],
)
def test_what_is_not_a_uniform_sample_is_refused_with_its_reason(url, runner, study, needles):
    r = runner.invoke(app, ["refine", study, "--storage", url])
    text = r.stdout + r.stderr
    assert r.exit_code == 2 and "Traceback" not in text and text.count("error:") == 1, text
    flat = " ".join(text.split())
    for needle in needles:
        assert needle in flat, flat


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--share", "0"], "--share: must be a fraction in (0, 1]"),
        (["--repeats", "0"], "--repeats: must be a whole number"),
        (["--level", "1"], "--level: must be a confidence level"),
        (["--alpha", "1.5"], "--alpha: must be a significance level"),
        (["--out", "refined.txt"], "--out: refined.txt must end in .yaml"),
        (["--plot", "refine.bmpx"], "format 'bmpx'"),
    ],
)
def test_bad_options_are_refused_before_the_study_is_read(runner, tmp_path, args, needle):
    r = runner.invoke(app, ["refine", "nope", "--storage", sqlite_url(tmp_path), *args])
    assert r.exit_code == 2 and needle in " ".join(r.stderr.split()), r.output
    assert not (tmp_path / "db.sqlite").exists()


def test_the_api_refuses_as_the_command_does(url):
    with pytest.raises(ResnasError, match="share: must be"):
        nas_res.refine("u", storage=url, share=2)
    with pytest.raises(ResnasError, match="pruned"):
        nas_res.refine("pruned", storage=url)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as c:  # the store was only read
        assert c.execute("select count(*) from resnas_runs where study = 'u'").fetchone() == (80,)
