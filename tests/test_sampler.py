"""What a search trains next: FeasibleStart's start-up, the scheduler, the zoo references queued first."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from nas_res.cli.main import app
from servers import sqlite_url

from nas_res import ResnasError, zoo
from nas_res.arch.budget import Budget
from nas_res.arch.cost import cost
from nas_res.results import Store
from nas_res.search import Coordinator, plan
from nas_res.search import references as refs_module
from nas_res.search.config import SearchConfig
from nas_res.search.latency_start import MIN_FIT, LatencyFit
from nas_res.search.sampler import (
    FeasibleStart,
    describe,
    make_pruner,
    make_sampler,
    rungs,
    startup_trials,
)
from nas_res.search.study import REFERENCE
from nas_res.space.design_space import load_space
from nas_res.training.recipe import PRESETS

SHAPE = {"in_channels": 1, "classes": 10}  # the digits' shape: what a search prices and builds with
BUDGET = "31112896"  # resnet20_cifar's FLOPs at 28x28: it fits, resnet32_cifar does not
REFERENCES = ("resnet20_cifar", "mnist_resnet")  # the zoo nets small-resnext expresses under BUDGET

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def space():
    return load_space("small-resnext")


@pytest.fixture(scope="module")
def config(space):
    return SearchConfig(study="t", space=space, budget=Budget.parse(BUDGET))


class Model(optuna.samplers.RandomSampler):
    """A stand-in for TPE that counts how often it is asked for a suggestion."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.calls = 0

    def sample_relative(self, study, trial, search_space):
        self.calls += 1
        return super().sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.calls += 1
        return super().sample_independent(study, trial, param_name, param_distribution)


def _study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.create_study(sampler=sampler, pruner=optuna.pruners.SuccessiveHalvingPruner(), direction="maximize")


def _ask(study: optuna.Study, space):
    """Ask a trial and build its net as the coordinator does, recording the net's key on the trial."""
    trial = study.ask()
    arch = space.suggest(trial).replace(**SHAPE)
    trial.set_user_attr("arch_key", arch.key)
    return trial, arch


def _fits(budget: Budget, arch) -> bool:
    return budget.excess(cost(arch)) <= 0


# ---- start-up size ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trials,startup", [(1, 3), (4, 3), (15, 3), (16, 3), (20, 4), (34, 6), (50, 10), (55, 10), (1000, 10)]
)
def test_startup_is_a_fifth_of_the_trials_clamped_to_3_to_10(trials, startup):
    assert startup_trials(trials) == startup


# ---- FeasibleStart ------------------------------------------------------------------------------------


def test_startup_draws_fit_the_budget_and_never_repeat_a_tried_net(space, config):
    model = Model()
    study = _study(FeasibleStart(model, config, SHAPE, startup=10, seed=0))
    keys = []
    for _ in range(5):
        trial, arch = _ask(study, space)
        assert _fits(config.budget, arch), cost(arch)
        keys.append(arch.key)
        study.tell(trial, 0.5)
    # A resumed search makes its sampler again with the same seed: the same draws, were tried nets not skipped
    study.sampler = FeasibleStart(Model(), config, SHAPE, startup=10, seed=0)
    for _ in range(5):
        trial, arch = _ask(study, space)
        assert _fits(config.budget, arch), cost(arch)
        keys.append(arch.key)
        study.tell(trial, 0.5)
    assert len(set(keys)) == len(keys) == 10
    assert model.calls == 0  # all ten in start-up


def test_random_search_draws_every_feasible_net_once_then_falls_back(tmp_path):
    """plain-vs-residual has 81 nets, 24 under 20 MFLOPs: 24 draws are exactly those 24, the model never asked."""
    small = load_space("plain-vs-residual")
    budget = Budget.parse("20MFLOPs")
    feasible = {a.replace(**SHAPE).key for a in small.enumerate() if _fits(budget, a.replace(**SHAPE))}
    assert len(feasible) == 24
    sampler = FeasibleStart(None, SearchConfig(study="r", space=small, budget=budget), SHAPE, startup=3, seed=1)
    assert sampler.model is None
    study = _study(sampler)
    drawn = []
    for _ in range(24):
        trial, arch = _ask(study, small)
        drawn.append(arch.key)
        study.tell(trial, 0.5)
    assert sorted(drawn) == sorted(feasible)  # each once, none over the budget
    _ask(study, small)  # none left: a plain random suggestion (the coordinator prices it and tells it so)


