"""Multi-fidelity search: RandomForestHyperbandOracle's brackets and forest (cheap functions of the
budget, no Keras model), then AugmentTuner(method="hyperband") with a fake cheap child and one real
tiny search."""

import csv
import gc
import json
import math
import weakref

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine import base_tuner

from conftest import SMALL_SPACE_OPS, make_tuner, tiny_model
from keras_augtune.oracle import RandomForestHyperbandOracle
from keras_augtune.space import PolicySpace, baseline_values
from keras_augtune.trials import EPOCHS, INITIAL_EPOCH, RESUME_FROM

SPACE = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2, ops=["identity", "rotate", "invert", "translate-x",
                                                                     "shear-x", "solarize"])


def planted(values, epochs):
    """Higher with more epochs; rotate at magnitude ~0.6 helps, invert hurts (no noise)."""
    score = 0.5 - 0.4 / epochs
    for name, value in values.items():
        if name.endswith("/op") and value == "rotate":
            magnitude = values[name[: -len("op")] + "magnitude"]
            score += 0.05 * (1 - abs(magnitude - 0.6))
        elif name.endswith("/op") and value == "invert":
            score -= 0.05
    return score


class BudgetTuner(base_tuner.BaseTuner):
    """A tuner whose trial is a function of the values and of the trial's ``tuner/epochs``."""

    def __init__(self, oracle, function=planted, **kwargs):
        super().__init__(oracle=oracle, **kwargs)
        self.function = function
        self.calls = []

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        self.calls.append((values[EPOCHS], values[INITIAL_EPOCH], values.get(RESUME_FROM)))
        return {"score": self.function(values, values[EPOCHS])}


def oracle(max_trials=40, seed=5, **options):
    hp = kt.HyperParameters()
    SPACE.declare(hp)
    options.setdefault("num_initial_points", 5)
    return RandomForestHyperbandOracle(
        objective=kt.Objective("score", "max"), max_epochs=9, max_trials=max_trials, seed=seed,
        hyperparameters=hp, initial_values=[baseline_values(SPACE)], **options)


def search(tmp_path, the_oracle, name="s", overwrite=True):
    tuner = BudgetTuner(the_oracle, directory=str(tmp_path), project_name=name, overwrite=overwrite)
    tuner.oracle.verbose = 0
    tuner.search_space_summary = lambda *a, **k: None
    tuner.search(verbose=0)
    return tuner


def in_order(o):
    return [o.trials[i] for i in sorted(o.trials)]


def values_of(o):
    return [json.dumps(t.hyperparameters.values, sort_keys=True) for t in in_order(o)]


# ----------------------------------------------------------------------------- brackets
def test_baseline_at_full_budget_then_brackets_as_keras_tuner_plans_them(tmp_path):
    o = oracle(max_trials=None, hyperband_iterations=1)
    tuner = search(tmp_path, o)
    trials = in_order(o)
    # trial 0: the baseline, outside the brackets, the full budget from scratch
    first = trials[0].hyperparameters.values
    assert first[EPOCHS] == 9 and first[INITIAL_EPOCH] == 0 and RESUME_FROM not in first
    assert all(first[k] == v for k, v in baseline_values(SPACE).items())
    plan = o.brackets_per_iteration()
    assert plan == [{"trials": [9, 3, 1], "epochs": [1, 3, 9]}, {"trials": [5, 2], "epochs": [3, 9]},
                    {"trials": [3], "epochs": [9]}]
    assert len(trials) == 1 + sum(sum(b["trials"]) for b in plan)  # one iteration, then STOPPED
    assert o.budgets() == {1: 9, 3: 3 + 5, 9: 1 + 1 + 2 + 3}
    by_id = {t.trial_id: t for t in trials}
    for trial in trials[1:]:
        values = trial.hyperparameters.values
        parent = values.get(RESUME_FROM)
        if parent is None:
            assert values[INITIAL_EPOCH] == 0
            continue
        # a continuation: the parent's policy, from the parent's last epoch, among the best of its round
        before = by_id[parent].hyperparameters.values
        assert values[INITIAL_EPOCH] == before[EPOCHS] < values[EPOCHS] == 3 * before[EPOCHS]
        assert {k: v for k, v in values.items() if not k.startswith("tuner/")} == \
               {k: v for k, v in before.items() if not k.startswith("tuner/")}
        peers = [t for t in trials if t.hyperparameters.values.get("tuner/bracket") == before["tuner/bracket"]
                 and t.hyperparameters.values["tuner/round"] == before["tuner/round"]]
        promoted = {t.hyperparameters.values.get(RESUME_FROM) for t in trials} - {None}
        best_not_promoted = max((p.score for p in peers if p.trial_id not in promoted), default=-math.inf)
        assert by_id[parent].score >= best_not_promoted
    assert tuner.calls[0] == (9, 0, None)


