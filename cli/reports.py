"""`resnas studies`, `leaderboard`, `compare`, `plot`, `export`: what a search found, as tables, pictures, files."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

import typer
from rich.table import Table

from nas_res import ResnasError
from nas_res.arch.budget import human
from nas_res.results import Store, safe_url
from nas_res.results.onnx_inputs import ONNX_INPUT_HELP, check_onnx_input

from .common import JSON_HELP, STORAGE_HELP, emit_json, note, out, user_errors
from .tables import (
    COLUMNS,
    COMPARE_COLUMNS,
    TEXT_KEYS,
    best_cell,
    cell,
    compare_cells,
    compare_notes,
    leaderboard_cells,
    leaderboard_columns,
    leaderboard_notes,
    print_final_reference,
    print_leaderboard,
    print_reference_summary,
)


@user_errors
def studies_cmd(
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Studies in the storage, with trial counts and the best result."""
    from nas_res.results import studies  # here, as below: --help imports no SciPy or torch

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
        "best (val acc % or -ELBO)",
        "best arch",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["study"],
            r["space"],
            r["budget"] + (f"; <= {r['max_latency_ms']:.3g} ms" if r["max_latency_ms"] is not None else ""),
            r["dataset"],
            r["objective"],
            f"{r['runs']}/{r['trials']}",
            str(r["trained"]),
            str(r["reused"]),
            str(r["pruned"]),
            str(r["failed"]),
            str(r["running"]),
            best_cell(r),
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
    from nas_res.results import check_top, leaderboard
    from nas_res.results.references import final_versus_reference
    from nas_res.results.report import final_ranking, reference_summary

    check_top(top)
    store = Store(storage)
    rows = leaderboard(store, study, top=top, include_all=include_all)
    if as_json:
        return emit_json(rows)
    if as_csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [k for _, k in COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
        return typer.echo(buf.getvalue(), nl=False)
    print_leaderboard(study, rows)
    print_reference_summary(reference_summary(store, study))  # the proxy's verdict, then the re-trained one
    print_final_reference(final_versus_reference(final_ranking(store, study)))


@user_errors
def export_cmd(
    study: str = typer.Argument(..., help="Study name."),
    top: int = typer.Option(1, help="Export the K best."),
    front: bool = typer.Option(
        False,
        "--pareto",
        help="Export the accuracy/FLOPs Pareto front instead (accuracy/latency for --objective accuracy+latency).",
    ),
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
    from nas_res.results import export

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
        on_note=note,  # a re-trained network its proxy run beat
    )
    for p in paths:
        out.print(str(p), highlight=False, soft_wrap=True)  # one path per line, however long


def _boards(names: list[str], storages: list[str]) -> tuple[dict[str, list[dict]], dict, dict]:
    """Each study's ranked runs, its best run (to pair with the first's) and its best against its best
    reference net; one --storage for all, or one per study, in order."""
    from nas_res.results import leaderboard
    from nas_res.results.report import best_run, check_distinct, reference_summary

    if storages and len(storages) not in (1, len(names)):
        raise ResnasError(
            f"give one --storage for all studies or one per study ({len(names)}); got {len(storages)}",
            field="--storage",
        )
    urls: list[str | None] = [*storages] * len(names) if len(storages) == 1 else [*storages] or [None] * len(names)
    stores = [Store(url) for url in urls]
    check_distinct([(name, store.url) for name, store in zip(names, stores)])
    boards, best, versus = {}, {}, {}
    for name, store in zip(names, stores):
        label = name if name not in boards else f"{name} ({safe_url(store.url)})"
        boards[label] = leaderboard(store, name)
        best[label] = best_run(store, name)
        versus[label] = reference_summary(store, name)
    return boards, best, versus


@user_errors
def compare_cmd(
    study_names: list[str] = typer.Argument(..., help="Two or more studies."),
    storage: list[str] = typer.Option([], "--storage", help="Storage URL: once for all studies, or once per study."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the EDF and error-vs-FLOPs plot (.png, .svg, .pdf or .html)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Studies side by side: accuracy statistics, at matched complexity too, differences to the first
    study with 95% intervals, EDF and Pareto fronts."""
    from nas_res.results import compare
    from nas_res.results.plots import check_plot_file, compare_figure, html_table, save
    from nas_res.results.references import describe as describe_reference

    if plot is not None:
        check_plot_file(plot, "--plot")  # before any study is read
    boards, best, versus = _boards(study_names, storage)
    stats = [{**row, "vs_reference": versus[row["study"]]} for row in compare(boards, best)]
    shown = compare_cells(stats)
    written = None
    if plot is not None:
        tables = (
            html_table(shown, COMPARE_COLUMNS)
            + "".join(f"<p>{html.escape(note)}</p>" for note in compare_notes(stats))
            + "".join(
                f"<h2>{html.escape(name)}</h2>"
                + html_table([leaderboard_cells(r) for r in rows], leaderboard_columns(rows))
                + "".join(f"<p>{html.escape(note)}</p>" for note in leaderboard_notes(rows))
                for name, rows in boards.items()
            )
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
    for r in shown:
        table.add_row(
            *[
                r[k]
                if k.startswith("vs_first")
                else cell(k if k in (*TEXT_KEYS, "best_latency_ms") else "val_acc", r[k])
                for _, k in COMPARE_COLUMNS
            ]
        )
    out.print(table)
    for line in compare_notes(stats):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    for r in stats:
        if r["vs_reference"] is not None:
            out.print(
                f"{r['study']}: {describe_reference(r['vs_reference'])}", markup=False, highlight=False, soft_wrap=True
            )
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

    from nas_res.results import leaderboard
    from nas_res.results.plots import check_plot_file, save, study_figure

    check_plot_file(file, "plot")  # before any study is read or drawn
    store = Store(storage)
    rows = leaderboard(store, study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = optuna.load_study(study_name=study, storage=store.url)
    written = save(study_figure(loaded, kind, rows), file, title=f"{study}: {kind}")
    out.print(f"wrote {written}", highlight=False, soft_wrap=True)
