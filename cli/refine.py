"""`resnas refine`: where a uniformly sampled study's good models lie, per dimension, and its space cut to that."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import JSON_HELP, STORAGE_HELP, emit_json, note, out, user_errors


@user_errors
def refine_cmd(
    study: str = typer.Argument(
        ..., help="A study sampled uniformly: resnas search --sampler random --pruner none (see resnas studies)."
    ),
    storage: str | None = typer.Option(None, help=STORAGE_HELP),
    out_file: Path | None = typer.Option(
        None, "--out", help="Write the refined template here (.yaml; resnas space show and search --space read it)."
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Write the picture: a panel per open dimension, error vs value with the good range shaded, and the "
        "error EDF by value (.png, .svg or .pdf; .html: a page with the picture and the table).",
    ),
    share: float = typer.Option(0.25, help="Share of the models in each bootstrap sample (pycls: 0.25)."),
    repeats: int = typer.Option(2500, help="Bootstrap samples (pycls: 2500)."),
    level: float = typer.Option(
        0.95, help="Level of the good range: the central share of the bootstrap winners' values (pycls: 0.95)."
    ),
    alpha: float = typer.Option(
        0.05, help="A dimension is narrowed when the models outside its range are worse at this level (one-sided KS)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Refine a design space as "Designing Network Design Spaces" does, from a study whose models were sampled
    uniformly: per open dimension, the good range (the values of the best model of 2,500 bootstrap samples of
    25% of the models, their central 95%), one-sided KS tests of each value against the rest, and a verdict:
    narrowed (the range leaves values out and the models outside it are worse), kept, or too few. The refined
    template cuts each narrowed dimension to its range. Its expected error is in-sample, so optimistic: only
    sampling the refined space anew tests it."""
    from nas_res.search.refinement import refine_study

    result = refine_study(
        study,
        storage=storage,
        share=share,
        repeats=repeats,
        level=level,
        alpha=alpha,
        out=out_file,
        plot=plot,
        prefix="--",
    )
    if as_json:
        return emit_json(result.to_dict())
    for line in result.notes:
        note(line)
    table = Table(title=f"refine {study} (space {result.space}; budget: {result.budget}; {len(result.models)} models)")
    for col in ("dimension", "values: n, KS p vs the rest", "good range", "n in/out", "KS p", "verdict", "why"):
        table.add_column(col, justify="right" if col in ("n in/out", "KS p") else "left")
    for d in result.dims:
        per_value = " · ".join(
            f"{_label(t.value)} n={t.n}" + (f" p={t.p:.2g}" if t.p is not None else "") for t in d.tests
        )
        table.add_row(
            d.name,
            per_value,
            d.range_text(),
            f"{d.inside}/{d.outside}",
            "-" if d.p is None else f"{d.p:.2g}",
            d.verdict,
            d.reason,
        )
    out.print(table)
    if result.fixed:
        say("fixed in the template: " + ", ".join(f"{k}={_label(v)}" for k, v in result.fixed.items()))
    say(
        "KS p: one-sided two-sample Kolmogorov-Smirnov, small p = these models' errors are lower than the "
        "others'; the range and its test come from the same models, so p is optimistic."
    )
    kept = result.kept
    how = "exact" if kept["exact"] else "estimated from uniform samples of both spaces"
    share_text = "-" if kept["value"] is None else f"{kept['value']:.1%}"
    narrowed = ", ".join(result.narrowed) or "none"
    say(
        f"refined space: {result.size:,} architectures (was {result.old_size:,}; narrowed: {narrowed}); it keeps "
        f"{share_text} of the old space's nets under the budget ({how})."
    )
    inside, everything = result.errors["inside"], result.errors["all"]
    if inside["n"]:
        say(
            f"expected error under the budget: mean {inside['mean']:.2f}%, median {inside['median']:.2f}% over the "
            f"{inside['n']} models inside the refined space (all {everything['n']} models: mean "
            f"{everything['mean']:.2f}%, median {everything['median']:.2f}%). An in-sample estimate, optimistic: "
            "the same models chose the ranges; only sampling the refined space anew tests it."
        )
    if result.out:
        say(f"wrote {result.out} (resnas space show {result.out})")
    else:
        note("the refined template was not written: give --out refined.yaml")
    if result.plot:
        say(f"wrote {result.plot}")


def say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
