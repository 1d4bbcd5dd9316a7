"""`resnas train` and `resnas evaluate`: flags to a recipe, a progress bar, a summary table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nas_res import Arch, ResnasError, checkpoint, zoo
from nas_res.cost import human
from nas_res.data import DATASETS, load_data
from nas_res.recipe import Recipe, load_recipe
from nas_res.train import check_fit, evaluate, train

from .common import JSON_HELP, emit_json, err, out, resolve_arch, user_errors

DATASET_HELP = f"One of: {', '.join(DATASETS)}."
DATA_DIR_HELP = "Where torchvision datasets live (default: $RESNAS_DATA or ~/.cache/resnas/data)."
DOWNLOAD_HELP = "Download a missing torchvision dataset into --data-dir (when online)."


def fit_to_data(name: str, arch: Arch, data, fit: bool | None, from_zoo: bool) -> Arch:
    """Zoo nets are families: adapt input channels and classes to the data unless told not to."""
    if fit is None:
        fit = from_zoo
    if fit and (arch.in_channels, arch.classes) != (data.channels, data.classes):
        err.print(
            f"{name}: in_channels {arch.in_channels}->{data.channels}, classes {arch.classes}->{data.classes} "
            f"to fit {data.name}",
            highlight=False,
        )
        arch = arch.replace(in_channels=data.channels, classes=data.classes)
    check_fit(arch, data)
    return arch


def make_recipe(recipe_file: Path | None, **flags) -> Recipe:
    base = load_recipe(recipe_file) if recipe_file else Recipe()
    return base.replace(**{k: v for k, v in flags.items() if v is not None})


@user_errors
def train_cmd(
    target: str = typer.Argument(..., help="Zoo name (see `resnas zoo`) or arch file (.yaml/.json)."),
    dataset: str = typer.Option("digits", "--dataset", "-d", help=DATASET_HELP),
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
    val_size: float = typer.Option(0.1, "--val-size", help="Validation split: a fraction (<1) or a count."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the train/validation split."),
    image_size: int | None = typer.Option(None, "--image-size", help="ImageFolder side (default: arch's)."),
    fit: bool | None = typer.Option(
        None,
        "--fit/--no-fit",
        help="Set the arch's input channels and classes from the data (default: yes for zoo names, no for arch files).",
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
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
    name, arch = resolve_arch(target)
    recipe = make_recipe(
        recipe_file,
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
    if not 0 < val_size < float("inf"):  # also nan
        raise ResnasError(f"must be a fraction in (0, 1) or a count of images; got {val_size}", field="--val-size")
    if split_seed < 0:
        raise ResnasError(f"must be a non-negative integer; got {split_seed}", field="--split-seed")
    if image_size is not None and image_size < 1:
        raise ResnasError(f"must be a positive number of pixels; got {image_size}", field="--image-size")
    val = int(val_size) if val_size >= 1 else val_size
    out_dir = out_dir or Path("runs") / f"{name}-{dataset.split(':')[0]}"
    if resume and overwrite:
        raise ResnasError("--resume continues the checkpoint, --overwrite replaces it: choose one", field="--resume")
    if not (resume or overwrite) and (out_dir / "checkpoint.pt").exists():
        raise ResnasError(
            f"{out_dir} already holds a checkpoint; pass --resume to continue it, --overwrite to start "
            "over, or choose another --out",
            field="--out",
        )
    data = load_data(
        dataset,
        data_dir=data_dir,
        val_size=val,
        split_seed=split_seed,
        test=test,
        download=download,
        image_size=image_size or arch.resolution,
    )
    arch = fit_to_data(name, arch, data, fit, from_zoo=target in zoo.names())
    on_batch, on_epoch, progress = _progress(recipe, not as_json)
    try:
        with progress:
            result = train(
                arch, data, recipe, device=device, on_batch=on_batch, on_epoch=on_epoch, out=out_dir, resume=resume
            )
    except KeyboardInterrupt:
        err.print(
            f"interrupted; the last finished epoch is in {out_dir / 'checkpoint.pt'} (continue with --resume)",
            highlight=False,
        )
        raise typer.Exit(130)
    if test and result.model is not None and result.status != "diverged":
        result.test = evaluate(result.model, data, "test", device=device, recipe=recipe)
    record = result.to_dict()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2) + "\n")
    if as_json:
        emit_json(record)
    else:
        _summary(name, result, out_dir)
    if result.status in ("diverged", "out_of_memory"):
        raise typer.Exit(1)


def _progress(recipe: Recipe, show: bool):
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
    tasks = {}

    def on_batch(p) -> None:
        if "epoch" not in tasks:
            tasks["epoch"] = progress.add_task("epochs", total=recipe.epochs, stats="")
        key = ("batch", p.epoch)
        if key not in tasks:
            tasks[key] = progress.add_task(f"epoch {p.epoch}/{recipe.epochs}", total=p.batches, stats="")
        progress.update(
            tasks[key], completed=p.batch, stats=f"loss {p.loss:.3f}  acc {p.acc:5.1f}%  {p.images_per_s:,.0f} img/s"
        )

    def on_epoch(m) -> None:
        key = ("batch", m.epoch)
        if key in tasks:
            progress.remove_task(tasks.pop(key))
        if "epoch" in tasks:
            progress.update(
                tasks["epoch"],
                completed=m.epoch,
                stats=f"val loss {m.val_loss:.3f}  val acc {m.val_acc:5.1f}%  {m.images_per_s:,.0f} img/s",
            )

    return on_batch, on_epoch, progress


def _fmt(v, spec: str) -> str:
    return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _summary(name: str, result, out_dir: Path) -> None:
    table = Table(
        title=f"{name} on {result.data['name']}: {result.status}" + (f" ({result.reason})" if result.reason else "")
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
    lines.append(
        f"saved {out_dir / 'metrics.json'}"
        + (f" and {out_dir / 'checkpoint.pt'}" if (out_dir / "checkpoint.pt").exists() else "")
    )
    for line in lines:
        out.print(line, highlight=False)


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
    """Evaluate a trained checkpoint: top-1 (and top-5 above 10 classes) and loss on the test split."""
    if split not in ("test", "val"):
        raise ResnasError(f"must be test or val; got {split!r}", field="--split")
    if batch_size < 1:
        raise ResnasError(f"must be a positive integer; got {batch_size}", field="--batch-size")
    model, state = checkpoint.trained_model(ckpt)
    arch = model.arch
    trained = state["data"]
    data = load_data(
        dataset or trained["spec"],
        data_dir=data_dir,
        test=split == "test",
        download=download,
        val_size=trained["val"],
        split_seed=trained["split_seed"],
        image_size=trained["size"],
    )
    check_fit(arch, data)
    result = evaluate(
        model,
        data,
        split,
        device=device,
        batch_size=batch_size,
        recipe=Recipe.from_dict(state["recipe"], where=str(ckpt)),
    )
    record = {
        "checkpoint": str(ckpt),
        "arch_key": arch.key,
        "summary": arch.summary(),
        "dataset": data.spec,
        "split": split,
        "epoch": state["epoch"],
        **result,
    }
    if as_json:
        return emit_json(record)
    table = Table(title=f"{arch.summary()} after {state['epoch']} epochs: {data.spec} {split} split")
    for col in ("images", "top-1 %", "top-5 %", "loss"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result["images"]),
        f"{result['top1']:.2f}",
        f"{result['top5']:.2f}" if "top5" in result else "-",
        f"{result['loss']:.4f}",
    )
    out.print(table)
