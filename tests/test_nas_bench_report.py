"""bench/nas_bench_report.py: the published verdict of the NAS benchmark is computed from study rows by
these functions, so they are checked on hand-made rows against scipy's exact binomial test (McNemar)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import nas_bench
import nas_bench_report as report

N_TEST = 1000


def bits(right: np.ndarray) -> bytes:
    return np.packbits(right.astype(bool)).tobytes()


def run(trial, arch, val, test=None, seed=0, right=None, flops=10_000_000, epochs=3, status="ok"):
    return SimpleNamespace(
        trial=trial,
        arch_key=arch,
        arch={"name": arch},
        summary=f"net {arch}",
        flops=flops,
        params=1000,
        best_val_acc=val,
        test_acc=test,
        recipe={"seed": seed},
        status=SimpleNamespace(ranks=status in ("ok", "pruned"), value=status),
        epochs=epochs,
        reused=False,
        val_correct=None,
        test_correct=None if right is None else bits(right),
    )


def test_the_winner_is_chosen_by_final_validation_not_by_test():
    runs = [
        run(0, "a", 91.0, 95.0, seed=0),
        run(1, "a", 91.2, 95.0, seed=1),
        run(2, "b", 92.0, 90.0, seed=0),
        run(3, "b", 92.0, 90.5, seed=1),
    ]
    w = report._winner(runs)
    assert w["arch_key"] == "b"
    assert w["test_by_seed"] == {0: 90.0, 1: 90.5}
    assert w["test_mean"] == pytest.approx(90.25)
    assert w["test_sd"] == pytest.approx(np.std([90.0, 90.5], ddof=1))


def test_a_partial_final_phase_names_no_winner():
    """Of a top 2 at two training seeds, three runs done: the fourth could change the winner, so none is named."""
    runs = [run(0, "a", 93.0, 92.8, seed=0), run(1, "a", 93.1, 92.9, seed=1), run(2, "b", 92.0, 92.0, seed=0)]
    assert report._winner(runs, nets=2, seeds=2) is None
    assert report._winner(runs[:2], nets=2, seeds=2) is None
    assert report._winner(runs + [run(3, "b", 92.2, 92.1, seed=1)], nets=2, seeds=2)["arch_key"] == "a"


def test_paired_test_pools_discordant_counts_over_training_seeds():
    rng = np.random.default_rng(0)
    a = {s: rng.random(N_TEST) < 0.93 for s in (0, 1)}
    b = {s: rng.random(N_TEST) < 0.91 for s in (0, 1)}
    winner = report._winner([run(s, "w", 90.0, a[s].mean() * 100, seed=s, right=a[s]) for s in (0, 1)])
    base = report._winner([run(s, "r", 90.0, b[s].mean() * 100, seed=s, right=b[s]) for s in (0, 1)])
    t = report._paired_test(winner, base)
    only_a = sum(int((a[s] & ~b[s]).sum()) for s in (0, 1))
    only_b = sum(int((~a[s] & b[s]).sum()) for s in (0, 1))
    assert (t["b"], t["c"], t["seeds"]) == (only_a, only_b, [0, 1])
    assert t["p"] == pytest.approx(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def test_a_seed_without_a_per_image_record_is_left_out_of_the_paired_test():
    right = np.ones(N_TEST, bool)
    winner = report._winner([run(0, "w", 90.0, 99.0, seed=0, right=right), run(1, "w", 90.0, 99.0, seed=1)])
    base = report._winner([run(0, "r", 90.0, 98.0, seed=0, right=right), run(1, "r", 90.0, 98.0, seed=1)])
    assert report._paired_test(winner, base)["seeds"] == [0]


class Clock:
    """nas_bench's seconds per phase, all zero: the verdict does not depend on them."""

    def __init__(self):
        self.data: dict = {}

    def get(self, key):
        return 0.0


def _verdict(tests: dict[str, dict[int, float]], base_test: float) -> dict:
    """summarise() over seeds 0-2 where each method's one re-trained net got `tests[method][seed]`."""
    studies = {("baseline.db", "baseline.final"): [run(t, "base", 90.0, base_test, seed=t) for t in (0, 1)]}
    for m, by_seed in tests.items():
        for s, acc in by_seed.items():
            search = [run(i, f"{m}{s}-{i}", 70.0 + i, epochs=3) for i in range(40)]
            final = [run(t, f"{m}{s}-39", 91.0, acc, seed=t) for t in (0, 1)]
            studies[(f"s{s}-{m}.db", m)] = search
            studies[(f"s{s}-{m}.db", f"{m}.final")] = final

    def runs_of(storage: str, study: str) -> list:
        return studies.get((Path(storage.removeprefix("sqlite:///")).name, study), [])

    out = report.summarise(ARGS, Path("/nowhere"), Clock(), [0, 1, 2], list(tests), runs_of, nas_bench.anytime)
    assert out["partial"] is False
    return out["final"]


