"""`resnas evaluate`: a trained checkpoint scored on the test (or validation) split, as a table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nas_res.errors import count

from .common import DATA_DIR_HELP, DATASET_HELP, DOWNLOAD_HELP, JSON_HELP, emit_json, note, out, user_errors


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
