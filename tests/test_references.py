"""The hand picks in a study's results: marks, and whether the search's best beats the best reference.

The verdict's paired test is checked against scipy's exact binomial test on counts made by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nas_res.results.record import Run
from nas_res.results.references import describe, mark, reference_keys, versus_reference
from nas_res.results.store import Store
from nas_res.training.evaluation import pack_correct
from nas_res.training.status import RunStatus

N = 1000


def run(trial: int, key: str, right: np.ndarray | None, acc: float | None = None, flops: int = 1000) -> Run:
    if acc is None:
        assert right is not None
        acc = 100 * float(right.mean())
    return Run(
        id=trial + 1,
        study="s",
        trial=trial,
        arch_key=key,
        recipe_key="r",
        recipe={},
        data_key="d",
        status=RunStatus.OK,
        reason="",
        history=[],
        epochs=3,
        best_val_acc=acc,
        test_acc=None,
        checkpoint=None,
        device=None,
        wall_seconds=None,
        train_seconds=None,
        version="0",
        reused_from=None,
        created=0.0,
        arch={},
        summary=f"net {key}",
        flops=flops,
        params=10,
        acts=10,
        val_correct=None if right is None else pack_correct(right),
    )


def outcomes(right_both: int, only_a: int, only_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Two models' per-image outcomes on N images with the given agreement and discordant counts."""
    a = np.zeros(N, bool)
    b = np.zeros(N, bool)
    a[:right_both] = b[:right_both] = True
    a[right_both : right_both + only_a] = True
    b[right_both + only_a : right_both + only_a + only_b] = True
    return a, b


def test_beats_the_reference_by_mcnemar_on_the_same_images():
    best, ref = outcomes(800, 40, 15)
    runs = [run(0, "ref", ref), run(1, "other", ref[::-1].copy()), run(2, "best", best)]
    v = versus_reference(runs, {"ref": "resnet20_cifar"}, N)
    assert v is not None
    assert (v["best_trial"], v["reference"], v["reference_trial"]) == (2, "resnet20_cifar", 0)
    assert (v["b"], v["c"], v["test"]) == (40, 15, "mcnemar")
    assert v["p"] == pytest.approx(stats.binomtest(40, 55, 0.5).pvalue)
    assert v["difference"] == pytest.approx(2.5)
    assert v["verdict"] == "beats"
    line = describe(v)
    assert "+2.50 points" in line and "beats the hand pick" in line and "40 images only the best" in line


def test_a_gap_the_images_cannot_tell_apart_is_tied():
    best, ref = outcomes(800, 12, 8)  # 4 images ahead of 20 discordant: p = 0.50
    v = versus_reference([run(0, "ref", ref), run(1, "best", best)], {"ref": "mnist_resnet"}, N)
    assert v is not None and v["verdict"] == "tied" and v["p"] > 0.05
    assert "not told apart" in describe(v)


def test_the_best_being_a_reference_says_the_search_found_nothing_better():
    best, worse = outcomes(800, 30, 0)
    v = versus_reference([run(0, "ref", best), run(1, "x", worse)], {"ref": "resnet20_cifar"}, N)
    assert v is not None and v["verdict"] == "is"
    assert "found nothing better" in describe(v)


def test_without_per_image_records_the_unpaired_test_decides():
    runs = [run(0, "ref", None, acc=80.0), run(1, "best", None, acc=90.0)]
    v = versus_reference(runs, {"ref": "resnet20_cifar"}, N)
    assert v is not None and v["test"] == "agresti-caffo" and v["verdict"] == "beats"
    close = [run(0, "ref", None, acc=80.0), run(1, "best", None, acc=80.5)]
    w = versus_reference(close, {"ref": "resnet20_cifar"}, N)
    assert w is not None and w["verdict"] == "tied" and "unpaired" in describe(w)


def test_no_trained_reference_no_verdict():
    a, _ = outcomes(800, 30, 0)
    assert versus_reference([run(0, "x", a)], {"ref": "resnet20_cifar"}, N) is None
    assert versus_reference([], {"ref": "resnet20_cifar"}, N) is None


def test_rows_are_marked_and_a_re_training_reads_its_search_references(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 's.db'}", create=True)
    store.add_study("s", {"space_name": "x"})
    store.set_study_values("s", references={"resnet20_cifar": "k1"})
    store.add_study("s.final", {"space_name": "x"})
    assert reference_keys(store, "s") == {"k1": "resnet20_cifar"}
    assert reference_keys(store, "s.final") == {"k1": "resnet20_cifar"}
    rows = mark([{"arch_key": "k1"}, {"arch_key": "k2"}], reference_keys(store, "s.final"))
    assert [r["reference"] for r in rows] == ["resnet20_cifar", None]
    store.add_study("t", {"space_name": "x"})
    assert reference_keys(store, "t") == {}
    store.dispose()
