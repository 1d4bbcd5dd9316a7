"""Experiments: files checked like templates, verdicts on constructed results, and one run end to end."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from nas_res.cli.main import app
from scipy import stats
from servers import sqlite_url

from nas_res import ResnasError
from nas_res.experiments import builtin_experiments, judge, load_experiment
from nas_res.experiments.checks import FAILS, HOLDS, UNSURE, Check, difference, pooled_sd
from nas_res.experiments.edf import normalised_weights
from nas_res.experiments.spec import SCALES, parse_experiment

DATA = "synthetic:1x8x8:4:300"
NET = {
    "block": "basic",
    "stem": "cifar",
    "stem_width": 4,
    "stages": [{"depth": 1, "width": 4}, {"depth": 1, "width": 8, "stride": 2}],
}


def tiny(**changes) -> dict:
    raw = {
        "experiment": "tiny",
        "title": "residual trains better than plain",
        "dataset": DATA,
        "val_size": 60,
        "seeds": 2,
        "recipe": {"preset": "fast", "batch_size": 32},
        "epochs": 1,
        "arms": {
            "plain": {"arch": {**NET, "shortcut": "none"}},
            "residual": {"arch": {**NET, "shortcut": "B"}},
            "deep": {"arch": {**NET, "shortcut": "B"}, "with": {"stem_width": 8}},
            "spaced": {"space": "plain-vs-residual", "where": {"shortcut": "none"}, "samples": 2, "budget": "6MFLOPs"},
        },
        "checks": [
            {"claim": "plain trains worse", "metric": "train_loss", "kind": "increasing", "arms": ["residual", "plain"]}
        ],
        "paper": {"source": "none", "metric": "train_loss", "values": {"plain": 1.0}},
    }
    raw.update(changes)
    return raw


# ---- the files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(
    "name", ["degradation", "shortcuts", "identity-mappings", "cardinality", "design-spaces", "vae-depth"]
)
def test_every_builtin_experiment_loads_at_every_scale(name, scale):
    assert name in builtin_experiments()
    exp = load_experiment(name, scale)
    assert exp.study == f"{name}-{scale}" and exp.arms and exp.checks
    for check in exp.checks:
        assert set(check.arms) <= {a.name for a in exp.arms}


def test_per_scale_values_and_arms_of_one_scale_only():
    raw = tiny(
        epochs={"quick": 1, "full": 9}, arms={**tiny()["arms"], "huge": {"arch": {"full": {**NET, "shortcut": "B"}}}}
    )
    quick, full = parse_experiment(raw, "quick", "x.yaml"), parse_experiment(raw, "full", "x.yaml")
    assert (quick.recipe.epochs, full.recipe.epochs) == (1, 9)
    assert quick.left_out == ("huge",) and "huge" in {a.name for a in full.arms}
    assert quick.arm("deep").archs[0].stem_width == 8  # `with` changes the arch
    assert len(quick.arm("spaced").archs) == 2 and all(a.shortcut == "none" for a in quick.arm("spaced").archs)


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"arms": {}}, "arms", "non-empty"),
        ({"colour": 1}, "colour", "unknown key"),
        ({"seeds": 0}, "seeds", "from 1 to 100"),
        ({"recipe": {"lr": -1}}, "recipe.lr", "non-negative"),
        ({"arms": {"a": {"zoo": "resnet999"}}}, "arms.a.zoo", "unknown zoo name"),
        ({"arms": {"a": {"zoo": "resnet20_cifar", "arch": NET}}}, "arms.a", "exactly one source"),
        ({"arms": {"a": {"zoo": "resnet20_cifar", "with": {"shortcut": "Z"}}}}, "shortcut", "must be one of"),
        (
            {"checks": [{"metric": "train_loss", "kind": "bigger", "arms": ["plain", "residual"]}]},
            "checks[0].kind",
            "must be one of",
        ),
        (
            {"checks": [{"metric": "train_loss", "kind": "increasing", "arms": ["plain", "nope"]}]},
            "checks[0].arms",
            "no arm 'nope'",
        ),
        (
            {"checks": [{"metric": "train_loss", "kind": "equal", "arms": ["plain", "residual"]}]},
            "checks[0].margin",
            "margin > 0",
        ),
        ({"seeds": {"full": 3}}, "seeds", "no value for scale 'quick'"),
        ({"paper": {"values": {"ghost": 1}}}, "paper.values.ghost", "no such arm"),
        ({"arms": {"s": {"space": "plain-vs-residual", "where": {"shortcut": "Z"}}}}, "arms.s.where", "takes"),
    ],
)
def test_mistakes_in_an_experiment_file_name_the_file_and_field(change, field, words):
    with pytest.raises(ResnasError) as e:
        parse_experiment(tiny(**change), "quick", "exp.yaml")
    assert e.value.where == "exp.yaml" and field in e.value.field and words in e.value.bare


def test_cli_refuses_a_bad_file_with_one_line(tmp_path, runner):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tiny(seeds="many")))
    result = runner.invoke(app, ["experiment", "run", str(path), "--storage", sqlite_url(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "bad.yaml: seeds: must be an integer" in result.output
    unknown = runner.invoke(app, ["experiment", "run", "no-such-experiment"])
    assert unknown.exit_code == 2 and "built in: cardinality, degradation" in unknown.output


# ---- verdicts -----------------------------------------------------------------------------------


def check(kind: str, arms: tuple, margin: float = 0.0, metric: str = "train_loss") -> Check:
    return Check("claim", metric, kind, arms, margin)


def test_pooled_interval_is_the_equal_variance_t_interval():
    a, b = [1.0, 1.2, 0.9], [1.5, 1.7, 1.4, 1.6]
    sd, df = pooled_sd([a, b])
    diff, lo, hi = difference(a, b, sd, df, 0.95)
    referee = stats.ttest_ind(b, a, equal_var=True).confidence_interval(0.95)
    assert df == 5 and math.isclose(lo, referee.low) and math.isclose(hi, referee.high)
    assert math.isclose(diff, sum(b) / 4 - sum(a) / 3)


def test_increasing_holds_fails_or_cannot_tell():
    up = {"a": [1.0, 1.1, 0.9], "b": [2.0, 2.1, 1.9], "c": [3.0, 3.1, 2.9]}
    assert judge(check("increasing", ("a", "b", "c")), up).verdict == HOLDS
    down = {"a": up["c"], "b": up["b"], "c": up["a"]}
    assert judge(check("increasing", ("a", "b", "c")), down).verdict == FAILS
    noisy = {"a": [1.0, 2.0, 0.2], "b": [1.2, 0.3, 2.4]}
    assert judge(check("increasing", ("a", "b")), noisy).verdict == UNSURE
    single = {"a": [1.0], "b": [5.0]}
    result = judge(check("increasing", ("a", "b")), single)
    assert result.verdict == UNSURE and "one run per arm" in result.why
    assert judge(check("increasing", ("a", "b")), {"a": [1.0, 1.1]}).verdict == UNSURE  # b not trained yet


def test_bonferroni_widens_the_intervals_with_more_pairs():
    values = {"a": [1.0, 1.1, 0.9], "b": [1.25, 1.35, 1.15], "c": [1.5, 1.6, 1.4]}
    one = judge(check("increasing", ("a", "b")), values).pairs[0]
    two = judge(check("increasing", ("a", "b", "c")), values).pairs[0]
    assert (two.hi - two.lo) > (one.hi - one.lo)


def test_margins_of_not_increasing_and_equal():
    flat = {"a": [1.00, 1.01, 0.99], "b": [1.005, 1.015, 0.995]}
    assert judge(check("not_increasing", ("a", "b"), margin=0.1), flat).verdict == HOLDS
    assert judge(check("equal", ("a", "b"), margin=0.1), flat).verdict == HOLDS
    rising = {"a": [1.0, 1.01, 0.99], "b": [1.5, 1.51, 1.49]}
    assert judge(check("not_increasing", ("a", "b"), margin=0.1), rising).verdict == FAILS
    assert judge(check("equal", ("a", "b"), margin=0.1), rising).verdict == FAILS
    assert judge(check("not_decreasing", ("b", "a"), margin=0.1), rising).verdict == FAILS


def test_lowest_and_highest():
    values = {"x": [0.5, 0.52, 0.48], "y": [1.0, 1.02, 0.98], "z": [2.0, 2.02, 1.98]}
    assert judge(check("lowest", ("x", "y", "z")), values).verdict == HOLDS
    assert judge(check("highest", ("z", "x", "y")), values).verdict == HOLDS
    assert judge(check("lowest", ("y", "x", "z")), values).verdict == FAILS


def test_edf_check_by_ks_tests():
    low = [float(i) for i in range(30)]
    high = [x + 20 for x in low]
    assert judge(check("edf_lower", ("a", "b"), metric="val_error"), {"a": low, "b": high}).verdict == HOLDS
    assert judge(check("edf_lower", ("a", "b"), metric="val_error"), {"a": high, "b": low}).verdict == FAILS
    same = judge(check("edf_lower", ("a", "b"), metric="val_error"), {"a": low, "b": low})
    assert same.verdict == UNSURE and same.extra["n"] == [30, 30]


def test_complexity_normalisation_weights_each_bin_equally():
    weights = normalised_weights({"a": [10, 10, 10, 1000], "b": [10, 1000, 1000, 1000]}, bins=2)
    assert weights["a"] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert weights["b"] == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])


# ---- end to end ---------------------------------------------------------------------------------


def test_experiment_runs_resumes_and_reports(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny()))
    storage = sqlite_url(tmp_path)
    first = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--plot", "tiny.png", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    arms = {a["name"]: a for a in report["arms"]}
    assert [arms[n]["runs"] for n in ("plain", "residual", "deep", "spaced")] == [2, 2, 2, 2]
    assert arms["spaced"]["sampled"] and arms["spaced"]["models"] == 2
    assert all(arms[n]["metrics"]["test_acc"]["n"] == 2 for n in ("plain", "residual"))  # tested: seeds 0 and 1
    assert arms["plain"]["paper"] == 1.0 and report["verdicts"][0]["verdict"] in (HOLDS, FAILS, UNSURE)
    assert len(arms["plain"]["curves"]["train_loss"]) == 2 and (tmp_path / "tiny.png").stat().st_size > 10_000
    again = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["arms"] == report["arms"]  # nothing trained twice
    shown = runner.invoke(app, ["experiment", "report", "tiny", "--storage", storage, "--plot", "tiny.html"])
    assert shown.exit_code == 0 and "verdict:" in shown.stdout and "plain trains worse" in shown.stdout
    assert "<table" in (tmp_path / "tiny.html").read_text()
    changed = tiny(recipe={"preset": "fast", "batch_size": 16})
    path.write_text(yaml.safe_dump(changed))
    refused = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage])
    assert refused.exit_code == 2 and "was run before with other settings" in refused.output
    missing = runner.invoke(app, ["experiment", "report", "nothing", "--storage", storage])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_timeout_stops_starting_runs_and_a_rerun_resumes(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny(arms={k: v for k, v in tiny()["arms"].items() if k != "spaced"})))
    storage = sqlite_url(tmp_path)
    cut = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--timeout", "1s", "--json"])
    assert cut.exit_code == 0, cut.output
    assert "--timeout reached" in cut.stderr
    assert sum(a["runs"] for a in json.loads(cut.stdout)["arms"]) < 6
    rest = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--json"])
    assert [a["runs"] for a in json.loads(rest.stdout)["arms"]] == [2, 2, 2]


ARMS = ["shallow", "deeper"]


def test_a_vae_experiment_runs_and_reports_losses_and_training_time(tmp_path, runner, monkeypatch):
    """task: vae makes every arm a VAE: a VAE study (ranked by validation negative ELBO, no test split),
    reported by training time, epochs and losses, judged on them."""
    monkeypatch.chdir(tmp_path)
    raw = tiny(
        task="vae",
        latent=4,
        recipe={"batch_size": 32, "patience": 1},  # over the vae preset
        arms={"shallow": {"arch": NET}, "deeper": {"arch": {**NET, "stages": [{"depth": 2, "width": 4}]}}},
        checks=[{"claim": "as good", "metric": "best_val_loss", "kind": "equal", "margin": 1000, "arms": ARMS}],
        paper={"source": "none", "metric": "val loss", "note": "qualitative"},
    )
    exp = parse_experiment(raw, "quick", "tiny.yaml")
    assert exp.task == "vae" and not exp.test and exp.recipe.optimizer == "adamw" and exp.recipe.patience == 1
    assert {(a.archs[0].task, a.archs[0].latent, a.archs[0].likelihood) for a in exp.arms} == {("vae", 4, "bernoulli")}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    storage = sqlite_url(tmp_path)
    ran = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--plot", "vae.png", "--json"])
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert report["experiment"]["task"] == "vae" and (tmp_path / "vae.png").stat().st_size > 10_000
    for arm in report["arms"]:
        m = arm["metrics"]
        assert arm["runs"] == 2 and m["test_acc"] is None and m["val_acc"] is None
        assert m["epochs"]["mean"] == 1 and m["train_seconds"]["mean"] > 0
        assert m["best_val_loss"]["mean"] == m["val_loss"]["mean"] > 0  # one epoch: the last is the best
        assert len(arm["curves"]["val_loss"][0]) == 1
    assert report["verdicts"][0]["verdict"] in (HOLDS, UNSURE)  # a margin of 1000 nats: not "does not hold"
    shown = runner.invoke(app, ["experiment", "report", "tiny", "--storage", storage])
    assert shown.exit_code == 0 and "training time" in shown.stdout and "lowest validation loss" in shown.stdout
    assert "accuracy" not in shown.stdout


@pytest.mark.parametrize(
    "change, field",
    [
        ({"task": "vae", "test": True}, "test"),
        ({"task": "gan"}, "task"),
        ({"latent": 8}, "latent"),
        ({"task": "vae", "likelihood": "poisson"}, "likelihood"),
        ({"task": "vae", "latent": 0}, "latent"),
    ],
)
def test_vae_fields_of_an_experiment_are_checked(change, field):
    with pytest.raises(ResnasError) as e:
        parse_experiment(tiny(**change), "quick", "tiny.yaml")
    assert e.value.field == field and "tiny.yaml" in str(e.value)