ARGS = SimpleNamespace(
    protocol=1,
    budget=31_112_896,
    proxy_images=2000,
    proxy_epochs=3,
    cap=240_000,
    scale=1.0,
    final_nets=1,
    final_seeds=2,
)


def test_target_met_needs_two_of_three_seeds_against_both_resnet20_and_random():
    met = _verdict({"resnas": {0: 93.5, 1: 93.6, 2: 92.0}, "random": {0: 93.0, 1: 93.1, 2: 93.4}}, 93.3)
    assert met["resnas"]["seeds_beating_resnet20"] == 2
    assert met["resnas"]["p_beats_resnet20"] == pytest.approx(4 / 6)
    assert met["resnas_vs_random"]["seeds_won"] == 2
    assert met["target_met"] is True
    missed = _verdict({"resnas": {0: 93.5, 1: 93.6, 2: 92.0}, "random": {0: 93.7, 1: 93.1, 2: 93.4}}, 93.3)
    assert missed["resnas_vs_random"]["seeds_won"] == 1
    assert missed["target_met"] is False
    below = _verdict({"resnas": {0: 93.5, 1: 93.0, 2: 92.0}, "random": {0: 90.0, 1: 90.0, 2: 90.0}}, 93.3)
    assert below["resnas"]["seeds_beating_resnet20"] == 1
    assert below["target_met"] is False


def test_proxy_fidelity_pools_every_retrained_net_and_counts_top2_pairs(tmp_path):
    """Proxy accuracy against final test accuracy over every re-trained net: Kendall as scipy computes it,
    and per study whether the proxy's first of its top 2 was the better one fully trained."""
    import nas_bench_fidelity as fid

    proxy = {"a": 76.0, "b": 75.0, "c": 72.0, "d": 70.0, "base": 74.0}
    final = {"a": 92.7, "b": 93.4, "c": 93.3, "d": 92.2, "base": 93.3}  # pair (a, b) misordered, (c, d) right
    studies = {("baseline.db", "baseline"): [run(0, "base", proxy["base"])]}
    studies[("baseline.db", "baseline.final")] = [run(t, "base", 93.6, final["base"], seed=t) for t in (0, 1)]
    for method, pair in (("resnas", "ab"), ("random", "cd")):
        studies[(f"s0-{method}.db", method)] = [run(i, k, proxy[k]) for i, k in enumerate(pair)]
        finals = [run(2 * i + t, k, 93.0, final[k] + t / 10, seed=t) for i, k in enumerate(pair) for t in (0, 1)]
        studies[(f"s0-{method}.db", f"{method}.final")] = finals

    def runs_of(storage: str, study: str) -> list:
        return studies.get((Path(storage.removeprefix("sqlite:///")).name, study), [])

    points = fid.retrained(Path("/nowhere"), [0], ["resnas", "random"], runs_of)
    assert sorted(p["arch_key"] for p in points) == ["a", "b", "base", "c", "d"]
    by = {p["arch_key"]: p for p in points}
    assert by["a"]["final_test"] == pytest.approx(92.75) and by["base"]["proxy_val"] == 74.0
    out = fid.proxy_fidelity(points)
    keys = sorted(by)
    tau = stats.kendalltau([proxy[k] for k in keys], [by[k]["final_test"] for k in keys])
    assert out["test"]["proxy"]["kendall"] == pytest.approx(tau.statistic)
    assert out["test"]["n"] == 5
    assert (out["top2_pairs"]["right"], out["top2_pairs"]["wrong"]) == (1, 1)
    gaps = {s["method"]: s["test_gap"] for s in out["top2_pairs"]["studies"]}
    assert gaps == {"resnas": pytest.approx(-0.7), "random": pytest.approx(1.1)}
    png = fid.plot_fidelity(points, out, tmp_path / "fidelity.png", True, "3 epochs on 2,000 images")
    assert png.stat().st_size > 10_000


