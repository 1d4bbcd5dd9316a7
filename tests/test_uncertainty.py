"""Can the ranking be trusted: intervals, ties with the best, differences between studies, proxy fidelity.

The statistics are checked against hand computations; leaderboards and comparisons end to end on
studies written straight into a `Store` (no training: what is tested is the arithmetic and the output).
"""

from __future__ import annotations

import json
import math
import time

import pytest
from nas_res.cli.main import app
from servers import sqlite_url
from typer.testing import CliRunner

from nas_res import ResnasError, cost, load_space
from nas_res.results import Store, compare, leaderboard, rank
from nas_res.results.fidelity import fidelity, verdict
from nas_res.results.uncertainty import (
    bootstrap_difference,
    difference_interval,
    seed_summary,
    tied_with_best,
    wilson,
)

runner = CliRunner()
Z = 1.959963984540054  # the normal quantile of 0.975


# ---- Wilson interval -----------------------------------------------------------------------------


def test_wilson_matches_a_hand_computation():
    # 90% of 100, z^2 = 3.8415: denominator 1 + 3.8415/100 = 1.038415;
    # centre (0.9 + 3.8415/200) / 1.038415 = 0.919207 / 1.038415 = 0.885200;
    # half z * sqrt(0.9*0.1/100 + 3.8415/40000) / 1.038415 = 1.96 * sqrt(0.000996037) / 1.038415 = 0.059568;
    # so [0.825632, 0.944768]: 82.56 and 94.48 to 2 decimals.
    lo, hi = wilson(90.0, 100)
    assert (round(lo, 2), round(hi, 2)) == (82.56, 94.48)


def test_wilson_at_the_ends_stays_inside_and_has_width():
    lo, hi = wilson(100.0, 144)
    assert hi == 100.0
    assert lo == pytest.approx(100 * 144 / (144 + Z * Z))  # p = 1: lower end n / (n + z^2) = 97.40
    assert round(lo, 2) == 97.40
    lo, hi = wilson(0.0, 144)
    assert lo == 0.0 and hi == pytest.approx(100 * Z * Z / (144 + Z * Z))
    narrow, wide = wilson(90.0, 10000), wilson(90.0, 100)
    assert wide[0] < narrow[0] < 90 < narrow[1] < wide[1]  # more images, narrower


@pytest.mark.parametrize("acc,n", [(90.0, 0), (90.0, -3), (90.0, True), (90.0, 2.5), (101.0, 100), (-1.0, 100)])
def test_wilson_refuses_what_cannot_be_an_accuracy_on_n_images(acc, n):
    with pytest.raises(ResnasError):
        wilson(acc, n)


# ---- seeds ---------------------------------------------------------------------------------------


def test_seed_summary_matches_a_hand_t_interval():
    # 90, 91, 92: mean 91, sd 1 (squares 1 + 0 + 1 over n-1 = 2); t(0.975, 2) = 4.303;
    # half width 4.303 * 1 / sqrt(3) = 2.484.
    s = seed_summary([90.0, 91.0, 92.0])
    assert s["n"] == 3 and s["mean"] == pytest.approx(91.0) and s["sd"] == pytest.approx(1.0)
    assert s["hi"] - s["mean"] == pytest.approx(2.484, abs=5e-4)
    assert s["mean"] - s["lo"] == pytest.approx(2.484, abs=5e-4)


def test_seed_summary_of_one_seed_has_no_spread():
    assert seed_summary([91.5]) == {"n": 1, "mean": 91.5, "sd": None, "lo": None, "hi": None}
    with pytest.raises(ResnasError):
        seed_summary([])


# ---- ties with the best --------------------------------------------------------------------------


