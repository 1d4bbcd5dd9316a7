"""An experiment file, read and checked: a claim, its arms, a recipe, a dataset, seeds and the checks that
decide the verdict; `quick` and `full` scales of the same experiment from one file.

Any value in the file may be given per scale as `{quick: ..., full: ...}`; an arm whose source is given
for some scales only is left out at the others (ResNet-110 at `full`, say). Every mistake is one
message naming the file and the field, as for templates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..arch.description import LIKELIHOODS, TASKS, VAE_LATENT, Arch, Stage
from ..arch.zoo import get as zoo_get
from ..arch.zoo import names as zoo_names
from ..data.subset import parse_train_size
from ..errors import ResnasError
from ..training.recipe import PRESETS, TRAIN_DEFAULT, Recipe
from ..yamlfile import read_yaml
from .checks import KINDS, METRICS, Check

if TYPE_CHECKING:
    from ..space.design_space import DesignSpace

SCALES = ("quick", "full")
BUILTIN = "nas_res.experiment_files"  # the package studies/experiments/ is installed as
TOP_KEYS = {
    "experiment": "the experiment's name (default: the file's stem)",
    "title": "the claim in one line",
    "source": "the paper (and section) the claim comes from",
    "dataset": "a dataset spec (fashion-mnist, digits, cifar10, synthetic:...)",
    "val_size": "validation images carved from training (count or fraction)",
    "train_size": "training subset: a count, a fraction or all",
    "seeds": "training seeds per arm",
    "recipe": "a preset name or a mapping of recipe fields",
    "epochs": "epochs (overrides the recipe's)",
    "width": "multiplier of every arm's widths (small nets at quick)",
    "test": "evaluate every trained net on the test split (true/false; classifiers only)",
    "task": "classify (default) or vae: every arm is then a VAE, ranked by validation negative ELBO",
    "latent": "a VAE's latent dimension (task: vae; default 32)",
    "likelihood": "a VAE's likelihood, bernoulli or gaussian (task: vae; default bernoulli)",
    "arms": "a mapping of arm name -> {zoo|arch|iso|space, with, ...}",
    "checks": "a list of {claim, metric, kind, arms|arm+among, margin}",
    "paper": "the paper's own figures: {source, metric, note, values: {arm: number}}",
    "notes": "what a reader should know about this experiment's set-up",
}
ARM_KEYS = ("zoo", "arch", "iso", "space", "with", "label", "samples", "where", "budget")


@dataclass(frozen=True)
class Arm:
    """Fixed architectures (one, or an iso-complexity pick) or a design space sampled uniformly."""

    name: str
    label: str  # a line for tables: what this arm is
    archs: tuple[Arch, ...]  # one for a fixed arm; `samples` distinct ones for a space
    sampled: bool = False  # a space's sample: its models are the unit of comparison, one seed each


@dataclass(frozen=True)
class Experiment:
    name: str
    scale: str
    title: str
    source: str
    dataset: str
    val_size: float | int
    train_size: int | float | None
    seeds: int
    recipe: Recipe
    test: bool
    arms: tuple[Arm, ...]
    checks: tuple[Check, ...]
    paper: dict
    notes: str
    path: str
    left_out: tuple[str, ...] = ()  # arms that exist at other scales only
    task: str = "classify"  # vae: every arm is a VAE (its loss the negative ELBO per image)

    @property
    def study(self) -> str:
        return f"{self.name}-{self.scale}"

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def snapshot(self) -> dict:
        """What a report needs later, stored with the study: arms (with their archs), checks, paper."""
        return {
            "name": self.name,
            "scale": self.scale,
            "title": self.title,
            "source": self.source,
            "seeds": self.seeds,
            "test": self.test,
            "task": self.task,
            "path": self.path,
            "notes": self.notes,
            "paper": self.paper,
            "left_out": list(self.left_out),
            "arms": [
                {"name": a.name, "label": a.label, "sampled": a.sampled, "archs": [x.to_dict() for x in a.archs]}
                for a in self.arms
            ],
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }


def builtin_experiments() -> list[str]:
    """Names of the experiments shipped in `studies/experiments/`."""
    return sorted(p.name[:-5] for p in resources.files(BUILTIN).iterdir() if p.name.endswith(".yaml"))


def find_experiment(name_or_path: str | Path) -> Path:
    """A file, or the name of a built-in experiment (studies/experiments/NAME.yaml)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ResnasError("no such experiment file", where=str(path))
        return path
    if str(name_or_path) in builtin_experiments():
        with resources.as_file(resources.files(BUILTIN) / f"{name_or_path}.yaml") as builtin:
            return Path(builtin)
    raise ResnasError(
        f"unknown experiment {str(name_or_path)!r}; built in: {', '.join(builtin_experiments())} "
        "(or give an experiment file, NAME.yaml)"
    )