def test_state_matches_keras_tuner_hyperband_and_is_json(tmp_path):
    ours = oracle(max_trials=30)
    theirs = kt.oracles.HyperbandOracle(objective=kt.Objective("score", "max"), max_epochs=9, factor=3, seed=5)
    keys = ("max_epochs", "min_epochs", "factor", "brackets", "current_bracket", "current_iteration")
    assert {k: ours.get_state()[k] for k in keys} == {k: theirs.get_state()[k] for k in keys}
    assert ours.get_state()["hyperband_iterations"] is None  # unlimited, JSON-safe
    search(tmp_path, ours)
    state = json.loads(json.dumps(ours.get_state(), allow_nan=False))
    other = oracle(max_trials=30, random_share=0.5)
    other.set_state(state)
    assert other.random_share == ours.random_share == 0.2
    assert other.hyperband_iterations == math.inf and other._brackets == ours._brackets


def test_forest_is_fitted_on_the_largest_budget_with_enough_results(tmp_path):
    o = oracle(max_trials=45, random_share=0.0)
    seen = []
    original = o._training_data

    def spy(trials, rows):
        data = original(trials, rows)
        if o._proposal_id is not None:
            budget = o.fitted_budget(trials)
            completed = [t for t in trials if t.status == "COMPLETED"]
            counts = {b: sum(t.hyperparameters.values[EPOCHS] == b for t in completed) for b in (1, 3, 9)}
            expected = max((b for b, n in counts.items() if n >= 5), default=None)
            assert budget == expected
            assert (data is None) == (budget is None)
            if data is not None:
                assert len(data.observed) == counts[budget]
            seen.append(budget)
        return data

    o._training_data = spy
    search(tmp_path, o)
    assert seen[0] is None  # random proposals first
    assert 1 in seen and 3 in seen and 9 in seen  # the forest moved up the budgets as results came in
    assert seen.index(9) > seen.index(3) > seen.index(1)