def test_difference_interval_matches_a_hand_agresti_caffo():
    # 95% vs 90% of 10000: (9500+1)/10002 = 0.949910, (9000+1)/10002 = 0.899920;
    # se = sqrt(0.949910*0.050090/10002 + 0.899920*0.100080/10002) = sqrt(4.7571e-6 + 9.0046e-6) = 0.0037097;
    # difference 0.049990 +/- 1.96 * 0.0037097 = [0.042719, 0.057261].
    lo, hi = difference_interval(95.0, 10000, 90.0, 10000)
    assert lo == pytest.approx(4.2719, abs=1e-3) and hi == pytest.approx(5.7261, abs=1e-3)


def test_tie_decisions_on_clear_cases():
    assert not tied_with_best(95.0, 10000, 90.0, 10000)  # 5 points on 10,000 images: a real gap
    assert tied_with_best(90.0, 144, 100 * 129 / 144, 144)  # one image (0.69 points) on 144: noise
    assert tied_with_best(90.0, 144, 90.0, 144)  # the best is tied with itself
    assert not tied_with_best(95.0, 144, 75.0, 144)  # 20 points is real even on 144 images
    assert tied_with_best(95.0, 144, 90.0, 144) and not tied_with_best(95.0, 5000, 90.0, 5000)  # n decides


# ---- bootstrap difference between studies --------------------------------------------------------


def _accs(centre: float, k: int, spread: float = 2.0) -> list[float]:
    return [centre - spread + 2 * spread * i / (k - 1) for i in range(k)]


def test_bootstrap_is_deterministic_for_a_seed():
    a = [80 + 5 * ((7 * i) % 30) / 29 for i in range(30)]  # 30 distinct values, in no order
    b = [x + 0.6 for x in a[::-1]]
    for n_val in (144, None):
        first = bootstrap_difference(a, b, n_val=n_val, stat="median", seed=3)
        assert bootstrap_difference(a, b, n_val=n_val, stat="median", seed=3) == first
        assert first["reps"] == 2000 and first["diff"] == pytest.approx(0.6)
        assert bootstrap_difference(a, b, n_val=n_val, stat="median", seed=4) != first


@pytest.mark.parametrize("stat", ["best", "median"])
@pytest.mark.parametrize("n_val", [None, 144, (144, 1000)])
def test_a_real_difference_excludes_zero(stat, n_val):
    real = bootstrap_difference(_accs(80.0, 40), _accs(90.0, 40), n_val=n_val, stat=stat)
    assert real["diff"] == pytest.approx(10.0) and 0 < real["lo"] <= real["hi"]


@pytest.mark.parametrize("stat", ["best", "median"])
@pytest.mark.parametrize("n_val", [None, 144, 10000])
def test_identical_studies_include_zero(stat, n_val):
    a = _accs(80.0, 40)
    same = bootstrap_difference(a, list(a), n_val=n_val, stat=stat)
    assert same["diff"] == 0 and same["lo"] <= 0 <= same["hi"]


def test_validation_noise_widens_the_interval():
    a, b = _accs(85.0, 20), _accs(85.5, 20)
    models_only = bootstrap_difference(a, b, n_val=None, stat="median")
    with_noise = bootstrap_difference(a, b, n_val=144, stat="median")
    assert with_noise["hi"] - with_noise["lo"] > models_only["hi"] - models_only["lo"]
    assert with_noise["lo"] < 0 < with_noise["hi"]  # half a point on 144 images is nothing


def test_bootstrap_of_a_hundred_models_takes_milliseconds():
    a, b = _accs(85.0, 100, 5.0), _accs(86.0, 100, 5.0)
    bootstrap_difference(a, b, n_val=144, stat="median")  # imports and caches warm
    start = time.perf_counter()
    for stat in ("best", "median"):
        for n_val in (144, 10000, None):
            bootstrap_difference(a, b, n_val=n_val, stat=stat)
    assert (time.perf_counter() - start) / 6 < 0.25  # tens of ms on a busy 2-core machine


