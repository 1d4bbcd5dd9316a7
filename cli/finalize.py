"""`resnas finalize` and `resnas fidelity`: re-train a search's best, then say how far its proxy can be trusted."""

from __future__ import annotations

import typer
from rich.table import Table

from nas_res.arch.budget import human
from nas_res.errors import count
from nas_res.search.settings import DEFAULT_SEEDS, DEFAULT_TOP, EPOCHS_FACTOR, GRACE, HEARTBEAT, KEEP_HELP
from nas_res.training.threads import plan_host, worker_threads

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
from .tables import print_final_reference


@user_errors
def finalize_cmd(
    study: str = typer.Argument(..., help="The searched study whose best architectures to re-train."),
    top: int = typer.Option(DEFAULT_TOP, help="How many architectures, best proxy accuracy first."),
    seeds: int = typer.Option(DEFAULT_SEEDS, help="Seeds per architecture (0, 1, ...): mean and sd over them."),
    epochs: int | None = typer.Option(None, help=f"Epochs of the final recipe (default {EPOCHS_FACTOR}x the proxy's)."),
    recipe: str | None = typer.Option(None, help="Final recipe: preset or file (default: the proxy's)."),
    train_size: str = typer.Option(
        "all", "--train-size", help="Training images for the final runs: N, a fraction, or all (default)."
    ),
    test: bool = typer.Option(False, "--test", help="Evaluate each re-trained network on the test split too."),
    reference: bool = typer.Option(
        True,
        "--reference/--no-reference",
        help="Also re-train the proxy's best reference net (the hand pick the search raced) with the same recipe "
        "and seeds, so the search's best is judged against it fully trained.",
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    workers: int | None = typer.Option(None, help="Trial worker processes on CPU (default 1)."),
    gpus: str | None = typer.Option(None, help="GPU indices, one worker each: 0,1,2."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where the datasets live on this host."),
    checkpoints: str | None = typer.Option(None, help="Where the final runs' checkpoints go."),
    keep_checkpoints: str | None = typer.Option(
        None,
        "--keep-checkpoints",
        help=KEEP_HELP
        + " Default here: all (export and --test need them); with --test, a narrower policy applies once the "
        "test split is evaluated.",
    ),
    timeout: str | None = typer.Option(None, help="Start no run after this long (2h, 30m, 90s)."),
    heartbeat: int = typer.Option(HEARTBEAT, help=HEARTBEAT_HELP),
    grace: int = typer.Option(GRACE, help=GRACE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Re-train a study's best architectures longer, on the whole training split, with several seeds.

    The runs are the study STUDY.final in the same storage (run again to resume; a larger --top adds to
    it). Prints the final ranking beside the proxy's and how well the proxy predicted it."""
    from nas_res.api import finish_finalize  # here: --help and a mistyped option import no torch or Optuna
    from nas_res.results.final import final_name
    from nas_res.results.storage import DEFAULT_STORAGE, safe_url
    from nas_res.search import Coordinator
    from nas_res.search.finalize import plan_finalize

    gpu_list = parse_gpus(gpus)
    host = dict(
        workers=workers,
        gpus=gpu_list,
        threads=threads,
        data_dir=data_dir,
        checkpoints=checkpoints,
        keep_checkpoints=keep_checkpoints,
        timeout=timeout,
    )
    fp = plan_finalize(
        study,
        storage=storage,
        top=top,
        seeds=seeds,
        epochs=epochs,
        recipe=recipe,
        train_size=train_size,
        host=host,
        test=test,
        reference=reference,
    )
    config = fp.config
    for line in fp.notes:
        note(line)
    coordinator = Coordinator(config, given=fp.given, heartbeat=heartbeat, grace=grace)
    for said in plan_host(workers or 1, threads, config.gpus)[1]:  # asks beyond this host's cores, cut
        note(said)
    subset = "all training images" if config.train_size is None else f"{config.train_size} training images"
    ref = fp.reference_row
    also = f" and its best reference, {ref['reference']} (proxy rank {ref['rank']})," if ref else ""
    err.print(
        f"{'resuming' if fp.existed else 'new'} re-training [bold]{config.study}[/] in "
        f"{safe_url(config.storage or DEFAULT_STORAGE)}: top {len(fp.picked)} of {study!r} by proxy{also} "
        f"x {seeds} seed(s) = {len(fp.given)} runs of {count(config.recipe.epochs, 'epoch')} on {subset}, "
        f"{config.workers} worker(s) ({worker_threads(config.threads, config.gpus, config.workers)} thread(s) each)",
        highlight=False,
    )
    state = run_live(coordinator)
    result = finish_finalize(fp, state, test=test, data_dir=data_dir, gpus=gpu_list)
    if as_json:
        keys = ("final", "fidelity", "vs_reference")
        emit_json({**state.to_dict(), **{k: result[k] for k in keys}})
    else:
        print_final(study, result["final"])
        print_fidelity(result["fidelity"])
        print_final_reference(result["vs_reference"])
    for line in result["notes"][len(fp.notes) :]:  # after the tables, where it is read last (the plan's came first)
        note(line)
    if state.interrupted:
        err.print(f"interrupted: run the same command to resume the re-training of {study!r}")
        raise typer.Exit(exit_code(state.terminated))
    if not result["final"]:
        err.print(f"nothing was re-trained: see resnas leaderboard {final_name(study)} --all")
        raise typer.Exit(1)


@user_errors
def fidelity_cmd(
    study: str = typer.Argument(..., help="A study re-trained by resnas finalize."),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """How well the search's proxy ranked what the final training found, beside ranking by FLOPs or params."""
    from nas_res.results import Store
    from nas_res.results.final import no_final, proxy_was_better, study_fidelity
    from nas_res.results.references import final_versus_reference
    from nas_res.results.report import final_ranking

    store = Store(storage)
    config = store.config_of(study)  # an unknown study: the message lists the ones there are
    table = final_ranking(store, study)
    if not table:
        err.print(no_final(store, study, config), highlight=False, soft_wrap=True)  # or refused, as finalize would
        raise typer.Exit(1)
    result = study_fidelity(table)
    versus = final_versus_reference(table)
    for line in proxy_was_better(study, table):
        note(line)
    if as_json:
        emit_json({"study": study, "final": table, "fidelity": result, "vs_reference": versus})
        return
    print_final(study, table)
    print_fidelity(result)
    print_final_reference(versus)


def print_final(study: str, rows: list[dict]) -> None:
    """The final ranking, one row per architecture: mean ± sd over seeds, its interval, the proxy's view."""
    table = Table(title=f"final: {study} (re-trained, mean ± sd over seeds)")
    for title in (
        "final",
        "proxy",
        "proxy val %",
        "val % (final)",
        "95% interval",
        "test %",
        "vs best: b/c, p",
        "seeds",
    ):
        table.add_column(title, justify="right")
    for title in ("FLOPs", "params"):
        table.add_column(title, justify="right")
    table.add_column("architecture", justify="left", overflow="fold")
    for r in rows:
        table.add_row(
            str(r["final_rank"]),
            str(r["proxy_rank"] or "-"),
            f"{r['proxy_val_acc']:.2f}" if r["proxy_val_acc"] is not None else "-",
            mean_sd(r["val_mean"], r["val_sd"]),
            interval(r["val_lo"], r["val_hi"]),
            mean_sd(r["test_mean"], r["test_sd"]),
            _vs_best(r),
            str(len(r["seeds"])),
            human(r["flops"]),
            human(r["params"]),
            r["summary"] + (f" (reference: {r['reference']})" if r.get("reference") else ""),
        )
    out.print(table)
    if any(r.get("vs_best_b") is not None for r in rows[1:]):
        out.print(
            "vs best: McNemar's exact test against the first row, seeds paired and their counts summed; b images "
            "only the first got right, c only this row; on the test images where every seed was tested, else on "
            "the validation images",
            highlight=False,
            soft_wrap=True,
        )


def _vs_best(r: dict) -> str:
    """The row against the final best by McNemar (seeds pooled): `b/c, p (test)`; `-` where nothing pairs."""
    if r["final_rank"] == 1:
        return ""
    b, c, p = r.get("vs_best_b"), r.get("vs_best_c"), r.get("vs_best_p")
    if b is None or c is None or p is None:
        return "-"
    return f"{b}/{c}, {'p<0.001' if p < 0.001 else f'p={p:.3g}'} ({r['vs_best_split']})"


def print_fidelity(result: dict) -> None:
    """Rank correlations of each predictor with the final ranking, and what they mean."""
    from nas_res.results.fidelity import verdict

    table = Table(title="proxy fidelity: rank correlation with the final ranking")
    for title in ("ranked by", "Spearman rho", "Kendall tau", "n"):
        table.add_column(title, justify="left" if title == "ranked by" else "right")
    labels = {"proxy": "proxy val acc", "flops": "more FLOPs", "params": "more params"}
    for key, label in labels.items():
        r = result.get(key) or {}
        cells = [f"{r[k]:+.2f}" if r.get(k) is not None else "-" for k in ("spearman", "kendall")]
        table.add_row(label, *cells, str(result.get("n", "-")))
    out.print(table)
    out.print(verdict(result), highlight=False)
