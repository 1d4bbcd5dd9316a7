"""After a search: studies, leaderboards and comparisons, read through `Store` (rows are plain dicts: JSON output)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from ..arch.description import Arch
from ..errors import ResnasError
from ..training.status import RunStatus
from .final import final_table, with_final
from .latencies import with_latency
from .paired import NO_TIE, best_vs_first, tie_with_best
from .record import Run
from .references import mark, reference_keys, versus_reference
from .storage import safe_url, sqlite_file
from .store import Store
from .uncertainty import bootstrap_difference, wilson


def studies(store: Store) -> list[dict]:
    """Every study in the storage with its trial counts and best result (a classifier's validation accuracy,
    a VAE's validation negative ELBO)."""
    out = []
    for name in store.study_names():
        config = store.config_of(name)
        rows = store.runs(name)
        ranked = _ranked(rows)
        best = ranked[0] if ranked else None
        out.append(
            {
                "study": name,
                "space": config["space_name"],
                "budget": config["budget_text"],
                "max_latency_ms": (config.get("latency") or {}).get("max_ms"),
                "latency_device": ((config.get("latency") or {}).get("key") or {}).get("device"),
                "dataset": config["dataset"],
                "objective": config["objective"],
                "runs": sum(1 for r in rows if r.status.counts),
                "trials": config.get("trials"),
                "trained": sum(1 for r in rows if not r.reused and r.status.ranks),
                "reused": sum(1 for r in rows if r.reused),
                "pruned": sum(1 for r in rows if r.status is RunStatus.PRUNED),
                "failed": sum(1 for r in rows if r.status.failed),
                "running": sum(1 for r in rows if r.status is RunStatus.RUNNING),
                "lost": sum(1 for r in rows if not r.status.counts),  # cut short from outside; retried
                "task": config["space"].get("task", "classify"),
                "best_val_acc": best.best_val_acc if best else None,
                "best_val_nelbo": best.best_val_loss if best and best.task == "vae" else None,
                "best_summary": best.summary if best else None,
            }
        )
    return out


def leaderboard(store: Store, study: str, top: int | None = None, include_all: bool = False) -> list[dict]:
    """Runs ranked by best validation accuracy (ties: fewer FLOPs first); unranked runs after, if asked.
    Each ranked row carries its 95% interval and whether it is tied with the best, where the study
    stored how many validation images it measured on, and the final columns of its architecture where
    the study was re-trained (resnas finalize)."""
    runs, n = study_runs(store, study), val_images_of(store, study)
    rows = rank(runs, top, include_all, val_images=n)
    rows = with_final(rows, final_table(store, study, rank(runs, val_images=n) if top or include_all else rows))
    return with_latency(mark(rows, reference_keys(store, study)), store, study)


def reference_summary(store: Store, study: str) -> dict | None:
    """Whether the study's best beats its best reference net (see references.versus_reference); None when
    no reference was trained."""
    keys = reference_keys(store, study)
    if not keys:
        return None
    return versus_reference(study_runs(store, study), keys, val_images_of(store, study))


def final_ranking(
    store: Store, study: str, proxy_rows: list[dict] | None = None, references: dict[str, str] | None = None
) -> list[dict]:
    """The study's re-trained architectures (resnas finalize), best final mean first, with proxy ranks.
    A caller that has read the proxy's ranked rows and reference nets already (a `FinalPlan`) passes them."""
    rows = rank(study_runs(store, study)) if proxy_rows is None else proxy_rows
    return mark(final_table(store, study, rows), reference_keys(store, study) if references is None else references)


def val_images_of(store: Store, study: str) -> int | None:
    """How many validation images the study's accuracies were measured on; None for a study stored
    before that count was (its intervals are unknown)."""
    n = store.config_of(study).get("val_images")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ResnasError(f"study {study!r} stores val_images={n!r}, not a positive count of images", field="study")
    return n


def check_top(top: int | None) -> None:
    """--top counts rows: 0 or a negative number is a mistake, not 'all' or 'all but the last'."""
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ResnasError(f"must be a positive number of rows; got {top!r}", field="--top")


def study_runs(store: Store, study: str) -> list[Run]:
    """A study's runs; a study the storage does not hold is an error that lists the ones it does."""
    store.config_of(study)
    return store.runs(study)


def _accuracy(r: Run) -> float:
    """A ranked run's validation accuracy (ranked runs have one)."""
    assert r.best_val_acc is not None, r
    return r.best_val_acc


def _ranked(runs: list[Run]) -> list[Run]:
    """The runs that rank, best first: a classifier's highest validation accuracy, a VAE's lowest
    validation negative ELBO; ties go to fewer FLOPs, then the earlier trial."""
    ranked = [r for r in runs if r.status.ranks and r.score is not None]
    sign = 1 if any(r.task == "vae" for r in ranked) else -1  # one study is of one task

    def key(r: Run) -> tuple:
        assert r.score is not None, r
        return (sign * r.score, r.flops, r.trial)

    return sorted(ranked, key=key)


def rank(
    runs: list[Run], top: int | None = None, include_all: bool = False, val_images: int | None = None
) -> list[dict]:
    """Leaderboard rows of the ranked runs, best first (`top` of them); the other runs after, if `include_all`.
    With `val_images` (the validation count the accuracies were measured on) each ranked row gets its
    Wilson 95% interval (val_lo, val_hi) and `tied`: True for the best and every row not told apart
    from it, by McNemar's exact test on the two runs' per-image records where both have one (with the
    discordant counts vs_best_b, vs_best_c and vs_best_p), else by the unpaired interval
    (uncertainty.tied_with_best); `tie_test` says which (paired.tie_with_best). Without it those are None."""
    ranked = _ranked(runs)
    best = ranked[0] if ranked and ranked[0].task == "classify" else None  # a VAE has no interval yet
    out = [_row(r, i, val_images, best) for i, r in enumerate(ranked[:top] if top else ranked, 1)]
    if include_all:
        shown = {r.id for r in ranked}
        out += [_row(r, None, val_images, None) for r in runs if r.id not in shown]
    return out


def _uncertainty(r: Run, acc: float | None, n: int | None, best: Run | None) -> dict:
    """A ranked row's interval and tie with the best; None where the count (or the accuracy) is unknown."""
    if n is None or acc is None or best is None:
        return {"val_images": n, "val_lo": None, "val_hi": None, **NO_TIE}
    lo, hi = wilson(acc, n)
    return {"val_images": n, "val_lo": lo, "val_hi": hi, **tie_with_best(best, r, acc, n)}


def _row(r: Run, position: int | None, val_images: int | None = None, best: Run | None = None) -> dict:
    arch = Arch.from_dict(r.arch)
    vae = r.task == "vae"
    return {
        "rank": position,
        "trial": r.trial,
        "task": r.task,
        **({"val_nelbo": r.best_val_loss, "val_bpd": (r.best_epoch or {}).get("val_bpd")} if vae else {}),
        "val_acc": r.best_val_acc,
        **_uncertainty(r, r.best_val_acc if position is not None else None, val_images, best),
        "test_acc": r.test_acc,
        "flops": r.flops,
        "params": r.params,
        "acts": r.acts,
        "epochs": r.epochs,
        "depth": arch.depth,
        "depths": "-".join(str(s.depth) for s in arch.stages),
        "width": "-".join(str(s.width) for s in arch.stages),
        "cxd": arch.cxd,
        "block": arch.block,
        "shortcut": arch.shortcut,
        "unit_order": arch.unit_order,
        "status": r.status.value,
        "reason": None if r.status.ranks or r.reused else (r.reason or None),  # why a run it trained has no result
        "reused": r.reused,
        "arch_key": r.arch_key,
        "summary": r.summary,
        "wall_seconds": r.wall_seconds,
        "checkpoint": r.checkpoint,
    }


def pareto(rows: list[dict], cost: str = "flops") -> list[dict]:
    """Rows no other row beats on both accuracy (higher) and `cost` (lower)."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r[cost], -r["val_acc"])):
        if r["val_acc"] > best:
            front.append(r)
            best = r["val_acc"]
    return front


def check_distinct(studies: list[tuple[str, str]]) -> None:
    """Refuse a comparison that names one study twice (same name, same database): it would compare a
    study with itself and report no difference as if it were a finding."""
    seen: dict[tuple[str, str], int] = {}
    for i, (name, url) in enumerate(studies):
        key = (name, _place(url))
        if key in seen:
            raise ResnasError(
                f"study {name!r} in {safe_url(url)} is given twice (positions {seen[key] + 1} and {i + 1}); "
                "compare different studies, or the same name in different storages (one --storage per study)",
                field="study",
            )
        seen[key] = i


def _place(url: str) -> str:
    """Where a storage is: a SQLite file by its resolved path (two spellings, one file), else its URL."""
    parsed = make_url(url)
    if sqlite_file(parsed):
        return str(Path(str(parsed.database)).expanduser().resolve())
    return parsed.render_as_string(hide_password=True)


def best_run(store: Store, study: str) -> Run | None:
    """The study's best run (what its leaderboard ranks first), for pairing studies in `compare`."""
    ranked = _ranked(study_runs(store, study))
    return ranked[0] if ranked else None


def compare(boards: dict[str, list[dict]], best: Mapping[str, Run | None] | None = None) -> list[dict]:
    """Per study: trained models, best, median and quartiles of validation accuracy, overall and inside
    the FLOPs range every study covers (matched complexity: a bigger space must not win by size alone).

    Every study after the first also gets its difference to the first in best and in median accuracy
    (diff_best, diff_median, points) with bootstrap 95% intervals (`diff_*_lo`, `diff_*_hi`; see
    uncertainty.bootstrap_difference), so a gap inside the noise is not read as a finding. A study's
    validation count comes from its rows' `val_images` (leaderboard rows carry it); where unknown the
    interval covers only which models each search trained, not validation noise.

    With `best` (each study's best run, see `best_run`), each study after the first also gets its best
    run against the first study's best by McNemar's exact test (best_vs_first_b: images only the
    first's best got right, _c: only this one's, _p) where the two were validated on the same images
    (same data_key) and both stored per-image records; `best_paired` says whether they were."""
    vae = sorted(name for name, rows in boards.items() if any(r.get("task") == "vae" for r in rows))
    if vae:
        raise ResnasError(
            f"{', '.join(vae)}: a VAE search; compare sets classifiers' accuracies side by side. Read a VAE "
            "study's leaderboard (resnas leaderboard NAME), ranked by validation negative ELBO",
            field="studies",
        )
    spans = [(min(r["flops"] for r in rows), max(r["flops"] for r in rows)) for rows in boards.values() if rows]
    lo, hi = (max(s[0] for s in spans), min(s[1] for s in spans)) if spans else (0, 0)
    first = next(iter(boards.values()), [])
    out = []
    for i, (name, rows) in enumerate(boards.items()):
        matched = [r for r in rows if lo <= r["flops"] <= hi]
        out.append(
            {
                "study": name,
                "models": len(rows),
                "val_images": _count(rows),
                **_stats([r["val_acc"] for r in rows]),
                "best_latency_ms": rows[0].get("latency_ms") if rows else None,  # a latency study's best net's
                "matched_flops": [lo, hi] if lo <= hi else None,
                "matched_models": len(matched),
                **{f"matched_{k}": v for k, v in _stats([r["val_acc"] for r in matched]).items()},
                **_differences(first, rows, i == 0),
                **(_paired(best, next(iter(boards)), name, i == 0) if best is not None else {}),
            }
        )
    return out


PAIRED_COUNTS = ("best_vs_first_b", "best_vs_first_c", "best_vs_first_p")
DIFFERENCES = [f"diff_{stat}{end}" for stat in ("best", "median") for end in ("", "_lo", "_hi")]


def _count(rows: list[dict]) -> int | None:
    """The validation count a study's rows were measured on (one per study), None where unknown."""
    counts = {r.get("val_images") for r in rows}
    return counts.pop() if len(counts) == 1 else None


def _differences(first: list[dict], rows: list[dict], is_first: bool) -> dict:
    """best and median of `rows` minus those of `first`, with bootstrap 95% intervals; None for the
    first study itself and where either side has no model."""
    if is_first or not first or not rows:
        return dict.fromkeys(DIFFERENCES)
    a, b = [r["val_acc"] for r in first], [r["val_acc"] for r in rows]
    out = {}
    for stat in ("best", "median"):
        d = bootstrap_difference(a, b, n_val=(_count(first), _count(rows)), stat=stat)
        out.update({f"diff_{stat}": d["diff"], f"diff_{stat}_lo": d["lo"], f"diff_{stat}_hi": d["hi"]})
    return out


def _paired(best: Mapping[str, Run | None], first: str, name: str, is_first: bool) -> dict:
    """The study's best against the first study's best by McNemar, where they pair (none for the first)."""
    if is_first:
        return {"best_paired": None, "best_unpaired": None, **dict.fromkeys(PAIRED_COUNTS)}
    return best_vs_first(best.get(first), best.get(name))


def _stats(accs: list[float]) -> dict:
    if not accs:
        return {"best": None, "median": None, "q25": None, "q75": None}
    q = statistics.quantiles(accs, n=4, method="inclusive") if len(accs) > 1 else [accs[0]] * 3
    return {"best": max(accs), "median": statistics.median(accs), "q25": q[0], "q75": q[2]}