def test_proxy_fidelity_ranks_each_proxy_against_the_final_test_accuracy(tmp_path):
    """bench/proxy_fidelity.py: the ground truth is each net re-trained with both seeds and tested, once;
    each proxy's Kendall is scipy's on (proxy accuracy, final test mean); a proxy missing nets is partial."""
    import proxy_fidelity as pf

    final = {"a": 92.7, "b": 93.4, "c": 93.3, "d": 92.2}
    studies = {}
    for method, pair in (("resnas", "ab"), ("random", "cd")):
        studies[(f"s0-{method}.db", method)] = [run(i, k, 70.0 + i) for i, k in enumerate(pair)]
        finals = [run(2 * i + t, k, 93.0, final[k], seed=t) for i, k in enumerate(pair) for t in (0, 1)]
        studies[(f"s0-{method}.db", f"{method}.final")] = finals
    studies[("s1-resnas.db", "resnas")] = [run(0, "a", 75.0)]  # re-trained again at another seed: counts once
    studies[("s1-resnas.db", "resnas.final")] = [run(t, "a", 93.0, final["a"], seed=t) for t in (0, 1)]
    studies[("s1-random.db", "random")] = [run(0, "e", 75.0)]  # one training seed only: no ground truth
    studies[("s1-random.db", "random.final")] = [run(0, "e", 93.0, 99.0, seed=0)]
    proxy = {"2k-3ep": {"a": 80.0, "b": 79.0, "c": 78.0, "d": 77.0}, "10k-2ep": {"a": 85.0, "b": 88.0, "c": 87.0}}
    for name, accs in proxy.items():
        studies[("proxies.db", f"proxy-{name}")] = [run(i, k, acc) for i, (k, acc) in enumerate(accs.items())]

    def runs_of(storage: str, study: str) -> list:
        return studies.get((Path(storage.removeprefix("sqlite:///")).name, study), [])

    nets = pf.ground_truth(Path("/nowhere"), runs_of)
    assert sorted(n["arch_key"] for n in nets) == ["a", "b", "c", "d"]
    out = pf.measure(nets, Path("/nowhere"), Clock(), runs_of)
    for name, accs in proxy.items():
        keys = sorted(accs)
        tau = stats.kendalltau([accs[k] for k in keys], [final[k] for k in keys]).statistic
        assert out[name]["test"]["proxy"]["kendall"] == pytest.approx(tau)
        assert out[name]["nets_trained"] == len(accs)
    assert out["5k-5ep"]["nets_trained"] == 0 and out["5k-5ep"]["test"]["proxy"]["kendall"] is None
    assert out["55k-1ep"]["images_per_net"] == 55_000 and out["10k-2ep"]["images_per_net"] == 20_000
    figures = {"proxies": out, "partial": True}
    assert pf.plot(figures, tmp_path / "proxy.png").stat().st_size > 10_000


def test_each_protocol_sets_its_proxy_compute_methods_and_files():
    """Protocol 1 is what its figures were measured under; protocol 2 (declared before its runs) differs only in
    its proxy (5,000 x 5, resnas search's CPU default), two methods more, and its own work folder and results."""
    one = nas_bench.settings([])
    assert (one.proxy_images, one.proxy_epochs, one.cap) == (2000, 3, 240_000)
    assert one.methods == ["resnas", "random", "random-asha", "resnas-no-ref", "old-default"]
    assert (one.work, one.name, one.budget) == ("/work/nas-bench", "nas-bench", 31_112_896)
    two = nas_bench.settings(["--protocol", "2"])
    assert (two.proxy_images, two.proxy_epochs, two.cap) == (5000, 5, 1_000_000)
    assert two.methods[:4] == ["resnas", "random", "random-asha-ref", "hyperband-ref"] and len(two.methods) == 7
    assert (two.work, two.name, two.budget) == ("/work/nas-bench-2", "nas-bench-2", 31_112_896)
    from nas_res.search import defaults

    assert two.proxy_images == defaults.PROXY_IMAGES  # the product's own CPU proxy
    assert nas_bench.METHODS["hyperband-ref"] == {"sampler": "tpe", "pruner": "hyperband", "reference": True}
    picked = nas_bench.settings(["--protocol", "2", "--methods", "random,resnas", "--seeds", "1", "--scale", "0.5"])
    assert (picked.methods, picked.seeds, picked.proxy_images) == (["random", "resnas"], [1], 2500)


def test_a_method_outside_the_protocol_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as e:
        nas_bench.settings(["--methods", "resnas,hyperband-ref"])
    assert e.value.code == 2
    assert "unknown method(s) ['hyperband-ref'] in protocol 1" in capsys.readouterr().err
