"""Tests of RandomForestOracle, driven by a BaseTuner over cheap functions (no Keras model)."""

import json
import math

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine import base_tuner
from keras_tuner.engine import trial as trial_module

from keras_augtune.oracle import RandomForestOracle
from keras_augtune.space import PolicySpace


class FunctionTuner(base_tuner.BaseTuner):
    """A tuner whose trial is a Python function of the hyperparameters."""

    def __init__(self, oracle, function, declare=None, **kwargs):
        super().__init__(oracle=oracle, **kwargs)
        self.function = function
        self.declare = declare

    def run_trial(self, trial, *args, **kwargs):
        if self.declare is not None:
            self.declare(trial.hyperparameters, trial)
        return {"score": self.function(trial.hyperparameters.values)}


def mixed_space():
    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 8, 256, step=8)
    hp.Boolean("batch_norm")
    hp.Choice("batch_size", [16, 32, 64, 128])
    hp.Fixed("epochs", 3)
    for i in range(4):
        hp.Choice(f"op_{i}", [f"op{k}" for k in range(12)])
        hp.Float(f"magnitude_{i}", 0.0, 1.0)
    return hp


def planted(values):
    """Peak 10 at adam, lr=3e-3, units=96, batch_norm, batch 32, op_i=op3, magnitude 0.7."""
    score = 2.0 * (values["optimizer"] == "adam")
    score += 2.0 - abs(math.log10(values["learning_rate"]) - math.log10(3e-3))
    score += 1.0 - abs(values["units"] - 96) / 248
    score += 1.0 * values["batch_norm"] + 1.0 * (values["batch_size"] == 32)
    for i in range(4):
        score += 0.5 * (values[f"op_{i}"] == "op3") + 0.25 * (1 - abs(values[f"magnitude_{i}"] - 0.7))
    return score


def run_search(tmp_path, oracle, function=planted, name="search", declare=None, overwrite=True):
    tuner = FunctionTuner(
        oracle, function, declare=declare, directory=str(tmp_path), project_name=name, overwrite=overwrite
    )
    tuner.search_space_summary = lambda *a, **k: None
    tuner.oracle.verbose = 0
    tuner.search(verbose=0)
    return tuner


def completed(oracle):
    return [t for t in oracle.trials.values() if t.status == trial_module.TrialStatus.COMPLETED]


def best_score(oracle, direction="max"):
    scores = [t.score for t in completed(oracle)]
    return max(scores) if direction == "max" else min(scores)


def proposals(oracle):
    return [oracle.trials[i].hyperparameters.values for i in sorted(oracle.trials)]


# ----------------------------------------------------------------------------- search quality
@pytest.mark.parametrize("direction", ["max", "min"])
def test_beats_random_search_on_planted_optimum(tmp_path, direction):
    sign = 1.0 if direction == "max" else -1.0

    def function(values):
        return sign * planted(values)

    def search(oracle_class, name, seed):
        oracle = oracle_class(
            objective=kt.Objective("score", direction), max_trials=60, seed=seed, hyperparameters=mixed_space()
        )
        run_search(tmp_path, oracle, function, name=f"{name}_{direction}_{seed}")
        return sign * best_score(oracle, direction)

    seeds = (1, 2, 3)
    forest = np.median([search(RandomForestOracle, "forest", seed) for seed in seeds])
    random = np.median([search(kt.oracles.RandomSearchOracle, "random", seed) for seed in seeds])
    assert forest > random + 0.4, (forest, random)
    assert forest > 7.8  # the peak is 10; random search's median here is about 7.2


def test_hyperparameter_importances_rank_the_planted_effects(tmp_path):
    # Importances are read from random-search data here: an optimising search concentrates its
    # trials where an effect is already settled, which hides that effect from any importance measure.
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=60, acquisition="random", seed=3,
        hyperparameters=mixed_space(),
    )
    run_search(tmp_path, oracle)
    importances = oracle.hyperparameter_importances()
    assert set(importances) == {n for n in mixed_space().values if n != "epochs"}
    assert math.isclose(sum(importances.values()), 1.0)
    top = list(importances)[:3]
    assert "learning_rate" in top or "optimizer" in top
    assert importances["learning_rate"] > importances["magnitude_3"]


