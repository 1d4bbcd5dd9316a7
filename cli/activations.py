"""`resnas activations`: a trained network's feature maps unit by unit, as a picture."""

from __future__ import annotations

import typer

from nas_res import ResnasError
from nas_res.data.names import DATASETS
from nas_res.results.page import check_plot_file

from .common import note, out, user_errors

TARGET_HELP = (
    "One or more checkpoints (.pt or a run's folder), drawn side by side on the same images; a zoo name or "
    "arch file shows the net at initialisation (needs --dataset)."
)


@user_errors
def activations_cmd(
    targets: list[str] = typer.Argument(..., help=TARGET_HELP),
    out_file: str = typer.Option(
        ..., "--out", help="FILE.png (the strongest channels) or FILE.html (every channel too)."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help=f"Default: the data the checkpoint was trained on. One of: {', '.join(DATASETS)}."
    ),
    images: int = typer.Option(4, "--images", help="Test images shown (one per class first)."),
    units: str = typer.Option("all", "--units", help="all, or depths: 0 is the stem's output, then units 1, 2, ..."),
    channels: int = typer.Option(8, "--channels", help="Channels shown per image and unit in the PNG (the strongest)."),
    split: str = typer.Option("test", "--split", help="test or val: where the images come from."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Where the datasets live on this host."),
    device: str = typer.Option("cpu", help="cpu, auto, cuda or cuda:N."),
):
    """The feature maps after the stem and after each unit of a trained network, for a few test images:
    how the representation changes with depth. Give a plain net and its residual twin to compare them."""
    from nas_res.inspect.activations import activations, parse_units  # here: --help imports no torch
    from nas_res.results.activation_plot import picture_note, save_activations

    check_plot_file(out_file, field="--out")  # before any work
    if channels < 1:
        raise ResnasError(f"must be a positive integer; got {channels}", field="--channels")
    acts = activations(
        targets,
        dataset,
        images=images,
        units=parse_units(units),
        split=split,
        device=device,
        data_dir=data_dir,
        say=note,  # a large memory estimate, before the maps are made
    )
    for a in acts:
        if a.note:
            note(a.note)
    said = picture_note(acts, out_file, channels)  # refused, or said, before drawing
    if said:
        note(said)
    path = save_activations(acts, out_file, channels=channels)
    for a in acts:
        shown = ", ".join(str(u.depth) for u in a.units)
        out.print(
            f"{a.label}: {a.arch.summary()}, depths {shown} on {len(a.labels)} {split} images of {a.dataset}",
            highlight=False,
            markup=False,
        )
    out.print(f"saved {path}", highlight=False, markup=False)
