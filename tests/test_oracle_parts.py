"""Unit tests of the oracle's parts: encoding, training data, forest, acquisition, candidates."""

import math

import keras_tuner as kt
import numpy as np
import pytest
from keras_tuner.engine import trial as trial_module

from keras_augtune.oracle import EI, LCB, PI
from keras_augtune.oracle.acquisition import make_acquisition
from keras_augtune.oracle.candidates import CandidateGenerator
from keras_augtune.oracle.encoding import INACTIVE, SpaceEncoder
from keras_augtune.oracle.forest import Forest
from keras_augtune.oracle.training_data import Rows, TrainingData


def every_type_space():
    hp = kt.HyperParameters()
    hp.Choice("optimizer", ["sgd", "adam", "rmsprop"])
    hp.Choice("batch_size", [16, 32, 64])
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Float("momentum", 0.9, 0.999, sampling="reverse_log")
    hp.Float("dropout", 0.0, 0.5, step=0.1)
    hp.Int("units", 8, 256, step=8)
    hp.Int("layers", 1, 4)
    hp.Boolean("batch_norm")
    hp.Fixed("epochs", 3)
    with hp.conditional_scope("optimizer", ["sgd"]):
        hp.Float("nesterov_weight", 0.0, 1.0)
    return hp


# ----------------------------------------------------------------------------- encoding
def test_encoding_round_trip_values_codes_values():
    hp = every_type_space()
    encoder = SpaceEncoder(hp.space)
    rng = np.random.default_rng(0)
    codes, active = encoder.decode(rng.random((200, encoder.dims)))
    values = [encoder.values(codes[i], active[i]) for i in range(200)]
    again_codes, again_active = encoder.encode_values(values)
    np.testing.assert_array_equal(again_active, active)
    np.testing.assert_array_equal(np.where(active, again_codes, 0), np.where(active, codes, 0))
    assert [encoder.values(again_codes[i], again_active[i]) for i in range(200)] == values
    for v in values:
        assert v["epochs"] == 3
        assert ("nesterov_weight" in v) == (v["optimizer"] == "sgd")
        assert isinstance(v["units"], int) and v["units"] % 8 == 0
        assert isinstance(v["batch_norm"], bool)
        assert 0.9 <= v["momentum"] <= 0.999


def test_encoding_units_codes_units_is_stable():
    encoder = SpaceEncoder(every_type_space().space)
    rng = np.random.default_rng(1)
    codes, active = encoder.decode(rng.random((100, encoder.dims)))
    units = encoder.units_of(codes, active, rng)
    again, again_active = encoder.decode(units)
    np.testing.assert_array_equal(again_active, active)
    np.testing.assert_allclose(np.where(active, again, 0), np.where(active, codes, 0))


def test_encoding_features_one_hot_and_inactive_sentinel():
    hp = kt.HyperParameters()
    hp.Choice("op", ["a", "b", "c"])
    with hp.conditional_scope("op", "a"):
        hp.Float("x", 0.0, 1.0)
    encoder = SpaceEncoder(hp.space)
    codes, active = encoder.encode_values([{"op": "b", "x": 0.3}, {"op": "a", "x": 0.25}])
    features = encoder.features(codes, active)
    assert encoder.feature_names == ["op", "op", "op", "x"]
    np.testing.assert_allclose(features, [[0, 1, 0, INACTIVE], [1, 0, 0, 0.25]])


def test_encoding_unknown_values_are_inactive():
    hp = kt.HyperParameters()
    hp.Choice("op", ["a", "b"])
    encoder = SpaceEncoder(hp.space)
    _, active = encoder.encode_values([{"op": "zzz"}, {}, {"op": "a"}])
    assert active[:, 0].tolist() == [False, False, True]


# ----------------------------------------------------------------------------- training data
def test_training_data_splits_observed_failed_running_explicitly():
    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    trials = []
    for i, (status, score) in enumerate([
        ("COMPLETED", 0.5), ("FAILED", None), ("COMPLETED", float("nan")), ("RUNNING", None),
        ("COMPLETED", 0.9), ("INVALID", None),
    ]):
        trial = trial_module.Trial(hp.copy(), trial_id=str(i), status=status)
        trial.score = score
        trials.append(trial)
    codes = np.arange(6, dtype=float)[:, None]
    rows = Rows(codes, np.ones((6, 1), dtype=bool))
    data = TrainingData.from_trials(trials, rows, "max", running_ids={"3"})
    assert data.observed.codes[:, 0].tolist() == [0, 4]
    assert data.scores.tolist() == [-0.5, -0.9]  # maximised -> minimised
    assert data.failed.codes[:, 0].tolist() == [1, 2, 5]
    assert data.running.codes[:, 0].tolist() == [3]

    fit_rows, targets, y = data.fit_set("worst", "best", with_lies=True)
    assert fit_rows.codes[:, 0].tolist() == [0, 4, 1, 2, 5, 3]
    np.testing.assert_allclose(y, [1.0, -1.0])
    np.testing.assert_allclose(targets, [1.0, -1.0, 1.0, 1.0, 1.0, -1.0])
    fit_rows, targets, _ = data.fit_set("ignore", "mean", with_lies=False)
    assert fit_rows.codes[:, 0].tolist() == [0, 4]
    np.testing.assert_allclose(targets, [1.0, -1.0])

    assert TrainingData.from_trials(trials[1:4], rows.take([1, 2, 3]), "min", running_ids={"3"}) is None


