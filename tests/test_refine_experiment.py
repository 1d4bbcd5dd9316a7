"""The refinement loop as an experiment: a `refine: ARM` arm (its space arm's models refine that space,
which is sampled anew), the complexity-normalised KS test and the bootstrap intervals that judge it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from nas_res.cli.main import app
from scipy import stats
from servers import sqlite_url

from nas_res import ResnasError
from nas_res.experiments import judge, load_experiment
from nas_res.experiments.checks import FAILS, HOLDS, UNSURE, Check
from nas_res.experiments.edf import bootstrap_difference, normalised_ks
from nas_res.experiments.good_range import judge_range
from nas_res.experiments.spec import parse_experiment
from nas_res.results.refine import refine_dim

SPACED = {"space": "plain-vs-residual", "samples": 20, "budget": "20MFLOPs"}  # 24 of its nets fit


def loop(**arms) -> dict:
    return {
        "experiment": "loop",
        "dataset": "synthetic:1x8x8:4:300",
        "val_size": 60,
        "seeds": 1,
        "recipe": {"preset": "fast", "batch_size": 32},
        "epochs": 1,
        "test": False,
        "arms": arms or {"spaced": SPACED, "again": {"refine": "spaced"}},
        "checks": [
            {"metric": "val_error", "kind": "edf_lower", "arms": ["again", "spaced"]},
            {"metric": "val_error", "kind": "good_range", "arm": "again", "dimension": "width", "value": 16},
        ],
    }


RULE = {"metric": "val_error", "kind": "good_range", "arm": "refined", "dimension": "width_multiplier", "value": 2.0}
GRID = (1.0, 1.5, 2.0, 2.5, 3.0)


def rule_verdict(values: list[float], errors: list[float], value: float = 2.0):
    dim = refine_dim("width_multiplier", GRID, values, errors, numeric=True)
    check = Check.parse({**RULE, "value": value}, "checks[0]", {"refined"}, {"refined"}, "x.yaml")
    return dim, judge_range(check, {"dims": [dim.to_dict()]})


def test_a_good_range_check_holds_inside_a_narrowed_range_and_fails_outside():
    rng = np.random.default_rng(0)
    values = [GRID[i % 5] for i in range(60)]  # 12 models per value
    errors = [30 + 4 * abs(v - 2.0) + rng.normal(0, 0.5) for v in values]  # the good models double
    dim, verdict = rule_verdict(values, errors)
    assert dim.verdict == "narrowed" and 2.0 in dim.good and 1.0 not in dim.good
    assert verdict.verdict == HOLDS and "2 is inside" in verdict.why and verdict.to_dict()["range"] == dim.range_text()
    assert rule_verdict(values, errors, value=1.0)[1].verdict == FAILS


def test_a_good_range_check_is_inconclusive_where_nothing_is_narrowed():
    rng = np.random.default_rng(1)
    values = [GRID[i % 5] for i in range(40)]
    dim, verdict = rule_verdict(values, [30 + rng.normal(0, 2) for _ in values])  # no effect at all
    assert dim.verdict != "narrowed" and verdict.verdict == UNSURE
    assert "only a range the evidence narrows" in verdict.why
    check = Check.parse(RULE, "checks[0]", {"refined"}, {"refined"}, "x.yaml")
    assert judge_range(check, None).verdict == UNSURE  # the space arm still training
    assert "not an open dimension" in judge_range(check, {"dims": [dim.to_dict() | {"name": "depth1"}]}).why


@pytest.mark.parametrize(
    ("check", "field", "needle"),
    [
        ({**RULE, "arm": "spaced"}, "checks[1].arm", "not a refine arm"),
        ({**RULE, "arm": "again", "metric": "val_acc"}, "checks[1].metric", "use val_error"),
        ({**RULE, "arm": "again", "arms": ["again"]}, "checks[1].arms", "names `arm`"),
        ({**RULE, "arm": "again", "value": [2]}, "checks[1].value", "one value"),
        ({"metric": "val_error", "kind": "edf_lower", "arms": ["again", "spaced"], "value": 2}, "dimension", "only"),
    ],
)
def test_a_good_range_check_is_refused_where_it_cannot_be_judged(check, field, needle):
    data = loop()
    data["checks"] = [data["checks"][0], check]
    with pytest.raises(ResnasError) as e:
        parse_experiment(data, "quick", "loop.yaml")
    assert needle in str(e.value) and field in str(e.value), str(e.value)


def test_with_equal_weights_the_normalised_gap_is_scipys_ks_statistic():
    rng = np.random.default_rng(0)
    a, b = list(rng.normal(0, 1, 40)), list(rng.normal(0.8, 1, 40))
    flops = [1000] * 40  # one bin: every weight is 1/n
    found = normalised_ks(a, flops, b, flops)
    assert found["lower"]["D"] == pytest.approx(stats.ks_2samp(a, b, alternative="greater").statistic)
    assert found["higher"]["D"] == pytest.approx(stats.ks_2samp(a, b, alternative="less").statistic)
    assert found["lower"]["p"] < 0.01 < found["higher"]["p"]  # the planted shift, one way only


def test_normalisation_removes_an_edge_that_is_only_cheaper_models(monkeypatch):
    # error falls with FLOPs alike in both arms; arm a simply drew more large models. Under that null the
    # normalised p is uniform: of 10 such pairs, at most 2 may fall under 5% (a permutation across FLOPs bins,
    # which ignores how few models an arm has in a bin, put most of them there)
    monkeypatch.setattr("nas_res.experiments.edf.PERMUTATIONS", 400)
    check, ps = Check("c", "val_error", "edf_lower", ("a", "b")), []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        fa = [int(x) for x in rng.choice([10**6, 10**7], 60, p=[0.2, 0.8])]
        fb = [int(x) for x in rng.choice([10**6, 10**7], 60, p=[0.8, 0.2])]
        a, b = ([(30.0 if x == 10**6 else 20.0) + rng.normal(0, 1) for x in f] for f in (fa, fb))
        assert stats.ks_2samp(a, b, alternative="greater").pvalue < 1e-4  # raw: a looks far better
        ps.append(normalised_ks(a, fa, b, fb)["lower"]["p"])
        if ps[-1] > 0.05:
            verdict = judge(check, {"a": a, "b": b}, flops={"a": fa, "b": fb})
            assert verdict.verdict == UNSURE and "complexity-normalised" in verdict.why
    assert sum(p < 0.05 for p in ps) <= 2, ps


def test_bootstrap_intervals_of_the_median_and_the_best_model():
    rng = np.random.default_rng(2)
    a, b = list(rng.normal(10, 1, 50)), list(rng.normal(12, 1, 50))
    med = bootstrap_difference(a, b)
    assert med["diff"] == pytest.approx(np.median(a) - np.median(b))
    assert med["interval"][0] < -2 + 0.8 and med["interval"][1] < 0  # covers about -2, below 0
    best = bootstrap_difference(a, b, np.min)
    assert best["a"] == min(a) and best["interval"][0] <= best["diff"] <= best["interval"][1]
    low, high = [float(x) for x in range(30)], [x + 20.0 for x in range(30)]
    flops = {"a": [10**6] * 30, "b": [10**6] * 30}
    check = Check("c", "val_error", "edf_lower", ("a", "b"))
    assert judge(check, {"a": low, "b": high}, flops=flops).verdict == HOLDS
    assert judge(check, {"a": high, "b": low}, flops=flops).verdict == FAILS


@pytest.mark.parametrize(
    ("arms", "field", "needle"),
    [
        ({"spaced": SPACED, "again": {"refine": "nope"}}, "arms.again.refine", "not a space arm; space arms: spaced"),
        ({"one": {"zoo": "resnet20_cifar"}, "again": {"refine": "one"}}, "arms.again.refine", "not a space arm"),
        ({"spaced": {**SPACED, "with": {"zero_init_last_bn": True}}, "again": {"refine": "spaced"}}, "", "widened"),
        ({"spaced": SPACED, "again": {"refine": "spaced", "samples": 5}}, "arms.again.samples", "as many models"),
    ],
)
def test_a_refine_arm_names_a_plain_space_arm(arms, field, needle):
    with pytest.raises(ResnasError) as e:
        parse_experiment(loop(**arms), "quick", "loop.yaml")
    assert needle in str(e.value) and field in str(e.value), str(e.value)


@pytest.mark.parametrize(("name", "space"), [("refine", "small-resnext"), ("width-rule", "small-rules")])
def test_the_builtin_refine_experiments_load_with_their_refine_arm(name, space):
    for scale in ("quick", "full"):
        exp = load_experiment(name, scale)
        assert exp.arm("refined").refines == "original" and not exp.arm("refined").archs
        assert exp.arm("original").draw["space"] == space and exp.arm("original").draw["plain"]
    assert [c.kind for c in load_experiment("width-rule").checks] == ["edf_lower", "good_range"]


def test_the_loop_trains_refines_resamples_and_reports(tmp_path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump(loop()))
    storage = sqlite_url(tmp_path)
    first = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--plot", "loop.png", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    arms = {a["name"]: a for a in report["arms"]}
    assert arms["spaced"]["runs"] == 20 and arms["again"]["runs"] == arms["again"]["models"] >= 1
    assert arms["again"]["refines"] == "spaced"
    found = report["experiment"]["refinements"]["again"]
    assert found["parent"] == "spaced" and found["resample_seed"] == 1 and found["errors"]["all"]["n"] == 20
    assert {d["verdict"] for d in found["dims"]} <= {"narrowed", "kept", "too few"}
    assert "again: spaced's space plain-vs-residual refined on 20 models" in first.stderr
    verdict, ranged = report["verdicts"]
    assert {"ks_lower", "median", "best"} <= set(verdict) and verdict["n"][1] == 20
    width = next(d for d in found["dims"] if d["name"] == "width")
    assert ranged["kind"] == "good_range" and ranged["range"] == width["range"]
    assert ranged["verdict"] == (UNSURE if width["verdict"] != "narrowed" else HOLDS if 16 in width["good"] else FAILS)
    assert (tmp_path / "loop-again-refine.png").stat().st_size > 10_000
    again = runner.invoke(app, ["experiment", "run", str(path), "--storage", storage, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["arms"] == report["arms"]  # resolved the same
    shown = runner.invoke(app, ["experiment", "report", "loop", "--storage", storage])
    assert shown.exit_code == 0 and "refined on 20 models" in shown.stdout and "KS p=" in shown.stdout
