"""Measured latency: the setting and its words, the median's interval, a net's parts (fvcore the referee of the
decomposition), the cache that times nothing twice, the search's limit and objective, and the refusals.

No test asserts a time: the machines are shared and noisy. Where a search must decide by latency, the
timings are made up (deterministic, from FLOPs) so that the mechanism is what is tested.
"""

from __future__ import annotations

import json
import pickle

import optuna
import pytest
import yaml
from fvcore.nn import FlopCountAnalysis
from nas_res.cli import common
from nas_res.cli.live import nothing_trained
from nas_res.cli.main import app
from servers import sqlite_url
from typer.testing import CliRunner

from nas_res import Arch, ResnasError, cost, export_study, zoo
from nas_res.latency.meter import SCREEN, LatencyLimit, Meter
from nas_res.latency.parts import CALL, module, parts_of
from nas_res.latency.setting import Setting, parse_ms
from nas_res.latency.survey import table_error
from nas_res.latency.timing import fastest, median_interval
from nas_res.results import Store
from nas_res.results.latencies import Timing, cached
from nas_res.search import Coordinator, plan
from nas_res.search.latency_plan import plan_latency
from nas_res.search.state import Fastest, SearchState


def test_a_setting_reads_back_as_it_is_written_and_refuses_by_name():
    s = Setting.parse("cuda:1,batch=64,precision=bf16,threads=1,mode=train")
    assert (s.device, s.batch, s.precision, s.threads, s.mode) == ("cuda:1", 64, "bf16", 1, "train")
    assert Setting.parse(s.describe()) == s and Setting.from_dict(s.to_dict()) == s
    assert Setting().threads >= 1  # every core this process may use
    for text, field in [
        ("gpu", "--latency-on"),
        ("cpu,batch=0", "--latency-on"),
        ("cpu,precision=fp16", "--latency-on"),  # a GPU precision
        ("cpu,speed=9", "--latency-on"),
        ("cpu,batch=2,batch=3", "--latency-on"),
    ]:
        with pytest.raises(ResnasError) as e:
            Setting.parse(text)
        assert e.value.field == field and text in str(e.value)
    with pytest.raises(ResnasError, match="fp16 is a GPU precision"):
        Setting("cpu", precision="fp16")
    assert parse_ms("2.5ms") == 2.5 and parse_ms("800us") == pytest.approx(0.8) and parse_ms("0.1s") == 100
    assert parse_ms("3") == 3.0 and parse_ms(1.5) == 1.5
    for bad in ("fast", "-1ms", "0ms", "2.5 minutes"):
        with pytest.raises(ResnasError, match="--max-latency"):
            parse_ms(bad)


def test_the_medians_interval_is_the_binomial_order_statistics():
    # n = 20: the 6th and 15th smallest cover the median with 95.9% (the textbook table's pair)
    times = [float(x) for x in range(1, 21)]
    median, low, high = median_interval(times)
    assert (median, low, high) == (10.5, 6.0, 15.0)
    median, low, high = median_interval([5.0, 1.0, 3.0])  # too few for 95%: the extremes
    assert (median, low, high) == (3.0, 1.0, 5.0)


def test_the_fastest_process_is_kept_and_the_spread_said():
    slow, fast = ([6.0, 6.5, 7.0, 6.2, 6.4], 2), ([3.0, 2.9, 3.1, 3.3, 3.2], 4)
    t = fastest([slow, fast, slow])
    assert (t.median_ms, t.inner, t.processes, t.repeats) == (3.1, 4, 3, 5)
    assert t.spread == pytest.approx(6.4 / 3.1) and t.low_ms <= 3.1 <= t.high_ms


def test_an_error_raised_in_a_measuring_process_arrives_whole():
    e = pickle.loads(pickle.dumps(ResnasError("no CUDA device", field="--device")))
    assert (e.bare, e.field, str(e)) == ("no CUDA device", "--device", "--device: no CUDA device")