def test_what_trained_nothing_or_was_queued_does_not_count_toward_startup(space, config):
    model = Model()
    study = _study(FeasibleStart(model, config, SHAPE, startup=3, seed=0))
    for status in ("over_budget", "repeat", "over_budget"):  # suggestions that trained nothing
        trial, _ = _ask(study, space)
        trial.set_user_attr("status", status)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    picked, _ = refs_module.pick(space, config.budget, SHAPE, None)
    for ref in picked:  # reference nets, queued with their parameters
        study.enqueue_trial(ref.params, user_attrs={REFERENCE: ref.name})
    for ref in picked:
        trial, arch = _ask(study, space)
        assert trial.params == ref.params and arch.key == ref.arch_key  # exactly the queued net
        study.tell(trial, 0.9)
    failed, _ = _ask(study, space)
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    tried = {t.user_attrs["arch_key"] for t in study.trials}
    for _ in range(2):  # two trained trials
        trial, _ = _ask(study, space)
        study.tell(trial, 0.5)
    assert model.calls == 0
    trial, arch = _ask(study, space)  # 2 trained so far: still start-up, a feasible untried net
    assert model.calls == 0
    assert _fits(config.budget, arch) and arch.key not in tried
    study.tell(trial, 0.5)
    _ask(study, space)  # 3 trained: the model suggests
    assert model.calls > 0


def test_the_model_takes_over_after_startup_trained_trials(space, config):
    model = Model()
    study = _study(FeasibleStart(model, config, SHAPE, startup=3, seed=0))
    for _ in range(3):
        trial, _ = _ask(study, space)
        assert model.calls == 0
        study.tell(trial, 0.5)
    _ask(study, space)
    assert model.calls > 0


def test_random_search_never_asks_a_model_and_stays_feasible(space, config):
    sampler = FeasibleStart(None, config, SHAPE, startup=3, seed=0)
    study = _study(sampler)
    keys = set()
    for _ in range(12):
        trial, arch = _ask(study, space)
        assert _fits(config.budget, arch) and arch.key not in keys
        keys.add(arch.key)
        trial.set_user_attr("status", "ok")
        study.tell(trial, 0.5)
    assert sampler.model is None  # nothing to ask: start-up never ends


def test_queued_params_are_taken_as_they_are(space, config):
    """Parameters a start-up draw would not give (over the budget): the trial gets them all the same."""
    params = space.params_of(zoo.get("resnet56_cifar"))
    assert params is not None
    study = _study(FeasibleStart(Model(), config, SHAPE, startup=3, seed=0))
    study.enqueue_trial(params)
    trial, arch = _ask(study, space)
    assert trial.params == params and not _fits(config.budget, arch)
    assert arch.key == space.suggest(optuna.trial.FixedTrial(params)).replace(**SHAPE).key


# ---- make_sampler, make_pruner, rungs, describe ---------------------------------------------------------


def test_make_sampler_wraps_tpe_random_and_gp_in_feasible_start(config):
    for name, model in (
        ("tpe", optuna.samplers.TPESampler),
        ("gp", optuna.samplers.GPSampler),
        ("random", type(None)),
    ):
        s = make_sampler(_with(config, sampler=name), SHAPE, parallel=False, seed=0)
        assert isinstance(s, FeasibleStart) and isinstance(s.model, model), name
        assert s.startup == (startup_trials(config.trials) if name != "random" else float("inf"))
    raw = make_sampler(_with(config, sampler="optuna-tpe"), SHAPE, parallel=False, seed=0)
    assert isinstance(raw, optuna.samplers.TPESampler) and not isinstance(raw, FeasibleStart)


def _with(config: SearchConfig, **changes) -> SearchConfig:
    return dataclasses.replace(config, **changes)


def test_make_pruner_defaults_to_successive_halving(config):
    assert config.pruner == "asha"
    assert isinstance(make_pruner(config), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(_with(config, pruner="hyperband")), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner(_with(config, pruner="none")), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(_with(config, objective="accuracy+flops")), optuna.pruners.NopPruner)