def test_importances_empty_before_data():
    assert RandomForestOracle(hyperparameters=mixed_space()).hyperparameter_importances() == {}


# ----------------------------------------------------------------------------- spaces
def test_conditional_space(tmp_path):
    hp = kt.HyperParameters()
    model = hp.Choice("model", ["linear", "mlp", "cnn"])
    with hp.conditional_scope("model", ["mlp", "cnn"]):
        hp.Int("layers", 1, 4)
        with hp.conditional_scope("layers", [3, 4]):
            hp.Float("dropout", 0.0, 0.5)
    with hp.conditional_scope("model", "cnn"):
        hp.Int("filters", 16, 128, sampling="log")
    del model

    def function(values):
        score = {"linear": 0.0, "mlp": 1.0, "cnn": 2.0}[values["model"]]
        if values["model"] != "linear":
            score += values["layers"] / 4
            if values["layers"] >= 3:
                score += 1 - abs(values["dropout"] - 0.2)
        if values["model"] == "cnn":
            score += 1 - abs(math.log2(values["filters"]) - 6) / 3
        return score

    oracle = RandomForestOracle(objective=kt.Objective("score", "max"), max_trials=40, seed=1, hyperparameters=hp)
    run_search(tmp_path, oracle, function)
    for values in proposals(oracle):
        active = {"model"}
        if values["model"] != "linear":
            active.add("layers")
            if values["layers"] >= 3:
                active.add("dropout")
        if values["model"] == "cnn":
            active.add("filters")
        assert set(values) == active, values
        if "filters" in values:
            assert isinstance(values["filters"], int) and 16 <= values["filters"] <= 128
    assert best_score(oracle) > 4.5  # the peak is 5


def test_new_hyperparameters_mid_search(tmp_path):
    def declare(hp, trial):
        hp.Float("x", 0.0, 1.0)
        if int(trial.trial_id) >= 12:  # the model code grows a new hyperparameter
            hp.Choice("late", ["a", "b", "c"])
            hp.Int("later", 1, 9)

    def function(values):
        return -abs(values["x"] - 0.3) + (values.get("late") == "c") + values.get("later", 0) / 9

    oracle = RandomForestOracle(objective=kt.Objective("score", "max"), max_trials=30, num_initial_points=5, seed=2)
    run_search(tmp_path, oracle, function, declare=declare)
    assert {hp.name for hp in oracle.get_space().space} == {"x", "late", "later"}
    late = [v for v in proposals(oracle)[13:]]
    # Once known to the oracle, the new hyperparameters are proposed (not left to defaults).
    assert all("late" in v and "later" in v for v in late)
    assert len({(v["late"], v["later"]) for v in late}) > 3
    assert best_score(oracle) > 1.5


