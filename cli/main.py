"""The `resnas` command: parsing and presentation only; every decision is made in `nas_res`."""

from __future__ import annotations

import typer
from rich.table import Table

from nas_res import ResnasError, __version__
from nas_res.arch.zoo import resolve_arch
from nas_res.space.template import load_spec

from .common import BUDGET_HELP, JSON_HELP, PARAMS_HELP, cost_record, emit_json, err, out, reflow_help, user_errors
from .lazy import LazyGroup  # the commands of the other cli modules, imported when used

app = typer.Typer(
    help="Design-space exploration and architecture search for residual networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)


def _version(show: bool) -> None:
    if show:
        out.print(f"resnas {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Design-space exploration and architecture search for residual networks."""


space_app = typer.Typer(help="Inspect and sample design spaces.", no_args_is_help=True)
app.add_typer(space_app, name="space")


# ---- zoo and cost ---------------------------------------------------------------------------------


@app.command("zoo")
@user_errors
def zoo_cmd(
    name: str | None = typer.Argument(None, help="Show one entry in full."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Named reference architectures (torchvision's ImageNet nets, the papers' CIFAR nets, MNIST)."""
    from nas_res import cost, zoo
    from nas_res.arch.budget import human

    names = [name] if name else zoo.names()
    records = []
    for n in names:
        arch = zoo.get(n)
        records.append(
            {"name": n, "description": zoo.describe(n), "depth": arch.depth, **cost_record(arch, cost(arch))}
        )
    if as_json:
        return emit_json(records if not name else records[0])
    if name:
        r = records[0]
        out.print(f"[bold]{name}[/]: {r['description']} (key {r['key']})")
        out.print(zoo.get(name).to_yaml(), highlight=False)
        c = r["cost"]
        out.print(
            f"FLOPs {human(c['flops'])}  params {human(c['params'])}  acts {human(c['acts'])}  "
            f"at {c['resolution']}x{c['resolution']}"
        )
        return
    table = Table(title="resnas zoo")
    for col in ("name", "layers", "FLOPs", "params", "res", "what"):
        table.add_column(col, justify="right" if col in ("layers", "FLOPs", "params", "res") else "left")
    for r in records:
        c = r["cost"]
        table.add_row(
            r["name"], str(r["depth"]), human(c["flops"]), human(c["params"]), str(c["resolution"]), r["description"]
        )
    out.print(table)


@app.command("cost")
@user_errors
def cost_cmd(
    target: str = typer.Argument(..., help="Zoo name or arch file (.yaml/.json)."),
    resolution: int | None = typer.Option(None, help="Input side (default: the arch's reference)."),
    verify: bool = typer.Option(False, "--verify", help="Also build the model and count with fvcore."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Exact FLOPs, params and activations, computed from the description (no model built)."""
    if resolution is not None and resolution < 1:
        raise ResnasError(f"must be a positive integer; got {resolution}", field="--resolution")
    name, arch = resolve_arch(target)
    from nas_res.arch.budget import human
    from nas_res.arch.cost import cost
    from nas_res.arch.referee import fvcore_cost

    c = cost(arch, resolution)
    ref = fvcore_cost(arch, resolution) if verify else None
    if as_json:
        record = cost_record(arch, c)
        record["parts"] = c.to_dict()["parts"]
        if ref:
            record["fvcore"] = {"flops": ref.flops, "params": ref.params, "acts": ref.acts}
            record["match"] = (ref.flops, ref.params, ref.acts) == (c.flops, c.params, c.acts)
        emit_json(record)
    else:
        table = Table(title=f"{name}: {arch.summary()} at {c.resolution}x{c.resolution}")
        for col in ("part", "FLOPs", "params", "acts") + (("fvcore FLOPs",) if ref else ()):
            table.add_column(col, justify="left" if col == "part" else "right")
        for part, t in c.parts.items():
            extra = (f"{ref.parts[part].flops:,}",) if ref else ()
            table.add_row(part, f"{t.flops:,}", f"{t.params:,}", f"{t.acts:,}", *extra)
        table.add_row(
            "[bold]total",
            f"[bold]{c.flops:,}",
            f"[bold]{c.params:,}",
            f"[bold]{c.acts:,}",
            *((f"[bold]{ref.flops:,}",) if ref else ()),
        )
        out.print(table)
        out.print(f"{human(c.flops)}FLOPs, {human(c.params)} params, {human(c.acts)} acts (key {arch.key})")
        if ref:
            for what in ("flops", "params", "acts"):
                a, b = getattr(c, what), getattr(ref, what)
                mark = "[green]match[/]" if a == b else f"[red]MISMATCH ({a - b:+,})[/]"
                out.print(f"  {what:6s} analytic {a:>16,}  fvcore/module {b:>16,}  {mark}")
    if ref and (ref.flops, ref.params, ref.acts) != (c.flops, c.params, c.acts):
        raise typer.Exit(1)


@app.command("iso")
@user_errors
def iso_cmd(
    like: str = typer.Option(..., "--like", help="Reference: zoo name or arch file (e.g. resnet50)."),
    cardinality: str | None = typer.Option(None, help="Cardinalities, e.g. 1,2,4,8,32."),
    depths: str | None = typer.Option(None, help="Stage depths, e.g. 2-2-2-2,3-4-23-3."),
    match: str = typer.Option("params", help="Keep params (as the ResNeXt paper) or flops."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Iso-complexity: the bottleneck width (per cardinality) or width (per depth) that keeps the reference's
    params or FLOPs."""
    _, ref = resolve_arch(like)
    from nas_res.arch.budget import human
    from nas_res.space.iso import iso_table

    results = iso_table(ref, cardinality=cardinality, depths=depths, match=match)
    if as_json:
        return emit_json(
            [{"label": r.label, "deviation": r.deviation(match), **cost_record(r.arch, r.cost)} for r in results]
        )
    table = Table(title=f"iso-{match} with {like} ({human(results[0].target)})")
    for col in ("setting", "inner width (stage 1)", "FLOPs", "params", "vs reference"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for r in results:
        table.add_row(
            r.label,
            str(r.arch.stages[0].mid),
            human(r.cost.flops),
            human(r.cost.params),
            f"{r.deviation(match) * 100:+.2f}%",
        )
    out.print(table)


# ---- design spaces --------------------------------------------------------------------------------


@app.command("spaces")
@user_errors
def spaces_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)):
    """Built-in design-space templates."""
    from nas_res.space.design_space import load_space
    from nas_res.space.template import builtin_spaces

    spaces = [load_space(n) for n in builtin_spaces()]
    if as_json:
        return emit_json(
            [
                {"name": s.name, "description": s.spec.description, "size": s.size(), "resolution": s.spec.resolution}
                for s in spaces
            ]
        )
    table = Table(title="built-in design spaces (search_spaces/)")
    for col in ("name", "size", "res", "description"):
        table.add_column(col, justify="right" if col in ("size", "res") else "left")
    for s in spaces:
        table.add_row(s.name, f"{s.size():,}", str(s.spec.resolution), s.spec.description)
    out.print(table)


@space_app.command("show")
@user_errors
def space_show(
    space: str = typer.Argument(..., help="Built-in name or template path."),
    budget: str | None = typer.Option(None, help=BUDGET_HELP),
    max_params: str | None = typer.Option(None, help=PARAMS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """A space's fixed parts, open dimensions, exact size, and the share of it inside a budget."""
    spec = load_spec(space)
    from nas_res.arch.budget import Budget, human
    from nas_res.arch.cost import cost
    from nas_res.space.budget_fit import check_budget, extremes, feasible_fraction
    from nas_res.space.design_space import DesignSpace

    s = DesignSpace(spec)
    b = Budget.parse(budget, max_params)
    info = s.describe()
    cheap, big = extremes(s, "flops")
    info["cheapest"] = cost_record(cheap, cost(cheap))
    info["largest"] = cost_record(big, cost(big))
    frac = None
    if not b.unbounded:
        check_budget(s, b)
        frac = feasible_fraction(s, b)
        info["budget"] = {"flops_min": b.flops_min, "flops_max": b.flops_max, "params_max": b.params_max}
        info["feasible"] = {
            "fraction": frac.value,
            "low": frac.low,
            "high": frac.high,
            "exact": frac.exact,
            "count": frac.feasible,
            "of": frac.total,
        }
    if as_json:
        return emit_json(info)
    out.print(f"[bold]{s.name}[/]: {s.spec.description}  ({s.spec.source})")
    factors = s.dims["width_multiplier"].values if "width_multiplier" in s.dims else (2,)
    rule = "doubles" if factors == (2,) else f"multiplies the width by {'/'.join(f'{m:g}' for m in factors)}"
    out.print(
        f"input {s.spec.in_channels}x{s.spec.resolution}x{s.spec.resolution}, {s.spec.classes} classes, "
        f"strides {list(s.spec.strides)} (each x2 {rule}{' the width' if rule == 'doubles' else ''})"
    )
    table = Table(title="dimensions")
    table.add_column("dim")
    table.add_column("values")
    table.add_column("open", justify="center")
    for name, values in info["dims"].items():
        table.add_row(name, ", ".join(map(str, values)), "yes" if s.dims[name].open else "")
    out.print(table)
    out.print(f"size: [bold]{info['size']:,}[/] distinct architectures")
    out.print(f"FLOPs from {human(cost(cheap).flops)} ({cheap.summary()}) to {human(cost(big).flops)}")
    if frac:
        if frac.exact:
            out.print(
                f"inside {b.describe()}: [bold]{frac.feasible:,}[/] of {frac.total:,} ({frac.value * 100:.2f}%, exact)"
            )
        else:
            out.print(
                f"inside {b.describe()}: about [bold]{frac.value * 100:.2f}%[/] "
                f"(95% CI {frac.low * 100:.2f}-{frac.high * 100:.2f}%, {frac.total:,} uniform samples), "
                f"~{frac.value * info['size']:,.0f} architectures"
            )


@space_app.command("sample")
@user_errors
def space_sample(
    space: str = typer.Argument(..., help="Built-in name or template path."),
    budget: str | None = typer.Option(None, help=BUDGET_HELP),
    max_params: str | None = typer.Option(None, help=PARAMS_HELP),
    n: int = typer.Option(10, "-n", "--num", help="How many distinct candidates."),
    seed: int = typer.Option(0, help="Random seed (same seed, same sample)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
):
    """Distinct candidates drawn uniformly from the space, all inside the budget."""
    if n < 1:
        raise ResnasError(f"must be at least 1; got {n}", field="-n")
    spec = load_spec(space)
    from nas_res.arch.budget import Budget, human
    from nas_res.arch.cost import cost
    from nas_res.space.budget_fit import check_budget
    from nas_res.space.design_space import DesignSpace

    s = DesignSpace(spec)
    b = Budget.parse(budget, max_params)
    check_budget(s, b)
    archs = s.sample(n, b, seed)
    if not archs:
        raise ResnasError(
            f"no candidate of {s.name!r} inside {b.describe()} was found among the samples drawn; widen the budget"
        )
    records = [cost_record(a, cost(a)) for a in archs]
    if as_json:
        return emit_json(records)
    table = Table(title=f"{len(archs)} candidates from {s.name} ({b.describe()}, seed {seed})")
    for col in ("#", "key", "architecture", "FLOPs", "params", "acts"):
        table.add_column(col, justify="right" if col in ("#", "FLOPs", "params", "acts") else "left")
    for i, r in enumerate(records, 1):
        c = r["cost"]
        table.add_row(str(i), r["key"], r["summary"], human(c["flops"]), human(c["params"]), human(c["acts"]))
    out.print(table)
    if len(archs) < n:
        err.print(f"only {len(archs)} distinct candidates fit the budget (asked for {n})")


reflow_help(app)  # after every command is added


def main() -> None:
    app()


if __name__ == "__main__":
    main()
