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


def final_versus_reference(table: list[dict]) -> dict | None:
    """The re-trained best (`final_table`'s first row) against the best re-trained reference net, fully trained
    with the same recipe and seeds: mean accuracy over the seeds both were trained with, on the split of the
    paired test (the test images where every seed pair was tested, else validation), the difference in
    points, McNemar's counts summed over seed pairs (b: only the best right, c: only the reference) and p,
    and a verdict: `is` (the best is the reference), `beats`, `tied` or `below`. This, not the proxy's line,
    says whether the search beat the hand pick. None when no reference was re-trained."""
    refs = [r for r in table if r.get("reference")]
    if not refs:
        return None
    best, ref = table[0], refs[0]
    both_tested = best.get("test_mean") is not None and ref.get("test_mean") is not None
    split = (ref.get("vs_best_split") if ref is not best else None) or ("test" if both_tested else "val")
    # the means over the seed pairs McNemar used, so that the difference and the test speak of the same runs
    best_acc, ref_acc = (ref.get("vs_best_means") if ref is not best else None) or (
        best[f"{split}_mean"],
        ref[f"{split}_mean"],
    )
    out: dict[str, Any] = {
        "best_summary": best["summary"],
        "best_acc": best_acc,
        "best_flops": best["flops"],
        "reference": ref["reference"],
        "reference_acc": ref_acc,
        "reference_flops": ref["flops"],
        "split": split,
        "seeds": ref.get("vs_best_seeds") or len(ref["seeds"]),
        "difference": best_acc - ref_acc,
        "test": None,
        "b": None,
        "c": None,
        "p": None,
    }
    if ref is best:
        return {**out, "verdict": "is"}
    b, c, p = ref.get("vs_best_b"), ref.get("vs_best_c"), ref.get("vs_best_p")
    if b is None or c is None or p is None:
        return {**out, "verdict": "tied"}  # no per-image record to pair (runs stored before there was one)
    verdict = ("beats" if b > c else "below") if p < LEVEL else "tied"
    return {**out, "test": "mcnemar", "b": b, "c": c, "p": p, "verdict": verdict}


def describe_final(v: dict) -> str:
    """One line for a person: does the re-trained best beat the hand pick re-trained beside it."""
    split = "test" if v["split"] == "test" else "validation"
    ref = f"the best reference re-trained, {v['reference']} ({v['reference_acc']:.2f}% {split})"
    if v["verdict"] == "is":
        return f"final: the re-trained best is {ref}: the search found nothing better than the hand pick"
    head = (
        f"final: the re-trained best ({v['best_summary']}, {v['best_acc']:.2f}% {split}, mean over seeds) "
        f"vs {ref}: {v['difference']:+.2f} points"
    )
    verdict = {
        "beats": "it beats the hand pick",
        "tied": "not told apart from the hand pick",
        "below": "below the hand pick",
    }[v["verdict"]]
    if v["test"] != "mcnemar":
        return f"{head}; {verdict} (no per-image record to pair)"
    p = "p<0.001" if v["p"] < 0.001 else f"p={v['p']:.3f}"
    return (
        f"{head}; {verdict} (McNemar on the same {split} images, {v['seeds']} seed pair(s) summed: {v['b']} "
        f"images only the best got right, {v['c']} only the reference, {p})"
    )
