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

from ..arch.description import LIKELIHOODS, TASKS, VAE_LATENT
from ..data.subset import parse_train_size
from ..errors import ResnasError
from ..training.recipe import PRESETS, TRAIN_DEFAULT, Recipe
from ..yamlfile import read_yaml
from .arms import SCALES, Arm, at_scale, parse_arm
from .checks import KINDS, METRICS, Check

if TYPE_CHECKING:
    pass

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
    "arms": "a mapping of arm name -> {zoo|arch|iso|space|refine, with, ...}",
    "checks": "a list of {claim, metric, kind, arms|arm+among, margin} (good_range: arm, dimension, value)",
    "paper": "the paper's own figures: {source, metric, note, values: {arm: number}}",
    "notes": "what a reader should know about this experiment's set-up",
}


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
    refinements: dict | None = None  # refine arm -> what refining its space arm's space found (refined_arms)

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
                {
                    "name": a.name,
                    "label": a.label,
                    "sampled": a.sampled,
                    "archs": [x.to_dict() for x in a.archs],
                    **({"refines": a.refines} if a.refines else {}),
                }
                for a in self.arms
            ],
            "checks": [dataclasses.asdict(c) for c in self.checks],
            **({"refinements": self.refinements} if self.refinements else {}),
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
        arm = parse_arm(str(arm_name), spec, scale, float(width), where)
        if arm is None:
            left_out.append(str(arm_name))
        else:
            arms.append(dataclasses.replace(arm, archs=tuple(a.replace(**vae) for a in arm.archs)) if vae else arm)
    arms = _check_refine_arms(arms, left_out, fail)
    if not arms:
        raise fail("arms", f"no arm exists at scale {scale!r}")
    checks_raw = get("checks")
    if not isinstance(checks_raw, list) or not checks_raw:
        raise fail("checks", "must be a non-empty list of {claim, metric, kind, arms}")
    known = {a.name for a in arms} | set(left_out)
    checks = tuple(
        Check.parse(c, f"checks[{i}]", known, {a.name for a in arms}, where) for i, c in enumerate(checks_raw)
    )
    for i, c in enumerate(checks):
        if c.kind == "good_range" and not next(a for a in arms if a.name == c.arms[0]).refines:
            raise fail(f"checks[{i}].arm", f"{c.arms[0]!r} is not a refine arm (refine: ARM); a good range needs one")
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


def _check_refine_arms(arms: list[Arm], left_out: list[str], fail) -> list[Arm]:
    """Each refine arm refines a space arm of this scale whose nets are points of its space (not widened,
    nothing changed `with`); one whose arm exists at other scales only is left out with it."""
    by_name = {a.name: a for a in arms}
    kept = []
    for arm in arms:
        if arm.refines is None:
            kept.append(arm)
            continue
        parent = by_name.get(arm.refines)
        field = f"arms.{arm.name}.refine"
        if parent is None and arm.refines in left_out:
            left_out.append(arm.name)
            continue
        if parent is None or parent.draw is None:
            spaces = [a.name for a in arms if a.draw is not None]
            raise fail(field, f"names {arm.refines!r}, not a space arm; space arms: {', '.join(spaces) or 'none'}")
        if not parent.draw["plain"]:
            raise fail(
                field,
                f"{parent.name}'s nets are widened (width) or changed (with), so they are not points of its "
                "space to refine: drop width and with from that arm",
            )
        kept.append(arm)
    return kept


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


__all__ = ["KINDS", "METRICS", "SCALES", "Arm", "Experiment", "load_experiment"]
