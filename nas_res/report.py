"""After a search: studies, leaderboards and exported architectures, read from resnas's tables."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from pathlib import Path

from .arch import Arch
from .errors import ResnasError
from .store import UNCOUNTED, Store, safe_url

RANKED = ("ok", "stopped_early")


def studies(store: Store) -> list[dict]:
    """Every study in the storage with its trial counts and best validation accuracy."""
    out = []
    for name in store.study_names():
        config = store.study_config(name)
        rows = store.runs(name)
        ranked = [r for r in rows if r["status"] in RANKED and r["best_val_acc"] is not None]
        best = max(ranked, key=lambda r: r["best_val_acc"], default=None)
        out.append(
            {
                "study": name,
                "space": config["space_name"],
                "budget": config["budget_text"],
                "dataset": config["dataset"],
                "objective": config["objective"],
                "runs": sum(1 for r in rows if r["status"] not in UNCOUNTED),
                "trials": config.get("trials"),
                "trained": sum(1 for r in rows if r["reused_from"] is None and r["status"] in RANKED),
                "reused": sum(1 for r in rows if r["reused_from"] is not None),
                "pruned": sum(1 for r in rows if r["status"] == "pruned"),
                "failed": sum(1 for r in rows if r["status"] not in RANKED + ("pruned", "running") + UNCOUNTED),
                "running": sum(1 for r in rows if r["status"] == "running"),
                "lost": sum(1 for r in rows if r["status"] in UNCOUNTED),  # cut short from outside; retried
                "best_val_acc": best["best_val_acc"] if best else None,
                "best_summary": best["summary"] if best else None,
            }
        )
    return out


def leaderboard(store: Store, study: str, top: int | None = None, include_all: bool = False) -> list[dict]:
    """Runs ranked by best validation accuracy (ties: fewer FLOPs first); unranked runs after, if asked."""
    return rank(study_runs(store, study), top, include_all)


def check_top(top: int | None) -> None:
    """--top counts rows: 0 or a negative number is a mistake, not 'all' or 'all but the last'."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ResnasError(f"must be a positive number of rows; got {top!r}", field="--top")


def study_runs(store: Store, study: str) -> list[dict]:
    """A study's runs; a study the storage does not hold is an error that lists the ones it does."""
    if store.study_config(study) is None:
        known = store.study_names()
        raise ResnasError(
            f"no study {study!r} in {safe_url(store.url)}; studies there: "
            f"{', '.join(known) or 'none yet (run resnas search)'}",
            field="study",
        )
    return store.runs(study)


def rank(runs: list[dict], top: int | None = None, include_all: bool = False) -> list[dict]:
    ranked = sorted(
        (r for r in runs if r["status"] in RANKED and r["best_val_acc"] is not None),
        key=lambda r: (-r["best_val_acc"], r["flops"], r["trial"]),
    )
    out = [_row(r, i) for i, r in enumerate(ranked[:top] if top else ranked, 1)]
    if include_all:
        shown = {r["id"] for r in ranked}
        out += [_row(r, None) for r in runs if r["id"] not in shown]
    return out


def _row(r: dict, position: int | None) -> dict:
    arch = Arch.from_dict(r["arch"])
    stages = arch.stages
    cxd = f"{stages[0].groups}x{stages[0].mid // stages[0].groups}d" if arch.block == "bottleneck" else "-"
    return {
        "rank": position,
        "trial": r["trial"],
        "val_acc": r["best_val_acc"],
        "test_acc": r["test_acc"],
        "flops": r["flops"],
        "params": r["params"],
        "acts": r["acts"],
        "epochs": r["epochs"],
        "depth": arch.depth,
        "depths": "-".join(str(s.depth) for s in stages),
        "width": "-".join(str(s.width) for s in stages),
        "cxd": cxd,
        "block": arch.block,
        "shortcut": arch.shortcut,
        "unit_order": arch.unit_order,
        "status": r["status"],
        "reused": r["reused_from"] is not None,
        "arch_key": r["arch_key"],
        "summary": r["summary"],
        "wall_seconds": r["wall_seconds"],
        "checkpoint": r["checkpoint"],
    }


