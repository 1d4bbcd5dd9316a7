"""`resnas experiment run|report|list`: the papers' claims, trained arm by arm and judged."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from nas_res.errors import count
from nas_res.experiments.checks import FAILS, HOLDS, METRICS, SHOWN
from nas_res.experiments.spec import builtin_experiments, load_experiment
from nas_res.search.settings import GRACE, HEARTBEAT

from .common import (
    GRACE_HELP,
    HEARTBEAT_HELP,
    JSON_HELP,
    STORAGE_HELP,
    THREADS_HELP,
    emit_json,
    err,
    exit_code,
    interval,
    mean_sd,
    note,
    out,
    parse_gpus,
    user_errors,
)
from .live import run_live

experiment_app = typer.Typer(
    help="Reproduce the residual-learning papers' findings: run, report.", no_args_is_help=True
)
SCALE_HELP = "quick: minutes on a CPU (subset, few epochs); full: the papers' scale, for GPUs."
COLOURS = {HOLDS: "green", FAILS: "red"}


@experiment_app.command("list")
@user_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """The built-in experiments and their claims."""
    rows = []
    for name in builtin_experiments():
        exp = load_experiment(name, "quick")
        rows.append({"name": name, "title": exp.title, "source": exp.source, "arms": [a.name for a in exp.arms]})
    if as_json:
        return emit_json(rows)
    table = Table(title="experiments (resnas experiment run NAME)")
    for col in ("name", "claim", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["name"]), str(r["title"]), str(r["source"]))
    out.print(table)


@experiment_app.command("run")
@user_errors
def run_cmd(
    experiment: str = typer.Argument(..., help="A built-in experiment (resnas experiment list) or a file."),
    scale: str = typer.Option("quick", help=SCALE_HELP),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    workers: int | None = typer.Option(None, help="Trial worker processes on CPU (default 1)."),
    gpus: str | None = typer.Option(None, help="GPU indices, one worker each: 0,1,2."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where the datasets live on this host."),
    checkpoints: str | None = typer.Option(None, help="Where the runs' checkpoints go."),
    timeout: str | None = typer.Option(None, help="Start no run after this long (2h, 30m, 90s)."),
    plot: str | None = typer.Option(None, help="Also draw the report: FILE.png or FILE.html."),
    heartbeat: int = typer.Option(HEARTBEAT, help=HEARTBEAT_HELP),
    grace: int = typer.Option(GRACE, help=GRACE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Train every arm x seed of an experiment as the trials of the study NAME-SCALE (run again to resume),
    evaluate each network on the test split, then print the report with its verdicts."""
    load_experiment(experiment, scale)  # a broken file is refused before torch and the search are imported
    from nas_res.experiments import experiment_report, prepare_experiment
    from nas_res.experiments.run import next_stage, test_all
    from nas_res.results.page import check_plot_file
    from nas_res.results.storage import DEFAULT_STORAGE, safe_url
    from nas_res.training.threads import plan_host, worker_threads

    if plot:
        check_plot_file(plot, "--plot")
    gpu_list = parse_gpus(gpus)
    host = dict(
        workers=workers, gpus=gpu_list, threads=threads, data_dir=data_dir, checkpoints=checkpoints, timeout=timeout
    )
    exp, coordinator = prepare_experiment(
        experiment, scale, storage=storage, host=host, heartbeat=heartbeat, grace=grace
    )
    config = coordinator.config
    for said in plan_host(workers or 1, threads, config.gpus)[1]:  # asks beyond this host's cores, cut
        note(said)
    subset = "all training images" if config.train_size is None else f"{config.train_size} training images"
    err.print(
        f"experiment [bold]{exp.name}[/] ({scale}) in study {exp.study} of "
        f"{safe_url(config.storage or DEFAULT_STORAGE)}: {len(exp.arms)} arms, {config.trials} runs of "
        f"{count(config.recipe.epochs, 'epoch')} on {subset} of {config.dataset}, {config.workers} worker(s) "
        f"({worker_threads(config.threads, config.gpus, config.workers)} thread(s) each)",
        highlight=False,
    )
    state = run_live(coordinator)
    options: dict[str, Any] = {"storage": storage, "host": host, "heartbeat": heartbeat, "grace": grace}
    while not state.interrupted and (stage := next_stage(exp, **options)) is not None:
        exp, coordinator = stage  # refine arms: their space arms trained, the refined spaces sampled anew
        for arm, found in (exp.refinements or {}).items():
            err.print(
                f"{arm}: {refinement_line(found)}; training its {len(exp.arm(arm).archs)} models", highlight=False
            )
        state = run_live(coordinator)
    if state.interrupted:
        err.print(f"interrupted: run the same command again to resume {exp.study}")
        raise typer.Exit(exit_code(state.terminated))
    if state.stopped_by == "timeout":
        err.print(
            f"--timeout reached: the report covers the runs done; run the same command again to resume {exp.study}"
        )
    if exp.test:
        tested = test_all(exp, storage, data_dir=data_dir, device=f"cuda:{gpu_list[0]}" if gpu_list else "auto")
        if tested:
            err.print(f"evaluated {tested} network(s) on the test split")
    _show(experiment_report(exp.study, scale, storage=storage), plot, as_json)


