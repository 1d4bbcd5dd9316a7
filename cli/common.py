"""What every `resnas` command shares: consoles, the error boundary, JSON output, cost records."""

from __future__ import annotations

import functools
import inspect
import json
import os
import signal
import sys

import typer
from rich.console import Console
from rich.markup import escape

from nas_res import ResnasError
from nas_res.data.names import DATASETS
from nas_res.errors import Terminated

# Piped or captured output is not squeezed to 80 columns: tables stay readable in logs and files, and a
# message is one line however long (soft wrap), never broken mid-phrase at the width.
WIDTH = int(os.environ.get("COLUMNS", 200))
out = Console() if sys.stdout.isatty() else Console(width=WIDTH, soft_wrap=True)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=WIDTH, soft_wrap=True)

BUDGET_HELP = (
    "FLOPs cap (4GFLOPs, 600MFLOPs, 4e9) or band (3.8-4.2GFLOPs). FLOPs are multiply-adds counted as "
    "fvcore does (convs, linear, batch norm, pooling): ResNet-50 is 4.11 G, so 4GFLOPs excludes it."
)
PARAMS_HELP = "Parameter cap, e.g. 25M."
STORAGE_HELP = "SQLAlchemy URL of the study database (default sqlite:///studies/resnas.db)."
JSON_HELP = "Print machine-readable JSON (raw integers) instead of tables."


def user_errors(fn):
    """A mistake the user can make ends in one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ResnasError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as e:
            err.print("interrupted")
            raise typer.Exit(exit_code(terminated=isinstance(e, Terminated))) from None

    return wrapper


def exit_code(terminated: bool) -> int:
    """The shell's code for a command stopped by a signal: 143 (128 + 15) for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def note(text: str) -> None:
    """One `note:` line on stderr: what the user should know, though nothing failed."""
    err.print(f"note: {escape(text)}", highlight=False, soft_wrap=True)


def reflow_help(app: typer.Typer) -> None:
    """Join the lines of each paragraph of every command's docstring: Typer keeps the line breaks of all
    paragraphs but the first, so `--help` broke them mid-phrase wherever the source wrapped them."""
    for info in app.registered_commands:
        doc = info.help or inspect.getdoc(info.callback)
        if doc:
            info.help = "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n"))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def mean_sd(mean: float | None, sd: float | None, digits: int = 2) -> str:
    """`mean ± sd` over seeds (one seed has no sd), `-` for no value: one spelling in every table."""
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def interval(lo: float | None, hi: float | None, digits: int = 2) -> str:
    """A 95% interval as `[lo, hi]` (its bounds already kept inside the quantity's: seed_summary's `within`)."""
    return "-" if lo is None or hi is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cost_record(arch, c) -> dict:
    return {
        "key": arch.key,
        "summary": arch.summary(),
        "arch": arch.to_dict(),
        "cost": {"flops": c.flops, "params": c.params, "acts": c.acts, "resolution": c.resolution},
    }


HEARTBEAT_HELP = "Seconds between the heartbeats that tell other hosts this host's trials are alive."
THREADS_HELP = (
    "CPU threads per worker process (default: OMP_NUM_THREADS if set, else the cores split among the CPU "
    "workers; at most 4 per GPU worker)."
)
GRACE_HELP = (
    "Seconds without a heartbeat after which a trial is failed (its host died) and tried again with the "
    "same parameters."
)


def parse_gpus(text: str | None) -> list[int] | None:
    try:
        return [int(g) for g in text.split(",") if g.strip()] if text else None
    except ValueError:
        raise ResnasError(f"must be comma-separated GPU indices, e.g. 0,1; got {text!r}", field="--gpus") from None


DATASET_HELP = f"One of: {', '.join(DATASETS)}."
DATA_DIR_HELP = (
    "Where torchvision datasets live, in its layout (DIR/FashionMNIST/raw/...), or a folder holding the four "
    "(Fashion-)MNIST idx files, .gz or not (default: $RESNAS_DATA or ~/.cache/resnas/data). Fashion-MNIST is "
    "also found in /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)."
)
DOWNLOAD_HELP = "Download a dataset found nowhere into --data-dir (when online)."
