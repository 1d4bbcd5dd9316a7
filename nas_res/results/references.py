"""The hand picks in a study's results: which rows are reference nets, and whether the search beat them.

A search records the zoo nets it queued first as `references` (zoo name -> arch key) with its study; a
re-training (`STUDY.final`) reads its search's. A row is a reference when its architecture is one of them,
whoever trained it. Whether the search beat the best reference is asked of the two runs' per-image
records on the same validation images (McNemar's exact test), the unpaired interval where a run has none.
"""

from __future__ import annotations

from typing import Any

from .final import SUFFIX
from .paired import compare_runs
from .record import Run
from .store import Store
from .uncertainty import tied_with_best

LEVEL = 0.05  # a difference with McNemar's p below this is told apart


def reference_keys(store: Store, study: str) -> dict[str, str]:
    """arch key -> zoo name of the study's reference nets (its search's, for a re-training)."""
    config = store.study_config(study) or {}
    refs = config.get("references")
    if refs is None and study.endswith(SUFFIX):
        refs = (store.study_config(study[: -len(SUFFIX)]) or {}).get("references")
    return {key: name for name, key in (refs or {}).items()}


def mark(rows: list[dict], keys: dict[str, str]) -> list[dict]:
    """Give each row `reference`: the zoo name of its architecture where it is one of the study's, else None."""
    for row in rows:
        row["reference"] = keys.get(row.get("arch_key", ""))
    return rows


def versus_reference(runs: list[Run], keys: dict[str, str], val_images: int | None) -> dict | None:
    """The study's best run against its best reference run: accuracies, the difference in points, McNemar's
    discordant counts (b: only the best right, c: only the reference) and p, and a verdict: `is` (the best
    is a reference), `beats`, `tied` or (never for the best) `below`. None without a trained reference."""
    ranked = sorted(
        (r for r in runs if r.status.ranks and r.best_val_acc is not None and r.task == "classify"),
        key=lambda r: (-(r.best_val_acc or 0.0), r.flops, r.trial),
    )
    refs = [r for r in ranked if r.arch_key in keys]
    if not ranked or not refs:
        return None
    best, ref = ranked[0], refs[0]
    assert best.best_val_acc is not None and ref.best_val_acc is not None
    out: dict[str, Any] = {
        "best_trial": best.trial,
        "best_summary": best.summary,
        "best_val_acc": best.best_val_acc,
        "best_flops": best.flops,
        "reference": keys[ref.arch_key],
        "reference_trial": ref.trial,
        "reference_val_acc": ref.best_val_acc,
        "reference_flops": ref.flops,
        "difference": best.best_val_acc - ref.best_val_acc,
        "test": None,
        "b": None,
        "c": None,
        "p": None,
    }
    if best.arch_key in keys:
        return {**out, "verdict": "is"}
    paired = compare_runs(best, ref)
    if paired is not None:
        out.update(test="mcnemar", b=paired.b, c=paired.c, p=paired.p)
        apart = paired.p < LEVEL
    elif val_images:
        out["test"] = "agresti-caffo"
        apart = not tied_with_best(best.best_val_acc, val_images, ref.best_val_acc, val_images)
    else:
        apart = False
    return {**out, "verdict": ("beats" if out["difference"] > 0 else "below") if apart else "tied"}


def describe(v: dict) -> str:
    """One line for a person: does the search's best beat the best reference, by how much, how sure."""
    ref = f"the best reference, {v['reference']} (trial {v['reference_trial']}, {v['reference_val_acc']:.2f}%)"
    if v["verdict"] == "is":
        return f"the search's best is {ref}: the search found nothing better than the hand pick yet"
    test = ""
    if v["test"] == "mcnemar":
        p = "p<0.001" if v["p"] < 0.001 else f"p={v['p']:.3f}"
        test = (
            f"McNemar on the same validation images: {v['b']} images only the best got right, "
            f"{v['c']} only the reference, {p}"
        )
    elif v["test"] == "agresti-caffo":
        test = "unpaired test (no per-image record)"
    head = (
        f"the search's best (trial {v['best_trial']}, {v['best_val_acc']:.2f}%) vs {ref}: {v['difference']:+.2f} points"
    )
    verdict = {
        "beats": "it beats the hand pick",
        "tied": "not told apart from the hand pick",
        "below": "below the hand pick",
    }[v["verdict"]]
    return f"{head}; {verdict}" + (f" ({test})" if test else "")
