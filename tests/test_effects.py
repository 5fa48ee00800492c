"""Op effects (keras_augtune.effects) on synthetic searches whose helpful and harmful ops are planted."""

import numpy as np
import pytest

from keras_augtune.effects import MIN_TRIALS, estimate_op_effects, op_uses
from keras_augtune.policy import Policy
from keras_augtune.results import SearchResults, TrialResult
from keras_augtune.space import PolicySpace

OPS = ["identity", "rotate", "translate-x", "invert", "vertical-flip", "shear-x", "contrast", "cutout", "sharpness"]
SPACE = PolicySpace(num_sub_policies=3, ops_per_sub_policy=2, ops=OPS)
HELPFUL, HARMFUL = {"translate-x", "rotate"}, {"invert", "vertical-flip"}


def planted_reward(policy, noise=0.0):
    """0.80, +0.03 per sub-policy using translate-x, +0.03 for rotate below magnitude 0.5 only,
    -0.04 for invert, -0.03 for vertical-flip; the other ops do nothing."""
    uses, magnitude = op_uses(policy, OPS)
    u = dict(zip(OPS, uses))
    m = dict(zip(OPS, magnitude))
    rotate = 0.03 if u["rotate"] and m["rotate"] < 0.5 else 0.0
    return 0.80 + 0.03 * u["translate-x"] + rotate * u["rotate"] - 0.04 * u["invert"] - 0.03 * u["vertical-flip"] + noise


def synthetic_results(n, seed):
    rng = np.random.default_rng(seed)
    trials = [TrialResult("00", 1, "COMPLETED", Policy.identity(), 0.80, 0.80, None, {}, is_baseline=True)]
    for t in range(1, n):
        policy = Policy([[(str(rng.choice(OPS)), float(rng.uniform()), float(rng.uniform())) for _ in range(2)]
                         for _ in range(3)])
        reward = planted_reward(policy, rng.normal(0.0, 0.005))
        trials.append(TrialResult(f"{t:02d}", t + 1, "COMPLETED", policy, reward, reward, None, {}))
    return SearchResults(trials, space=SPACE)


def test_op_uses_pools_slots_and_skips_no_ops():
    policy = Policy([[("rotate", 1.0, 0.5), ("rotate", 0.5, 0.1)], [("rotate", 0.5, 0.3), ("invert", 0.0, 1.0)],
                     [("shear-x", 1.0, 0.0), ("identity", 1.0, 0.0)]])
    uses, magnitude = op_uses(policy, ["rotate", "invert", "shear-x"])
    assert uses.tolist() == pytest.approx([1.0 + 0.5, 0.0, 0.0])  # p=0 and magnitude-0 steps do nothing
    assert magnitude[0] == pytest.approx((0.5 + 0.05 + 0.15) / 2.0) and np.isnan(magnitude[1])


@pytest.mark.parametrize("n,seed", [(16, 0), (30, 1), (50, 2)])
def test_planted_ops_come_out_on_top_and_bottom(n, seed):
    effects = estimate_op_effects(synthetic_results(n, seed), num_bootstrap=200)
    ranked = [e.op for e in effects.estimated]
    assert ranked[0] in HELPFUL and set(ranked[-2:]) == HARMFUL, effects.table()
    assert effects["translate-x"].effect > 0 and effects["invert"].effect < 0
    if n >= 30:  # enough trials: the whole interval on the right side, the planted pairs ranked apart
        assert set(ranked[:2]) == HELPFUL, effects.table()
        assert effects["translate-x"].verdict == "helps" and effects["invert"].verdict == "hurts"
        for e in effects:
            assert e.low <= e.effect <= e.high and e.trials > 0
        # rotate helps only below magnitude 0.5 (resolved at three knots: its range ends before
        # the top), translate-x at every magnitude
        low, high = effects["rotate"].helps_at
        assert low < 0.2 and high <= 0.9, effects["rotate"]
        assert effects["translate-x"].helps_at[1] > 0.9, effects["translate-x"]
    assert "identity" not in ranked  # the reference, not an op with an effect


def test_few_trials_and_unused_ops():
    results = synthetic_results(MIN_TRIALS - 1, 0)
    effects = estimate_op_effects(results)
    assert effects.note and all(e.effect is None for e in effects) and "needs at least" in effects.table()
    wide = PolicySpace(num_sub_policies=3, ops_per_sub_policy=2, ops=OPS + ["fog"])
    effects = estimate_op_effects(synthetic_results(20, 0), space=wide, num_bootstrap=50)
    assert effects["fog"].effect is None and effects["fog"].trials == 0 and effects[-1].op == "fog"
    assert "Never applied by a completed trial: fog." in effects.table()
    # an op used by one or two trials is listed apart, never called helpful or harmful
    one = synthetic_results(12, 0)
    one.trials.append(TrialResult("99", 13, "COMPLETED", Policy([[("equalize", 1.0, 0.5)]]), 0.95, 0.95, None, {}))
    few = estimate_op_effects(one, space=PolicySpace(num_sub_policies=3, ops_per_sub_policy=2, ops=OPS + ["equalize"]),
                              num_bootstrap=50)
    assert few["equalize"].verdict == "too few trials" and few["equalize"] not in few.estimated
    assert "Used by fewer than 3 trials (no estimate worth reading): equalize (1)." in few.table()
    # on grayscale images a colour-only op changes nothing: it counts as never applied
    gray = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["color", "rotate"])
    trials = [TrialResult(f"{i:02d}", i + 1, "COMPLETED", Policy([[(op, 1.0, 0.5)]]), 0.8 + 0.01 * i, 0.8, None, {})
              for i, op in enumerate(["color", "rotate"] * 3)]
    assert estimate_op_effects(SearchResults(trials, space=gray), channels=1, num_bootstrap=50)["color"].effect is None
    assert estimate_op_effects(SearchResults(trials, space=gray), num_bootstrap=50)["color"].trials == 3
    with pytest.raises(KeyError, match="No op 'blur'"):
        effects["blur"]
    with pytest.raises(ValueError, match="confidence"):
        estimate_op_effects(results, confidence=1.5)
    # deterministic for a seed
    again = estimate_op_effects(synthetic_results(20, 0), space=wide, num_bootstrap=50)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in effects]


def test_tuner_op_effects_on_a_planted_search(tmp_path):
    """A search driven through the tuner's own oracle (the forest proposing after 10 random
    trials), each trial scored by the planted reward instead of training a child: the planted
    ops come out on top and bottom of tuner.op_effects()."""
    from keras_augtune import AugmentTuner
    from keras_augtune.results import policy_from_values

    tuner = AugmentTuner(max_trials=30, num_initial_points=10, policy_space=SPACE, seed=5,
                         directory=str(tmp_path), project_name="planted", verbose=0)
    rng = np.random.default_rng(0)
    while True:
        trial = tuner.oracle.create_trial("planted")
        if trial.status != "RUNNING":
            break
        reward = planted_reward(policy_from_values(trial.hyperparameters.values), rng.normal(0.0, 0.003))
        tuner.oracle.update_trial(trial.trial_id, {"reward": reward})
        trial.status = "COMPLETED"
        tuner.oracle.end_trial(trial)
    effects = tuner.op_effects(num_bootstrap=200)
    ranked = [e.op for e in effects.estimated]
    assert effects.num_trials == 30
    assert ranked[0] in HELPFUL and ranked[-1] in HARMFUL, effects.table()
    assert effects[ranked[-1]].verdict == "hurts" and effects[ranked[0]].verdict == "helps", effects.table()