def load_experiment(name_or_path: str | Path, scale: str = "quick") -> Experiment:
    """The experiment at `scale`, every arm's architectures built and checked."""
    if scale not in SCALES:
        raise ResnasError(f"must be one of {', '.join(SCALES)}; got {scale!r}", field="--scale")
    path = find_experiment(name_or_path)
    raw = read_yaml(path, "experiment file")
    return parse_experiment(raw, scale, str(path), default_name=path.stem)


def at_scale(value: Any, scale: str) -> tuple[bool, Any]:
    """(present, value): a `{quick: .., full: ..}` mapping gives this scale's value, or not present."""
    if isinstance(value, dict) and value and set(value) <= set(SCALES):
        return scale in value, value.get(scale)
    return True, value


def parse_experiment(raw: Any, scale: str, where: str, default_name: str = "experiment") -> Experiment:
    if not isinstance(raw, dict):
        raise ResnasError("an experiment file must be a mapping (experiment, arms, checks, ...)", where=where)
    unknown = sorted(str(k) for k in raw if k not in TOP_KEYS)
    if unknown:
        raise ResnasError(f"unknown key; allowed: {', '.join(TOP_KEYS)}", where=where, field=unknown[0])
    for key in ("arms", "checks", "dataset"):
        if key not in raw:
            raise ResnasError(f"missing; expected {TOP_KEYS[key]}", where=where, field=key)

    def get(key: str, default: Any = None) -> Any:
        present, value = at_scale(raw.get(key, default), scale)
        if not present:
            raise ResnasError(f"has no value for scale {scale!r}", where=where, field=key)
        return value

    def fail(field: str, message: str) -> ResnasError:
        return ResnasError(message, where=where, field=field)

    name = str(get("experiment", default_name))
    seeds = get("seeds", 3)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise fail("seeds", f"must be an integer from 1 to 100; got {seeds!r}")
    task = get("task", "classify")
    if task not in TASKS:
        raise fail("task", f"must be one of {', '.join(TASKS)}; got {task!r}")
    recipe = _recipe(get("recipe", TRAIN_DEFAULT[task]), get("epochs"), where, TRAIN_DEFAULT[task])
    width = get("width", 1)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 16:
        raise fail("width", f"must be a number in (0, 16]; got {width!r}")
    test = get("test", task == "classify")
    if not isinstance(test, bool):
        raise fail("test", f"must be true or false; got {test!r}")
    if test and task == "vae":
        raise fail("test", "a VAE experiment is judged on its training and validation losses; use test: false")
    vae = _vae_fields(task, get("latent"), get("likelihood"), fail)
    try:
        train_size = parse_train_size(get("train_size"), "train_size")
    except ResnasError as e:
        raise fail("train_size", e.bare) from None
    arms_raw = get("arms")
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise fail("arms", "must be a non-empty mapping of arm name -> {zoo|arch|iso|space: ...}")
    arms: list[Arm] = []
    left_out: list[str] = []
    for arm_name, spec in arms_raw.items():
        arm = _arm(str(arm_name), spec, scale, float(width), where)
        if arm is None:
            left_out.append(str(arm_name))
        else:
            arms.append(dataclasses.replace(arm, archs=tuple(a.replace(**vae) for a in arm.archs)) if vae else arm)
    if not arms:
        raise fail("arms", f"no arm exists at scale {scale!r}")
    checks_raw = get("checks")
    if not isinstance(checks_raw, list) or not checks_raw:
        raise fail("checks", "must be a non-empty list of {claim, metric, kind, arms}")
    known = {a.name for a in arms} | set(left_out)
    checks = tuple(
        Check.parse(c, f"checks[{i}]", known, {a.name for a in arms}, where) for i, c in enumerate(checks_raw)
    )
    paper = get("paper", {}) or {}
    if not isinstance(paper, dict):
        raise fail("paper", "must be a mapping {source, metric, note, values: {arm: number}}")
    for arm_name in paper.get("values", {}) or {}:
        if arm_name not in known:
            raise fail(f"paper.values.{arm_name}", f"no such arm; arms: {', '.join(sorted(known))}")
    return Experiment(
        name=name,
        scale=scale,
        title=str(get("title", name)),
        source=str(get("source", "")),
        dataset=str(get("dataset")),
        val_size=get("val_size", 0.1),
        train_size=train_size,
        seeds=seeds,
        recipe=recipe,
        test=test,
        arms=tuple(arms),
        checks=checks,
        paper=paper,
        notes=str(get("notes", "") or ""),
        path=where,
        left_out=tuple(left_out),
        task=task,
    )