@experiment_app.command("report")
@user_errors
def report_cmd(
    experiment: str = typer.Argument(..., help="The experiment's name (or its study, NAME-SCALE)."),
    scale: str = typer.Option("quick", help=SCALE_HELP),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    plot: str | None = typer.Option(None, help="Draw curves (and EDFs of sampled arms): FILE.png or FILE.html."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """The claim, what was measured per arm (mean ± sd and 95% interval over seeds), the paper's own
    figures beside ours, and a verdict per claim: holds, does not hold, or inconclusive."""
    from nas_res.experiments import experiment_report
    from nas_res.results.page import check_plot_file

    if plot:
        check_plot_file(plot, "--plot")
    name = experiment.removesuffix(".yaml").rsplit("/", 1)[-1]
    _show(experiment_report(name, scale, storage=storage), plot, as_json)


def _show(report: dict, plot: str | None, as_json: bool) -> None:
    from nas_res.arch.budget import human
    from nas_res.experiments.plots import experiment_figure, refinement_figures

    if plot:
        for path in [experiment_figure(report, plot), *refinement_figures(report, plot)]:
            err.print(f"wrote {path}")
    if as_json:
        return emit_json(report)
    exp = report["experiment"]
    paper = exp.get("paper") or {}
    out.print(f"[bold]{escape(exp['title'])}[/]  ({escape(exp.get('source', ''))})", highlight=False)
    over = "models (one run each)" if all(a["sampled"] for a in report["arms"]) else "seeds"
    shown = SHOWN[exp.get("task", "classify")]
    table = Table(title=f"{report['study']}: mean ± sd [95% interval] over {over} (final epoch)")
    table.add_column("arm")
    table.add_column("runs", justify="right")
    table.add_column("FLOPs", justify="right")
    table.add_column("params", justify="right")
    for m in shown:
        table.add_column(METRICS[m], justify="right")
    if paper.get("values"):
        table.add_column(f"paper: {paper.get('metric', '')}", justify="right")
    for arm in report["arms"]:
        runs = f"{arm['runs']}" + (f" ({arm['models']} models)" if arm["sampled"] else "")
        if arm.get("running"):
            runs += f" +{arm['running']} running"
        if arm["failed"]:
            runs += f" +{len(arm['failed'])} failed"
        row = [arm["name"], runs, human(arm["flops"]), human(arm["params"])]
        row += [_cell(arm["metrics"].get(m), m) for m in shown]
        if paper.get("values"):
            row.append("-" if arm["paper"] is None else str(arm["paper"]))
        table.add_row(*row)
    out.print(table)
    if paper.get("values") or paper.get("note"):  # a source without figures still says what it found
        out.print(
            f"paper: {escape(str(paper.get('source', '')))}. {escape(str(paper.get('note', '')))}", highlight=False
        )
    for v in report["verdicts"]:
        colour = COLOURS.get(v["verdict"], "yellow")
        out.print(f"[{colour}]{v['verdict'].upper()}[/]: {escape(v['claim'])}", highlight=False)
        out.print(f"  {escape(v['why'])}", highlight=False)
    for arm, found in (exp.get("refinements") or {}).items():
        out.print(f"[bold]{escape(arm)}[/]: {escape(refinement_line(found))}", highlight=False)
        for d in found["dims"]:
            p = "-" if d["p"] is None else f"{d['p']:.2g}"
            out.print(f"  {d['name']}: {d['verdict']} {d['range']} (n={d['n']}, KS p={p})", highlight=False)
    colour = COLOURS.get(report["verdict"], "yellow")
    out.print(f"[bold {colour}]verdict: {report['verdict']}[/]", highlight=False)
    for arm in report["arms"]:
        for reason in arm["failed"]:
            err.print(f"note: {arm['name']}: {escape(reason)}", highlight=False)


def _cell(summary: dict | None, metric: str) -> str:
    if not summary:
        return "-"
    digits = 0 if metric == "epochs" else 1 if metric == "train_seconds" else 3 if "loss" in metric else 2
    text = mean_sd(summary["mean"], summary["sd"], digits)
    return text if summary["lo"] is None else f"{text} {interval(summary['lo'], summary['hi'], digits)}"


def refinement_line(found: dict) -> str:
    """One line of what refining a space arm's space found: what was narrowed, and the refined size."""
    narrowed = ", ".join(found["narrowed"]) or "nothing (every dimension kept)"
    kept = found["kept"].get("value")
    share = "" if kept is None else f", {kept:.1%} of the budget-feasible nets kept"
    return (
        f"{found['parent']}'s space {found['space']} refined on {found['errors']['all']['n']} models: narrowed "
        f"{narrowed}; {found['old_size']:,} -> {found['size']:,} nets{share}"
    )
