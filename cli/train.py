"""`resnas train` and `resnas evaluate`: flags to a recipe, a progress bar, a summary table."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas_res import ResnasError
from nas_res.arch.zoo import resolve_arch
from nas_res.data.names import DATASETS
from nas_res.data.subset import parse_train_size
from nas_res.errors import Terminated, count, sigterm_as_interrupt
from nas_res.training.recipe import Recipe, load_recipe

from .common import JSON_HELP, emit_json, err, exit_code, note, out, user_errors

if TYPE_CHECKING:
    from nas_res.training.plan import TrainPlan

DATASET_HELP = f"One of: {', '.join(DATASETS)}."
DATA_DIR_HELP = (
    "Where torchvision datasets live, in its layout (DIR/FashionMNIST/raw/...), or a folder holding the four "
    "(Fashion-)MNIST idx files, .gz or not (default: $RESNAS_DATA or ~/.cache/resnas/data). Fashion-MNIST is "
    "also found in /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)."
)
DOWNLOAD_HELP = "Download a dataset found nowhere into --data-dir (when online)."


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
    from nas_res.data.dataset import with_train_size
    from nas_res.data.published import TORCHVISION
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
    on_batch, on_epoch, progress = _progress(plan.recipe, not as_json, vae=arch.task == "vae")
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
        _summary(plan, result)
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


def _progress(recipe: Recipe, show: bool, vae: bool = False):
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=False,
    )
    tasks: dict[str | tuple[str, int], TaskID] = {}  # "epoch", and ("batch", epoch) per running epoch

    def on_batch(p) -> None:
        if "epoch" not in tasks:
            tasks["epoch"] = progress.add_task("epochs", total=recipe.epochs, stats="")
        key = ("batch", p.epoch)
        if key not in tasks:
            tasks[key] = progress.add_task(f"epoch {p.epoch}/{recipe.epochs}", total=p.batches, stats="")
        measure = f"-ELBO {p.loss:.1f}" if vae else f"loss {p.loss:.3f}  acc {p.acc:5.1f}%"
        progress.update(tasks[key], completed=p.batch, stats=f"{measure}  {p.images_per_s:,.0f} img/s")

    def on_epoch(m) -> None:
        key = ("batch", m.epoch)
        if key in tasks:
            progress.remove_task(tasks.pop(key))
        if "epoch" in tasks:
            measure = f"val -ELBO {m.val_loss:.1f}" if vae else f"val loss {m.val_loss:.3f}  val acc {m.val_acc:5.1f}%"
            progress.update(tasks["epoch"], completed=m.epoch, stats=f"{measure}  {m.images_per_s:,.0f} img/s")

    return on_batch, on_epoch, progress


def _fmt(v, spec: str) -> str:
    return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _summary(plan: TrainPlan, result) -> None:
    from nas_res.arch.budget import human

    if result.arch.task == "vae":
        return _vae_summary(plan, result)
    table = Table(
        title=f"{plan.name} on {result.data['name']}: {result.status}"
        + (f" ({result.reason})" if result.reason else "")
    )
    for col in ("epoch", "train loss", "train acc %", "val loss", "val acc %", "lr", "s", "img/s"):
        table.add_column(col, justify="right")
    best = result.best
    for m in result.history:
        style = "bold green" if best is not None and m.epoch == best.epoch else None
        table.add_row(
            str(m.epoch),
            _fmt(m.train_loss, ".4f"),
            _fmt(m.train_acc, ".2f"),
            _fmt(m.val_loss, ".4f"),
            _fmt(m.val_acc, ".2f"),
            f"{m.lr:.4g}",
            f"{m.seconds:.1f}",
            f"{m.images_per_s:,.0f}",
            style=style,
        )
    out.print(table)
    c = result.cost
    lines = [
        f"arch {result.arch.summary()} (key {result.arch.key}): {human(c['flops'])}FLOPs at "
        f"{c['resolution']}x{c['resolution']}, {human(c['flops_at_data'])}FLOPs at the data's "
        f"{c['data_resolution']}x{c['data_resolution']}, {human(c['params'])} params"
    ]
    if best is not None:
        lines.append(
            f"best val acc {best.val_acc:.2f}% (epoch {best.epoch}); {result.images_per_s:,.0f} img/s on "
            f"{result.device}, {result.train_seconds:.1f} s training"
            + (f", compile {result.compile_seconds:.1f} s" if result.compile_seconds else "")
        )
    if result.test:
        t = result.test
        lines.append(
            f"test: top-1 {t['top1']:.2f}%"
            + (f", top-5 {t['top5']:.2f}%" if "top5" in t else "")
            + f", loss {t['loss']:.4f} on {t['images']} images"
        )
    lines.append(f"saved {plan.metrics}" + (f" and {plan.checkpoint}" if plan.checkpoint.exists() else ""))
    for line in lines:
        out.print(line, highlight=False)


def _vae_summary(plan: TrainPlan, result) -> None:
    from nas_res.arch.budget import human

    """A VAE's epochs (negative ELBO per image in nats, its terms, bits/dim) and where its picture went."""
    table = Table(
        title=f"{plan.name} VAE on {result.data['name']}: {result.status}"
        + (f" ({result.reason})" if result.reason else "")
    )
    for col in ("epoch", "train -ELBO", "val -ELBO", "val recon", "val KL", "val bits/dim", "lr", "s", "img/s"):
        table.add_column(col, justify="right")
    best = result.best
    for m in result.history:
        table.add_row(
            str(m.epoch),
            _fmt(m.train_loss, ".2f"),
            _fmt(m.val_loss, ".2f"),
            _fmt(m.val_recon, ".2f"),
            _fmt(m.val_kl, ".2f"),
            _fmt(m.val_bpd, ".4f") if m.val_bpd is not None else "-",
            f"{m.lr:.4g}",
            f"{m.seconds:.1f}",
            f"{m.images_per_s:,.0f}",
            style="bold green" if best is not None and m.epoch == best.epoch else None,
        )
    out.print(table)
    c = result.cost
    lines = [
        f"arch {result.arch.summary()} (key {result.arch.key}): {human(c['flops'])}FLOPs, {human(c['params'])} "
        f"params (encoder and decoder) at {c['resolution']}x{c['resolution']}; losses are nats per image"
    ]
    if best is not None:
        bpd = f", {best.val_bpd:.4f} bits/dim" if best.val_bpd is not None else ""
        lines.append(
            f"best val -ELBO {best.val_loss:.2f}{bpd} (epoch {best.epoch}); {result.images_per_s:,.0f} img/s on "
            f"{result.device}, {result.train_seconds:.1f} s training"
        )
    if result.test:
        t = result.test
        bpd = f", {t['bpd']:.4f} bits/dim" if t.get("bpd") is not None else ""
        lines.append(
            f"test: -ELBO {t['loss']:.2f} (recon {t['recon']:.2f}, KL {t['kl']:.2f}){bpd} on {t['images']} images"
        )
    saved = [str(p) for p in (plan.metrics, plan.checkpoint, plan.picture) if p is not None and p.exists()]
    lines.append("saved " + ", ".join(saved))
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)