def _vae_fields(task: str, latent: Any, likelihood: Any, fail) -> dict:
    """The arch fields that make every arm a VAE (none for a classifier, which refuses them)."""
    if task == "classify":
        for key, value in (("latent", latent), ("likelihood", likelihood)):
            if value is not None:
                raise fail(key, "only a VAE experiment has one (task: vae)")
        return {}
    latent = VAE_LATENT if latent is None else latent
    if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
        raise fail("latent", f"must be a positive integer; got {latent!r}")
    likelihood = likelihood or "bernoulli"
    if likelihood not in LIKELIHOODS:
        raise fail("likelihood", f"must be one of {', '.join(LIKELIHOODS)}; got {likelihood!r}")
    return {"task": "vae", "latent": latent, "likelihood": likelihood}


def _recipe(value: Any, epochs: Any, where: str, preset: str = "default") -> Recipe:
    """A preset, or recipe fields over one (`preset`, else the task's default)."""
    if isinstance(value, str):
        if value not in PRESETS:
            raise ResnasError(f"unknown preset {value!r}; presets: {', '.join(PRESETS)}", where=where, field="recipe")
        recipe = PRESETS[value]
    elif isinstance(value, dict):
        base = value.get("preset", preset)
        if base not in PRESETS:
            raise ResnasError(f"unknown preset {base!r}; presets: {', '.join(PRESETS)}", where=where, field="recipe")
        fields = {k: v for k, v in value.items() if k != "preset"}
        recipe = Recipe.from_dict({**PRESETS[base].to_dict(), **fields}, where=where)
    else:
        raise ResnasError("must be a preset name or a mapping of recipe fields", where=where, field="recipe")
    if epochs is None:
        return recipe
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ResnasError(f"must be a positive integer; got {epochs!r}", where=where, field="epochs")
    try:
        return recipe.replace(epochs=epochs)
    except ResnasError as e:  # too many (recipe.MAX_EPOCHS): named as the file's field, not an option
        raise ResnasError(e.bare, where=where, field="epochs") from None


def _arm(name: str, spec: Any, scale: str, width: float, where: str) -> Arm | None:
    """One arm at `scale` (None: it exists at other scales only)."""
    field = f"arms.{name}"
    if not isinstance(spec, dict):
        raise ResnasError("must be a mapping with one of zoo, arch, iso, space", where=where, field=field)
    unknown = sorted(str(k) for k in spec if k not in ARM_KEYS)
    if unknown:
        raise ResnasError(f"unknown key; allowed: {', '.join(ARM_KEYS)}", where=where, field=f"{field}.{unknown[0]}")
    sources = [k for k in ("zoo", "arch", "iso", "space") if k in spec]
    if len(sources) != 1:
        raise ResnasError(
            f"must name exactly one source (zoo, arch, iso or space); got {sources or 'none'}", where=where, field=field
        )
    source = sources[0]
    present, value = at_scale(spec[source], scale)
    if not present:
        return None
    resolved = {k: at_scale(v, scale)[1] for k, v in spec.items() if k != source}
    changes = resolved.get("with") or {}
    if not isinstance(changes, dict):
        raise ResnasError("must be a mapping of arch fields", where=where, field=f"{field}.with")
    here = f"{where}: {field}"
    try:
        if source == "space":
            return _space_arm(name, value, resolved, changes, width, here)
        if source == "zoo":
            if value not in zoo_names():
                raise ResnasError(f"unknown zoo name {value!r}; see resnas zoo", field=f"{field}.zoo")
            arch, label = zoo_get(value), str(value)
        elif source == "arch":
            arch = Arch.from_dict(value, where=here)
            label = arch.summary()
        else:
            arch, label = _iso(value, field)
        arch = _changed(_widened(arch, width), changes)
    except ResnasError as e:
        raise ResnasError(e.bare, where=where, field=e.field or field) from None
    label = str(resolved.get("label") or (label + "".join(f" {k}={v}" for k, v in changes.items())))
    return Arm(name, label, (arch,))


