"""`resnas finalize`: re-train a search's best architectures with a longer recipe, on the whole training
split, several seeds each, so that the ranking a user acts on is not the cheap proxy's.

The re-training is the study `STUDY.final` in the same storage, trained through the same machinery as
any search (given architectures: workers, GPUs, heartbeats, resume, reuse of what is trained already).
It keeps the proxy's data split, so both rankings are judged on the same validation images; only the
training subset and the recipe change. Running it again resumes it, and a larger --top adds to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.description import Arch
from ..errors import ResnasError
from ..results.export import evaluate_runs
from ..results.final import SUFFIX, VAE_RETRAIN, final_name, final_runs
from ..results.references import reference_keys
from ..results.report import rank, study_runs
from ..results.store import Store
from ..training.recipe import Recipe
from .config import SearchConfig, space_from_snapshot
from .coordinator import Given
from .keep import Keeper, KeepPolicy, checkpoint_root
from .plan import StudyChanged, plan, recipe_of
from .settings import DEFAULT_SEEDS, DEFAULT_TOP, EPOCHS_FACTOR


@dataclass(frozen=True)
class FinalPlan:
    """The re-training of `study`: the final study's config, what it trains, and the proxy rows chosen."""

    study: str
    config: SearchConfig
    existed: bool
    given: list[Given]
    picked: list[dict]  # the proxy leaderboard rows re-trained, best first
    notes: tuple[str, ...] = ()  # where the final recipe is no longer than the proxy's: printed before it runs
    proxy_rows: tuple[dict, ...] = ()  # the proxy's whole ranking, read once here and handed to the report
    references: dict[str, str] | None = None  # arch key -> zoo name of the proxy's reference nets
    keep_after_test: KeepPolicy | None = None  # the asked --keep-checkpoints, put off until --test is done
    reference_row: dict | None = None  # the proxy's best reference row (+ its zoo name) re-trained beyond `picked`