def test_bootstrap_refuses_what_it_cannot_compare():
    with pytest.raises(ResnasError, match="no model"):
        bootstrap_difference([], [90.0], n_val=144, stat="best")
    with pytest.raises(ResnasError, match="best or median"):
        bootstrap_difference([90.0], [90.0], n_val=144, stat="mean")  # type: ignore[arg-type]


# ---- fidelity of the proxy -----------------------------------------------------------------------


def _fid_rows(proxy, final, flops=None, params=None) -> list[dict]:
    k = len(final)
    flops = flops or list(range(k))
    params = params or list(range(k))
    return [
        {"proxy_acc": p, "final_acc": f, "flops": fl, "params": pa} for p, f, fl, pa in zip(proxy, final, flops, params)
    ]


def test_fidelity_of_perfect_and_reversed_rankings():
    final = [70.0, 75.0, 80.0, 85.0, 90.0, 95.0]
    result = fidelity(_fid_rows([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], final, flops=[6, 5, 4, 3, 2, 1]))
    assert result["n"] == 6
    assert result["proxy"]["spearman"] == pytest.approx(1.0) and result["proxy"]["kendall"] == pytest.approx(1.0)
    assert result["flops"]["spearman"] == pytest.approx(-1.0) and result["flops"]["kendall"] == pytest.approx(-1.0)
    assert result["params"]["kendall"] == pytest.approx(1.0) and result["proxy"]["note"] is None
    assert 0 <= result["proxy"]["kendall_p"] < 0.05 and result["proxy"]["n"] == 6


def test_fidelity_with_too_few_or_constant_values_says_why():
    few = fidelity(_fid_rows([1.0, 2.0], [80.0, 90.0]))
    assert few["proxy"]["spearman"] is None and few["proxy"]["kendall"] is None
    assert "needs 3" in few["proxy"]["note"] and few["proxy"]["n"] == 2
    flat = fidelity(_fid_rows([1.0, 2.0, 3.0, 4.0], [80.0, 80.0, 80.0, 80.0]))
    assert flat["proxy"]["kendall"] is None and "same final accuracy" in flat["proxy"]["note"]
    iso = fidelity(_fid_rows([1.0, 2.0, 3.0, 4.0], [80.0, 81.0, 82.0, 83.0], flops=[5, 5, 5, 5]))
    assert iso["flops"]["kendall"] is None and "same FLOPs" in iso["flops"]["note"]
    assert iso["proxy"]["kendall"] == pytest.approx(1.0)
    missing = fidelity(
        [{"proxy_acc": None, "final_acc": 80.0, "flops": 1, "params": 1}] + _fid_rows([1, 2, 3], [1, 2, 3])
    )
    assert missing["n"] == 4 and missing["proxy"]["n"] == 3 and missing["flops"]["n"] == 4


def test_verdict_says_whether_the_proxy_beats_size():
    final = [70.0, 75.0, 80.0, 85.0, 90.0, 95.0]
    good = verdict(fidelity(_fid_rows([1, 2, 3, 4, 5, 6], final, flops=[6, 5, 4, 3, 2, 1], params=[2, 1, 4, 3, 6, 5])))
    assert "proxy Kendall 1.00 vs FLOPs -1.00 and params 0.60 (n=6)" in good
    assert "carries information beyond size" in good and "noisy" not in good
    bad = verdict(fidelity(_fid_rows([2, 1, 4, 3, 6, 5], final)))  # size ranks perfectly; the proxy less well
    assert "does not beat ranking by size" in bad and "suspicion" in bad and "n=6" in bad
    worse = verdict(fidelity(_fid_rows([6, 5, 4, 3, 2, 1], final)))
    assert "does not rank the final accuracies at all" in worse
    small = verdict(fidelity(_fid_rows([1, 2, 3, 4], final[:4], flops=[4, 3, 2, 1], params=[4, 3, 2, 1])))
    assert "beyond size" in small and "only 4 models" in small and "noisy" in small
    none = verdict(fidelity(_fid_rows([1, 2], final[:2])))
    assert none.startswith("cannot judge the proxy (n=2)") and "needs 3" in none


