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
from nas_res.results import Store, check_top, compare, export, leaderboard, safe_url, studies
from nas_res.results.paired import PAIRED, UNPAIRED
from nas_res.results.plots import check_plot_file, compare_figure, html_table, save, study_figure
from nas_res.results.preprocessing import ONNX_INPUT_HELP, check_onnx_input
from nas_res.results.references import describe as describe_reference
from nas_res.results.report import best_run, check_distinct, reference_summary

from .common import JSON_HELP, STORAGE_HELP, emit_json, mean_sd, note, out, user_errors

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
    if key in ("val_acc", "test_acc", "val_nelbo"):
        return f"{v:.2f}"
    if key == "val_bpd":
        return f"{v:.4f}"
    return str(v)


LEFT = ("depths", "width", "cxd", "shortcut", "unit_order", "status", "reason", "tie", "pair", "reference")
SHOWN = ("val_acc", "tie", "pair", "final", "status")  # cells _leaderboard_cells formats


def _with_interval(r: dict) -> str:
    """A ranked row's validation accuracy with its 95% interval: `91.23 [90.5, 91.9]`."""
    acc, lo, hi = r.get("val_acc"), r.get("val_lo"), r.get("val_hi")
    if acc is None or lo is None or hi is None:
        return _cell("val_acc", acc)
    return f"{acc:.2f} [{lo:.1f}, {hi:.1f}]"


def _tie(r: dict) -> str:
    """`best` for the top row, `tied` for a row the validation set cannot tell from it, else nothing."""
    if r.get("tied") is None:
        return ""
    return "best" if r.get("rank") == 1 else ("tied" if r["tied"] else "")


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"


def _pair(r: dict) -> str:
    """McNemar against the best: `b/c, p` (b: images only the best got right, c: only this row); `-` where
    the row has no per-image record, nothing on the best row itself."""
    if r.get("rank") == 1:
        return ""
    b, c, p = r.get("vs_best_b"), r.get("vs_best_c"), r.get("vs_best_p")
    return "-" if b is None or c is None or p is None else f"{b}/{c}, {_p(p)}"


def _leaderboard_cells(r: dict) -> dict:
    """The row as the tables show it: interval beside the accuracy, the tie mark, reuse with the status."""
    return {
        **r,
        "val_acc": _with_interval(r),
        "tie": _tie(r),
        "pair": _pair(r),
        "final": _final_cell(r),
        "status": r["status"] + (" (reused)" if r["reused"] else ""),
    }


def _final_cell(r: dict) -> str:
    """The architecture's re-trained accuracy (resnas finalize): mean ± sd over seeds, and its final rank."""
    mean, sd, seeds = r.get("final_val_mean"), r.get("final_val_sd"), r.get("final_seeds")
    if mean is None:
        return "-"
    return f"#{r['final_rank']}: {mean_sd(mean, sd)} ({seeds} seed{'s' if seeds != 1 else ''})"


def _leaderboard_columns(rows: list[dict]) -> list[tuple[str, str]]:
    """COLUMNS, with the tie mark after the accuracy where it is known, and the final training's result
    where the study was finalized."""
    columns = list(COLUMNS)
    if any(r.get("task") == "vae" for r in rows):  # a VAE's score: validation negative ELBO, lower is better
        columns = [c for c in columns if c[1] != "test_acc"]
        at = next(i for i, (_, k) in enumerate(columns) if k == "val_acc")
        columns[at : at + 1] = [("val -ELBO (nats)", "val_nelbo")]
        if any(r.get("val_bpd") is not None for r in rows):
            columns.insert(at + 1, ("bits/dim", "val_bpd"))
        return columns
    if any(r.get("reference") for r in rows):  # the hand picks the search raced
        columns.insert(next(i for i, (_, k) in enumerate(columns) if k == "trial") + 1, ("reference", "reference"))
    at = next(i for i, (_, k) in enumerate(columns) if k == "val_acc") + 1
    if any(r.get("final_rank") is not None for r in rows):
        columns.insert(at, ("final val % (re-trained)", "final"))
    if any(r.get("vs_best_b") is not None for r in rows):
        columns.insert(at, ("vs best: b/c, p", "pair"))
    if any(r.get("tied") is not None for r in rows):
        columns.insert(at, ("vs best", "tie"))
    return columns


