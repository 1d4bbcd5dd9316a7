"""Paired comparisons: runs scored on the same images compared image by image (McNemar's exact test).

Every candidate of a study is validated on the same images (the split is carved with a fixed seed; the
`data_key` names it), and every run stores which of them its best epoch got right (`val_correct`: 1 bit
an image, numpy.packbits order, in the split's fixed order), and which test images it got right where
it was tested (`test_correct`). Two such runs differ only on the images one gets right and the other
wrong, and McNemar's test looks at exactly those; two independent proportions (Agresti-Caffo, the
fallback for runs stored before resnas kept per-image records) cannot tell the shared images from noise.

Convention in every output: b counts the images only the reference (the best row, the first study)
got right, c those only the other one got right, p the exact two-sided p-value; a row is tied with
the reference when p >= 1 - level (0.05 at 95%).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ResnasError
from .record import Run
from .uncertainty import McNemar, mcnemar, mcnemar_counts, tied_with_best

SPLITS = ("val", "test")
PAIRED, UNPAIRED = "mcnemar", "agresti-caffo"  # the `tie_test` a row's tie was decided by


def run_correct(run: Run, split: str = "val") -> bytes | None:
    """Which images of `split` (val: its best epoch's; test: where it was tested) the run got right, as
    the packed bitmap it stored; None for a VAE, an untested run, or one stored before resnas kept them.
    `nas_res.results.uncertainty.per_image(bits, n)` unpacks it to one bool per image."""
    if split not in SPLITS:
        raise ResnasError(f"split must be val or test; got {split!r}", field="split")
    return run.val_correct if split == "val" else run.test_correct


def compare_runs(a: Run, b: Run, split: str = "val", n: int | None = None) -> McNemar | None:
    """McNemar's exact test of run `a` against run `b` on `split` (b: images only `a` got right, c: only
    `b`), or None where they cannot be paired: either has no per-image record, or they were measured on
    different data (`data_key`: another dataset, validation split or split seed). `n`: the image count,
    checked where given. This is how to ask whether a search's best beats a reference net."""
    x, y = run_correct(a, split), run_correct(b, split)
    if x is None or y is None or a.data_key != b.data_key:
        return None
    try:
        return mcnemar(x, y, n)
    except ResnasError as e:
        raise ResnasError(
            f"{a.study} trial {a.trial} vs {b.study} trial {b.trial}: {e.bare}", field=f"{split}_correct"
        ) from None


def tie_with_best(best: Run, run: Run, acc: float, n: int, level: float = 0.95) -> dict:
    """Whether `run` (validation accuracy `acc`, percent) is tied with `best` on the study's `n` validation
    images: by McNemar on their per-image records where both have one, else by the unpaired
    Agresti-Caffo interval (`tie_test` says which). Leaderboard fields, counts None when unpaired."""
    m = compare_runs(best, run, "val", n)
    if m is None:
        assert best.best_val_acc is not None, best
        tied = tied_with_best(best.best_val_acc, n, acc, n, level)
        return {"tied": tied, "tie_test": UNPAIRED, "vs_best_b": None, "vs_best_c": None, "vs_best_p": None}
    tied = m.p >= 1 - level
    return {"tied": tied, "tie_test": PAIRED, "vs_best_b": m.b, "vs_best_c": m.c, "vs_best_p": m.p}


NO_TIE = {"tied": None, "tie_test": None, "vs_best_b": None, "vs_best_c": None, "vs_best_p": None}


def pooled_over_seeds(best: Sequence[Run], other: Sequence[Run]) -> dict:
    """One re-trained architecture (`other`, one run per seed) against the best one (`best`): McNemar on
    the discordant counts summed over the seeds both trained, each seed paired with the same seed. On
    the test images where every such pair was tested, else on the validation images.

    Summing treats each seed pair as another look at the same images; it answers "does one
    architecture get more images right than the other across seeds", not a per-seed question. Fields:
    vs_best_split (test, val, or None where nothing pairs), vs_best_seeds (pairs used), vs_best_b/c/p, and
    vs_best_means: the two mean accuracies (best, other) over exactly those seed pairs on that split, the
    accuracies the test speaks about (a row's own means are over all its seeds, which may be more)."""
    seeds = {_seed(r): r for r in best}
    pairs = [(seeds[_seed(r)], r) for r in other if _seed(r) in seeds]
    for split in ("test", "val"):
        tests = [compare_runs(a, b, split) for a, b in pairs]
        found = [m for m in tests if m is not None]
        if found and len(found) == len(pairs):
            m = mcnemar_counts(sum(t.b for t in found), sum(t.c for t in found))
            means = [sum(_acc(r, split) for r in side) / len(pairs) for side in zip(*pairs, strict=True)]
            return {"vs_best_split": split, "vs_best_seeds": len(found), **_counts(m), "vs_best_means": means}
    empty = {"vs_best_b": None, "vs_best_c": None, "vs_best_p": None, "vs_best_means": None}
    return {"vs_best_split": None, "vs_best_seeds": 0, **empty}


def best_vs_first(first: Run | None, run: Run | None) -> dict:
    """A compared study's best run against the first study's best, paired where both ran on the same
    validation images with per-image records (`best_paired`); otherwise counts None and `best_unpaired`
    says why."""
    m = compare_runs(first, run) if first is not None and run is not None else None
    if m is not None:
        counts = {"best_vs_first_b": m.b, "best_vs_first_c": m.c, "best_vs_first_p": m.p}
        return {"best_paired": True, "best_unpaired": None, **counts}
    if first is None or run is None:
        why = "no trained model"
    elif first.data_key != run.data_key:
        why = "not on the same validation images (another dataset, split or split seed)"
    else:
        why = "no per-image record (runs stored before resnas kept per-image results)"
    empty = {"best_vs_first_b": None, "best_vs_first_c": None, "best_vs_first_p": None}
    return {"best_paired": False, "best_unpaired": why, **empty}


def _counts(m: McNemar) -> dict:
    return {"vs_best_b": m.b, "vs_best_c": m.c, "vs_best_p": m.p}


def _acc(run: Run, split: str) -> float:
    acc = run.test_acc if split == "test" else run.best_val_acc
    assert acc is not None, (run.study, run.trial, split)  # a run with a per-image record has its accuracy
    return acc


def _seed(run: Run) -> int:
    return int(run.recipe.get("seed", 0))
