"""What `resnas train` shows: a progress bar per epoch and batch while it trains, and the summary table of
a classifier or a VAE when it ends."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import err, out

if TYPE_CHECKING:
    from nas_res.training.plan import TrainPlan
    from nas_res.training.recipe import Recipe


def progress_bars(recipe: Recipe, show: bool, vae: bool = False):
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


def fmt(v, spec: str) -> str:
    return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def summary(plan: TrainPlan, result) -> None:
    from nas_res.arch.budget import human

    if result.arch.task == "vae":
        return vae_summary(plan, result)
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
            fmt(m.train_loss, ".4f"),
            fmt(m.train_acc, ".2f"),
            fmt(m.val_loss, ".4f"),
            fmt(m.val_acc, ".2f"),
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


def vae_summary(plan: TrainPlan, result) -> None:
    """A VAE's epochs (negative ELBO per image in nats, its terms, bits/dim) and where its picture went."""
    from nas_res.arch.budget import human

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
            fmt(m.train_loss, ".2f"),
            fmt(m.val_loss, ".2f"),
            fmt(m.val_recon, ".2f"),
            fmt(m.val_kl, ".2f"),
            fmt(m.val_bpd, ".4f") if m.val_bpd is not None else "-",
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