def _leaderboard_notes(rows: list[dict]) -> list[str]:
    """What the intervals and tie marks mean, and how much one validation image weighs."""
    ranked = [r for r in rows if r.get("rank") is not None]
    if not ranked:
        return []
    if ranked[0].get("task") == "vae":
        return [
            "val -ELBO: the validation negative ELBO per image in nats (reconstruction + KL, one latent draw from "
            "a fixed seed), lowest first"
        ]
    n = ranked[0].get("val_images")
    if n is None:
        return [
            "validation image count not stored for this study (searched before resnas recorded it): "
            "intervals and ties unknown"
        ]
    notes = [
        f"val acc [lo, hi]: 95% Wilson interval on {n} validation images; "
        f"tied: statistically tied with the best (95%, {n} validation images)"
    ]
    if any(r.get("tie_test") == PAIRED for r in ranked):
        notes.append(
            "ties by McNemar's exact test on the same validation images: b images only the best got right, "
            "c only this row; tied when p >= 0.05"
        )
    unpaired = sum(1 for r in ranked if r.get("tie_test") == UNPAIRED and r.get("rank") != 1)
    if unpaired:
        notes.append(
            f"ties for {unpaired} row{'s' if unpaired != 1 else ''} use the unpaired test: no per-image record "
            "(runs stored before resnas kept per-image results)"
        )
    if n < 1000:
        notes.append(
            f"warning: with {n} validation images one image moves accuracy by {100 / n:.2f} points; "
            "gaps inside the intervals are noise, not findings"
        )
    return notes


def print_leaderboard(study: str, rows: list[dict]) -> None:
    """The table, each validation accuracy with its 95% interval and rows tied with the best marked; with
    unranked runs listed (--all), a last column says why each has no result. Footnotes say how to read it."""
    columns = _leaderboard_columns(rows) + ([("reason", "reason")] if any(r.get("reason") for r in rows) else [])
    table = Table(title=f"leaderboard: {study}")
    for title, key in columns:
        left = key in (
            "depths",
            "width",
            "cxd",
            "shortcut",
            "unit_order",
            "status",
            "reason",
            "tie",
            "pair",
            "reference",
        )
        table.add_column(title, justify="left" if left else "right", overflow="fold" if key == "reason" else "ellipsis")
    for r in rows:
        shown = _leaderboard_cells(r)
        table.add_row(*[shown[k] if k in SHOWN else _cell(k, r[k]) for _, k in columns])
    out.print(table)
    if not rows:
        out.print("no finished trial yet")
    for line in _leaderboard_notes(rows):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def _best(r: dict) -> str:
    """A study's best: a classifier's validation accuracy, a VAE's validation negative ELBO."""
    if r.get("task") == "vae":
        return "-" if r["best_val_nelbo"] is None else f"{r['best_val_nelbo']:.2f} nats"
    return _cell("val_acc", r["best_val_acc"])


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
        "best (val acc % or -ELBO)",
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
            _best(r),
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
    print_reference_summary(reference_summary(store, study))


def print_reference_summary(summary: dict | None) -> None:
    """One line: whether the search's best beat the best hand pick it raced (nothing without one)."""
    if summary is not None:
        out.print(describe_reference(summary), markup=False, highlight=False, soft_wrap=True)


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
        on_note=note,  # a re-trained network its proxy run beat
    )
    for p in paths:
        out.print(str(p), highlight=False, soft_wrap=True)  # one path per line, however long


def _boards(names: list[str], storages: list[str]) -> tuple[dict[str, list[dict]], dict, dict]:
    """Each study's ranked runs, its best run (to pair with the first's) and its best against its best
    reference net; one --storage for all, or one per study, in order."""
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


