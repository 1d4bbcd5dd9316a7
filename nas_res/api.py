"""The Python API for searches and their results: what `resnas search`, `worker`, `leaderboard`, `compare`
and `export` do, as typed calls with keyword arguments (no option dicts, no coordinator to build).

    import nas_res
    state = nas_res.run_search(space="plain-vs-residual", budget="20MFLOPs", dataset="digits", trials=8)
    rows = nas_res.leaderboard(state.study, top=3)
    nas_res.train_archs([nas_res.load_arch(p) for p in files], study="again", seeds=(0, 1, 2))
    final = nas_res.finalize_study(state.study, top=3, seeds=3, test=True)  # re-train the best; fidelity

A script that runs a search must guard its entry point (`if __name__ == "__main__":`): trials train
in spawned worker processes, which import the script again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .arch.budget import Budget
from .arch.description import Arch
from .results.export import export
from .results.final import proxy_was_better, study_fidelity
from .results.references import final_versus_reference
from .results.report import best_run, check_distinct, compare
from .results.report import final_ranking as _final_ranking
from .results.report import leaderboard as _leaderboard
from .results.report import reference_summary as _reference_summary
from .results.report import studies as _studies
from .results.store import Store
from .search.config import SearchConfig
from .search.coordinator import GRACE, HEARTBEAT, Coordinator, Given
from .search.finalize import DEFAULT_SEEDS, DEFAULT_TOP, FinalPlan, evaluate_test, plan_finalize
from .search.plan import plan
from .search.refinement import Refinement, refine_study
from .search.state import SearchState
from .training.recipe import Recipe


def plan_search(
    *,
    file: str | Path | None = None,
    study: str | None = None,
    space: str | None = None,
    budget: str | None = None,
    max_params: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    val_size: float | int | None = None,
    split_seed: int | None = None,
    train_size: int | float | str | None = None,
    trials: int | None = None,
    timeout: str | float | None = None,
    trial_timeout: str | float | None = None,
    recipe: str | Recipe | dict | None = None,
    epochs: int | None = None,
    sampler: str | None = None,
    objective: str | None = None,
    max_latency: str | float | None = None,
    latency_on: str | None = None,
    pruner: str | None = None,
    storage: str | None = None,
    workers: int | None = None,
    gpus: Sequence[int] | None = None,
    seed: int | None = None,
    checkpoints: str | None = None,
    keep_checkpoints: str | None = None,
    threads: int | None = None,
    reference: str | Sequence[str] | bool | None = None,
) -> tuple[SearchConfig, bool]:
    """The search these arguments (and `file`, a study recipe; and the stored study, if it exists) describe,
    checked, and whether the study exists already. None means "not given": the study file's value, else
    the stored study's, else the default. `reference`: zoo names to queue as the first trials, False for
    none; by default every zoo net the space expresses and the budget admits. `max_latency` (ms, or text
    such as "2.5ms") and `latency_on` ("cpu,batch=1"): as `resnas search --max-latency --latency-on`."""
    options = {k: v for k, v in locals().items() if k != "file"}
    if options["gpus"] is not None:
        options["gpus"] = list(options["gpus"])
    return plan(options, file=file)


def run_search(
    *,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
    **options: Any,
) -> SearchState:
    """Search a design space under a budget (as `resnas search`): create or resume the study, train its
    trials in worker processes until `trials` count, and return the final state. `options` are
    `plan_search`'s; `on_update` is called with the live state after every event."""
    config, _ = plan_search(**options)
    return Coordinator(config, on_update, heartbeat=heartbeat, grace=grace).run()


def join_study(
    study: str,
    storage: str,
    *,
    workers: int | None = None,
    gpus: Sequence[int] | None = None,
    data_dir: str | None = None,
    checkpoints: str | None = None,
    keep_checkpoints: str | None = None,
    threads: int | None = None,
    timeout: str | float | None = None,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
) -> SearchState:
    """Work on an existing study from this host (as `resnas worker`) until its total is reached."""
    given = {
        "study": study,
        "storage": storage,
        "workers": workers,
        "gpus": list(gpus) if gpus else None,
        "data_dir": data_dir,
        "checkpoints": checkpoints,
        "keep_checkpoints": keep_checkpoints,
        "threads": threads,
        "timeout": timeout,
    }
    config, _ = plan(given, join=True)
    return Coordinator(config, on_update, join=True, heartbeat=heartbeat, grace=grace).run()