@pytest.mark.parametrize("name", ["resnet20_cifar", "mnist_resnet", "preact_resnet164"])
def test_a_nets_parts_add_up_to_the_net_by_fvcore(name):
    """The table times each part on its own input; fvcore, counting each part module's FLOPs, must find
    exactly the whole net's count, so the parts cover the net, no more and no less."""
    import torch

    arch = zoo.get(name)
    total = 0
    for part, n in parts_of(arch):
        m = module(part.what, part.build).eval()
        flops = FlopCountAnalysis(m, torch.zeros(1, *part.shape))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        total += n * flops.total()
    assert total == cost(arch).flops
    units = [n for p, n in parts_of(arch) if p.what == "unit"]
    assert sum(units) == sum(s.depth for s in arch.stages)


def test_resnext_parts_key_every_shape_and_share_what_repeats():
    r50, x50 = zoo.get("resnet50"), zoo.get("resnext50_32x4d")
    parts = parts_of(r50)
    assert [p.what for p, _ in parts].count("unit") == 8 and [n for _, n in parts] == [1, 1, 2, 1, 3, 1, 5, 1, 2, 1]
    assert {p.key for p, _ in parts}.isdisjoint(p.key for p, _ in parts_of(x50)[1:-1])  # other units
    assert parts[0][0].key == parts_of(x50)[0][0].key  # the same stem, timed once for both
    with pytest.raises(ResnasError, match="classifiers"):
        parts_of(Arch.from_dict({**zoo.get("mnist_resnet").to_dict(), "task": "vae", "classes": 1}))


def test_the_meter_times_a_net_once_and_keys_by_setting(tmp_path):
    store = Store(sqlite_url(tmp_path), create=True)
    nets = [zoo.get("mnist_resnet"), zoo.get("mnist_plain")]
    meter = Meter(Setting("cpu", threads=1), store, repeats=3, warmup=1, processes=2)
    first = meter.nets(nets)
    assert meter.measured == 2 and set(first) == {a.key for a in nets}
    for t in first.values():
        assert t.repeats == 3 and t.inner >= 1 and 0 < t.low_ms <= t.median_ms <= t.high_ms
        assert t.processes == 2 and t.spread >= 1.0
    again = Meter(Setting("cpu", threads=1), store, repeats=3, warmup=1, processes=1)
    assert again.nets(nets) == first and again.measured == 0  # read back, not timed
    assert meter.key["device"] and meter.key["torch"] and meter.key["threads"] == 1
    other = Meter(Setting("cpu", batch=2, threads=1), store, repeats=3, warmup=1, processes=1)
    assert cached(store, first, other.key) == {}  # another batch: another key
    assert again.known(nets[0]) == first[nets[0].key] and other.known(nets[0]) is None  # read, never timed
    assert again.known(zoo.get("mnist_resnet").replace(stem_width=8)) is None and again.measured == 0
    predicted = again.predict(nets)
    table = cached(store, [CALL.key, *(p.key for a in nets for p, _ in parts_of(a))], again.key)
    call = table[CALL.key].median_ms  # the harness's own cost of a call: paid once by a net
    for a in nets:
        expected = call + sum(max(0, table[p.key].median_ms - call) * n for p, n in parts_of(a))
        assert predicted[a.key] == pytest.approx(expected) and call < predicted[a.key]


def test_table_error_is_spearman_and_mean_absolute_percentage():
    rows = [{"latency_ms": m, "predicted_ms": p} for m, p in [(1.0, 1.5), (2.0, 2.0), (4.0, 3.0), (8.0, None)]]
    fit = table_error(rows)
    assert fit is not None and fit["nets"] == 3 and fit["spearman"] == pytest.approx(1.0)
    assert fit["mape"] == pytest.approx(100 * (0.5 + 0 + 0.25) / 3)
    assert table_error(rows[:2]) is None


class _Meter:
    """Made-up timings: a net takes its MFLOPs in ms; the table predicts `scale` x that."""

    def __init__(self, scale: float, measured: tuple = ()):
        self.scale, self.timed, self.measured = scale, [], set(measured)

    def known(self, arch):
        return self.nets([arch])[arch.key] if arch.key in self.measured else None

    def predict(self, archs):
        return {a.key: self.scale * cost(a).flops / 1e6 for a in archs}

    def nets(self, archs):
        archs = list(archs)
        self.timed += [a.key for a in archs]
        return {a.key: Timing(cost(a).flops / 1e6, 0, 0, 3, 1) for a in archs}


