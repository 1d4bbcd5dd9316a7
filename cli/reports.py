"""`resnas studies`, `leaderboard`, `compare`, `plot`, `export`: what a search found, as tables, pictures, files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer
from rich.table import Table

from nas_res import ResnasError
from nas_res.cost import human
from nas_res.results import Store, check_top, compare, export, leaderboard, safe_url, studies
from nas_res.results.plots import check_plot_file, compare_figure, html_table, save, study_figure
from nas_res.results.preprocessing import ONNX_INPUT_HELP, check_onnx_input
from nas_res.results.report import check_distinct

from .common import JSON_HELP, STORAGE_HELP, emit_json, out, user_errors

COLUMNS = [
    ("rank", "rank"),
    ("trial", "trial"),
    ("val acc %", "val_acc"),
    ("test acc %", "test_acc"),
    ("FLOPs", "flops"),
    ("params", "params"),
    ("epochs", "epochs"),
    ("depth", "depths"),
    ("width", "width"),
    ("CxD", "cxd"),
    ("shortcut", "shortcut"),
    ("order", "unit_order"),
    ("status", "status"),
]


def _cell(key: str, v) -> str:
    if v is None:
        return "-"
    if key in ("flops", "params"):
        return human(v)
    if key in ("val_acc", "test_acc"):
        return f"{v:.2f}"
    return str(v)


def print_leaderboard(study: str, rows: list[dict]) -> None:
    """The table; with unranked runs listed (--all), a last column says why each has no result."""
    columns = COLUMNS + ([("reason", "reason")] if any(r.get("reason") for r in rows) else [])
    table = Table(title=f"leaderboard: {study}")
    for title, key in columns:
        left = key in ("depths", "width", "cxd", "shortcut", "unit_order", "status", "reason")
        table.add_column(title, justify="left" if left else "right", overflow="fold" if key == "reason" else "ellipsis")
    for r in rows:
        status = r["status"] + (" (reused)" if r["reused"] else "")
        table.add_row(*[_cell(k, r[k]) if k != "status" else status for _, k in columns])
    out.print(table)
    if not rows:
        out.print("no finished trial yet")


@user_errors
def studies_cmd(
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Studies in the storage, with trial counts and the best result."""
    store = Store(storage)
    rows = studies(store)
    if as_json:
        return emit_json(rows)
    table = Table(title=f"studies in {safe_url(store.url)}")
    for col in (
        "study",
        "space",
        "budget",
        "dataset",
        "objective",
        "trials",
        "trained",
        "reused",
        "pruned",
        "failed",
        "running",
        "best val acc %",
        "best arch",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["study"],
            r["space"],
            r["budget"],
            r["dataset"],
            r["objective"],
            f"{r['runs']}/{r['trials']}",
            str(r["trained"]),
            str(r["reused"]),
            str(r["pruned"]),
            str(r["failed"]),
            str(r["running"]),
            _cell("val_acc", r["best_val_acc"]),
            r["best_summary"] or "-",
        )
    out.print(table)


