"""A study's design space refined (`resnas refine`, `nas_res.refine`): where its good models lie, per
dimension, and the template cut to that.

The study must be a uniform sample of its space: sampler random (uniform over the nets under the budget)
and pruner none (every model trained in full, so every error is comparable). Its ranked models are read
with the space and budget it stored; `results.refine` finds each open dimension's good range and verdict;
`space.refined` writes the original template with each narrowed dimension cut to its range. It lives in
`search` because, as `finalize` does, it rebuilds a study's space from its stored snapshot (`config`).

Over 300 lines: one command's whole path, the study's refusals, its models read off their architectures, and
the template's cuts undone where they would not read back; split, each part would need the others' records.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..arch.budget import Budget
from ..arch.description import Arch
from ..errors import ResnasError
from ..files import check_writable, write_text
from ..results.final import SUFFIX
from ..results.refine import ALPHA, LEVEL, REPEATS, SHARE, DimRefinement, check_options, refine_dim
from ..results.refine_plot import check_plot_file, refine_figure, refine_table, save
from ..results.storage import safe_url
from ..results.store import Store
from ..space.budget_fit import feasible_fraction
from ..space.design_space import DesignSpace
from ..space.dims import Dim
from ..space.refined import BOTTLENECK_ONLY, narrowed_text
from .config import space_from_snapshot

MIN_MODELS = 20  # ranked models a refinement needs: 5 a side of a test, a few tests a dimension
BOTTLENECK_DIMS = (*BOTTLENECK_ONLY, "stride_on")  # a basic block's value of these means nothing
EXPERIMENT_KEY = "experiment"  # an experiment's stored definition (experiments.run.SNAPSHOT, a layer above)
ORDER = ("stem", "stem_width", "block", "depth", "depth_ratio", "width", "width_multiplier", "cardinality",
         "bottleneck_width", "bottleneck_ratio", "shortcut", "unit_order", "stride_on", "modulation")  # fmt: skip
UNIFORM = "resnas search --sampler random --pruner none"


@dataclass(frozen=True)
class Model:
    """One ranked model of the study: its trial, error (100 - best validation accuracy), the value of each
    open dimension it has (a basic block has no cardinality), and whether it lies inside the refined space."""

    trial: int
    error: float
    values: dict
    inside: bool = False


@dataclass(frozen=True)
class Refinement:
    """What `refine` found: each open dimension's good range, tests and verdict; the refined template (YAML
    text) and its size; the share of the budget-feasible nets it keeps; the error of the study's models
    inside it (in-sample: optimistic, tested only by sampling the refined space anew)."""

    study: str
    space: str
    budget: str
    dims: tuple[DimRefinement, ...]
    fixed: dict  # the template's one-value dimensions
    template: str
    size: int  # distinct architectures of the refined space
    old_size: int
    kept: dict  # share of the old space's budget-feasible nets the refined space keeps (value, exact, ...)
    errors: dict  # "all" and "inside": n, mean, median of the models' errors
    models: tuple[Model, ...]
    options: dict
    notes: tuple[str, ...] = ()
    out: str | None = None
    plot: str | None = None
    refined_space: DesignSpace | None = field(default=None, repr=False, compare=False)

    @property
    def narrowed(self) -> list[str]:
        return [d.name for d in self.dims if d.narrowed]

    def to_dict(self) -> dict:
        skip = ("dims", "models", "refined_space")
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}
        d["notes"] = list(self.notes)
        d["dims"] = [x.to_dict() for x in self.dims]
        d["narrowed"] = self.narrowed
        d["models"] = [
            {"trial": m.trial, "error": m.error, "values": m.values, "inside": m.inside} for m in self.models
        ]
        return d


def check_outputs(out: str | Path | None, plot: str | Path | None, prefix: str = "") -> None:
    """Refuse, before any study is read, a template or picture that could not be written."""
    if out is not None:
        if Path(out).suffix.lower() not in (".yaml", ".yml"):
            raise ResnasError(
                f"{out} must end in .yaml (a template `resnas space show` and --space read)", field=prefix + "out"
            )
        check_writable(out, field=prefix + "out")
    if plot is not None:
        check_plot_file(plot, prefix + "plot")


def refine_study(
    study: str,
    *,
    storage: str | None = None,
    share: float = SHARE,
    repeats: int = REPEATS,
    level: float = LEVEL,
    alpha: float = ALPHA,
    out: str | Path | None = None,
    plot: str | Path | None = None,
    seed: int = 0,
    prefix: str = "",
) -> Refinement:
    """Refine `study`'s space (see the module); write the template to `out` and the picture to `plot` where
    given. `prefix`: what the option names start with in messages (`--` from the CLI)."""
    check_options(share, repeats, level, alpha, prefix)
    check_outputs(out, plot, prefix)
    store = Store(storage)
    try:
        config = store.config_of(study)  # an unknown study: the message lists the ones there are
        base = study.removesuffix(SUFFIX)
        final = study.endswith(SUFFIX) and store.study_config(base) is not None
        runs = store.runs(study)
        where = safe_url(store.url)
    finally:
        store.dispose()
    space = _uniform_space(study, config, final, base)
    budget = Budget(**config["budget"]) if config.get("budget") else Budget()
    result = refine_runs(
        space,
        runs,
        budget,
        study=study,
        references=(config.get("references") or {}).values(),
        options={"share": share, "repeats": repeats, "level": level, "alpha": alpha, "seed": seed},
        more=(f" ({len(runs)} run(s) in {where})", f": add trials (resnas search --study {study} --trials N)"),
    )
    models = result.models
    if out is not None:
        result = replace(result, out=str(write_text(out, result.template, field=prefix + "out")))
    if plot is not None:
        title = f"resnas refine {study}"
        fig = refine_figure(result.dims, [(m.values, m.error, m.inside) for m in models], title)
        written = save(fig, plot, title=title, tables_html=refine_table(result.dims), field=prefix + "plot")
        result = replace(result, plot=str(written))
    return result


def refine_runs(
    space: DesignSpace, runs: list, budget: Budget, *, study: str, options: dict, references=(), more=("", "")
) -> Refinement:
    """The refinement of `space` from `runs`, a uniform sample of it under `budget` (what `refine_study` does
    once the study has passed its checks; an experiment's sampled arm is one too). `options`: share, repeats,
    level, alpha and seed; `references`: arch keys queued as hand picks, left out; `more`: where the runs
    are and what to do, for the message when there are too few models."""
    models, notes = _models(space, runs, set(references))
    if len(models) < MIN_MODELS:
        raise ResnasError(
            f"study {study!r} has {len(models)} ranked model(s) to analyse{more[0]}; refine needs at least "
            f"{MIN_MODELS}{more[1]}",
            field="study",
        )
    share, repeats, level, alpha = (options[k] for k in ("share", "repeats", "level", "alpha"))
    dims = []
    for d in sorted(space.open_dims, key=_template_order):
        have = [m for m in models if d.name in m.values]
        values, errors = [m.values[d.name] for m in have], [m.error for m in have]
        numeric = not isinstance(d.values[0], str)
        dims.append(refine_dim(d.name, d.values, values, errors, numeric=numeric, **options))
    header = (
        f"Refined from study {study} (space {space.name}, budget: {budget.describe()}) by resnas refine: "
        f"{len(models)} ranked models,\nbootstrap of {share:g} x {repeats}, level {level:g}, KS alpha {alpha:g}. "
        "The evidence is in-sample: sample this space anew\n"
        f"({UNIFORM} --space THIS_FILE) to test it."
    )
    text, refined, dims, more_notes = _template(space, dims, header)
    notes += more_notes
    keep = {d.name: set(d.good) for d in dims if d.narrowed}
    models = [replace(m, inside=all(v in keep.get(k, (v,)) for k, v in m.values.items())) for m in models]
    return Refinement(
        study=study,
        space=space.name,
        budget=budget.describe(),
        dims=tuple(dims),
        fixed={k: d.values[0] for k, d in space.dims.items() if not d.open},
        template=text,
        size=refined.size(),
        old_size=space.size(),
        kept=_kept(space, refined, budget),
        errors={"all": _errors(models), "inside": _errors([m for m in models if m.inside])},
        models=tuple(models),
        options=dict(options),
        notes=tuple(notes),
        refined_space=refined,
    )


def _uniform_space(study: str, config: dict, final: bool, base: str) -> DesignSpace:
    """The study's space, where its models are a uniform sample of it; else the reason they are not."""

    def refuse(why: str) -> ResnasError:
        return ResnasError(f"study {study!r} {why}; refine needs a uniform sample ({UNIFORM})", field="study")

    if final:
        raise refuse(f"re-trains the best of {base!r}, hand-picked, not sampled")
    if EXPERIMENT_KEY in config:
        raise refuse("is an experiment: its arms were chosen, not sampled")
    snapshot = config.get("space")
    if not isinstance(snapshot, dict):
        raise refuse("stores no design space (a study of given architectures)")
    if snapshot.get("task") == "vae":
        raise refuse("is a VAE search: refine ranks classifiers by validation error")
    sampler, pruner = config.get("sampler"), config.get("pruner")
    if sampler != "random":
        raise refuse(
            f"was sampled by {sampler or 'an unrecorded sampler'}: its models are not uniform samples of the space "
            "(a learning sampler goes where it found good models, so that is where good models would appear to lie)"
        )
    if pruner != "none":
        raise refuse(
            f"was pruned ({pruner}): its errors are not comparable across models (the runs that looked worse "
            "early were stopped, so the finished ones are a selection, trained longer than the rest)"
        )
    return space_from_snapshot(snapshot, f"study {study!r}")


def _models(space: DesignSpace, runs: list, refs: set) -> tuple[list[Model], list[str]]:
    """The study's ranked models, one per architecture, with their values of the space's open dimensions;
    the reference nets (`refs`: hand picks queued first) are left out."""
    grids = {d.name: d.values for d in space.open_dims}
    models: list[Model] = []
    seen: set[str] = set()
    left_refs = repeats = strays = 0
    for r in sorted(runs, key=lambda r: r.trial):
        if not r.status.ranks or r.best_val_acc is None or r.task != "classify":
            continue
        if r.arch_key in refs:
            left_refs += 1
            continue
        if r.arch_key in seen:
            repeats += 1
            continue
        seen.add(r.arch_key)
        arch = Arch.from_dict(r.arch, where=f"run {r.trial} of study {r.study!r}")
        values = {}
        for k, v in space.values_of(arch).items():
            if k in grids and not (k in BOTTLENECK_DIMS and arch.block != "bottleneck"):
                snapped = _on_grid(v, grids[k])
                strays += snapped is None
                if snapped is not None:
                    values[k] = snapped
        models.append(Model(r.trial, 100.0 - r.best_val_acc, values))
    notes = []
    if left_refs:
        notes.append(f"{left_refs} reference net(s) left out: queued first as hand picks, not uniform samples")
    if repeats:
        notes.append(f"{repeats} repeated architecture(s) counted once")
    if strays:
        notes.append(f"{strays} value(s) outside the space's grid left out (models not of this space)")
    return models, notes


def _template_order(d: Dim) -> tuple:
    """A dimension's place in a template (a stored space lists them alphabetically): stem first, depths by stage."""
    stage = d.name.removeprefix("depth")
    if stage != d.name and stage.isdigit():
        return (ORDER.index("depth"), int(stage))
    return (ORDER.index(d.name) if d.name in ORDER else len(ORDER), 0)


def _on_grid(v: Any, grid: tuple) -> Any:
    """`v` as the grid spells it (a ratio computed as mid / width may differ from it in the last bit)."""
    if v in grid:
        return v
    if isinstance(v, float):
        return next((g for g in grid if abs(g - v) <= 1e-9 * max(1.0, abs(v))), None)
    return None


def _template(space: DesignSpace, dims: list[DimRefinement], header: str) -> tuple[str, DesignSpace, list, list]:
    """The refined template and space. A cut the template cannot take (a depth total no block type splits
    into, ...) is undone, its dimension kept, and a note says why."""
    notes: list[str] = []
    while True:
        keep = {d.name: d.good for d in dims if d.narrowed}
        comments = {d.name: _comment(d) for d in dims if d.narrowed}
        try:
            text, spec = narrowed_text(space.spec, keep, comments, name=f"{space.name}-refined", header=header)
            return text, DesignSpace(spec), dims, notes
        except ResnasError as e:
            if not keep:
                raise
            undo = next((d for d in dims if d.narrowed and e.field.startswith(d.name)), None)
            undo = undo or [d for d in dims if d.narrowed][-1]
            why = f"narrowing it makes an invalid template ({e.bare})"
            notes.append(f"{undo.name} kept: {why}")
            dims = [replace(d, verdict="kept", reason=why) if d is undo else d for d in dims]


def _comment(d: DimRefinement) -> str:
    what = f"range {d.range_text()}" if d.numeric else f"values {d.range_text()}"
    p = "-" if d.p is None else f"{d.p:.2g}"
    return f"refined: {what} of {len(d.values)} values, n={d.n} ({d.inside} inside), KS p={p}"


def _kept(old: DesignSpace, new: DesignSpace, budget: Budget) -> dict:
    """Share of the old space's budget-feasible nets that the refined space keeps: exact where both spaces
    are counted, else from the two Monte-Carlo estimates of their feasible shares."""
    before, after = feasible_fraction(old, budget), feasible_fraction(new, budget)
    old_n, new_n = old.size() * before.value, new.size() * after.value
    return {
        "value": new_n / old_n if old_n else None,
        "exact": before.exact and after.exact,
        "feasible_before": round(old_n),
        "feasible_after": round(new_n),
        "feasible_share_before": before.value,
        "feasible_share_after": after.value,
    }


def _errors(models: list[Model]) -> dict:
    errs = [m.error for m in models]
    return {
        "n": len(errs),
        "mean": statistics.fmean(errs) if errs else None,
        "median": statistics.median(errs) if errs else None,
    }
