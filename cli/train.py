"""`resnas train`: flags to a planned run, a progress bar while it trains, a summary at the end."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nas_res import ResnasError
from nas_res.arch.zoo import resolve_arch
from nas_res.data.subset import parse_train_size
from nas_res.errors import Terminated, sigterm_as_interrupt
from nas_res.training.recipe import load_recipe

from .common import (
    DATA_DIR_HELP,
    DATASET_HELP,
    DOWNLOAD_HELP,
    JSON_HELP,
    emit_json,
    err,
    exit_code,
    note,
    user_errors,
)
from .train_view import progress_bars, summary

if TYPE_CHECKING:
    from nas_res.training.plan import TrainPlan


@user_errors
def train_cmd(
    target: str = typer.Argument(..., help="Zoo name (see `resnas zoo`) or arch file (.yaml/.json)."),
    dataset: str = typer.Option("digits", "--dataset", "-d", help=DATASET_HELP),
    task: str | None = typer.Option(
        None,
        "--task",
        help="classify, or vae: a variational autoencoder whose encoder is the arch and whose decoder mirrors "
        "it (default: as the arch says). A VAE trains with the `vae` recipe (Adam, early stopping) unless "
        "--recipe names another.",
    ),
    latent: int | None = typer.Option(None, "--latent", help="A VAE's latent dimension (default 32)."),
    likelihood: str | None = typer.Option(
        None,
        "--likelihood",
        help="A VAE's pixel likelihood: bernoulli (intensities as targets; default) or gaussian (discretised to "
        "8 bits: bits/dim).",
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    download: bool = typer.Option(True, "--download/--no-download", help=DOWNLOAD_HELP),
    epochs: int | None = typer.Option(None, help="Epochs (default 10)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size (default 128)."),
    lr: float | None = typer.Option(None, help="Peak learning rate after warmup (default 0.1)."),
    optimizer: str | None = typer.Option(None, help="sgd (Nesterov momentum) or adamw."),
    schedule: str | None = typer.Option(None, help="cosine, linear, onecycle or constant."),
    weight_decay: float | None = typer.Option(None, "--weight-decay", help="Not applied to BN or biases."),
    label_smoothing: float | None = typer.Option(None, "--label-smoothing"),
    warmup_epochs: float | None = typer.Option(None, "--warmup-epochs"),
    grad_clip: float | None = typer.Option(None, "--grad-clip", help="Max global gradient norm."),
    precision: str | None = typer.Option(None, help="auto (bf16 on GPU, fp32 on CPU), bf16 or fp32."),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    patience: int | None = typer.Option(None, help="Stop after N epochs without a lower validation loss."),
    recipe_file: Path | None = typer.Option(None, "--recipe", help="Recipe YAML/JSON; flags override it."),
    val_size: str = typer.Option(
        "0.1", "--val-size", help="Validation split: a count of images (an integer) or a fraction in (0, 1)."
    ),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/validation split."),
    train_size: str = typer.Option(
        "all",
        "--train-size",
        help="Train on a seeded, class-balanced part of the training split: a count of images (an integer), "
        "a fraction in (0, 1], or all. The validation split stays the same.",
    ),
    image_size: int | None = typer.Option(None, "--image-size", help="ImageFolder side (default: arch's)."),
    fit: bool | None = typer.Option(
        None,
        "--fit/--no-fit",
        help="Set the arch's input channels and classes from the data (default: yes for zoo names, no for arch files).",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads (default: $OMP_NUM_THREADS, else every core this process may use)."
    ),
    seed: int | None = typer.Option(None, help="Seed of init, shuffling and augmentation (default 0)."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for checkpoint.pt and metrics.json (default runs/NAME-DATASET)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out's checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over, replacing --out's checkpoint."),
    test: bool = typer.Option(False, "--test", help="Evaluate on the test split at the end (never during training)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Train a zoo net or an arch file on a dataset; checkpoint every epoch, metrics.json at the end."""
    subset = parse_train_size(train_size, field="--train-size")  # refused before any work
    resolve_arch(target)  # the arch and recipe files are checked before torch is imported
    if recipe_file is not None:
        load_recipe(recipe_file)
    from nas_res.data.published import TORCHVISION
    from nas_res.data.splits import with_train_size
    from nas_res.training.plan import memory_note, plan_training, run_training
    from nas_res.training.status import RunStatus
    from nas_res.training.threads import thread_plan

    overrides = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        schedule=schedule,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        warmup_epochs=warmup_epochs,
        grad_clip=grad_clip,
        precision=precision,
        compile=compile,
        patience=patience,
        seed=seed,
    )
    plan = plan_training(
        target,
        dataset=dataset,
        recipe_file=recipe_file,
        overrides=overrides,
        val_size=val_size,
        split_seed=split_seed,
        image_size=image_size,
        fit=fit,
        out=out_dir,
        resume=resume,
        overwrite=overwrite,
        test=test,
        device=device,
        data_dir=data_dir,
        download=download,
        threads=threads,
        task=task,
        latent=latent,
        likelihood=likelihood,
    )
    cut = thread_plan(threads)[1]  # more threads than cores: cut to them (plan.threads), and said
    if cut:
        note(cut)
    # cut after loading: TrainPlan (nas_res.training.plan) carries no train size; the same images as load_data's
    data = with_train_size(plan.load_data(), subset, field="--train-size")
    if len(data.train) < plan.recipe.batch_size:
        raise ResnasError(
            f"{plan.recipe.batch_size} is more than the {len(data.train):,} training images --train-size keeps; "
            "lower --batch-size or raise --train-size",
            field="--batch-size",
        )
    elsewhere = data_dir is not None and not Path(data.source).is_relative_to(data_dir.expanduser())
    if data.name in TORCHVISION and elsewhere:  # a system package's folder: say so, the user named another
        err.print(
            f"{data.name}: not in --data-dir {data_dir}; read from {data.source}", highlight=False, soft_wrap=True
        )
    arch = plan.arch_for(data)
    said = memory_note(plan, arch, data)  # refused, or said, before a batch is drawn
    if said:
        note(said)
    if arch != plan.arch:
        last = ("resolution", plan.arch.resolution, arch.resolution) if arch.task == "vae" else None
        last = last or ("classes", plan.arch.classes, arch.classes)
        err.print(
            f"{plan.name}: in_channels {plan.arch.in_channels}->{arch.in_channels}, {last[0]} "
            f"{last[1]}->{last[2]} to fit {data.name}",
            highlight=False,
        )
    on_batch, on_epoch, progress = progress_bars(plan.recipe, not as_json, vae=arch.task == "vae")
    before = _mtime(plan.checkpoint)
    previous = sigterm_as_interrupt()  # a scheduler's stop says what was saved, as Ctrl-C does
    try:
        with progress:
            result = run_training(plan, data, on_batch=on_batch, on_epoch=on_epoch)
    except KeyboardInterrupt as e:
        err.print(_interrupted(plan, saved=_mtime(plan.checkpoint) != before), highlight=False)
        raise typer.Exit(exit_code(isinstance(e, Terminated))) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if plan.picture is not None and arch.task == "vae" and result.status != RunStatus.DIVERGED:
        from nas_res.arch.vae import VAE
        from nas_res.results.vae_plot import save_vae_pictures

        if isinstance(result.model, VAE):
            save_vae_pictures(result.model, data, plan.picture, title=f"{plan.name} VAE on {data.name}")
    if as_json:
        emit_json(result.to_dict())
    else:
        summary(plan, result)
    if result.status.failed:
        raise typer.Exit(1)


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def _interrupted(plan: TrainPlan, saved: bool) -> str:
    """What an interrupt left: the epoch just saved, the checkpoint as it was, or nothing at all."""
    if saved:
        return f"interrupted; the last finished epoch is in {plan.checkpoint} (continue with --resume)"
    if plan.resume:
        return f"interrupted before an epoch ended; {plan.checkpoint} is as it was (continue with --resume)"
    if plan.checkpoint.exists():
        return f"interrupted before the first epoch ended; nothing saved ({plan.checkpoint} is the earlier run's)"
    return "interrupted before the first epoch ended; nothing was saved"
