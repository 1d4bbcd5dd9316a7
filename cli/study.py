"""`resnas study ...`: what is done to a study as a whole (for now: copying it to another storage)."""

from __future__ import annotations

import typer
from rich.markup import escape

from nas_res.results import copy_study

from .common import JSON_HELP, emit_json, out, user_errors

study_app = typer.Typer(help="Work on whole studies (copy one between storages).", no_args_is_help=True)


@study_app.command("copy")
@user_errors
def copy_cmd(
    name: str = typer.Argument(..., help="Study to copy (see resnas studies --storage URL)."),
    source: str = typer.Option(..., "--from", help="SQLAlchemy URL of the storage holding it."),
    target: str = typer.Option(..., "--to", help="SQLAlchemy URL of the storage to copy it into."),
    new_name: str | None = typer.Option(None, "--as", help="Name of the copy (default: the same)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Copy a study with its Optuna trials and resnas's runs, e.g. from SQLite to PostgreSQL; the source is
    only read, and a copy that fails leaves nothing behind in the target."""
    summary = copy_study(name, source, target, new_name)
    if as_json:
        return emit_json(summary)
    renamed = f" as [bold]{escape(summary['as'])}[/]" if summary["as"] != name else ""
    out.print(
        f"copied study [bold]{escape(name)}[/]{renamed}: {summary['trials']} trials, {summary['runs']} runs, "
        f"{summary['archs_added']} new architectures, from {escape(summary['from'])} to "
        f"{escape(summary['to'])}",
        highlight=False,
        soft_wrap=True,
    )