# ----------------------------------------------------------------------------- forest
@pytest.mark.parametrize("kind", ["extra_trees", "random_forest"])
def test_forest_mean_fits_and_variance_grows_away_from_data(kind):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.0, 0.35, 60), rng.uniform(0.65, 1.0, 60)])
    y = np.where(x < 0.5, 0.0, 1.0)
    forest = Forest(kind, n_estimators=32, min_samples_leaf=1, max_features=None, seed=3).fit(x[:, None], y)
    mean, sigma = forest.predict(np.array([[0.1], [0.9], [0.5]]))
    # Where every tree agrees (inside the data, constant target), the variance is at its floor.
    assert abs(mean[0]) < 1e-9 and abs(mean[1] - 1.0) < 1e-9
    assert sigma[0] < 0.01 and sigma[1] < 0.01
    # In the gap the trees split at different places: they disagree, so the variance is large.
    assert 0.0 < mean[2] < 1.0
    assert sigma[2] > 0.2


def test_forest_mean_follows_a_smooth_function_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (300, 2))
    y = 2 * x[:, 0] - x[:, 1]
    forest = Forest("extra_trees", 32, 1, None, seed=5).fit(x, y)
    grid = rng.uniform(0.1, 0.9, (50, 2))
    mean, sigma = forest.predict(grid)
    assert np.max(np.abs(mean - (2 * grid[:, 0] - grid[:, 1]))) < 0.25
    assert np.all(sigma > 0)
    again = Forest("extra_trees", 32, 1, None, seed=5).fit(x, y).predict(grid)
    np.testing.assert_array_equal(again[0], mean)


# ----------------------------------------------------------------------------- acquisition
def test_ei_is_non_negative_and_nan_safe():
    rng = np.random.default_rng(2)
    mu = rng.normal(0, 3, 1000)
    sigma = rng.uniform(1e-6, 2, 1000)
    ei = EI(xi=0.01)(mu, sigma, best=-1.0)
    assert np.all(ei >= 0) and np.all(np.isfinite(ei))
    # Far below the best with tiny uncertainty: no expected improvement, never negative.
    assert EI()(np.array([50.0]), np.array([1e-3]), best=0.0)[0] == 0.0
    weird = EI()(np.array([np.nan, 0.0, 0.0, -1.0]), np.array([1.0, np.nan, 0.0, 0.0]), best=0.0)
    assert np.all(weird >= 0) and not np.any(np.isnan(weird))
    assert weird[3] == pytest.approx(1.0 - 0.01)  # certain improvement of 1 beyond the margin


def test_ei_prefers_low_mean_and_high_uncertainty():
    ei = EI(xi=0.0)
    low, high = ei(np.array([-1.0, 1.0]), np.array([0.5, 0.5]), best=0.0)
    assert low > high
    narrow, wide = ei(np.array([0.5, 0.5]), np.array([0.1, 1.0]), best=0.0)
    assert wide > narrow
    assert ei(np.array([0.0]), np.array([1.0]), best=0.0)[0] == pytest.approx(1 / math.sqrt(2 * math.pi))


def test_pi_and_lcb():
    pi = PI(xi=0.0)(np.array([0.0, -10.0, 10.0, np.nan]), np.array([1.0, 1.0, 1.0, 1.0]), best=0.0)
    np.testing.assert_allclose(pi[:3], [0.5, 1.0, 0.0], atol=1e-12)
    assert pi[3] == 0.0
    lcb = LCB(kappa=2.0)(np.array([1.0, 0.0, np.nan]), np.array([1.0, 0.1, 1.0]), best=0.0)
    np.testing.assert_allclose(lcb[:2], [1.0, 0.2])  # kappa * sigma - mu
    assert lcb[2] == -np.inf
    assert isinstance(make_acquisition("lcb", kappa=3.0), LCB) and make_acquisition("lcb", kappa=3.0).kappa == 3.0
    with pytest.raises(ValueError, match="acquisition"):
        make_acquisition("random")