def test_rungs_are_the_epochs_successive_halving_compares_at():
    assert rungs(1) == []
    assert rungs(3) == [1]
    assert rungs(5) == [1, 3]
    assert rungs(10) == [1, 3, 9]


def test_describe_names_sampler_startup_and_scheduler(config):
    five = _with(config, trials=20, recipe=PRESETS["fast"].replace(epochs=5))
    text = describe(five)
    assert "tpe sampler after 4 random start-up" in text and "asha" in text and "epoch(s) 1, 3" in text
    assert "gp sampler after 4" in describe(_with(five, sampler="gp"))
    assert "random sampler" in describe(_with(five, sampler="random")) and "start-up" not in describe(
        _with(five, sampler="random")
    )
    assert "nothing to compare in 1 epoch" in describe(_with(five, recipe=PRESETS["fast"].replace(epochs=1)))
    assert "hyperband" in describe(_with(five, pruner="hyperband"))
    assert "no pruning" in describe(_with(five, objective="accuracy+flops"))


# ---- references ---------------------------------------------------------------------------------------


def test_parse_names():
    assert refs_module.parse_names(None) is None
    assert refs_module.parse_names("resnet20_cifar, mnist_resnet") == REFERENCES
    assert refs_module.parse_names(list(REFERENCES)) == REFERENCES
    assert refs_module.parse_names("mnist_resnet,mnist_resnet") == ("mnist_resnet",)  # not queued twice
    for odd in (3, 1.5, {"a": 1}):  # a study file's value that is no name
        with pytest.raises(ResnasError, match="--reference"):
            refs_module.parse_names(odd)
    for empty in ("", " , ", []):
        with pytest.raises(ResnasError, match="--reference"):
            refs_module.parse_names(empty)
    with pytest.raises(ResnasError) as e:
        refs_module.parse_names("resnet20_cifar,nosuchnet")
    assert e.value.field == "--reference" and "nosuchnet" in str(e.value) and "mnist_resnet" in str(e.value)


def test_pick_takes_the_zoo_nets_the_space_and_budget_admit(space, config):
    picked, notes = refs_module.pick(space, config.budget, SHAPE, None)
    assert [r.name for r in picked] == list(REFERENCES) and notes == []  # resnet32_cifar and up are over
    for r in picked:
        arch = space.suggest(optuna.trial.FixedTrial(r.params)).replace(**SHAPE)
        assert r.arch_key == arch.key and r.flops == cost(arch).flops and _fits(config.budget, arch)
    bigger = Budget.parse("60MFLOPs")
    assert [r.name for r in refs_module.pick(space, bigger, SHAPE, None)[0]] == [
        "resnet20_cifar",
        "resnet32_cifar",
        "mnist_resnet",
    ]
    colour = {"in_channels": 3, "classes": 100}  # the key is of the net fitted to the data, not the space's
    for r in refs_module.pick(space, bigger, colour, ("resnet20_cifar",))[0]:
        fitted = space.suggest(optuna.trial.FixedTrial(r.params)).replace(**colour)
        assert r.arch_key == fitted.key != fitted.replace(**SHAPE).key and r.flops == cost(fitted).flops


def test_pick_notes_the_named_nets_it_leaves_out(space, config):
    picked, notes = refs_module.pick(space, config.budget, SHAPE, ("resnet18", "resnet56_cifar", "mnist_resnet"))
    assert [r.name for r in picked] == ["mnist_resnet"]
    assert len(notes) == 2
    assert "resnet18" in notes[0] and "not a point of space 'small-resnext'" in notes[0]
    assert "resnet56_cifar" in notes[1] and "over the budget" in notes[1]
    assert refs_module.pick(space, config.budget, SHAPE, ()) == ([], [])


# ---- plan -------------------------------------------------------------------------------------------