def test_every_hyperparameter_type_gets_valid_values(tmp_path):
    hp = kt.HyperParameters()
    hp.Int("int_log_step", 2, 512, step=2, sampling="log")
    hp.Int("int_linear", -5, 5)
    hp.Int("int_step", 0, 100, step=10)
    hp.Float("float_log", 1e-5, 1.0, sampling="log")
    hp.Float("float_reverse_log", 0.9, 0.999, sampling="reverse_log")
    hp.Float("float_step", 0.0, 1.0, step=0.25)
    hp.Choice("ordered", [1, 2, 4, 8])
    hp.Choice("unordered", ["x", "y", "z"])
    hp.Choice("floats", [0.1, 0.5])
    hp.Boolean("flag")
    hp.Fixed("fixed", "constant")

    def function(values):
        return values["int_linear"] + values["float_step"] + values["flag"] - abs(math.log10(values["float_log"]) + 2)

    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=25, num_initial_points=5, seed=4, hyperparameters=hp
    )
    run_search(tmp_path, oracle, function)
    for values in proposals(oracle):
        assert values["fixed"] == "constant"
        assert values["int_log_step"] in {2 ** k for k in range(1, 10)}
        assert isinstance(values["int_linear"], int) and -5 <= values["int_linear"] <= 5
        assert values["int_step"] in range(0, 101, 10)
        assert 1e-5 <= values["float_log"] <= 1.0
        assert 0.9 <= values["float_reverse_log"] <= 0.999
        assert values["float_step"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert values["ordered"] in (1, 2, 4, 8)
        assert values["unordered"] in ("x", "y", "z")
        assert values["floats"] in (0.1, 0.5)
        assert isinstance(values["flag"], bool)
    assert len({json.dumps(v, sort_keys=True) for v in proposals(oracle)}) == 25


def test_policy_space_search_with_a_keras_tuner_tuner(tmp_path):
    """A real kt.Tuner (run_trial overridden: no model is trained) over policy + architecture."""
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2, ops=["rotate", "cutout", "invert", "identity"])

    class CheapTuner(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            policy = space.declare(hp)
            width = hp.Int("width", 16, 128, step=16)
            score = -abs(width - 64) / 64
            for sub in policy.sub_policies:
                for step in sub:
                    score += {"rotate": 1 - abs(step.magnitude - 0.4), "cutout": 0.5, "invert": -1.0}.get(step.op, 0)
            return score

    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=20, seed=5, hyperparameters=space.hyperparameters()
    )
    tuner = CheapTuner(oracle=oracle, directory=str(tmp_path), project_name="kt_tuner", overwrite=True)
    tuner.oracle.verbose = 0
    tuner.search(verbose=0)
    assert len(completed(tuner.oracle)) == 20
    best = tuner.get_best_hyperparameters()[0]
    assert space.to_policy(best).ops  # the best trial's values are a valid policy
    assert "width" in best.values


@pytest.mark.parametrize(
    "options",
    [
        {"acquisition": "pi"},
        {"acquisition": "lcb", "kappa": 0.5},
        {"forest": "random_forest", "max_samples": 12},
        {"max_samples": 12, "max_features": "sqrt"},
    ],
)
def test_acquisitions_and_forest_options_search(tmp_path, options):
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=30, num_initial_points=8, seed=2,
        hyperparameters=mixed_space(), **options,
    )
    run_search(tmp_path, oracle)
    assert len({json.dumps(v, sort_keys=True) for v in proposals(oracle)}) == 30
    assert best_score(oracle) > 6.5


# ----------------------------------------------------------------------------- reproducibility
def test_same_seed_same_proposals_and_different_seed_differs(tmp_path):
    def search(seed, name):
        oracle = RandomForestOracle(
            objective=kt.Objective("score", "max"), max_trials=20, num_initial_points=6,
            seed=seed, hyperparameters=mixed_space(),
        )
        run_search(tmp_path, oracle, name=name)
        return proposals(oracle)

    assert search(11, "a") == search(11, "b")
    assert search(11, "c") != search(12, "d")


def test_resume_gives_identical_proposals(tmp_path):
    def oracle(max_trials):
        return RandomForestOracle(
            objective=kt.Objective("score", "max"), max_trials=max_trials, num_initial_points=6,
            seed=21, hyperparameters=mixed_space(),
        )

    straight = run_search(tmp_path, oracle(24), name="straight").oracle
    run_search(tmp_path, oracle(13), name="resumed")
    resumed = run_search(tmp_path, oracle(24), name="resumed", overwrite=False).oracle
    assert len(resumed.trials) == 24
    assert proposals(resumed) == proposals(straight)


def test_state_is_json_and_round_trips():
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "min"), max_trials=30, acquisition="lcb", kappa=3.0,
        n_estimators=16, forest="random_forest", constant_liar="worst", seed=9, hyperparameters=mixed_space(),
    )
    state = json.loads(json.dumps(oracle.get_state()))
    other = RandomForestOracle(hyperparameters=mixed_space())
    other.set_state(state)
    for name in ("acquisition", "kappa", "n_estimators", "forest", "constant_liar", "seed"):
        assert getattr(other, name) == getattr(oracle, name)


