"""`resnas gradients`: per-unit gradient norms of one backward pass, as a table, JSON or a picture."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from nas_res import ResnasError
from nas_res.data.names import DATASETS
from nas_res.results.page import check_plot_file

if TYPE_CHECKING:
    from nas_res.inspect.gradients import GradientFlow

from .common import JSON_HELP, emit_json, note, out, user_errors

TARGET_HELP = (
    "One or more: zoo name, arch file (.yaml/.json), checkpoint (.pt or a run's folder), or a zoo name or "
    "arch file with fields changed, quoted: 'resnet56_cifar[modulation=scale,modulation_value=0.5]'."
)


@user_errors
def gradients_cmd(
    targets: list[str] = typer.Argument(..., help=TARGET_HELP),
    batch: int = typer.Option(64, "--batch", help="Images in the one batch."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help=f"Default: random images of each arch's shape. One of: {', '.join(DATASETS)}.",
    ),
    seed: int = typer.Option(0, help="Initialisation, batch and augmentation seed."),
    device: str = typer.Option("cpu", help="cpu, auto, cuda or cuda:N."),
    plot: str | None = typer.Option(None, "--plot", help="Also draw the norms against depth: FILE.png or FILE.html."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Gradient flow at initialisation (or from a checkpoint): one forward/backward pass on one training
    batch, BN in train mode as at the first step of training; per unit, the L2 norm of the loss gradient
    reaching its input and of its weights' gradient. Compare plain and residual nets in seconds."""
    from nas_res.data.dataset import load_data  # here: --help imports no torch
    from nas_res.inspect.gradients import gradient_flow, memory_note, resolve_target
    from nas_res.results.gradient_plot import save_gradients
    from nas_res.training.device import resolve_device
    from nas_res.training.evaluation import other_data

    if plot:
        check_plot_file(plot, field="--plot")  # before any work
    if batch < 1:
        raise ResnasError(f"must be a positive integer; got {batch}", field="--batch")
    resolved = [resolve_target(t) for t in targets]  # every target checked before any is measured
    data = None
    if dataset:
        size = max(arch.resolution for _, arch, _ in resolved)  # an ImageFolder's decoded side
        data = load_data(dataset, image_size=size)
        for label, _, state in resolved:  # a trained net measured on other data than its own says so
            said = None if state is None else other_data(label, state, data)
            if said:
                note(said)
    for label, arch, _ in resolved:  # each pass estimated before any runs: refused, or said when it is large
        said = memory_note(arch, batch, data.size if data else arch.resolution, resolve_device(device), label)
        if said:
            note(said)
    flows = []
    for target, (label, arch, state) in zip(targets, resolved):
        source = arch if state is None else target  # a checkpoint is read again, for its weights
        flows.append(gradient_flow(source, data, batch=batch, seed=seed, device=device, label=label))
    if plot:
        saved = save_gradients(flows, plot)
    if as_json:
        return emit_json([f.to_dict() for f in flows])
    _table(flows)
    for i, f in enumerate(flows, 1):
        out.print(_summary(i, f), highlight=False, markup=False)
    if plot:
        out.print(f"saved {saved}", highlight=False, markup=False, soft_wrap=True)


def _table(flows: list[GradientFlow]) -> None:
    """One row per depth, two columns (input, weights) per network."""
    table = Table(title=f"gradient norms of one backward pass (batch {flows[0].batch}, BN in train mode)")
    table.add_column("depth", justify="right")
    table.add_column("part")
    for i in range(1, len(flows) + 1):
        table.add_column(f"#{i} ‖∂/∂input‖", justify="right")
        table.add_column(f"#{i} ‖∂/∂weights‖", justify="right")
    deepest = max(flows, key=lambda f: len(f.layers))
    for d, part in enumerate(deepest.layers):
        cells = []
        for f in flows:
            g = f.layers[d] if d < len(f.layers) else None
            cells += [f"{g.input_norm:.3g}", f"{g.weight_norm:.3g}"] if g else ["", ""]
        names = {f.layers[d].name for f in flows if d < len(f.layers)}
        table.add_row(str(d), part.name if len(names) == 1 else "/".join(sorted(names)), *cells)
    out.print(table)


def _summary(i: int, f: GradientFlow) -> str:
    from nas_res.results.gradient_plot import times

    units = f.units
    trend = "grows" if f.first_to_last > 1 else "shrinks" if f.first_to_last < 1 else "keeps its norm"
    return (
        f"#{i} {f.label}: {f.arch.summary()}, loss {f.loss:.3f}; input gradient {units[-1].input_norm:.3g} at the "
        f"last unit, {units[0].input_norm:.3g} at the first: {times(f.first_to_last)} (it {trend} on its way back), "
        f"{f.layers[0].input_norm:.3g} at the image"
    )