def train_archs(
    archs: Iterable[Arch],
    *,
    study: str,
    seeds: Sequence[int | None] = (None,),
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
    **options: Any,
) -> SearchState:
    """Train these architectures, each once per seed, as the trials of `study` (created, or resumed: what
    was trained already is not trained again). A seed of None trains with the recipe's own seed.

    Everything else is as for a search (`plan_search`'s options: dataset, recipe, epochs, storage,
    workers, gpus, ...): the same workers, storage, reuse of results, leaderboard and export. The
    study's trial total is the number of (arch, seed) pairs; no sampler is asked."""
    given = list(dict.fromkeys(Given(a, s) for a in archs for s in seeds))  # each pair once, in order
    if not given:
        raise ValueError("train_archs needs at least one architecture")
    options.setdefault("pruner", "none")  # every arm trains in full: there is nothing to compare it against yet
    config, _ = plan_search(study=study, trials=len(given), **options)
    return Coordinator(config, on_update, given=given, heartbeat=heartbeat, grace=grace).run()


def finalize_study(
    study: str,
    *,
    top: int = DEFAULT_TOP,
    seeds: int = DEFAULT_SEEDS,
    epochs: int | None = None,
    recipe: str | Recipe | dict | None = None,
    train_size: int | float | str | None = "all",
    test: bool = False,
    reference: bool = True,
    storage: str | None = None,
    on_update: Callable[[SearchState], None] | None = None,
    heartbeat: int = HEARTBEAT,
    grace: int = GRACE,
    **host: Any,
) -> dict:
    """Re-train `study`'s `top` architectures by proxy with a longer recipe (default: the proxy's, for 3x its
    epochs) on `train_size` of the training split (default all), `seeds` seeds each, as the trials of
    `STUDY.final` (as `resnas finalize`); with `test`, evaluate each re-trained network on the test split.
    With `reference` (the default), the proxy's best reference net is re-trained beside them, so that the
    search's best is judged against the hand pick fully trained.
    `host`: workers, gpus, threads, data_dir, checkpoints, keep_checkpoints, timeout, trial_timeout.

    Returns {"state", "final" (final_table's rows), "fidelity", "vs_reference" (the re-trained best against
    the best re-trained reference: references.final_versus_reference; None without one), "notes" (what the
    CLI prints as note: lines:
    a final recipe shorter than the proxy's, a keep policy put off until the test, a run left untested for
    want of weights, a re-trained net below its proxy run)}."""
    fp = plan_finalize(
        study,
        storage=storage,
        top=top,
        seeds=seeds,
        epochs=epochs,
        recipe=recipe,
        train_size=train_size,
        host=host,
        test=test,
        reference=reference,
    )
    state = Coordinator(fp.config, on_update, given=fp.given, heartbeat=heartbeat, grace=grace).run()
    return finish_finalize(fp, state, test=test, data_dir=host.get("data_dir"), gpus=host.get("gpus"))


def finish_finalize(
    fp: FinalPlan, state: SearchState, *, test: bool, data_dir: str | None, gpus: Sequence[int] | None
) -> dict:
    """After the re-training: the test split where asked (each network not yet evaluated), then the final
    table and the proxy's fidelity."""
    store = Store(fp.config.storage)
    untested: list[str] = []
    try:
        if test and not state.interrupted:
            untested = evaluate_test(fp, store, data_dir=data_dir, device=f"cuda:{gpus[0]}" if gpus else "auto")
        table = _final_ranking(store, fp.study, list(fp.proxy_rows), fp.references)  # the proxy as planned
    finally:
        store.dispose()
    notes = [*fp.notes, *untested, *proxy_was_better(fp.study, table)]  # `resnas finalize`'s note: lines
    return {
        "state": state,
        "final": table,
        "fidelity": study_fidelity(table),
        "vs_reference": final_versus_reference(table),
        "notes": notes,
    }


def final_ranking(study: str, *, storage: str | None = None) -> list[dict]:
    """`study`'s re-trained architectures (after `finalize_study`), best final mean first, with proxy ranks."""
    return _final_ranking(Store(storage), study)