def test_plan_defaults_and_reference_option(tmp_path):
    url = sqlite_url(tmp_path)
    base = {"space": "small-resnext", "budget": BUDGET, "storage": url, "study": "p"}
    config, existed = plan(base)
    assert not existed and config.pruner == "asha" and config.sampler == "tpe" and config.references is None
    for off in (False, "none", "None", "no"):
        assert plan({**base, "reference": off})[0].references == ()
    assert plan({**base, "reference": "resnet20_cifar,mnist_resnet"})[0].references == REFERENCES
    assert plan({**base, "reference": ["mnist_resnet"]})[0].references == ("mnist_resnet",)
    with pytest.raises(ResnasError, match="--reference.*nosuchnet"):
        plan({**base, "reference": "nosuchnet"})
    study_file = tmp_path / "s.yaml"
    study_file.write_text(f"space: small-resnext\nbudget: '{BUDGET}'\nreference: 3\n")
    with pytest.raises(ResnasError, match=r"s\.yaml.*reference.*zoo names"):  # no TypeError
        plan({"storage": url}, file=study_file)


def test_a_stored_study_keeps_its_pruner(tmp_path):
    url = sqlite_url(tmp_path)
    base = {"space": "small-resnext", "budget": BUDGET, "storage": url, "study": "hb"}
    config, _ = plan({**base, "pruner": "hyperband"})
    Store(url, create=True).add_study("hb", config.pinned())
    resumed, existed = plan({"study": "hb", "storage": url})
    assert existed and resumed.pruner == "hyperband"


# ---- through the CLI ------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(text.split())


def test_a_search_queues_the_references_first(runner, tmp_path):
    url = sqlite_url(tmp_path)
    args = ["search", "--space", "small-resnext", "--budget", BUDGET, "--dataset", "digits", "--epochs", "1"]
    # seed 4: the one start-up draw after the references is a small net (trained in under a second)
    r = runner.invoke(
        app, [*args, "--trials", "3", "--seed", "4", "--train-size", "100", "--storage", url, "--study", "s"]
    )
    err = _squash(r.stderr)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "asha pruning" in err and "after 3 random start-up" in err
    assert "reference nets queued as the first trials: resnet20_cifar" in err and "mnist_resnet" in err
    trials = sorted(optuna.load_study(study_name="s", storage=url).trials, key=lambda t: t.number)
    assert [t.user_attrs.get(REFERENCE) for t in trials[:2]] == list(REFERENCES)
    assert len(trials) >= 3 and all(REFERENCE not in t.user_attrs for t in trials[2:])
    picked, _ = refs_module.pick(load_space("small-resnext"), Budget.parse(BUDGET), SHAPE, None)
    assert [t.user_attrs["arch_key"] for t in trials[:2]] == [p.arch_key for p in picked]
    assert Store(url).study_config("s")["references"] == {p.name: p.arch_key for p in picked}


def test_no_reference_queues_none(runner, tmp_path, monkeypatch):
    """Up to the start of the search loop (no training): no trial queued, no note."""
    from nas_res.cli import search as search_cli

    seen = []
    monkeypatch.setattr(search_cli, "run_live", lambda c: seen.append(c) or c.state)
    url = sqlite_url(tmp_path)
    args = ["search", "--space", "small-resnext", "--budget", BUDGET, "--epochs", "1", "--trials", "4"]
    r = runner.invoke(app, [*args, "--no-reference", "--storage", url, "--study", "n"])
    assert seen and seen[0].config.references == ()
    assert "reference nets queued" not in r.stderr and "no reference" not in r.stderr and "Traceback" not in r.stderr
    assert optuna.load_study(study_name="n", storage=url).trials == []
    assert not Store(url).study_config("n").get("references")
    # the same up to the loop with references: both queued
    r = runner.invoke(app, [*args, "--storage", url, "--study", "y"])
    assert [t.user_attrs[REFERENCE] for t in optuna.load_study(study_name="y", storage=url).trials] == list(REFERENCES)


def test_an_unknown_reference_is_one_error_line(runner, tmp_path):
    url = sqlite_url(tmp_path)
    r = runner.invoke(
        app, ["search", "--space", "small-resnext", "--budget", BUDGET, "--reference", "nosuchnet", "--storage", url]
    )
    text = r.stdout + r.stderr
    assert r.exit_code != 0 and "Traceback" not in text
    assert text.count("error:") == 1 and "--reference" in text and "nosuchnet" in text and "resnet20_cifar" in text
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_coordinator_queues_references_only_for_a_new_study(tmp_path):
    url = sqlite_url(tmp_path)
    config, _ = plan({"space": "small-resnext", "budget": BUDGET, "storage": url, "study": "c", "epochs": 1})
    Coordinator(config).store.dispose()
    again, existed = plan({"study": "c", "storage": url})
    assert existed
    Coordinator(again).store.dispose()  # resumed: nothing queued twice
    names = [t.user_attrs[REFERENCE] for t in optuna.load_study(study_name="c", storage=url).trials]
    assert names == list(REFERENCES)