def _changed(arch: Arch, changes: dict) -> Arch:
    fields = {f.name for f in dataclasses.fields(Arch) if f.init} - {"stages"}
    bad = sorted(set(changes) - fields)
    if bad:
        raise ResnasError(f"unknown arch field {bad[0]!r}; allowed: {', '.join(sorted(fields))}", field="with")
    return Arch.from_dict({**arch.to_dict(), **changes})


def _widened(arch: Arch, factor: float) -> Arch:
    """Every width times `factor` (at least one channel per group; inner widths kept divisible by the
    cardinality), so that `quick` can train the papers' nets at a fraction of their cost."""
    if factor == 1:
        return arch

    def scaled(value: int, multiple: int = 1) -> int:
        return max(multiple, round(value * factor / multiple) * multiple)

    stages = tuple(Stage(s.depth, scaled(s.width), s.stride, scaled(s.mid, s.groups), s.groups) for s in arch.stages)
    return arch.replace(stem_width=scaled(arch.stem_width), stages=stages)


def _iso(value: Any, field: str) -> tuple[Arch, str]:
    """{like: ZOO|arch mapping, cardinality: C, match: flops|params}: ResNeXt's complexity-preserving pick."""
    if not isinstance(value, dict) or "like" not in value or "cardinality" not in value:
        raise ResnasError("must be {like: a zoo name or arch, cardinality: C, match: flops|params}", field=field)
    from ..space.iso import MATCHES, iso_cardinality  # here: an experiment without iso arms is read without torch

    like = value["like"]
    ref = zoo_get(like) if isinstance(like, str) else Arch.from_dict(like, where=f"{field}.iso.like")
    match = value.get("match", "flops")
    if match not in MATCHES:
        raise ResnasError(f"must be one of {', '.join(MATCHES)}; got {match!r}", field=f"{field}.iso.match")
    (result,) = iso_cardinality(ref, [value["cardinality"]], match)
    return result.arch, f"{result.label} (iso-{match} with {like if isinstance(like, str) else 'the reference'})"


def _space_arm(name: str, value: Any, resolved: dict, changes: dict, width: float, where: str) -> Arm:
    """`samples` distinct archs drawn uniformly from a template (restricted by `where`) inside `budget`."""
    from ..space.design_space import load_space  # here: an experiment without space arms is read without torch

    space = load_space(str(value))
    samples = resolved.get("samples", 50)
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 10_000:
        raise ResnasError(f"must be an integer from 1 to 10000; got {samples!r}", field=f"arms.{name}.samples")
    space = subspace(space, resolved.get("where") or {}, f"arms.{name}.where")
    archs = space.sample(samples, resolved.get("budget"), seed=0)
    if not archs:
        raise ResnasError("no architecture of this space fits the budget", field=f"arms.{name}.budget")
    archs = [_changed(_widened(a, width), changes) for a in archs]
    fixed = ", ".join(f"{k}={v}" for k, v in (resolved.get("where") or {}).items())
    label = resolved.get("label") or f"{len(archs)} samples of {space.name}" + (f" ({fixed})" if fixed else "")
    return Arm(name, str(label), tuple(archs), sampled=True)


def subspace(space: DesignSpace, fixed: Any, field: str) -> DesignSpace:
    """The part of `space` where each named dimension takes one of the given values (a value or a list)."""
    from ..space.design_space import DesignSpace

    if not isinstance(fixed, dict):
        raise ResnasError("must be a mapping of dimension -> value(s)", field=field)
    dims = dict(space.spec.dims)
    for key, want in fixed.items():
        if key not in dims:
            raise ResnasError(f"the space has no dimension {key!r}; it has {', '.join(sorted(dims))}", field=field)
        values = want if isinstance(want, list) else [want]
        keep = tuple(v for v in dims[key].values if v in values)
        if not keep:
            raise ResnasError(f"{key} takes {list(dims[key].values)} in this space; got {want!r}", field=field)
        dims[key] = dataclasses.replace(dims[key], values=keep, kind="fixed" if len(keep) == 1 else dims[key].kind)
    return DesignSpace(dataclasses.replace(space.spec, dims=dims))


__all__ = ["KINDS", "METRICS", "SCALES", "Arm", "Experiment", "load_experiment", "subspace"]