def test_state_saved_before_an_option_existed_resumes_with_its_value_then():
    # A state from before pool_policies/maximiser/... existed: resuming must not switch it to today's defaults.
    oracle = RandomForestOracle(objective=kt.Objective("score", "max"), max_trials=30, seed=9,
                                hyperparameters=mixed_space(), pool_policies=True, maximiser="local_search",
                                target="rank")
    state = json.loads(json.dumps(oracle.get_state()))
    for name in RandomForestOracle._UNSTORED_BEFORE:
        del state[name]
    other = RandomForestOracle(hyperparameters=mixed_space(), pool_policies=True, maximiser="local_search",
                               target="log")  # what a newer default or a resuming caller might pass
    other.set_state(state)
    assert (other.pool_policies, other.slot_features, other.initial_design, other.maximiser) == (
        False, True, "random", "mutation")
    assert (other.random_share, other.target) == (0.0, "standardise")
    assert (other.num_initial_points, other.min_samples_leaf) == (oracle.num_initial_points, oracle.min_samples_leaf)


# ----------------------------------------------------------------------------- canonical forms
def noop_space():
    hp = kt.HyperParameters()
    hp.Choice("op", ["identity", "flip", "rotate", "invert"])
    hp.Choice("probability", [0.0, 0.5, 1.0])
    hp.Float("magnitude", 0.0, 1.0)
    return hp


BASELINE = {"op": "identity", "probability": 0.0, "magnitude": 0.0}


def noop_canonical(values):
    """Identity, or probability 0, changes no image: every such trial is the baseline."""
    if values["op"] == "identity" or values["probability"] == 0.0:
        return dict(BASELINE)
    return dict(values)


def noop_best(values):
    """No augmentation is the best here, so a model-based search is drawn to the no-ops."""
    if noop_canonical(values) == BASELINE:
        return 0.0
    return -{"flip": 0.2, "rotate": 0.5, "invert": 1.0}[values["op"]] * values["probability"] * (0.5 + values["magnitude"])


def noop_oracle(max_trials, canonical=True):
    return RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=max_trials, num_initial_points=5, seed=13,
        hyperparameters=noop_space(), initial_values=[BASELINE],
        canonical_values=noop_canonical if canonical else None,
    )


def test_canonical_values_never_repeat_the_baseline(tmp_path):
    plain = run_search(tmp_path, noop_oracle(25, canonical=False), noop_best, name="plain").oracle
    noops = [v for v in proposals(plain) if noop_canonical(v) == BASELINE]
    assert len(noops) > 3  # without the hook the search keeps re-training no-op policies

    oracle = run_search(tmp_path, noop_oracle(25), noop_best, name="canonical").oracle
    values = proposals(oracle)
    assert len(values) == 25 and values[0] == BASELINE
    assert [v for v in values if noop_canonical(v) == BASELINE] == [BASELINE]
    assert len({json.dumps(noop_canonical(v), sort_keys=True) for v in values}) == 25


def test_canonical_values_survive_resume(tmp_path):
    straight = run_search(tmp_path, noop_oracle(20), noop_best, name="straight").oracle
    run_search(tmp_path, noop_oracle(12), noop_best, name="resumed")
    resumed = run_search(tmp_path, noop_oracle(20), noop_best, name="resumed", overwrite=False).oracle
    assert proposals(resumed) == proposals(straight)
    assert sum(noop_canonical(v) == BASELINE for v in proposals(resumed)) == 1
    assert "canonical_values" not in json.dumps(resumed.get_state())


def test_canonical_values_must_be_callable_and_return_a_dict(tmp_path):
    with pytest.raises(TypeError, match="canonical_values"):
        RandomForestOracle(canonical_values="identity")
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=3, hyperparameters=noop_space(), seed=1,
        canonical_values=lambda values: None,
    )
    with pytest.raises(TypeError, match="must return a dict"):
        run_search(tmp_path, oracle, noop_best, name="bad")


# ----------------------------------------------------------------------------- modes and robustness
def test_random_mode_never_fits_a_forest(tmp_path, monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("random mode must not fit a forest")

    monkeypatch.setattr(RandomForestOracle, "_fit", no_fit)
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=30, acquisition="random", seed=3,
        hyperparameters=mixed_space(),
    )
    run_search(tmp_path, oracle, name="random_flag")
    assert len(completed(oracle)) == 30
    assert len({json.dumps(v, sort_keys=True) for v in proposals(oracle)}) == 30

    # num_initial_points >= max_trials is random search too.
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=15, num_initial_points=15, seed=3,
        hyperparameters=mixed_space(),
    )
    run_search(tmp_path, oracle, name="random_initial")
    assert len(completed(oracle)) == 15


