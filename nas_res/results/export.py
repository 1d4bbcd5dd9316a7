"""A study's best architectures as files: arch files with cost, metrics and provenance, weights, ONNX.

Every file goes through `write_atomic`: written beside its name and renamed, so a file or link already
there is replaced, never written through, and nothing outside the chosen folder changes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..arch import Arch
from ..checkpoint import trained_model
from ..data import load_data
from ..errors import ResnasError
from ..evaluation import evaluate
from ..files import write_atomic, write_text
from ..model import build
from .record import Run
from .report import check_top, pareto, rank, study_runs
from .storage import safe_url
from .store import Store


def export(
    store: Store,
    study: str,
    out_dir: str | Path,
    *,
    top: int = 1,
    front: bool = False,
    fmt: str = "yaml",
    weights: bool = False,
    onnx: bool = False,
    test: bool = False,
    data_dir: str | None = None,
) -> list[Path]:
    """Arch files `resnas train` and `nas_res.build` load, with cost, metrics and provenance beside the arch.

    `test=True` first evaluates the chosen models on the test split (stored, shown by the leaderboard)."""
    import yaml

    if fmt not in ("yaml", "json"):
        raise ResnasError(f"must be yaml or json; got {fmt!r}", field="--format")
    check_top(top)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    all_runs = study_runs(store, study)
    rows = rank(all_runs)
    if not rows:
        raise ResnasError(f"study {study!r} has no finished trial to export yet", field="study")
    chosen = pareto(rows) if front else rows[:top]
    runs = {r.trial: r for r in all_runs}
    if test:
        evaluate_runs(store, study, chosen, runs, data_dir=data_dir)
    config = store.config_of(study)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResnasError(f"cannot create the folder {out_dir} ({e.strerror or e})", field="--out") from None
    written = []
    for row in chosen:
        run = runs[row["trial"]]
        record = {
            "arch": run.arch,
            "cost": {
                "flops": row["flops"],
                "params": row["params"],
                "acts": row["acts"],
                "resolution": run.arch["resolution"],
            },
            "metrics": {
                "val_acc": row["val_acc"],
                "test_acc": row["test_acc"],
                "epochs": row["epochs"],
                "rank": row["rank"],
                "history": run.history,
            },
            "provenance": {
                "study": study,
                "trial": row["trial"],
                "storage": safe_url(store.url),
                "space": config["space_name"],
                "budget": config["budget_text"],
                "dataset": config["dataset"],
                "val_size": config["val_size"],
                "split_seed": config["split_seed"],
                "recipe": run.recipe,
                "reused_from": run.reused_from,
                "resnas": run.version,
                "arch_key": row["arch_key"],
            },
        }
        stem = out_dir / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', study).lstrip('.')}-trial{row['trial']:04d}"
        path = stem.with_suffix(f".{fmt}")
        text = yaml.safe_dump(record, sort_keys=False) if fmt == "yaml" else json.dumps(record, indent=2) + "\n"
        written.append(write_text(path, text, field="--out"))
        if weights:
            with open(_check_checkpoint(run, study, "--weights", ""), "rb") as src:
                written.append(
                    write_atomic(stem.with_suffix(".pt"), lambda f: shutil.copyfileobj(src, f), field="--out")
                )
        if onnx:
            dest = stem.with_suffix(".onnx")
            write_onnx(Arch.from_dict(run.arch), run.checkpoint, dest)
            written.append(dest)
    return written


def write_onnx(arch: Arch, checkpoint_path: str | None, path: Path) -> bool:
    """The network as ONNX (batch, height and width dynamic); trained weights when the checkpoint exists.

    Returns whether the weights were the trained ones."""
    import warnings

    import torch

    trained = checkpoint_path is not None and Path(checkpoint_path).exists()
    model = (trained_model(checkpoint_path)[0] if checkpoint_path is not None and trained else build(arch)).eval()
    x = torch.zeros(1, arch.in_channels, arch.resolution, arch.resolution)

    def write(f) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model,
                    (x,),
                    f,
                    dynamo=False,
                    input_names=["images"],
                    output_names=["logits"],
                    dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
                )
            except OSError:  # the file itself: write_atomic names it
                raise
            except Exception as e:  # noqa: BLE001 - exporter failures are reported, not raised as tracebacks
                raise ResnasError(
                    f"ONNX export of {arch.summary()} failed: {type(e).__name__}: {e}", field="--onnx"
                ) from None

    write_atomic(path, write, field="--out")
    return trained


def evaluate_runs(
    store: Store,
    study: str,
    rows: list[dict],
    runs: dict[int, Run],
    *,
    data_dir: str | None = None,
    device: str = "auto",
) -> None:
    """The explicit final evaluation: each row's trained weights on the test split; stored with its run."""
    config = store.config_of(study)
    data = load_data(
        config["dataset"], data_dir=data_dir, val_size=config["val_size"], split_seed=config["split_seed"], test=True
    )
    for row in rows:
        run = runs[row["trial"]]
        path = _check_checkpoint(run, study, "--test", " to evaluate")
        row["test_acc"] = evaluate(trained_model(path)[0], data, "test", device=device)["top1"]
        store.set_test_acc(run.id, row["test_acc"])


def _check_checkpoint(run: Run, study: str, field: str, purpose: str) -> str:
    """The run's checkpoint, which must be on this machine for what `field` asks."""
    if not run.checkpoint or not Path(run.checkpoint).exists():
        raise ResnasError(
            f"trial {run.trial} of {study!r} has no checkpoint on this machine "
            f"({run.checkpoint or 'none recorded'}){purpose}",
            field=field,
        )
    return run.checkpoint


def _check_out_dir(out_dir: Path) -> None:
    """--out must be a folder, or a path where one can be made: checked before anything is evaluated."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ResnasError(f"{out_dir} is a file, not a folder; give a folder for the exported files", field="--out")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ResnasError(f"cannot create the folder {out_dir}: {parent} is a file", field="--out")
            break