def test_the_limit_screens_with_the_table_and_decides_by_measurement():
    arch = zoo.get("mnist_resnet")  # 20.4 MFLOPs: 20.4 ms here
    far = _Meter(scale=SCREEN + 1)
    verdict = LatencyLimit(far, 20.0).judge(arch)  # type: ignore[arg-type]
    assert verdict.over and verdict.how == "predicted" and not far.timed  # refused unmeasured
    near = _Meter(scale=1.2)
    verdict = LatencyLimit(near, 25.0).judge(arch)  # type: ignore[arg-type]
    assert not verdict.over and verdict.how == "measured" and near.timed == [arch.key]
    assert verdict.excess == pytest.approx(cost(arch).flops / 1e6 / 25 - 1)
    measured = _Meter(scale=SCREEN + 1, measured=[arch.key])  # the table far over, the measurement under
    verdict = LatencyLimit(measured, 25.0).judge(arch)  # type: ignore[arg-type]
    assert not verdict.over and verdict.how == "measured"  # a measurement outranks the table
    assert LatencyLimit(near, None).judge(arch).excess < 0  # the objective alone: measured, never over  # type: ignore[arg-type]
    with pytest.raises(ResnasError, match="positive"):
        LatencyLimit(near, 0.0)  # type: ignore[arg-type]


def test_a_study_pins_its_latency_and_refuses_another_device():
    planned = plan_latency({"max_latency": "2ms", "latency_on": "cpu,threads=1"}, None, "accuracy", "s")
    assert planned is not None and planned["max_ms"] == 2.0 and planned["setting"]["threads"] == 1
    assert plan_latency({}, {"latency": planned}, "accuracy", "s") == planned  # resumed as stored
    elsewhere = {**planned, "key": {**planned["key"], "device": "Another CPU 9000"}}
    with pytest.raises(ResnasError) as e:
        plan_latency({}, {"latency": elsewhere}, "accuracy", "s")
    assert "Another CPU 9000" in str(e.value) and planned["key"]["device"] in str(e.value)
    with pytest.raises(ResnasError, match="keeps its limit"):
        plan_latency({"max_latency": "3ms"}, {"latency": planned}, "accuracy", "s")
    with pytest.raises(ResnasError, match="without a latency"):
        plan_latency({"max_latency": "3ms"}, {"objective": "accuracy"}, "accuracy", "s")
    with pytest.raises(ResnasError, match="--max-latency or --objective accuracy"):
        plan_latency({"latency_on": "cpu"}, None, "accuracy", "s")
    assert plan_latency({}, None, "accuracy+latency", "s")["max_ms"] is None  # type: ignore[index]


def _fake_measure(jobs, setting, repeats, warmup, processes):
    """A net takes its MFLOPs in ms (so the limit's verdicts are known in advance); a part, nothing."""
    return [
        Timing(cost(Arch.from_dict(b["arch"])).flops / 1e6 if what == "net" else 0.0, 0.0, 0.0, repeats, 1)
        for what, b, _ in jobs
    ]


def _options(tmp_path, study: str, **extra) -> dict:
    """A one-epoch search of plain-vs-residual on digits under 20 MFLOPs."""
    where = {"storage": sqlite_url(tmp_path), "checkpoints": str(tmp_path / "ckpt")}
    return {"space": "plain-vs-residual", "budget": "20MFLOPs", "epochs": 1, "study": study, **where, **extra}


