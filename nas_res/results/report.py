"""After a search: studies, leaderboards and comparisons, read through `Store` (rows are plain dicts: JSON output)."""

from __future__ import annotations

import statistics
from pathlib import Path

from sqlalchemy.engine import make_url

from ..arch import Arch
from ..errors import ResnasError
from ..status import RunStatus
from .record import Run
from .storage import safe_url, sqlite_file
from .store import Store


def studies(store: Store) -> list[dict]:
    """Every study in the storage with its trial counts and best validation accuracy."""
    out = []
    for name in store.study_names():
        config = store.config_of(name)
        rows = store.runs(name)
        ranked = [r for r in rows if r.status.ranks and r.best_val_acc is not None]
        best = max(ranked, key=_accuracy, default=None)
        out.append(
            {
                "study": name,
                "space": config["space_name"],
                "budget": config["budget_text"],
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
                "best_val_acc": best.best_val_acc if best else None,
                "best_summary": best.summary if best else None,
            }
        )
    return out


def leaderboard(store: Store, study: str, top: int | None = None, include_all: bool = False) -> list[dict]:
    """Runs ranked by best validation accuracy (ties: fewer FLOPs first); unranked runs after, if asked."""
    return rank(study_runs(store, study), top, include_all)


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


def rank(runs: list[Run], top: int | None = None, include_all: bool = False) -> list[dict]:
    """Leaderboard rows of the ranked runs, best first (`top` of them); the other runs after, if `include_all`."""
    ranked = sorted(
        (r for r in runs if r.status.ranks and r.best_val_acc is not None),
        key=lambda r: (-_accuracy(r), r.flops, r.trial),
    )
    out = [_row(r, i) for i, r in enumerate(ranked[:top] if top else ranked, 1)]
    if include_all:
        shown = {r.id for r in ranked}
        out += [_row(r, None) for r in runs if r.id not in shown]
    return out


def _row(r: Run, position: int | None) -> dict:
    arch = Arch.from_dict(r.arch)
    return {
        "rank": position,
        "trial": r.trial,
        "val_acc": r.best_val_acc,
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


def compare(boards: dict[str, list[dict]]) -> list[dict]:
    """Per study: trained models, best, median and quartiles of validation accuracy, overall and inside
    the FLOPs range every study covers (matched complexity: a bigger space must not win by size alone)."""
    spans = [(min(r["flops"] for r in rows), max(r["flops"] for r in rows)) for rows in boards.values() if rows]
    lo, hi = (max(s[0] for s in spans), min(s[1] for s in spans)) if spans else (0, 0)
    out = []
    for name, rows in boards.items():
        matched = [r for r in rows if lo <= r["flops"] <= hi]
        out.append(
            {
                "study": name,
                "models": len(rows),
                **_stats([r["val_acc"] for r in rows]),
                "matched_flops": [lo, hi] if lo <= hi else None,
                "matched_models": len(matched),
                **{f"matched_{k}": v for k, v in _stats([r["val_acc"] for r in matched]).items()},
            }
        )
    return out


def _stats(accs: list[float]) -> dict:
    if not accs:
        return {"best": None, "median": None, "q25": None, "q75": None}
    q = statistics.quantiles(accs, n=4, method="inclusive") if len(accs) > 1 else [accs[0]] * 3
    return {"best": max(accs), "median": statistics.median(accs), "q25": q[0], "q75": q[2]}
