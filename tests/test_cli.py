"""The `resnas` command through typer's runner: tables for people, JSON for scripts, clean errors."""

import json

import pytest
import yaml
from nas_res.cli.main import app

from nas_res import cost, zoo


def run(runner, *args, code=0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_help_explains_the_flops_convention(runner):
    out = run(runner, "space", "sample", "--help").output
    assert "fvcore" in out and "4.11" in out


def test_zoo(runner):
    assert "resnext50_32x4d" in run(runner, "zoo").output
    data = json.loads(run(runner, "zoo", "--json").output)
    assert {d["name"] for d in data} == set(zoo.names())
    one = json.loads(run(runner, "zoo", "resnet50", "--json").output)
    assert one["cost"]["flops"] == 4_111_512_576 and one["arch"]["block"] == "bottleneck"
    assert "stages:" in run(runner, "zoo", "resnet18").output


def test_cost_and_verify(runner, tmp_path):
    out = run(runner, "cost", "resnet20_cifar", "--verify").output
    assert "40,931,968" in out and out.count("match") >= 3 and "MISMATCH" not in out
    data = json.loads(run(runner, "cost", "resnet20_cifar", "--verify", "--json").output)
    assert data["match"] and data["fvcore"]["flops"] == data["cost"]["flops"] == 40_931_968
    assert set(data["parts"]) == {"stem", "layer1", "layer2", "layer3", "head"}
    path = tmp_path / "net.yaml"
    path.write_text(zoo.get("mnist_resnet").to_yaml())
    data = json.loads(run(runner, "cost", str(path), "--resolution", "32", "--json").output)
    assert data["cost"]["flops"] == cost(zoo.get("mnist_resnet"), 32).flops


def test_iso(runner):
    data = json.loads(run(runner, "iso", "--like", "resnet50", "--cardinality", "1,2,4,8,32", "--json").output)
    assert [d["label"] for d in data] == ["1x64d", "2x40d", "4x24d", "8x14d", "32x4d"]
    assert "2-2-2-2" in run(runner, "iso", "--like", "resnet50", "--depths", "2-2-2-2", "--match", "flops").output


def test_spaces_and_show(runner):
    data = json.loads(run(runner, "spaces", "--json").output)
    assert {d["name"] for d in data} >= {
        "resnet",
        "resnext",
        "cifar-resnet",
        "cifar-resnext",
        "preact",
        "plain-vs-residual",
    }
    out = run(runner, "space", "show", "resnext", "--budget", "4GFLOPs").output
    assert "2,064,384" in out and "95% CI" in out
    data = json.loads(run(runner, "space", "show", "cifar-resnet", "--budget", "100MFLOPs", "--json").output)
    assert data["feasible"]["exact"] and 0 < data["feasible"]["fraction"] < 1


def test_sample(runner):
    data = json.loads(
        run(
            runner,
            "space",
            "sample",
            "resnext",
            "--budget",
            "3.8-4.2GFLOPs",
            "--max-params",
            "30M",
            "-n",
            "5",
            "--seed",
            "3",
            "--json",
        ).output
    )
    assert len(data) == 5 and len({d["key"] for d in data}) == 5
    for d in data:
        assert 3.8e9 <= d["cost"]["flops"] <= 4.2e9 and d["cost"]["params"] <= 30e6
        assert set(d["arch"]) >= {"stages", "block", "shortcut"}
    again = json.loads(
        run(
            runner,
            "space",
            "sample",
            "resnext",
            "--budget",
            "3.8-4.2GFLOPs",
            "--max-params",
            "30M",
            "-n",
            "5",
            "--seed",
            "3",
            "--json",
        ).output
    )
    assert again == data
    out = run(runner, "space", "sample", "resnext", "--budget", "4GFLOPs", "-n", "3").output
    assert "3 candidates" in out


def test_sampled_json_rebuilds_the_same_arch(runner, tmp_path):
    data = json.loads(run(runner, "space", "sample", "preact", "-n", "1", "--json").output)[0]
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(data))
    again = json.loads(run(runner, "cost", str(path), "--json").output)
    assert again["key"] == data["key"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["cost", "resnet51"], "neither a zoo name"),
        (["cost", "missing.yaml"], "cannot read"),
        (["space", "show", "nospace"], "unknown space"),
        (["space", "sample", "resnext", "--budget", "10MFLOPs"], "cheapest candidate"),
        (["space", "sample", "resnext", "--budget", "four"], "cannot read 'four'"),
        (["space", "sample", "resnext", "-n", "0"], "at least 1"),
        (["iso", "--like", "resnet18", "--cardinality", "1,2"], "bottleneck reference"),
        (["iso", "--like", "resnet50", "--cardinality", "a,b"], "comma-separated"),
        (["iso", "--like", "resnet50"], "exactly one"),
        (["cost", "resnet50", "--resolution", "0"], "positive"),
    ],
)
def test_user_errors_exit_2_with_one_message(runner, args, needle):
    result = run(runner, *args, code=2)
    assert needle in result.output
    assert "error:" in result.output
