"""`resnas search` and `resnas worker`: options in, a live view while it runs, the leaderboard at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from nas_res import ResnasError
from nas_res.errors import count
from nas_res.search.settings import GRACE, HEARTBEAT, KEEP_HELP
from nas_res.space.template import load_spec
from nas_res.yamlfile import read_yaml

from .common import (
    BUDGET_HELP,
    GRACE_HELP,
    HEARTBEAT_HELP,
    JSON_HELP,
    PARAMS_HELP,
    STORAGE_HELP,
    THREADS_HELP,
    emit_json,
    err,
    exit_code,
    parse_gpus,
    user_errors,
)
from .live import nothing_trained, run_live

if TYPE_CHECKING:
    from nas_res.search import SearchConfig


@user_errors
def search_cmd(
    study_file: Path | None = typer.Argument(None, help="A study recipe (studies/NAME.yaml); options override it."),
    space: str | None = typer.Option(
        None, help="Built-in space name or template path (default: the ResNeXt space made for the data's image size)."
    ),
    budget: str | None = typer.Option(None, help=BUDGET_HELP),
    max_params: str | None = typer.Option(None, "--max-params", help=PARAMS_HELP),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="Dataset; see resnas train (default: fashion-mnist where its files are; digits if not, or with --space).",
    ),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where torchvision datasets live."),
    val_size: str | None = typer.Option(
        None, "--val-size", help="Validation split: a count of images or a fraction in (0, 1) (default 0.1)."
    ),
    train_size: str | None = typer.Option(
        None,
        "--train-size",
        help="Train each candidate on a seeded class-balanced subset: N images, a fraction, or all (default).",
    ),
    trials: int | None = typer.Option(
        None, help="Trained trials in the study, in all (default 20); over-budget suggestions do not count."
    ),
    timeout: str | None = typer.Option(None, help="Start no trial after this long (2h, 30m, 90s)."),
    trial_timeout: str | None = typer.Option(None, "--trial-timeout", help="Fail a trial running longer."),
    epochs: int | None = typer.Option(None, help="Epochs per trial (overrides the recipe's)."),
    recipe: str | None = typer.Option(None, help="Recipe preset (fast, default) or file (default fast)."),
    sampler: str | None = typer.Option(
        None, help="tpe (default), random, nsga2, gp, grid, or optuna-tpe (Optuna's TPE as it is, to compare)."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        help="Zoo nets to queue as the first trials (resnet20_cifar,mnist_resnet); default: every zoo net "
        "the space expresses and the budget admits.",
    ),
    no_reference: bool = typer.Option(False, "--no-reference", help="Queue no reference net."),
    objective: str | None = typer.Option(
        None,
        help="accuracy (default), accuracy+flops, accuracy+params or accuracy+latency (measured, see --latency-on); "
        "a VAE's: nelbo (its only one).",
    ),
    max_latency: str | None = typer.Option(
        None,
        "--max-latency",
        help="Latency cap (2.5ms, 800us) measured on this host as --latency-on says: a candidate over it is "
        "never trained (the lookup table screens, a measurement decides; timings are kept in the storage).",
    ),
    latency_on: str | None = typer.Option(
        None,
        "--latency-on",
        help="How latency is measured: DEVICE[,batch=N][,threads=N][,precision=fp32|bf16|fp16][,mode=infer|train] "
        "(default cpu, batch 1, every core, fp32, infer). Pinned with the study, like the budget.",
    ),
    task: str | None = typer.Option(
        None,
        "--task",
        help="classify, or vae: each candidate is the encoder of a VAE whose decoder mirrors it, ranked by its "
        "validation negative ELBO (default: the space's task). A VAE searches with the vae-fast recipe.",
    ),
    latent: int | None = typer.Option(None, "--latent", help="A VAE's latent dimension (default 32)."),
    likelihood: str | None = typer.Option(
        None, "--likelihood", help="A VAE's pixel likelihood: bernoulli (default) or gaussian (bits/dim)."
    ),
    pruner: str | None = typer.Option(
        None, help="asha (default: successive halving, one bracket), hyperband, median or none."
    ),
    study: str | None = typer.Option(
        None, help="Study name (default SPACE-DATASET-BUDGET); an existing study resumes."
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    workers: int | None = typer.Option(None, help="Trial worker processes on CPU (default 1)."),
    gpus: str | None = typer.Option(None, help="GPU indices, one worker each: 0,1,2."),
    seed: int | None = typer.Option(None, help="Sampler seed (default 0)."),
    checkpoints: str | None = typer.Option(
        None, help="Where trial checkpoints go (default: next to a SQLite database, else studies/checkpoints/STUDY)."
    ),
    keep_checkpoints: str | None = typer.Option(None, "--keep-checkpoints", help=KEEP_HELP),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    heartbeat: int = typer.Option(HEARTBEAT, help=HEARTBEAT_HELP),
    grace: int = typer.Option(GRACE, help=GRACE_HELP),
    top: int = typer.Option(10, help="Leaderboard rows printed at the end."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Search a design space under a budget: Optuna picks, workers train, the leaderboard ranks.

    With a server --storage (PostgreSQL, MySQL) other hosts can join the study with `resnas worker`."""
    if study_file is not None:  # broken files are refused before the search's machinery is imported
        read_yaml(study_file, "study file")
    if space is not None:
        load_spec(space)
    from nas_res.results.report import check_top
    from nas_res.search import plan

    check_top(top)
    options = dict(
        space=space,
        budget=budget,
        max_params=max_params,
        dataset=dataset,
        data_dir=data_dir,
        val_size=val_size,
        train_size=train_size,
        trials=trials,
        timeout=timeout,
        trial_timeout=trial_timeout,
        epochs=epochs,
        recipe=recipe,
        sampler=sampler,
        objective=objective,
        max_latency=max_latency,
        latency_on=latency_on,
        task=task,
        latent=latent,
        likelihood=likelihood,
        pruner=pruner,
        study=study,
        storage=storage,
        workers=workers,
        seed=seed,
        gpus=parse_gpus(gpus),
        checkpoints=checkpoints,
        keep_checkpoints=keep_checkpoints,
        threads=threads,
        reference=_reference(reference, no_reference),
    )
    config, existed = plan(options, file=study_file)
    _run(config, existed, join=False, heartbeat=heartbeat, grace=grace, top=top, as_json=as_json)