class _Same(optuna.samplers.BaseSampler):
    """Suggests the same network every time: what a converged TPE does."""

    def __init__(self, params: dict):
        self.params = params

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.params[param_name]


class _Always(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_a_pruned_net_suggested_again_is_a_repeat_not_a_new_training(tmp_path, monkeypatch):
    """It would be stopped at the same rung: told again with what it reached, counted toward nothing."""
    import nas_res
    from nas_res.search import coordinator, trials

    space = load_space("plain-vs-residual")
    params = space.params_of(zoo.get("plain20_cifar"))
    assert params is not None
    monkeypatch.setattr(coordinator, "make_sampler", lambda *a, **k: _Same(params))
    monkeypatch.setattr(coordinator, "make_pruner", lambda config: _Always())
    monkeypatch.setattr(trials, "MAX_ASKS", 4)
    storage = sqlite_url(tmp_path / "s.db")
    state = nas_res.run_search(
        space="plain-vs-residual",
        dataset="digits",
        budget="100MFLOPs",
        trials=2,
        epochs=2,
        storage=storage,
        study="again",
        checkpoints=str(tmp_path / "ckpt"),
        reference=False,
    )
    assert "suggestions in a row" in (state.stopped_by or "")
    store = Store(storage)
    runs = store.runs("again")
    store.dispose()
    assert [(r.trial, r.status.value, r.epochs) for r in runs] == [(0, "pruned", 1)]
    study = optuna.load_study(study_name="again", storage=storage)
    first, *repeats = study.get_trials(deepcopy=False)
    assert len(repeats) == 4 and state.counts["repeats"] == 4
    for t in repeats:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert (t.user_attrs["status"], t.user_attrs["repeat_of"]) == ("repeat", 0)
        assert t.intermediate_values == first.intermediate_values


# ---- the start-up under a latency limit ----------------------------------------------------------------


def test_a_latency_fit_recovers_an_additive_cost_and_waits_for_enough_nets(space):
    import random

    archs = [space.random_arch(random.Random(i)).replace(**SHAPE) for i in range(12)]
    ms = [0.02 * cost(a).flops / 1e6 + 0.1 * a.depth + 0.5 for a in archs]  # a device's made-up cost
    assert LatencyFit.fit(archs[: MIN_FIT - 1], ms[: MIN_FIT - 1]) is None
    fit = LatencyFit.fit(archs, ms)
    assert fit is not None and fit.weights == pytest.approx((0.02, 0.1, 0.5), rel=1e-6)
    other = space.random_arch(random.Random(99)).replace(**SHAPE)
    assert fit.predict(other) == pytest.approx(0.02 * cost(other).flops / 1e6 + 0.1 * other.depth + 0.5)


def test_under_a_latency_limit_the_startup_draws_what_the_fit_puts_under_it(space, config):
    """A made-up device where a net takes its MFLOPs in ms, the limit 8 ms: once MIN_FIT nets are timed (the
    ones over it as the table's screen refuses them: predicted, never measured), their fit is exact and no
    start-up draw is over the limit; plain uniform draws mostly are."""

    def run(latency: dict | None) -> list[bool]:
        limited = dataclasses.replace(config, latency=latency)
        study = _study(FeasibleStart(None, limited, SHAPE, startup=10, seed=0))
        over = []
        for _ in range(MIN_FIT + 12):
            trial, arch = _ask(study, space)
            ms = cost(arch).flops / 1e6
            trial.set_user_attr("latency", "predicted" if ms > 8 else "measured")
            trial.set_user_attr("latency_ms", ms)
            over.append(ms > 8)
            if ms > 8:
                trial.set_user_attr("status", "over_latency")
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, 0.5)
        return over

    drawn = run({"max_ms": 8.0, "setting": {}, "key": {}})
    assert not any(drawn[MIN_FIT:]), drawn  # every draw after the fit is under the limit
    assert sum(run(None)) >= 9  # uniform over the budget: about 4 in 5 are over 8 MFLOPs
