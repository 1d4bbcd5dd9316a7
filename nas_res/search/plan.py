"""From what a user gave (options, a study file) and what a study stored, the search to run.

Options not given on the command line or in a study file are taken from the stored study, so
`resnas search --study NAME` alone resumes it; asking a stored study to change what it pins is an
error that names the difference.

Over 300 lines: every option's check with its message, next to the rule it enforces; apart, a rule and its check
would drift.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..arch.budget import Budget
from ..arch.vae_cost import check_latent
from ..data.splits import parse_val_size
from ..data.subset import parse_train_size
from ..errors import ResnasError
from ..results.schema import STUDY_NAME, check_study_name
from ..results.storage import check_lasting, safe_url
from ..results.store import Store
from ..space.budget_fit import check_budget
from ..space.design_space import DesignSpace, load_space
from ..training.recipe import MAX_SEED, PRESETS, SEARCH_DEFAULT, Recipe, load_recipe
from ..training.threads import plan_host
from ..yamlfile import read_yaml
from .config import FIELDS, OBJECTIVES, PRUNERS, SAMPLERS, TASK_OBJECTIVES, SearchConfig, space_from_snapshot
from .defaults import cpu_budget, data_resolution, fit_notes, pick
from .keep import DEFAULT_KEEP, KeepPolicy
from .latency_plan import latency_note, plan_latency
from .references import parse_names


def parse_seconds(text: Any, what: str) -> float | None:
    """'2h', '30m', '90s', '1h30m' or a number of seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", str(text))
    if not parts or not any(parts.groups()):
        raise ResnasError(f"must be a duration like 2h, 30m, 90s or 1h30m; got {text!r}", field=what)
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise ResnasError(f"must be positive; got {text!r}", field=what)
    return seconds


def read_study_file(path: str | Path) -> dict:
    """A study recipe (studies/NAME.yaml): the same names as the command's options."""
    path = Path(path)
    raw = read_yaml(path, "study file")
    if not isinstance(raw, dict):
        raise ResnasError("must be a mapping of search options (space, budget, dataset, trials, ...)", where=str(path))
    raw = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ResnasError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}", where=str(path))
    raw.setdefault("study", path.stem)
    return raw


def recipe_of(value: Any, epochs: int | None, where: str, task: str = "classify") -> Recipe:
    """A recipe as given: a preset's name, a file, a mapping or a Recipe (`epochs` replacing its own);
    none: the task's proxy (`SEARCH_DEFAULT`)."""
    if value is None:
        recipe = PRESETS[SEARCH_DEFAULT[task]]
    elif isinstance(value, Recipe):
        recipe = value
    elif isinstance(value, dict):
        recipe = Recipe.from_dict(value, where=where)
    elif str(value) in PRESETS:
        recipe = PRESETS[str(value)]
    elif Path(str(value)).suffix in (".yaml", ".yml", ".json") or Path(str(value)).exists():
        recipe = load_recipe(value)
    else:
        raise ResnasError(f"unknown recipe {value!r}: a preset ({', '.join(PRESETS)}) or a recipe file", field="recipe")
    if epochs is None:
        return recipe
    return recipe.replace(epochs=_int({"epochs": epochs}, "epochs", 1, low=1))


def _choice(value: str, allowed: tuple, what: str) -> str:
    if value not in allowed:
        raise ResnasError(f"must be one of {', '.join(allowed)}; got {value!r}", field=what)
    return value


def _int(given: dict, key: str, default: int, low: int = 0, high: int | None = None) -> int:
    value = given.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        if not (isinstance(value, str) and value.strip().isdigit() and int(value) >= low):
            raise ResnasError(f"must be an integer >= {low}; got {value!r}", field=key)
        value = int(value)
    if high is not None and value > high:
        raise ResnasError(f"must be at most {high:,}; got {value!r}", field=key)
    return value


def plan(options: dict, *, file: str | Path | None = None, join: bool = False) -> tuple[SearchConfig, bool]:
    """The search to run. A study file's values override the defaults and `options` (None: not given)
    override both; for an existing study, what was given by neither comes from the stored study, and
    asking it to change is an error. `join` (resnas worker): the study must exist already.

    Returns the config and whether the study already existed."""
    given = read_study_file(file) if file else {}
    from_file = set(given) - {k for k, v in options.items() if v is not None}
    given.update({k: v for k, v in options.items() if v is not None})
    try:
        return _plan(given, join, {k: f"{file}: {k}" for k in from_file} if file else {})
    except ResnasError as e:  # name a bad value where the user wrote it: the study file, or the option
        key = e.field.lstrip("-").replace("-", "_")
        if file and not e.where and key in from_file:
            raise ResnasError(e.bare, where=str(file), field=key) from None
        if not e.where and key in FIELDS and not e.field.startswith("--"):
            raise ResnasError(e.bare, field=f"--{key.replace('_', '-')}") from None
        raise