COMPARE_COLUMNS = [
    ("study", "study"),
    ("models", "models"),
    ("best %", "best"),
    ("best vs first", "vs_first_best"),
    ("best vs first: b/c, p", "vs_first_pair"),
    ("median %", "median"),
    ("median vs first", "vs_first_median"),
    ("q25 %", "q25"),
    ("q75 %", "q75"),
    ("models at matched FLOPs", "matched_models"),
    ("best there %", "matched_best"),
    ("median there %", "matched_median"),
]
TEXT_KEYS = ("study", "models", "matched_models")  # shown as they are; the other statistics are accuracies


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _difference(r: dict, stat: str) -> str:
    """A study's difference to the first with its interval: `+0.42 [-0.31, +1.20]`."""
    d, lo, hi = r.get(f"diff_{stat}"), r.get(f"diff_{stat}_lo"), r.get(f"diff_{stat}_hi")
    if d is None or lo is None or hi is None:
        return "-"
    return f"{_signed(d)} [{_signed(lo)}, {_signed(hi)}]"


def _compare_cells(stats: list[dict]) -> list[dict]:
    """The comparison rows as the tables show them: each difference to the first beside its interval."""
    return [
        {
            **r,
            "vs_first_best": _difference(r, "best"),
            "vs_first_pair": _first_pair(r),
            "vs_first_median": _difference(r, "median"),
        }
        for r in stats
    ]


def _first_pair(r: dict) -> str:
    """The study's best against the first study's best by McNemar: `b/c, p`; `-` where they do not pair."""
    b, c, p = r.get("best_vs_first_b"), r.get("best_vs_first_c"), r.get("best_vs_first_p")
    return "-" if b is None or c is None or p is None else f"{b}/{c}, {_p(p)}"


def _compare_notes(stats: list[dict]) -> list[str]:
    """How to read the differences, and which studies' intervals leave out validation noise."""
    if len(stats) < 2:
        return []
    notes = [
        f"vs first: difference to {stats[0]['study']} in points, with its bootstrap 95% interval (models "
        "resampled, validation noise redrawn); an interval containing 0 means no detectable difference"
    ]
    if any(r.get("best_paired") for r in stats):
        notes.append(
            f"best vs first: McNemar's exact test of each best model against {stats[0]['study']}'s on the same "
            f"validation images: b images only {stats[0]['study']}'s best got right, c only this study's"
        )
    for r in stats[1:]:
        if r.get("best_unpaired") and r["models"]:
            notes.append(f"{r['study']}: {r['best_unpaired']}: its best is compared unpaired (the interval) only")
    unknown = [r["study"] for r in stats if r.get("val_images") is None and r["models"]]
    if unknown:
        notes.append(
            f"no validation image count stored for {', '.join(unknown)} (searched before resnas recorded it): "
            "their intervals leave out validation noise and are too narrow"
        )
    return notes


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
    if plot is not None:
        check_plot_file(plot, "--plot")  # before any study is read
    boards, best, versus = _boards(study_names, storage)
    stats = [{**row, "vs_reference": versus[row["study"]]} for row in compare(boards, best)]
    shown = _compare_cells(stats)
    written = None
    if plot is not None:
        tables = (
            html_table(shown, COMPARE_COLUMNS)
            + "".join(f"<p>{html.escape(note)}</p>" for note in _compare_notes(stats))
            + "".join(
                f"<h2>{html.escape(name)}</h2>"
                + html_table([_leaderboard_cells(r) for r in rows], _leaderboard_columns(rows))
                + "".join(f"<p>{html.escape(note)}</p>" for note in _leaderboard_notes(rows))
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
                r[k] if k.startswith("vs_first") else _cell(k if k in TEXT_KEYS else "val_acc", r[k])
                for _, k in COMPARE_COLUMNS
            ]
        )
    out.print(table)
    for line in _compare_notes(stats):
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

    check_plot_file(file, "plot")  # before any study is read or drawn
    store = Store(storage)
    rows = leaderboard(store, study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded = optuna.load_study(study_name=study, storage=store.url)
    written = save(study_figure(loaded, kind, rows), file, title=f"{study}: {kind}")
    out.print(f"wrote {written}", highlight=False, soft_wrap=True)