def pareto(rows: list[dict], cost: str = "flops") -> list[dict]:
    """Rows no other row beats on both accuracy (higher) and `cost` (lower)."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r[cost], -r["val_acc"])):
        if r["val_acc"] > best:
            front.append(r)
            best = r["val_acc"]
    return front


def compare(boards: dict[str, list[dict]]) -> list[dict]:
    """Per study: trained models, best, median and quartiles of validation accuracy, overall and inside
    the FLOPs range every study covers (matched complexity: a bigger space must not win by size alone)."""
    spans = [(min(r["flops"] for r in rows), max(r["flops"] for r in rows)) for rows in boards.values() if rows]
    lo, hi = (max(s[0] for s in spans), min(s[1] for s in spans)) if spans else (0, 0)
    out = []
    for name, rows in boards.items():
        matched = [r for r in rows if lo <= r["flops"] <= hi]
        out.append(
            {
                "study": name,
                "models": len(rows),
                **_stats([r["val_acc"] for r in rows]),
                "matched_flops": [lo, hi] if lo <= hi else None,
                "matched_models": len(matched),
                **{f"matched_{k}": v for k, v in _stats([r["val_acc"] for r in matched]).items()},
            }
        )
    return out


def _stats(accs: list[float]) -> dict:
    if not accs:
        return {"best": None, "median": None, "q25": None, "q75": None}
    q = statistics.quantiles(accs, n=4, method="inclusive") if len(accs) > 1 else [accs[0]] * 3
    return {"best": max(accs), "median": statistics.median(accs), "q25": q[0], "q75": q[2]}


def write_onnx(arch: Arch, checkpoint_path: str | None, path: Path) -> bool:
    """The network as ONNX (batch, height and width dynamic); trained weights when the checkpoint exists.

    Returns whether the weights were the trained ones."""
    import warnings

    import torch

    from .checkpoint import trained_model
    from .model import build

    trained = bool(checkpoint_path) and Path(checkpoint_path).exists()
    model = (trained_model(checkpoint_path)[0] if trained else build(arch)).eval()
    x = torch.zeros(1, arch.in_channels, arch.resolution, arch.resolution)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=False,
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}},
            )
        except Exception as e:  # exporter failures are reported, not raised through the CLI as tracebacks
            raise ResnasError(
                f"ONNX export of {arch.summary()} failed: {type(e).__name__}: {e}", field="--onnx"
            ) from None
    return trained


def evaluate_runs(
    store: Store,
    study: str,
    rows: list[dict],
    runs: dict[int, dict],
    *,
    data_dir: str | None = None,
    device: str = "auto",
) -> None:
    """The explicit final evaluation: each row's trained weights on the test split; stored with its run."""
    from .checkpoint import trained_model
    from .data import load_data
    from .train import evaluate

    config = store.study_config(study)
    data = load_data(
        config["dataset"], data_dir=data_dir, val_size=config["val_size"], split_seed=config["split_seed"], test=True
    )
    for row in rows:
        run = runs[row["trial"]]
        if not run["checkpoint"] or not Path(run["checkpoint"]).exists():
            raise ResnasError(
                f"trial {row['trial']} of {study!r} has no checkpoint on this machine "
                f"({run['checkpoint'] or 'none recorded'}) to evaluate",
                field="--test",
            )
        row["test_acc"] = evaluate(trained_model(run["checkpoint"])[0], data, "test", device=device)["top1"]
        store.set_test_acc(run["id"], row["test_acc"])


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
    runs = {r["trial"]: r for r in all_runs}
    if test:
        evaluate_runs(store, study, chosen, runs, data_dir=data_dir)
    config = store.study_config(study)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResnasError(f"cannot create the folder {out_dir} ({e.strerror or e})", field="--out") from None
    written = []
    for row in chosen:
        run = runs[row["trial"]]
        record = {
            "arch": run["arch"],
            "cost": {
                "flops": row["flops"],
                "params": row["params"],
                "acts": row["acts"],
                "resolution": run["arch"]["resolution"],
            },
            "metrics": {
                "val_acc": row["val_acc"],
                "test_acc": row["test_acc"],
                "epochs": row["epochs"],
                "rank": row["rank"],
                "history": run["history"],
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
                "recipe": run["recipe"],
                "reused_from": run["reused_from"],
                "resnas": run["version"],
                "arch_key": row["arch_key"],
            },
        }
        stem = out_dir / f"{re.sub(r'[^A-Za-z0-9._+-]', '_', study).lstrip('.')}-trial{row['trial']:04d}"
        path = stem.with_suffix(f".{fmt}")
        text = yaml.safe_dump(record, sort_keys=False) if fmt == "yaml" else json.dumps(record, indent=2) + "\n"
        _write_into(out_dir, path, lambda f: f.write(text.encode()))
        written.append(path)
        if weights:
            if not run["checkpoint"] or not Path(run["checkpoint"]).exists():
                raise ResnasError(
                    f"trial {row['trial']} of {study!r} has no checkpoint on this machine "
                    f"({run['checkpoint'] or 'none recorded'})",
                    field="--weights",
                )
            dest = stem.with_suffix(".pt")
            with open(run["checkpoint"], "rb") as src:
                _write_into(out_dir, dest, lambda f: shutil.copyfileobj(src, f))
            written.append(dest)
        if onnx:
            dest = stem.with_suffix(".onnx")
            tmp = _free_slot(out_dir, dest)
            try:
                write_onnx(Arch.from_dict(run["arch"]), run["checkpoint"], tmp)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            written.append(dest)
    return written


def _check_out_dir(out_dir: Path) -> None:
    """--out must be a folder, or a path where one can be made: checked before anything is evaluated."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ResnasError(f"{out_dir} is a file, not a folder; give a folder for the exported files", field="--out")
    for parent in out_dir.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ResnasError(f"cannot create the folder {out_dir}: {parent} is a file", field="--out")
            break


def _free_slot(out_dir: Path, dest: Path) -> Path:
    """A temporary name beside `dest`, refused when `dest` is a folder (nothing to replace it with)."""
    if dest.is_dir() and not dest.is_symlink():
        raise ResnasError(f"cannot write {dest}: a folder of that name is in the way", field="--out")
    return out_dir / f".{dest.name}.{os.getpid()}.tmp"


def _write_into(out_dir: Path, dest: Path, write) -> None:
    """Write a file inside `out_dir` via a temporary file and a rename: an existing file (or symlink) of
    that name is replaced, never written through, so nothing outside `out_dir` changes."""
    tmp = _free_slot(out_dir, dest)
    try:
        tmp.unlink(missing_ok=True)  # a stale one (or a planted link) is removed, not written through
        with open(tmp, "xb") as f:
            write(f)
        os.replace(tmp, dest)
    except OSError as e:
        raise ResnasError(f"cannot write {dest} ({e.strerror or e})", field="--out") from None
    finally:
        tmp.unlink(missing_ok=True)