# ---- leaderboard and compare, end to end ---------------------------------------------------------


def make_study(url: str, name: str, accs: list[float | None], val_images: int | None = 144) -> None:
    """A finished study as a search leaves it (one ok run per accuracy; None: a pruned run), written
    straight into the store. Without `val_images`, as studies stored before the count was."""
    store = Store(url, create=True)
    config = {"space_name": "plain-vs-residual", "budget_text": "20MFLOPs", "dataset": "digits"}
    config.update({"objective": "accuracy", "trials": len(accs)})
    if val_images is not None:
        config["val_images"] = val_images
    store.add_study(name, config)
    archs = load_space("plain-vs-residual").sample(len(accs), "20MFLOPs", seed=0)
    for trial, acc in enumerate(accs):
        arch = archs[trial % len(archs)]
        store.put_arch(arch, cost(arch))
        store.add_run(
            study=name,
            trial=trial,
            arch_key=arch.key,
            recipe_key="r",
            recipe={"epochs": 1},
            data_key="d",
            status="ok" if acc is not None else "pruned",
            reason="" if acc is not None else "pruned at epoch 1",
            history=[{"epoch": 1, "val_acc": acc or 10.0}],
            epochs=1,
            best_val_acc=acc,
        )
    store.dispose()


def pct(k: int, n: int = 144) -> float:
    return 100 * k / n


@pytest.fixture
def url(tmp_path):
    u = sqlite_url(tmp_path)
    # 138/144, 137/144 (one image less: tied), 133/144 (4 less: tied on 144), 115/144 (not), pruned
    make_study(u, "s", [pct(137), pct(138), pct(133), pct(115), None])
    make_study(u, "old", [pct(137), pct(138), pct(115)], val_images=None)
    return u


def wide(monkeypatch):
    from nas_res.cli import reports

    monkeypatch.setattr(reports.out, "width", 400)  # the table as a wide terminal shows it


def test_leaderboard_rows_carry_intervals_and_ties(url):
    rows = leaderboard(Store(url), "s", include_all=True)
    ranked = [r for r in rows if r["rank"] is not None]
    assert [r["trial"] for r in ranked] == [1, 0, 2, 3]
    assert [r["tied"] for r in ranked] == [True, True, True, False]
    assert all(r["val_images"] == 144 for r in rows)
    for r in ranked:
        assert (r["val_lo"], r["val_hi"]) == pytest.approx(wilson(r["val_acc"], 144))
    pruned = rows[-1]
    assert pruned["rank"] is None and pruned["val_lo"] is None and pruned["tied"] is None
    top = leaderboard(Store(url), "s", top=2)
    assert [r["tied"] for r in top] == [True, True]
    old = leaderboard(Store(url), "old")
    assert all(r["val_images"] is None and r["val_lo"] is None and r["tied"] is None for r in old)
    runs = Store(url).runs("s")
    assert [r["tied"] for r in rank(runs)] == [None] * 4  # callers that know no count: as before
    assert [r["tied"] for r in rank(runs, val_images=144)] == [True, True, True, False]


def test_leaderboard_command_shows_intervals_ties_and_the_weight_of_one_image(url, monkeypatch):
    wide(monkeypatch)
    r = runner.invoke(app, ["leaderboard", "s", "--storage", url])
    assert r.exit_code == 0, r.output
    lo, hi = wilson(pct(138), 144)
    assert f"{pct(138):.2f} [{lo:.1f}, {hi:.1f}]" in r.stdout
    lines = r.stdout.splitlines()
    assert any("best" in line and f"{pct(138):.2f}" in line for line in lines)
    assert sum("│ tied" in line for line in lines) == 2
    flat = " ".join(r.stdout.split())
    assert "tied: statistically tied with the best (95%, 144 validation images)" in flat
    assert "val acc [lo, hi]: 95% Wilson interval" in flat
    assert "one image moves accuracy by 0.69 points" in flat
    r = runner.invoke(app, ["leaderboard", "old", "--storage", url])
    assert r.exit_code == 0 and "intervals and ties unknown" in " ".join(r.stdout.split())
    assert "tied" not in r.stdout.replace("ties unknown", "")


