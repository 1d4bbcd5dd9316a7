"""`resnas train` and `resnas evaluate` through typer's runner."""

from __future__ import annotations

import json

from nas_res.cli.main import app

from nas_res import zoo


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_train_then_evaluate_on_digits(runner, tmp_path):
    out = tmp_path / "run"
    r = _ok(
        runner.invoke(
            app,
            [
                "train",
                "mnist_resnet",
                "--dataset",
                "digits",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--test",
                "--json",
            ],
        )
    )
    record = json.loads(r.stdout)
    assert record["status"] == "ok" and record["epochs"] == 2 and len(record["history"]) == 2
    assert record["recipe"]["epochs"] == 2 and record["recipe"]["batch_size"] == 64
    assert record["arch"] == zoo.get("mnist_resnet").to_dict() and record["data"]["name"] == "digits"
    assert record["test"]["images"] == 359 and record["test"]["top1"] > 50
    assert record["cost"]["flops"] == 20406592 and record["cost"]["data_resolution"] == 8
    assert json.loads((out / "metrics.json").read_text())["arch_key"] == record["arch_key"]
    assert (out / "checkpoint.pt").exists()

    r = _ok(runner.invoke(app, ["evaluate", str(out / "checkpoint.pt"), "--device", "cpu", "--json"]))
    ev = json.loads(r.stdout)
    assert ev["dataset"] == "digits" and ev["epoch"] == 2 and ev["top1"] == record["test"]["top1"]
    r = _ok(runner.invoke(app, ["evaluate", str(out), "--device", "cpu"]))
    assert "top-1" in r.stdout and "digits test split" in r.stdout

    again = runner.invoke(app, ["train", "mnist_resnet", "--epochs", "2", "--device", "cpu", "--out", str(out)])
    assert again.exit_code == 2 and "already holds a checkpoint" in again.stderr  # nothing overwritten
    longer = runner.invoke(
        app,
        [
            "train",
            "mnist_resnet",
            "--epochs",
            "3",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--resume",
        ],
    )
    assert longer.exit_code == 2 and "epochs=2 (now 3)" in longer.stderr
    done = _ok(
        runner.invoke(
            app,
            [
                "train",
                "mnist_resnet",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--resume",
            ],
        )
    )
    assert "best val acc" in done.stdout


def test_table_output_and_fitting_a_zoo_net(runner, tmp_path):
    r = _ok(
        runner.invoke(
            app, ["train", "resnet20_cifar", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "a")]
        )
    )
    assert "in_channels 3->1" in r.stderr  # a zoo family adapts to the data, and says so
    assert "val acc" in r.stdout and "FLOPs at the data's 8x8" in r.stdout and "saved" in r.stdout


def test_arch_file_that_does_not_fit_is_an_error_unless_fitted(runner, tmp_path):
    arch_file = tmp_path / "net.yaml"
    arch_file.write_text(zoo.get("resnet20_cifar").to_yaml())
    r = runner.invoke(app, ["train", str(arch_file), "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "does not fit" in r.stderr and "--fit" in r.stderr
    assert "Traceback" not in r.output
    _ok(
        runner.invoke(
            app, ["train", str(arch_file), "--fit", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "y")]
        )
    )


def test_user_mistakes_are_one_line_errors(runner, tmp_path):
    cases = [
        (["train", "mnist_resnet", "--dataset", "imagenet"], "unknown dataset"),
        (
            ["train", "mnist_resnet", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--no-download"],
            "data_batch_1",
        ),
        (["train", "mnist_resnet", "--lr", "-1"], "--lr"),
        (["train", "mnist_resnet", "--optimizer", "lion"], "sgd, adamw"),
        (["train", "mnist_resnet", "--device", "tpu"], "unknown device"),
        (["train", "nonet"], "neither a zoo name"),
        (["train", "mnist_resnet", "--resume", "--out", str(tmp_path / "none")], "no such checkpoint"),
        (["evaluate", str(tmp_path / "missing.pt")], "no such checkpoint"),
    ]
    for args, message in cases:
        r = runner.invoke(
            app, args + ([] if "--out" in args else ["--out", str(tmp_path / "o")] if args[0] == "train" else [])
        )
        assert r.exit_code == 2, (args, r.output)
        assert message in r.stderr and "Traceback" not in r.output, (args, r.stderr)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    r = runner.invoke(app, ["evaluate", str(bad)])
    assert r.exit_code == 2 and "bad.pt" in r.stderr and "corrupt" in r.stderr