def test_forest_proposals_beat_random_new_trials(tmp_path):
    def quality(acquisition, seed):
        """Mean planted effect of the later half of the new (not continued) trials."""
        o = oracle(max_trials=50, seed=seed, acquisition=acquisition)
        search(tmp_path, o, name=f"{acquisition}_{seed}")
        new = [t for t in in_order(o)[1:] if RESUME_FROM not in t.hyperparameters.values]
        effects = [planted(t.hyperparameters.values, 1) - planted({}, 1) for t in new]
        return float(np.mean(effects[len(effects) // 2:]))

    seeds = range(1, 5)  # (seed 0 is "a random seed" for Keras Tuner)
    forest = [quality("ei", s) for s in seeds]
    random = [quality("random", s) for s in seeds]
    assert sum(f > r for f, r in zip(forest, random)) >= 3 and np.mean(forest) > np.mean(random) + 0.01


def test_resume_gives_identical_proposals(tmp_path):
    straight = search(tmp_path, oracle(max_trials=30), name="straight").oracle
    search(tmp_path, oracle(max_trials=14), name="resumed")
    resumed = search(tmp_path, oracle(max_trials=30), name="resumed", overwrite=False).oracle
    assert len(resumed.trials) == 30
    assert values_of(resumed) == values_of(straight)


def test_canonical_values_see_no_budget_and_no_op_proposals_are_skipped(tmp_path):
    seen_keys = set()

    def canonical(values):
        seen_keys.update(values)
        return SPACE.canonical_values(values)

    o = oracle(max_trials=30, canonical_values=canonical)
    search(tmp_path, o)
    assert seen_keys and not any(k.startswith("tuner/") for k in seen_keys)
    new = [t for t in in_order(o)[1:] if RESUME_FROM not in t.hyperparameters.values]
    assert not any(SPACE.to_policy(t.hyperparameters.values).is_noop(3) for t in new)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_epochs": 0}, "max_epochs"),
    ({"factor": 1}, "factor"),
    ({"random_share": 1.5}, "random_share"),
    ({"hyperband_iterations": 0}, "hyperband_iterations"),
    ({"max_trials": None}, "never ends"),
    ({"canonical_values": 3}, "canonical_values"),
    ({"acquisition": "eii"}, "acquisition"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RandomForestHyperbandOracle(**{"max_trials": 10, **kwargs})


# ----------------------------------------------------------------------------- AugmentTuner
class FakeChild(kt.HyperModel):
    """A tiny model that is never trained: ``fit`` returns a synthetic history for the epochs asked
    (``initial_epoch`` to ``epochs``): validation accuracy grows with the epoch, more with rotate."""

    def __init__(self):
        super().__init__()
        self.fits, self.frozen, self.alive, self.models = [], [], [], []

    def build(self, hp):
        return tiny_model()

    def fit(self, hp, model, *args, epochs=1, initial_epoch=0, **kwargs):
        ops = [v for k, v in hp.values.items() if k.endswith("/op")]
        self.fits.append((initial_epoch, epochs, hp.values.get(RESUME_FROM)))
        self.frozen.append(gc.get_freeze_count())
        self.alive.append(sum(ref() is not None for ref in self.models))  # earlier trials' models still in memory
        self.models.append(weakref.ref(model))
        val = [0.5 + 0.04 * e + 0.05 * ops.count("rotate") - 0.05 * ops.count("invert")
               for e in range(initial_epoch + 1, epochs + 1)]
        return {"loss": [1.0] * len(val), "accuracy": [v + 0.01 for v in val],
                "val_loss": [1.0] * len(val), "val_accuracy": val}


def test_augment_tuner_hyperband_with_a_fake_child(tmp_path, digits, capsys):
    x, y = digits
    child = FakeChild()
    tuner = make_tuner(tmp_path, child, method="hyperband", child_epochs=3, max_trials=7, num_initial_points=3,
                       verbose=1)
    tuner.search(x, y)
    trials = in_order(tuner.oracle)
    assert [t.status for t in trials] == ["COMPLETED"] * 7
    # baseline at the full budget, bracket 1 (3 trials x 1 epoch, best continued to 3), bracket 0 (2 x 3)
    assert child.fits[0] == (0, 3, None)
    assert sorted(f[:2] for f in child.fits) == sorted([(0, 3), (0, 1), (0, 1), (0, 1), (1, 3), (0, 3), (0, 3)])
    results = tuner.results()
    assert results.full_budget == 3 and results.baseline.trial_id == trials[0].trial_id
    ranked = results.best()
    assert ranked and all(t.budget == 3 for t in ranked)  # 1-epoch trials are never ranked
    assert all(t.gain is None for t in results.trials if t.budget == 1)
    best = tuner.get_best_policies(1)[0]
    assert best.metadata["gain"] == pytest.approx(best.metadata["reward"] - tuner.baseline_reward())
    assert "tuner/epochs" not in best.metadata["hyperparameters"]
    out = capsys.readouterr().out
    assert out.count("[1/3 epochs]") == 3  # short trials say so, with no gain
    with open(tuner.notebook_path, newline="") as f:
        rows = list(csv.DictReader(f))
    continued = next(t for t in trials if RESUME_FROM in t.hyperparameters.values)
    assert [int(r["epoch"]) for r in rows if r["trial"] == continued.trial_id] == [2, 3]
    assert json.loads(rows[0]["hyperparameters"]) == {}
    with pytest.raises(ValueError, match="child_epochs=3 and no search"):
        tuner.search(x, y, epochs=5)
    # the objects alive when the search began were frozen during the trials (cheap collections), not after,
    # and every earlier trial's model was freed before the next trial trained (heap.settle freezes no garbage)
    assert min(child.frozen) > 0 and gc.get_freeze_count() == 0
    assert child.alive == [0] * len(child.fits)


def test_augment_tuner_hyperband_resumes_its_brackets(tmp_path, digits):
    x, y = digits
    # (Keras Tuner pads trial ids to max_trials' digits: keep both runs at one digit)
    straight = make_tuner(tmp_path, FakeChild(), method="hyperband", child_epochs=3, max_trials=9,
                          num_initial_points=3, project_name="straight")
    straight.search(x, y)
    make_tuner(tmp_path, FakeChild(), method="hyperband", child_epochs=3, max_trials=5, num_initial_points=3,
               project_name="resumed").search(x, y)
    resumed = make_tuner(tmp_path, FakeChild(), method="hyperband", child_epochs=3, max_trials=9,
                         num_initial_points=3, project_name="resumed")
    resumed.search(x, y)
    assert len(resumed.oracle.trials) == 9
    assert values_of(resumed.oracle) == values_of(straight.oracle)


def test_augment_tuner_hyperband_real_tiny_search(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, method="hyperband", child_epochs=3, max_trials=7, num_initial_points=3)
    tuner.search(x, y)
    trials = in_order(tuner.oracle)
    assert [t.status for t in trials] == ["COMPLETED"] * 7
    continued = [t for t in trials if RESUME_FROM in t.hyperparameters.values]
    assert len(continued) == 1 and continued[0].hyperparameters.values[INITIAL_EPOCH] == 1
    best = tuner.get_best_policies(3)
    assert best and all(tuner.oracle.trials[p.metadata["trial_id"]].hyperparameters.values[EPOCHS] == 3
                        for p in best)
    assert isinstance(tuner.oracle, RandomForestHyperbandOracle)
    assert tuner.oracle.get_state()["max_epochs"] == 3


def test_keras_tuner_hyperband_oracle_baseline_runs_its_full_budget(tmp_path, digits):
    from keras_augtune import reward_objective

    x, y = digits
    the_oracle = kt.oracles.HyperbandOracle(reward_objective(), max_epochs=3, factor=3, seed=1)
    child = FakeChild()
    tuner = make_tuner(tmp_path, child, oracle=the_oracle, child_epochs=1)
    tuner.search(x, y)
    assert child.fits[0] == (0, 3, None)  # the baseline: the oracle's max_epochs, not child_epochs
    assert tuner.results().baseline is not None and tuner.results().full_budget == 3


def test_bad_hyperband_settings(tmp_path):
    with pytest.raises(ValueError, match="hyperband_factor"):
        make_tuner(tmp_path, method="hyperband", hyperband_factor=1)
    with pytest.raises(ValueError, match="method must be one of"):
        make_tuner(tmp_path, method="hyperbnd")
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=SMALL_SPACE_OPS)
    assert make_tuner(tmp_path, method="hyperband", policy_space=space, overwrite=True).oracle.factor == 3


def test_distributed_hyperband_chief_and_two_workers(tmp_path):
    import glob
    import os
    import subprocess
    import sys

    from test_distributed import EXAMPLE, free_port, read

    directory = str(tmp_path / "runs")
    common = ["--ip", "127.0.0.1", "--port", str(free_port()), "--directory", directory, "--project", "p",
              "--model", "tiny", "--image-size", "12", "--limit", "200", "--max-trials", "7", "--epochs", "3",
              "--batch-size", "32", "--num-initial-points", "3", "--method", "hyperband"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    roles = {"chief": ["--role", "chief"], "worker0": ["--role", "worker", "--worker-id", "0"],
             "worker1": ["--role", "worker", "--worker-id", "1"]}
    logs, procs = {name: str(tmp_path / f"{name}.log") for name in roles}, {}
    try:
        for name, args in roles.items():
            with open(logs[name], "wb") as log:
                procs[name] = subprocess.Popen([sys.executable, EXAMPLE, *common, *args], env=env, stdout=log,
                                               stderr=subprocess.STDOUT)
        assert procs["chief"].wait(timeout=400) == 0, read(logs["chief"]) + read(logs["worker0"])
        for name in ("worker0", "worker1"):
            assert procs[name].wait(timeout=60) == 0, read(logs[name])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    trials = {}
    for path in glob.glob(os.path.join(directory, "p", "trial_*", "trial.json")):
        with open(path) as f:
            data = json.load(f)
        trials[data["trial_id"]] = data
    assert len(trials) == 7 and all(t["status"] == "COMPLETED" for t in trials.values())
    values = [t["hyperparameters"]["values"] for t in trials.values()]
    assert sorted(v[EPOCHS] for v in values) == [1, 1, 1, 3, 3, 3, 3]
    continued = [v for v in values if RESUME_FROM in v]
    assert len(continued) == 1 and continued[0][INITIAL_EPOCH] == 1
    assert "Results summary: 7 completed, 0 failed" in read(logs["chief"])
    starts = read(logs["worker0"]).count("starting trial") + read(logs["worker1"]).count("starting trial")
    assert starts >= 7  # the workers trained every trial
