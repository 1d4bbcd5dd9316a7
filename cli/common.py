"""What every `resnas` command shares: consoles, the error boundary, JSON output, cost records."""

from __future__ import annotations

import functools
import json
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from nas_res import ResnasError

# Piped or captured output is not squeezed to 80 columns: tables stay readable in logs and files.
out = Console() if sys.stdout.isatty() else Console(width=int(os.environ.get("COLUMNS", 200)))
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=int(os.environ.get("COLUMNS", 200)))

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
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cost_record(arch, c) -> dict:
    return {
        "key": arch.key,
        "summary": arch.summary(),
        "arch": arch.to_dict(),
        "cost": {"flops": c.flops, "params": c.params, "acts": c.acts, "resolution": c.resolution},
    }