def test_a_search_under_a_latency_limit_never_trains_a_net_over_it(tmp_path, monkeypatch):
    monkeypatch.setattr("nas_res.latency.meter.measure", _fake_measure)
    options = _options(tmp_path, "fast", trials=4, max_latency="6ms", latency_on="cpu,threads=1")
    config, _ = plan(options)
    state = Coordinator(config).run()
    assert state.counted == 4 and state.counts["over_latency"] > 0
    trials = optuna.load_study(study_name="fast", storage=sqlite_url(tmp_path)).get_trials()
    for t in trials:
        if t.user_attrs.get("status") == "over_latency":
            assert t.user_attrs["latency_ms"] > 6 and t.constraints["budget"] > 0 and not t.intermediate_values
    judged = [t.user_attrs for t in trials if "latency_ms" in t.user_attrs]
    quickest = min(judged, key=lambda a: a["latency_ms"])
    assert state.fastest == Fastest(quickest["latency_ms"], quickest["latency"], quickest["summary"])
    assert state.to_dict()["fastest_judged"]["ms"] == quickest["latency_ms"]
    store = Store(sqlite_url(tmp_path))
    runs = store.runs("fast")
    assert runs and all(r.flops / 1e6 <= 6 for r in runs)  # never trained over the limit
    result = CliRunner().invoke(app, ["leaderboard", "fast", "--storage", sqlite_url(tmp_path), "--json"])
    rows = json.loads(result.stdout)
    assert all(r["latency_ms"] == pytest.approx(r["flops"] / 1e6) for r in rows)
    listed = CliRunner().invoke(app, ["studies", "--storage", sqlite_url(tmp_path), "--json"])
    (study,) = json.loads(listed.stdout)
    assert study["max_latency_ms"] == 6.0 and study["latency_device"]
    monkeypatch.setattr(common.out, "width", 400)  # the table as a wide terminal shows it
    shown = CliRunner().invoke(app, ["studies", "--storage", sqlite_url(tmp_path)])
    assert "<= 6 ms" in shown.stdout, shown.stdout
    options["max_latency"] = "7ms"
    with pytest.raises(ResnasError, match="keeps its limit"):
        plan(options)


def test_a_latency_objective_tells_optuna_the_measured_ms(tmp_path, monkeypatch):
    monkeypatch.setattr("nas_res.latency.meter.measure", _fake_measure)
    config, _ = plan(_options(tmp_path, "front", trials=3, objective="accuracy+latency"))
    Coordinator(config).run()
    done = [t for t in optuna.load_study(study_name="front", storage=sqlite_url(tmp_path)).get_trials() if t.values]
    assert done and all(t.values[1] == pytest.approx(t.user_attrs["flops"] / 1e6) for t in done)
    written = export_study("front", tmp_path / "out", storage=sqlite_url(tmp_path), front=True)
    exported = [yaml.safe_load(p.read_text()) for p in written if p.suffix == ".yaml"]
    assert exported and all(e["cost"]["latency_ms"] == pytest.approx(e["cost"]["flops"] / 1e6) for e in exported)
    assert exported[0]["cost"]["latency_measured_as"]["mode"] == "infer"


def test_resnas_latency_measures_once_then_reads_back(tmp_path):
    storage = sqlite_url(tmp_path)
    args = ["latency", "mnist_resnet", "mnist_plain", "--repeats", "3", "--processes", "1", "--threads", "1"]
    args += ["--storage", storage]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert [r["name"] for r in data["nets"]] == ["mnist_resnet", "mnist_plain"] and data["key"]["threads"] == 1
    again = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "lat.png")])
    assert again.exit_code == 0 and "0 timed now" in again.output and (tmp_path / "lat.png").stat().st_size > 0
    for extra, said in [
        (["--precision", "fp16"], "fp16 is a GPU precision"),
        (["--mode", "train"], "--batch 2 or more"),
        (["--repeats", "2"], "at least 3"),
        (["--device", "tpu"], "cpu, cuda or cuda:N"),
    ]:
        bad = CliRunner().invoke(app, [*args, *extra])
        assert bad.exit_code == 2 and said in bad.output and "Traceback" not in bad.output


def test_a_search_refused_by_its_latency_limit_names_the_fastest_net_judged():
    """What to raise --max-latency to: nothing trained, every net over the limit, the fastest one named."""
    state = SearchState("slow", 3, stopped_by="500 suggestions in a row brought nothing new to train")
    state.counts.update(over_budget=4, over_latency=9)
    state.fastest = Fastest(3.21, "measured", "basic d1-1-1 w16-32-64 sc:A post")
    said = nothing_trained([], state)
    assert "9 suggestion(s) were over the latency limit" in said
    assert "the fastest net judged, basic d1-1-1 w16-32-64 sc:A post, runs in 3.21 ms (measured)" in said
    state.fastest = Fastest(40.0, "predicted", "basic d9-9-9 w64-128-256 sc:B post")
    assert "runs in 40 ms (predicted by the lookup table)" in nothing_trained([], state)
    state.counts["over_latency"] = 0  # no latency limit refused anything: no word of one
    assert "latency" not in nothing_trained([], state)