def plan_finalize(
    study: str,
    *,
    storage: str | None = None,
    top: int = DEFAULT_TOP,
    seeds: int = DEFAULT_SEEDS,
    epochs: int | None = None,
    recipe: str | Recipe | dict | None = None,
    train_size: object = "all",
    host: dict | None = None,
    test: bool = False,
    reference: bool = True,
) -> FinalPlan:
    """Pick `study`'s `top` architectures by proxy validation accuracy and plan their re-training, `seeds`
    seeds each (0, 1, ...), with `recipe` (default: the proxy's) for `epochs` (default: 3x the proxy's).
    `host`: where this host trains (workers, gpus, threads, data_dir, checkpoints, keep_checkpoints,
    timeout, trial_timeout). `test`: the test split follows (`evaluate_test`), so a keep policy that
    would delete a network's weights before its test waits until the test is done. `reference`: re-train
    the proxy's best reference net (the hand pick the search queued) too, with the same recipe and seeds,
    when it is not in the top already: a proxy that ranks the winners above it can be wrong, and only the
    final runs say whether the search beat it."""
    for name, value in (("--top", top), ("--seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ResnasError(f"must be a positive integer; got {value!r}", field=name)
    store = Store(storage)
    try:
        if study.endswith(SUFFIX) and store.study_config(study.removesuffix(SUFFIX)) is not None:
            raise ResnasError(
                f"{study!r} is the re-training of {study.removesuffix(SUFFIX)!r}; finalize that study instead",
                field="study",
            )
        proxy = store.config_of(study)  # an unknown study: the message lists the ones there are
        if (proxy.get("space") or {}).get("task") == "vae":
            raise ResnasError(
                f"study {study!r} is a VAE search: finalize re-trains classifiers and ranks them by accuracy. "
                f"{VAE_RETRAIN[0].upper()}{VAE_RETRAIN[1:]}",
                field="study",
            )
        runs = study_runs(store, study)
        references = reference_keys(store, study)
    finally:
        store.dispose()
    rows = rank(runs)
    if not rows:
        raise ResnasError(
            f"study {study!r} has no trained trial to re-train yet (see resnas leaderboard {study} --all)",
            field="study",
        )
    picked = rows[:top]
    best_reference = next((r for r in rows if r["arch_key"] in references), None) if reference else None
    extra = [best_reference] if best_reference is not None and best_reference not in picked else []
    by_trial = {r.trial: r for r in runs}
    proxy_recipe = Recipe.from_dict(proxy["recipe"], where=f"study {study!r}")
    chosen = proxy_recipe if recipe is None else recipe_of(recipe, None, f"finalize {study}")
    final_recipe = chosen.replace(epochs=epochs if epochs is not None else EPOCHS_FACTOR * proxy_recipe.epochs)
    options = {
        **{k: v for k, v in (host or {}).items() if v is not None},
        "study": final_name(study),
        "storage": storage,
        "space": space_from_snapshot(proxy["space"], f"study {study!r}"),
        "budget": proxy.get("budget_input") or None,
        "max_params": proxy.get("max_params_input") or None,
        "dataset": proxy["dataset"],
        "val_size": proxy["val_size"],
        "split_seed": proxy["split_seed"],
        "train_size": train_size,
        "recipe": final_recipe,
        "objective": "accuracy",  # the final ranking is by accuracy; the cost of each is beside it
        "sampler": "random",  # asked nothing: every trial is a given architecture
        "pruner": "none",  # every seed trains in full
    }
    options.setdefault("keep_checkpoints", "all")  # a few final networks: --test and export need their weights
    asked = KeepPolicy.parse(options["keep_checkpoints"])
    keep_after_test = asked if test and asked.mode in ("best", "none") else None
    if keep_after_test is not None:
        options["keep_checkpoints"] = "all"
    archs = [Arch.from_dict(by_trial[row["trial"]].arch) for row in picked + extra]
    given = list(dict.fromkeys(Given(arch, seed) for arch in archs for seed in range(seeds)))
    options["trials"] = len(given)
    try:
        config, existed = plan(options)
    except StudyChanged as err:
        raise ResnasError(
            f"{study!r} was finalized before with other settings: {err.changed}. Give the same --epochs, "
            f"--recipe and --train-size to add to that re-training (its study is {final_name(study)!r})",
            field="study",
        ) from None
    notes = shorter(proxy, proxy_recipe, config)
    if keep_after_test is not None:
        notes += (
            f"--keep-checkpoints {asked} applies once the test split is evaluated: until then every "
            "re-trained network keeps its weights (--test needs them)",
        )
    return FinalPlan(
        study,
        config,
        existed,
        given,
        picked,
        notes,
        proxy_rows=tuple(rows),
        references=references,
        keep_after_test=keep_after_test,
        reference_row={**extra[0], "reference": references[extra[0]["arch_key"]]} if extra else None,
    )


def evaluate_test(fp: FinalPlan, store: Store, *, data_dir: str | None, device: str) -> list[str]:
    """The test split of each re-trained network not evaluated yet, then the keep policy `--test` put off.
    A run whose weights are gone (deleted by an earlier, narrower --keep-checkpoints) cannot be tested:
    the others still are, and a note line for each says so, rather than one error ending the lot."""
    pending = [r for r in final_runs(store, fp.study) if r.test_acc is None]
    kept = [r for r in pending if r.checkpoint]
    if kept:
        rows = [{"trial": r.trial} for r in kept]
        evaluate_runs(store, final_name(fp.study), rows, {r.trial: r for r in kept}, data_dir=data_dir, device=device)
    if fp.keep_after_test is not None:
        root = checkpoint_root(fp.config.study, fp.config.checkpoints, fp.config.storage)
        Keeper(fp.keep_after_test, root, fp.config.study, store, _now, pareto_too=False).settle()
    return [
        f"trial {r.trial} of {final_name(fp.study)!r} ({r.summary}, seed {r.recipe.get('seed', 0)}) kept no "
        "weights (an earlier --keep-checkpoints deleted them): its test split is not evaluated; re-train it "
        "to test it"
        for r in pending
        if not r.checkpoint
    ]


def _now(fn, *args, **kwargs):
    """The Keeper's database call, made at once (no coordinator to retry it for)."""
    return fn(*args, **kwargs)


def shorter(proxy: dict, proxy_recipe: Recipe, config: SearchConfig) -> tuple[str, ...]:
    """What to say when the final runs train less than the proxy did (fewer epochs, fewer images): they
    are meant to train longer, and may then end below what the proxy found."""
    notes = []
    final, before = config.recipe.epochs, proxy_recipe.epochs
    if final < before:
        notes.append(
            f"the final recipe trains {final} epoch(s), fewer than the proxy's {before}: re-training is meant "
            f"to train longer (the default is {EPOCHS_FACTOR}x, {EPOCHS_FACTOR * before}), and the re-trained "
            "networks may end below what the proxy found"
        )
    subset, proxy_subset = config.train_size, proxy.get("train_size")
    if subset is not None and (proxy_subset is None or (type(subset) is type(proxy_subset) and subset < proxy_subset)):
        notes.append(f"the final runs train on {_images(subset)}, fewer than the proxy's {_images(proxy_subset)}")
    return tuple(notes)


def _images(subset: int | float | None) -> str:
    """A training subset in words: all images, a count, or a share of the training split."""
    if subset is None:
        return "all training images"
    return f"{subset:,} training images" if isinstance(subset, int) else f"{subset:.0%} of the training images"