def _plan(given: dict, join: bool, from_file: dict[str, str] | None = None) -> tuple[SearchConfig, bool]:
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ResnasError(f"unknown search option(s) {', '.join(unknown)}")
    check_lasting(given.get("storage"))  # before anything is trained into it
    store = Store(given.get("storage"), must_exist=False)
    named = given.get("study") is not None and STUDY_NAME.fullmatch(str(given["study"]))
    alone = "dataset" not in given and "space" not in given  # nothing but a budget: pick what fits it
    notes = [] if join or (named and store.study_config(str(given["study"]))) else pick(given, cuda_devices())
    if notes and alone and given.get("budget") and not given.get("gpus") and isinstance(given.get("train_size"), int):
        held, why = cpu_budget(
            Budget.parse(str(given["budget"])),
            load_space(given["space"]),
            str(given["dataset"]),
            given["train_size"],
            recipe_of(given.get("recipe"), given.get("epochs"), "the search").epochs,
        )
        if held:  # before the study is named: the same command names (and resumes) the same study
            given["budget"] = held
            notes.append(why)
    name = default_study_name(given) if given.get("study") is None else str(given["study"])  # "" is refused
    check_study_name(name, "--study")  # it names folders and files too: no separators, no "..", no spaces
    stored = store.study_config(name)
    if join and stored is None:
        known = store.study_names()
        store.dispose()
        raise ResnasError(
            f"no study {name!r} in {safe_url(store.url)} to join; studies there: "
            f"{', '.join(known) or 'none (create one with resnas search)'}",
            field="--study",
        )
    store.dispose()
    where = f"study {name!r}"
    space = (
        (given["space"] if isinstance(given["space"], DesignSpace) else load_space(given["space"]))
        if "space" in given
        else (space_from_snapshot(stored["space"], where) if stored else load_space("resnext"))
    )
    if stored:
        for key in (
            "budget",
            "max_params",
            "dataset",
            "val_size",
            "split_seed",
            "train_size",
            "objective",
            "sampler",
            "pruner",
            "seed",
        ):
            src = f"{key}_input" if key in ("budget", "max_params") else key
            if key not in given and stored.get(src) not in (None, ""):
                given[key] = stored[src]
        if "recipe" not in given:
            given["recipe"] = stored["recipe"]  # --epochs alone then changes only the epochs (and is refused)
        if "trials" not in given:
            given["trials"] = stored["trials"]
    dataset = str(given.get("dataset", "digits"))
    space = _for_task(space, given, dataset, notes)
    budget_input, max_params_input = str(given.get("budget") or ""), str(given.get("max_params") or "")
    budget = Budget.parse(budget_input or None, max_params_input or None)
    recipe = recipe_of(given.get("recipe"), given.get("epochs"), where, space.task)
    objective = _choice(given.get("objective", TASK_OBJECTIVES[space.task][0]), OBJECTIVES, "--objective")
    if objective not in TASK_OBJECTIVES[space.task]:
        raise ResnasError(
            f"{objective!r} is not an objective of a {space.task} search; allowed: "
            f"{', '.join(TASK_OBJECTIVES[space.task])}",
            field="--objective",
        )
    check_budget(space, budget)
    latency = plan_latency(given, stored, objective, name)
    if latency:
        notes.append(latency_note(latency))
    if not stored:
        notes += fit_notes(space, budget, dataset)
    workers, trials = _int(given, "workers", 1, low=1), _int(given, "trials", 20, low=1)
    gpus = given.get("gpus") or ()
    if isinstance(gpus, (int, str)):
        gpus = [gpus]
    gpus = tuple(_int({"gpus": g}, "gpus", 0) for g in gpus)
    threads = None if given.get("threads") is None else _int(given, "threads", 1, low=1)
    written = from_file or {}  # where a host setting was written, for its note: the option or the study file
    workers, cut = plan_host(
        workers, threads, gpus, (written.get("workers", "--workers"), written.get("threads", "--threads"))
    )
    notes += cut
    config = SearchConfig(
        study=name,
        space=space,
        budget=budget,
        budget_input=budget_input,
        max_params_input=max_params_input,
        dataset=dataset,
        data_dir=given.get("data_dir"),
        val_size=parse_val_size(given.get("val_size", 0.1)),
        split_seed=_int(given, "split_seed", 0, high=MAX_SEED),
        train_size=parse_train_size(given.get("train_size"), "--train-size"),
        trials=trials,
        timeout=parse_seconds(given.get("timeout"), "--timeout"),
        trial_timeout=parse_seconds(given.get("trial_timeout"), "--trial-timeout"),
        recipe=recipe,
        sampler=_choice(given.get("sampler", "tpe"), SAMPLERS, "--sampler"),
        objective=objective,
        pruner=_choice(given.get("pruner", "asha"), PRUNERS, "--pruner"),
        storage=given.get("storage"),
        workers=len(gpus) or workers,
        gpus=gpus,
        seed=_int(given, "seed", 0, high=MAX_SEED),
        checkpoints=given.get("checkpoints"),
        keep_checkpoints=KeepPolicy.parse(given.get("keep_checkpoints", DEFAULT_KEEP)),
        threads=threads,
        references=_references(given.get("reference")),
        latency=latency,
        notes=tuple(notes),
    )
    if stored:
        check_same(stored, config.pinned(), name)
    return config, stored is not None