# ----------------------------------------------------------------------------- candidates
def test_candidates_are_new_and_include_neighbours_of_the_parents():
    hp = kt.HyperParameters()
    for i in range(6):
        hp.Choice(f"op_{i}", [f"op{k}" for k in range(8)])
        hp.Float(f"magnitude_{i}", 0.0, 1.0)
    encoder = SpaceEncoder(hp.space)
    rng = np.random.default_rng(3)
    tried_codes, tried_active = encoder.decode(rng.random((20, encoder.dims)))
    tried = set(encoder.keys(tried_codes, tried_active))
    parents = Rows(tried_codes[:3], tried_active[:3])
    generator = CandidateGenerator(encoder, num_candidates=200, num_parents=3)
    pool = generator.generate(parents, lambda rows: -rows.codes[:, 0], tried, np.random.default_rng(4))
    keys = encoder.keys(pool.rows.codes, pool.rows.active)
    assert len(pool) == len(set(keys)) > 250  # 200 first round + refinement, de-duplicated
    assert not tried & set(keys)
    # Mutations change 1-3 hyperparameters: many candidates are close to a parent.
    changed = np.array([(~np.isclose(pool.rows.codes, parents.codes[k])).sum(axis=1) for k in range(3)]).min(axis=0)
    assert np.sum(changed <= 3) >= 90  # ~100 mutations, a few coincide and are dropped
    # Highest score first; the refinement round is built from the best of the first one.
    order = pool.best_first()
    assert np.all(np.diff(pool.scores[order]) <= 0)


def test_candidates_none_when_everything_was_tried():
    hp = kt.HyperParameters()
    hp.Boolean("flag")
    encoder = SpaceEncoder(hp.space)
    codes, active = encoder.encode_values([{"flag": True}, {"flag": False}])
    tried = set(encoder.keys(codes, active))
    generator = CandidateGenerator(encoder, num_candidates=16, num_parents=2)
    assert generator.generate(Rows(codes, active), lambda rows: np.zeros(len(rows)), tried,
                              np.random.default_rng(0)) is None


# ----------------------------------------------------------------------------- policy pooling
def policy_and_arch_space(**options):
    from keras_augtune.space import PolicySpace

    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2, ops=["rotate", "cutout", "invert"], **options)
    hp = space.hyperparameters()
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Choice("ops_used", ["a", "b"])  # an architecture choice: never pooled
    return space, hp


def test_pooled_features_count_ops_over_all_slots():
    space, hp = policy_and_arch_space()
    encoder = SpaceEncoder(hp.space, pool_policies=True)
    assert len(encoder.policy_groups) == 1 and encoder.policy_groups[0].ops == ("rotate", "cutout", "invert")
    pooled = [n for n in encoder.feature_names if "/pooled/" in n]
    assert pooled == [f"augment/pooled/{op}/{kind}" for kind in ("weight", "magnitude")
                      for op in ("rotate", "cutout", "invert")]
    policy = [[("rotate", 0.5, 0.2), ("rotate", 1.0, 0.8)], [("cutout", 0.25, 0.4), ("rotate", 0.0, 1.0)]]
    values = dict(space.to_values(policy), learning_rate=1e-3, ops_used="a")
    codes, active = encoder.encode_values([values])
    features = encoder.features(codes, active)[0]
    assert features.shape == (encoder.num_features,) == (len(encoder.feature_names),)
    tail = dict(zip(pooled, features[-6:]))
    assert tail["augment/pooled/rotate/weight"] == pytest.approx(1.5)
    assert tail["augment/pooled/cutout/weight"] == pytest.approx(0.25)
    assert tail["augment/pooled/invert/weight"] == 0.0
    # probability-weighted mean magnitude (the probability-0 slot counts for almost nothing)
    assert tail["augment/pooled/rotate/magnitude"] == pytest.approx((0.5 * 0.2 + 0.8 + 1e-3) / 1.501)
    assert tail["augment/pooled/cutout/magnitude"] == pytest.approx(0.4)
    assert tail["augment/pooled/invert/magnitude"] == -1.0
    # Swapping sub-policies changes the slot features but not the pooled ones.
    swapped = dict(space.to_values(policy[::-1]), learning_rate=1e-3, ops_used="a")
    other = encoder.features(*encoder.encode_values([swapped]))[0]
    np.testing.assert_allclose(other[-6:], features[-6:])
    assert not np.allclose(other[:-6], features[:-6])