@user_errors
def worker_cmd(
    study: str = typer.Option(..., help="The study to join (made by resnas search)."),
    storage: str = typer.Option(..., help="The study's database, e.g. postgresql://user@host/db."),
    gpus: str | None = typer.Option(
        None, "--gpu", "--gpus", help="GPU indices on this host, one worker each: 0 or 0,1,2,3."
    ),
    workers: int | None = typer.Option(None, help="Trial worker processes on CPU (default 1)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where this host keeps the datasets."),
    checkpoints: str | None = typer.Option(
        None, help="Where this host writes checkpoints (default studies/checkpoints/STUDY)."
    ),
    keep_checkpoints: str | None = typer.Option(None, "--keep-checkpoints", help=KEEP_HELP),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    timeout: str | None = typer.Option(None, help="Start no trial after this long (2h, 30m, 90s)."),
    heartbeat: int = typer.Option(HEARTBEAT, help=HEARTBEAT_HELP),
    grace: int = typer.Option(GRACE, help=GRACE_HELP),
    top: int = typer.Option(10, help="Leaderboard rows printed at the end."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Join a running study from this host: train its trials until the study's total is reached.

    Everything that defines the study (space, budget, dataset, recipe, objective) comes from the
    database; this host only says where its GPUs, data and checkpoints are."""
    from nas_res.results.report import check_top
    from nas_res.search import plan

    check_top(top)
    given = dict(
        study=study,
        storage=storage,
        workers=workers,
        gpus=parse_gpus(gpus),
        data_dir=data_dir,
        checkpoints=checkpoints,
        keep_checkpoints=keep_checkpoints,
        threads=threads,
        timeout=timeout,
    )
    config, existed = plan(given, join=True)
    _run(config, existed, join=True, heartbeat=heartbeat, grace=grace, top=top, as_json=as_json)


def _reference(names: str | None, none: bool) -> str | bool | None:
    if none and names:
        raise ResnasError("give --reference NAMES or --no-reference, not both", field="--reference")
    return False if none else names


def _run(
    config: SearchConfig, existed: bool, *, join: bool, heartbeat: int, grace: int, top: int, as_json: bool
) -> None:
    from nas_res.results.report import leaderboard, reference_summary
    from nas_res.results.store import DEFAULT_STORAGE, Store, safe_url
    from nas_res.search import Coordinator
    from nas_res.search.sampler import describe as describe_search
    from nas_res.training.threads import worker_threads

    from .tables import print_leaderboard, print_reference_summary

    coordinator = Coordinator(config, join=join, heartbeat=heartbeat, grace=grace)  # refuses what cannot run
    for note in coordinator.config.notes:  # what was picked for the user, or does not fit, and why
        err.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    subset = "" if config.train_size is None else f" (training subset {config.train_size})"
    verb = "joining" if coordinator.joined else ("resuming" if existed else "new")
    if coordinator.others:
        err.print(f"study {config.study!r} is being searched by {', '.join(coordinator.others)}: joining it")
    err.print(
        f"{verb} study [bold]{config.study}[/] in "
        f"{safe_url(config.storage or DEFAULT_STORAGE)}: space {config.space.name}, "
        f"{config.budget.describe()}, {config.dataset}{subset}, {config.trials} trials of "
        f"{count(config.recipe.epochs, 'epoch')}, {describe_search(config)}, "
        f"{config.workers} worker(s) here ({worker_threads(config.threads, config.gpus, config.workers)} "
        f"thread(s) each), keeping {config.keep_checkpoints} checkpoints",
        highlight=False,
    )
    state = run_live(coordinator)
    store = Store(config.storage)
    rows = leaderboard(store, config.study, top=top)
    versus = reference_summary(store, config.study)
    if as_json:
        emit_json({**state.to_dict(), "leaderboard": rows, "vs_reference": versus})
    else:
        print_leaderboard(config.study, rows)
        print_reference_summary(versus)
    if state.stopped_by and not as_json:
        err.print(f"stopped early: {state.stopped_by}", highlight=False)
    if state.interrupted:
        err.print(f"interrupted: run the same command to resume study {config.study!r}")
        raise typer.Exit(exit_code(state.terminated))
    failure = nothing_trained(Store(config.storage).runs(config.study), state)
    if failure:
        err.print(f"[bold red]nothing was trained:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