def _references(value: Any) -> tuple[str, ...] | None:
    """`reference`: None (every zoo net the space and budget take), none/false (no reference), or names."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("none", "false", "no")):
        return ()
    if value is True:
        return None
    return parse_names(value)


def _for_task(space: DesignSpace, given: dict, dataset: str, notes: list[str]) -> DesignSpace:
    """The space for the task asked (--task, --latent, --likelihood; else its own). A VAE is priced and
    built at the data's resolution: its linear maps are sized for its images."""
    latent = None if given.get("latent") is None else _int(given, "latent", 1, low=1)
    task = given.get("task")
    out = space.with_task(None if task is None else str(task), latent, given.get("likelihood"))
    if out.task == "vae":
        side = data_resolution(dataset)
        if side is not None and side != out.spec.resolution:
            notes.append(
                f"a VAE is built for its images: space {out.name} is priced and built at {dataset}'s "
                f"{side}x{side}, not its {out.spec.resolution}x{out.spec.resolution}"
            )
            out = out.with_task("vae", resolution=side)
        spec = out.spec  # a latent wider than the images, refused now rather than by every trial
        check_latent(spec.latent, spec.in_channels, spec.resolution, field="--latent")
    return out


def cuda_devices() -> int:
    """The GPUs this process can use (none without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_study_name(given: dict) -> str:
    """`space-dataset-budget`: the same command names the same study, so re-running it resumes."""
    space = Path(str(given.get("space", "resnext"))).stem
    dataset = str(given.get("dataset", "digits")).split(":")[0]
    budget = re.sub(r"[^0-9A-Za-z.-]+", "", str(given.get("budget") or "any"))  # a band keeps its dash
    vae = given.get("task") == "vae" or given.get("latent") is not None or given.get("likelihood") is not None
    objective = given.get("objective", "nelbo" if vae else "accuracy")
    return (
        f"{space}-{dataset}-{budget}"
        + ("-vae" if vae else "")
        + (f"-{objective}" if objective not in ("accuracy", "nelbo") else "")
    )


class StudyChanged(ResnasError):
    """A stored study asked to resume with other settings; `changed` says which, as `field (old -> new)`."""

    def __init__(self, study: str, changed: str):
        self.study, self.changed = study, changed
        super().__init__(
            f"study {study!r} exists with a different {changed}. Its trials would not be "
            "comparable: use another --study name, or drop those options to resume it"
        )


def check_same(stored: dict, now: dict, name: str) -> None:
    labels = {
        "space": "space",
        "budget": "budget",
        "dataset": "dataset",
        "val_size": "validation split",
        "split_seed": "split seed",
        "train_size": "training subset",
        "recipe": "recipe",
        "objective": "objective",
    }
    changed = []
    for key, label in labels.items():
        if stored.get(key) != now.get(key):
            if key == "recipe":
                diff = [f"{k} {stored[key].get(k)!r} -> {v!r}" for k, v in now[key].items() if stored[key].get(k) != v]
                changed.append(f"recipe ({', '.join(diff)})")
            elif key == "space":
                changed.append(f"space ({stored.get('space_name')} as stored -> {now.get('space_name')} as given)")
            elif key == "budget":
                changed.append(f"budget ({stored.get('budget_text')} -> {now.get('budget_text')})")
            else:
                changed.append(f"{label} ({stored.get(key)!r} -> {now.get(key)!r})")
    if changed:
        raise StudyChanged(name, "; ".join(changed))