@user_errors
def leaderboard_cmd(
    study: str = typer.Argument(..., help="Study name (see resnas studies)."),
    top: int = typer.Option(20, help="Rows to show."),
    include_all: bool = typer.Option(
        False, "--all", help="Also list pruned, failed and running runs, each with the reason it has no result."
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
):
    """A study's trained architectures ranked by validation accuracy."""
    check_top(top)
    rows = leaderboard(Store(storage), study, top=top, include_all=include_all)
    if as_json:
        return emit_json(rows)
    if as_csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [k for _, k in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        return typer.echo(buf.getvalue(), nl=False)
    print_leaderboard(study, rows)


@user_errors
def export_cmd(
    study: str = typer.Argument(..., help="Study name."),
    top: int = typer.Option(1, help="Export the K best."),
    front: bool = typer.Option(False, "--pareto", help="Export the accuracy/FLOPs Pareto front instead."),
    out_dir: Path = typer.Option(Path("exported"), "--out", help="Folder for the files."),
    fmt: str = typer.Option("yaml", "--format", help="yaml or json."),
    weights: bool = typer.Option(False, "--weights", help="Copy each trial's checkpoint beside it."),
    onnx: bool = typer.Option(
        False, "--onnx", help="Also write each model as ONNX (trained weights; preprocessing in its metadata)."
    ),
    onnx_input: str = typer.Option(
        "raw",
        "--onnx-input",
        help="What the ONNX model takes: "
        + "; ".join(f"{k}: {v}" for k, v in ONNX_INPUT_HELP.items())
        + ". Default raw: plain [0, 1] images, no normalisation to get wrong.",
    ),
    test: bool = typer.Option(
        False,
        "--test",
        help="Evaluate each on the test split first (the final report; the leaderboard shows it afterwards).",
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where torchvision datasets live."),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
):
    """Write the best architectures as files `resnas train` loads, with cost, metrics, provenance and the
    input preprocessing (per-channel mean and std, image size, channels, class names)."""
    check_onnx_input(onnx_input)
    paths = export(
        Store(storage),
        study,
        out_dir,
        top=top,
        front=front,
        fmt=fmt,
        weights=weights,
        onnx=onnx,
        onnx_input=onnx_input,
        test=test,
        data_dir=data_dir,
    )
    for p in paths:
        out.print(str(p), highlight=False, soft_wrap=True)  # one path per line, however long


def _boards(names: list[str], storages: list[str]) -> dict[str, list[dict]]:
    """Each study's ranked runs; one --storage for all, or one per study, in order."""
    if storages and len(storages) not in (1, len(names)):
        raise ResnasError(
            f"give one --storage for all studies or one per study ({len(names)}); got {len(storages)}",
            field="--storage",
        )
    urls: list[str | None] = [*storages] * len(names) if len(storages) == 1 else [*storages] or [None] * len(names)
    stores = [Store(url) for url in urls]
    check_distinct([(name, store.url) for name, store in zip(names, stores)])
    boards = {}
    for name, store in zip(names, stores):
        label = name if name not in boards else f"{name} ({safe_url(store.url)})"
        boards[label] = leaderboard(store, name)
    return boards


COMPARE_COLUMNS = [
    ("study", "study"),
    ("models", "models"),
    ("best %", "best"),
    ("median %", "median"),
    ("q25 %", "q25"),
    ("q75 %", "q75"),
    ("models at matched FLOPs", "matched_models"),
    ("best there %", "matched_best"),
    ("median there %", "matched_median"),
]


@user_errors
def compare_cmd(
    study_names: list[str] = typer.Argument(..., help="Two or more studies."),
    storage: list[str] = typer.Option([], "--storage", help="Storage URL: once for all studies, or once per study."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the EDF and error-vs-FLOPs plot (.png, .svg, .pdf or .html)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Studies side by side: accuracy statistics, at matched complexity too, EDF and Pareto fronts."""
    if plot is not None:
        check_plot_file(plot, "--plot")  # before any study is read
    boards = _boards(study_names, storage)
    stats = compare(boards)
    written = None
    if plot is not None:
        tables = html_table(stats, COMPARE_COLUMNS) + "".join(
            f"<h2>{name}</h2>" + html_table(rows, [(t, k) for t, k in COLUMNS]) for name, rows in boards.items()
        )
        title = "resnas compare: " + ", ".join(boards)
        written = save(compare_figure(boards), plot, title=title, tables_html=tables, field="--plot")
    if as_json:
        return emit_json({"studies": stats, "plot": str(written) if written else None})
    span = stats[0]["matched_flops"] if stats else None
    table = Table(
        title="compare"
        + (f" (matched FLOPs {human(span[0])} - {human(span[1])})" if span else " (no FLOPs range common to all)")
    )
    for title, _ in COMPARE_COLUMNS:
        table.add_column(title, justify="left" if title == "study" else "right")
    for r in stats:
        table.add_row(
            *[_cell(k if k in ("study", "models", "matched_models") else "val_acc", r[k]) for _, k in COMPARE_COLUMNS]
        )
    out.print(table)
    if written:
        out.print(f"wrote {written}", highlight=False, soft_wrap=True)


@user_errors
def plot_cmd(
    study: str = typer.Argument(..., help="Study name."),
    file: Path = typer.Argument(..., help="Output file (.png, .svg, .pdf or .html)."),
    kind: str = typer.Option(
        "history",
        "--kind",
        help="history, importance, edf or parallel; pareto for a two-objective study (--objective accuracy+flops).",
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
):
    """One plot of a study: Optuna's history, importance, parallel coordinates, Pareto front; or the EDF."""
    import optuna

    check_plot_file(file, "plot")  # before any study is read or drawn
    store = Store(storage)
    rows = leaderboard(store, study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = optuna.load_study(study_name=study, storage=store.url)
    written = save(study_figure(loaded, kind, rows), file, title=f"{study}: {kind}")
    out.print(f"wrote {written}", highlight=False, soft_wrap=True)