@user_errors
def evaluate_cmd(
    ckpt: Path = typer.Argument(..., help="checkpoint.pt (or the --out folder holding it)."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Default: the one it was trained on. " + DATASET_HELP
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    download: bool = typer.Option(True, "--download/--no-download", help=DOWNLOAD_HELP),
    split: str = typer.Option("test", help="test (the final report) or val."),
    batch_size: int = typer.Option(512, "--batch-size"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Evaluate a trained checkpoint: top-1 (and top-5 above 10 classes) and loss on the test split; a VAE's
    negative ELBO per image, its terms and bits/dim."""
    from nas_res.training.evaluation import evaluate_checkpoint

    record = evaluate_checkpoint(
        ckpt, dataset=dataset, split=split, batch_size=batch_size, device=device, data_dir=data_dir, download=download
    )
    if record["note"]:
        note(record["note"])
    if as_json:
        return emit_json(record)
    vae = record["task"] == "vae"
    nats = " (nats per image)" if vae else ""
    title = f"{record['summary']} after {count(record['epoch'], 'epoch')}: {record['dataset']} {split} split{nats}"
    table = Table(title=title)
    heads = ("images", "-ELBO", "recon", "KL", "bits/dim") if vae else ("images", "top-1 %", "top-5 %", "loss")
    for col in heads:
        table.add_column(col, justify="right")
    if vae:
        bpd = f"{record['bpd']:.4f}" if record.get("bpd") is not None else "-"
        table.add_row(
            str(record["images"]), f"{record['loss']:.2f}", f"{record['recon']:.2f}", f"{record['kl']:.2f}", bpd
        )
    else:
        table.add_row(
            str(record["images"]),
            f"{record['top1']:.2f}",
            f"{record['top5']:.2f}" if "top5" in record else "-",
            f"{record['loss']:.4f}",
        )
    out.print(table)