def test_leaderboard_json_and_csv_carry_the_new_fields(url):
    r = runner.invoke(app, ["leaderboard", "s", "--storage", url, "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {"val_images", "val_lo", "val_hi", "tied"} <= set(rows[0]) and rows[0]["tied"] is True
    r = runner.invoke(app, ["leaderboard", "s", "--storage", url, "--csv"])
    assert r.exit_code == 0 and {"val_images", "val_lo", "val_hi", "tied"} <= set(r.stdout.splitlines()[0].split(","))


def test_a_corrupt_validation_count_is_one_error_line(tmp_path):
    u = sqlite_url(tmp_path)
    make_study(u, "bad", [90.0], val_images=0)
    r = runner.invoke(app, ["leaderboard", "bad", "--storage", u])
    text = r.stdout + r.stderr
    assert r.exit_code == 2 and "Traceback" not in text and text.count("error:") == 1 and "val_images=0" in text


def test_compare_gives_intervals_for_differences(url):
    make_study(url, "better", [pct(k, 1000) for k in range(990, 1000)], val_images=1000)
    make_study(url, "copy", [pct(137), pct(138), pct(133), pct(115)])
    boards = {name: leaderboard(Store(url), name) for name in ("s", "better", "copy")}
    first, better, copy = compare(boards)
    assert first["val_images"] == 144 and better["val_images"] == 1000
    assert all(first[k] is None for k in ("diff_best", "diff_best_lo", "diff_median_hi"))
    assert better["diff_best"] == pytest.approx(99.9 - pct(138))
    assert better["diff_median"] == pytest.approx(99.45 - pct(135))  # medians of 10 and of 4
    assert 0 < better["diff_best_lo"] < better["diff_best"] < better["diff_best_hi"]
    assert 0 < better["diff_median_lo"] < better["diff_median"] < better["diff_median_hi"]
    assert copy["diff_best"] == 0 and copy["diff_best_lo"] <= 0 <= copy["diff_best_hi"]
    assert copy["diff_median_lo"] <= 0 <= copy["diff_median_hi"]
    assert compare(boards) == [first, better, copy]  # deterministic


def test_compare_command_shows_differences_with_intervals(url, monkeypatch):
    wide(monkeypatch)
    make_study(url, "copy", [pct(137), pct(138), pct(133), pct(115)])
    r = runner.invoke(app, ["compare", "s", "copy", "old", "--storage", url])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.stdout.split())
    assert "+0.00 [-" in flat  # a copy: no difference, and an interval around it
    assert "an interval containing 0 means no detectable difference" in flat
    assert "difference to s in points" in flat
    assert "no validation image count stored for old" in flat
    r = runner.invoke(app, ["compare", "s", "copy", "--storage", url, "--json"])
    assert r.exit_code == 0, r.output
    stats = json.loads(r.stdout)["studies"]
    assert stats[0]["diff_best"] is None and math.isclose(stats[1]["diff_best"], 0.0)
    assert stats[1]["diff_median_lo"] <= 0 <= stats[1]["diff_median_hi"]


def test_compare_page_shows_the_differences(url, tmp_path):
    make_study(url, "copy", [pct(137), pct(138), pct(133), pct(115)])
    page = tmp_path / "c.html"
    r = runner.invoke(app, ["compare", "s", "copy", "--storage", url, "--plot", str(page)])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert "+0.00 [-" in text and "no detectable difference" in text and "statistically tied" in text