def test_small_discrete_space_is_exhausted_then_stops(tmp_path):
    hp = kt.HyperParameters()
    hp.Choice("a", ["x", "y", "z"])
    hp.Boolean("b")
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=50, num_initial_points=2, seed=1, hyperparameters=hp
    )
    run_search(tmp_path, oracle, lambda v: float(v["b"]) + (v["a"] == "z"))
    seen = {(v["a"], v["b"]) for v in proposals(oracle)}
    assert len(seen) == len(oracle.trials) == 6
    assert best_score(oracle) == 2.0


@pytest.mark.parametrize("failed_trials", ["ignore", "worst"])
def test_failed_trials_and_nan_scores_do_not_break_the_search(tmp_path, failed_trials):
    def function(values):
        if values["learning_rate"] > 0.03:
            raise kt.errors.FailedTrialError("diverged")
        if values["units"] > 200:
            return float("nan")
        if values["units"] < 16:
            raise RuntimeError("invalid, retried then failed")
        return planted(values)

    oracle = RandomForestOracle(
        objective=kt.Objective("score", "max"), max_trials=40, num_initial_points=5, seed=8,
        failed_trials=failed_trials, max_consecutive_failed_trials=40, hyperparameters=mixed_space(),
    )
    run_search(tmp_path, oracle, function, name=failed_trials)
    statuses = [t.status for t in oracle.trials.values()]
    assert len(statuses) == 40
    assert statuses.count("FAILED") > 0 and statuses.count("COMPLETED") > 10
    assert best_score(oracle) > 6.0


def test_inf_and_nan_scores_fed_directly(tmp_path):
    oracle = RandomForestOracle(
        objective=kt.Objective("score", "min"), max_trials=20, num_initial_points=3, seed=5,
        hyperparameters=mixed_space(),
    )
    oracle._set_project_dir(str(tmp_path), "direct")
    oracle.verbose = 0
    for i in range(20):
        trial = oracle.create_trial("worker")
        score = [float("inf"), float("nan"), -float("inf")][i % 3] if i % 4 == 0 else planted(
            trial.hyperparameters.values
        )
        oracle.update_trial(trial.trial_id, {"score": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert len(oracle.trials) == 20


def test_constant_liar_sends_concurrent_workers_different_points(tmp_path):
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Float("y", 0.0, 1.0)
    oracle = RandomForestOracle(objective=kt.Objective("score", "max"), max_trials=40, num_initial_points=8,
                                seed=6, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "workers")
    oracle.verbose = 0

    def finish(trial):
        v = trial.hyperparameters.values
        oracle.update_trial(trial.trial_id, {"score": -((v["x"] - 0.3) ** 2) - (v["y"] - 0.6) ** 2})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)

    for _ in range(12):
        finish(oracle.create_trial("solo"))
    batch = [oracle.create_trial(f"worker{i}") for i in range(4)]
    points = np.array([[t.hyperparameters["x"], t.hyperparameters["y"]] for t in batch])
    distances = [np.linalg.norm(points[i] - points[j]) for i in range(4) for j in range(i)]
    assert min(distances) > 1e-3, points
    assert len(oracle.ongoing_trials) == 4
    for trial in batch:
        finish(trial)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"acquisition": "ucb"}, "acquisition"),
        ({"forest": "gbm"}, "forest"),
        ({"n_estimators": 0}, "n_estimators"),
        ({"num_initial_points": -1}, "num_initial_points"),
        ({"num_candidates": 1}, "num_candidates"),
        ({"xi": -0.1}, "xi"),
        ({"kappa": "big"}, "kappa"),
        ({"constant_liar": "median"}, "constant_liar"),
        ({"failed_trials": "retry"}, "failed_trials"),
        ({"max_features": 1.5}, "max_features"),
        ({"max_trials": 0}, "max_trials"),
        ({"max_samples": 1}, "max_samples"),
    ],
)
def test_bad_arguments_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomForestOracle(**kwargs)
