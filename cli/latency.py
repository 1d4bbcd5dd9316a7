"""`resnas latency`: nets timed on this host's device (kept in the storage, never timed twice), a table, a plot."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nas_res.errors import ResnasError

from .common import BUDGET_HELP, JSON_HELP, PARAMS_HELP, STORAGE_HELP, emit_json, err, note, out, user_errors

NOISY = 1.5  # a net whose slowest process took this many times its fastest's median is worth a note


@user_errors
def latency_cmd(
    targets: list[str] = typer.Argument(
        ..., help="Zoo names, arch files, `zoo` (every zoo classifier) or design spaces (sampled: --sample)."
    ),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    batch: int = typer.Option(1, help="Images per call."),
    threads: int | None = typer.Option(None, help="CPU threads (default: every core this process may use)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 (autocast) or fp16 (autocast, GPU only)."),
    mode: str = typer.Option("infer", help="infer: a forward pass; train: forward, backward and an SGD step."),
    repeats: int = typer.Option(20, help="Timed runs per net and process (after 5 warm-up calls)."),
    processes: int = typer.Option(
        3, help="Fresh processes each net is timed in, one after another; the fastest's median is kept."
    ),
    predict: bool = typer.Option(
        False, "--predict", help="Also predict each net from the lookup table of its parts, and say how well it did."
    ),
    budget: str | None = typer.Option(None, help=f"For a space: draw nets inside it. {BUDGET_HELP}"),
    max_params: str | None = typer.Option(None, "--max-params", help=PARAMS_HELP),
    sample: int = typer.Option(20, help="For a space: how many nets to draw (uniformly, inside --budget)."),
    seed: int = typer.Option(0, help="For a space: the draw's seed."),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write latency vs FLOPs (.png, .svg, .pdf; .html: with the table)."
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Measure latency (or training throughput) on this host: each net in --processes fresh processes, warmed
    up, timed --repeats times with the device synchronised; the fastest process's median and its 95% interval
    are kept in the storage under the device's name, batch, precision, threads, mode and torch version, so no
    net is timed twice."""
    from nas_res.arch.budget import Budget
    from nas_res.latency.setting import Setting

    setting = Setting(device, batch, threads, precision, mode)
    wanted = Budget.parse(budget, max_params)
    if sample < 1:
        raise ResnasError(f"must be at least 1; got {sample}", field="--sample")
    if plot is not None:
        from nas_res.results.page import check_plot_file

        check_plot_file(plot, "--plot")
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from nas_res.latency.meter import Meter
    from nas_res.latency.survey import resolve_targets, survey, table_error
    from nas_res.results.store import Store

    named = resolve_targets(targets, wanted, sample, seed)
    store = Store(storage, create=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("reading the cache", total=None)
        say = lambda what: bar.update(task, description=what)  # noqa: E731
        meter = Meter(setting, store, repeats=repeats, on_measure=say, processes=processes)
        rows = survey(meter, named, predict=predict)
    fit = table_error(rows)
    where = f"{meter.device_name}, {setting.describe()}, torch {meter.key['torch']}"
    if as_json:
        return emit_json({"setting": setting.to_dict(), "key": meter.key, "nets": rows, "table": fit})
    _print(rows, where, predict)
    note(f"{meter.measured} timed now, the rest read from the storage's cache")
    noisy = [r["name"] for r in rows if r["spread"] > NOISY]
    if noisy:
        note(
            f"{len(noisy)} net(s) ran over {NOISY}x slower in one process than in another ({', '.join(noisy[:5])}): "
            "this host is noisy (other work, or fewer free cores than --threads); the fastest process is kept"
        )
    if predict and fit:
        out.print(
            f"lookup table vs measured over {fit['nets']} nets: Spearman {fit['spearman']:.3f}, mean absolute "
            f"error {fit['mape']:.1f}%, predicted/measured {fit['ratio']:.2f} on average",
            highlight=False,
        )
    if plot is not None:
        from nas_res.latency.plot import write_latency_plot

        out.print(f"wrote {write_latency_plot(rows, plot, f'latency vs FLOPs: {where}')}", highlight=False)


def _print(rows: list[dict], where: str, predict: bool) -> None:
    from nas_res.arch.budget import human

    table = Table(title=f"latency per call on {where}")
    columns = ["net", "FLOPs", "params", "ms", "95% interval", "images/s"] + (["table ms"] if predict else [])
    for col in columns + ["summary"]:
        table.add_column(col, justify="left" if col in ("net", "summary") else "right")
    for r in rows:
        cells = [
            r["name"],
            human(r["flops"]),
            human(r["params"]),
            f"{r['latency_ms']:.3g}",
            f"[{r['low_ms']:.3g}, {r['high_ms']:.3g}]",
            f"{r['images_per_s']:,.0f}",
        ]
        if predict:
            cells.append("-" if r["predicted_ms"] is None else f"{r['predicted_ms']:.3g}")
        table.add_row(*cells, r["summary"])
    out.print(table)