def fidelity(study: str, *, storage: str | None = None) -> dict:
    """Rank correlations of the proxy ranking (and of ranking by FLOPs or params) with the final one."""
    return study_fidelity(_final_ranking(Store(storage), study))


def studies(storage: str | None = None) -> list[dict]:
    """Every study in a storage, with trial counts and its best validation accuracy."""
    return _studies(Store(storage))


def leaderboard(
    study: str, *, storage: str | None = None, top: int | None = None, include_all: bool = False
) -> list[dict]:
    """A study's trained trials ranked by validation accuracy (ties: fewer FLOPs first); with `include_all`,
    pruned, failed and running ones after them. `reference` names the zoo net a row is, where the search
    queued it as a hand pick."""
    return _leaderboard(Store(storage), study, top=top, include_all=include_all)


def compare_studies(names: Sequence[str], *, storage: str | None = None) -> list[dict]:
    """Studies side by side: accuracy statistics overall and inside the FLOPs range all of them cover."""
    store = Store(storage)
    check_distinct([(name, store.url) for name in names])  # a study beside itself shows no difference
    rows = compare({name: _leaderboard(store, name) for name in names}, {name: best_run(store, name) for name in names})
    return [{**row, "vs_reference": _reference_summary(store, row["study"])} for row in rows]


def vs_reference(study: str, *, storage: str | None = None, final: bool = False) -> dict | None:
    """Whether the study's best beats its best reference net (the zoo nets the search queued first): both
    validation accuracies, the difference in points, McNemar's discordant counts and p on the same
    validation images, and a verdict (`is`, `beats`, `tied`); None when no reference was trained.
    With `final`, the same asked of the re-training (after `finalize_study`): the re-trained best against
    the best re-trained reference, seeds paired, on the test images where tested (verdict `below` too)."""
    store = Store(storage)
    if final:
        return final_versus_reference(_final_ranking(store, study))
    return _reference_summary(store, study)


def export_study(study: str, out: str | Path, *, storage: str | None = None, **options: Any) -> list[Path]:
    """Write the best architectures as files `resnas train` and `nas_res.load_arch` read (as `resnas
    export`); `options`: top, front, fmt, weights, onnx, onnx_input (raw, uint8 or normalized), test, data_dir.
    Returns the paths written."""
    return export(Store(storage), study, out, **options)


def measure_latency(
    targets: Sequence[str | Arch],
    *,
    device: str = "cpu",
    batch: int = 1,
    threads: int | None = None,
    precision: str = "fp32",
    mode: str = "infer",
    repeats: int = 20,
    processes: int = 3,
    predict: bool = False,
    budget: str | None = None,
    sample: int = 20,
    storage: str | None = None,
) -> list[dict]:
    """Time nets on this host (as `resnas latency`): each in `processes` fresh processes, the fastest's
    median ms with its 95% interval, kept in the storage so no net is timed twice. `targets`: Archs, zoo
    names, arch files, `zoo` or design spaces (`sample` nets drawn inside `budget`); `predict`: also the
    lookup table's prediction (`predicted_ms`)."""
    from .latency.meter import Meter
    from .latency.setting import Setting
    from .latency.survey import resolve_targets, survey

    named = [(t.summary(), t) for t in targets if isinstance(t, Arch)]
    named += resolve_targets([t for t in targets if not isinstance(t, Arch)], Budget.parse(budget), sample, 0)
    setting = Setting(device, batch, threads, precision, mode)
    meter = Meter(setting, Store(storage, create=True), repeats=repeats, processes=processes)
    return survey(meter, named, predict=predict)


def refine(
    study: str,
    *,
    storage: str | None = None,
    share: float = 0.25,
    repeats: int = 2500,
    level: float = 0.95,
    alpha: float = 0.05,
    out: str | Path | None = None,
    plot: str | Path | None = None,
) -> Refinement:
    """Refine the space of a study sampled uniformly (sampler random, pruner none), as `resnas refine`: per
    open dimension the bootstrap good range (the best model of `repeats` samples of `share` of the models,
    the central `level` of their values), one-sided KS tests and a verdict (narrowed, kept, too few); the
    refined template (`.template`, YAML; written to `out` where given) and the picture (`plot`)."""
    return refine_study(
        study, storage=storage, share=share, repeats=repeats, level=level, alpha=alpha, out=out, plot=plot
    )