def test_pooling_with_fixed_probabilities_and_without_policies():
    from keras_augtune.space import PolicySpace

    space = PolicySpace.deepaugment(num_sub_policies=2)
    encoder = SpaceEncoder(space.hyperparameters().space, pool_policies=True)
    (group,) = encoder.policy_groups
    assert all(slot.fixed_probability == 1.0 and slot.probability is None for slot in group.slots)
    values = space.to_values([[("crop", 1.0, 0.5), ("crop", 1.0, 0.1)], [("rotate", 1.0, 0.3), ("sharpen", 1.0, 0.9)]])
    features = encoder.features(*encoder.encode_values([values]))[0]
    weights = dict(zip(group.ops, features[-2 * len(group.ops):-len(group.ops)]))
    assert weights["crop"] == 2.0 and weights["rotate"] == 1.0 and weights["invert"] == 0.0
    assert SpaceEncoder(every_type_space().space, pool_policies=True).policy_groups == []


# ----------------------------------------------------------------------------- initial design
def test_space_filling_design_covers_every_op_early_and_stratifies():
    from keras_augtune.oracle.initial_design import space_filling_design
    from keras_augtune.space import PolicySpace

    hp = PolicySpace().hyperparameters()  # 32 ops over 10 slots
    hp.Int("units", 8, 256, step=8)
    encoder = SpaceEncoder(hp.space, pool_policies=True)
    units = space_filling_design(encoder, 8, np.random.default_rng(0))
    codes, active = encoder.decode(units)
    values = [encoder.values(codes[i], active[i]) for i in range(8)]
    ops = [v[n] for v in values[:4] for n in v if n.endswith("/op")]
    assert set(ops) == set(PolicySpace().ops)  # all 32 ops within 4 trials
    # Latin hypercube: each column's 8 values fall in 8 different eighths of the unit range.
    j = next(i for i, c in enumerate(encoder.columns) if c.name == "units")
    assert sorted(np.floor(units[:, j] * 8).astype(int)) == list(range(8))
    again = space_filling_design(encoder, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(again, units)


# ----------------------------------------------------------------------------- targets
def test_target_transforms_keep_the_order():
    from keras_augtune.oracle.training_data import transform_scores

    scores = np.array([0.3, -1.0, 2.0, 0.31, -0.99])
    for target in ("standardise", "log", "rank"):
        transformed = transform_scores(scores, target)
        assert np.all(np.isfinite(transformed))
        assert np.argsort(transformed).tolist() == np.argsort(scores).tolist()
    rank = transform_scores(scores, "rank")
    np.testing.assert_allclose(np.sort(rank), -np.sort(rank)[::-1])  # symmetric normal quantiles
    log = transform_scores(scores, "log")
    # log scaling spreads the best (lowest) scores apart relative to the worst ones
    assert (log[4] - log[1]) / (log[2] - log[1]) > (scores[4] - scores[1]) / (scores[2] - scores[1])
    with pytest.raises(ValueError, match="target"):
        transform_scores(scores, "sqrt")


# ----------------------------------------------------------------------------- local search
def test_local_search_climbs_higher_than_random_sampling():
    from keras_augtune.oracle.candidates import LocalSearch

    hp = kt.HyperParameters()
    for i in range(8):
        hp.Float(f"x{i}", 0.0, 1.0)
        hp.Choice(f"c{i}", ["a", "b", "c", "d"])
    encoder = SpaceEncoder(hp.space)
    target = np.linspace(0.1, 0.9, 8)

    def score(rows):  # best at x = target and every choice "c"
        x = rows.codes[:, 0::2]
        return -np.abs(x - target).sum(axis=1) + (rows.codes[:, 1::2] == 2).sum(axis=1) * 0.2

    rng = np.random.default_rng(0)
    codes, active = encoder.decode(rng.random((3, encoder.dims)))
    parents = Rows(codes, active)
    tried = set(encoder.keys(codes, active))
    local = LocalSearch(encoder, num_candidates=256, num_parents=3).generate(parents, score, tried, np.random.default_rng(1))
    plain = CandidateGenerator(encoder, num_candidates=256, num_parents=3).generate(
        parents, score, tried, np.random.default_rng(1))
    assert local.scores.max() > plain.scores.max() + 0.2
    assert not tried & set(encoder.keys(local.rows.codes, local.rows.active))


def test_pooled_only_features_keep_the_other_hyperparameters():
    space, hp = policy_and_arch_space()
    encoder = SpaceEncoder(hp.space, pool_policies=True, slot_features=False)
    assert encoder.feature_names == ["learning_rate", "ops_used", "ops_used"] + [
        f"augment/pooled/{op}/{kind}" for kind in ("weight", "magnitude") for op in ("rotate", "cutout", "invert")]
    values = dict(space.to_values([[("rotate", 1.0, 0.5)] * 2] * 2), learning_rate=1e-2, ops_used="b")
    features = encoder.features(*encoder.encode_values([values]))
    assert features.shape == (1, 9) and features[0, 3] == 4.0
