"""No-op policies in a search: never trained twice, never ranked as an augmentation with a gain;
the default space on grayscale images leaves out the colour-only ops (and a resume keeps the space
the search began with). The child is `noise_child` (no training), so these searches are cheap."""

import json

import numpy as np

from conftest import make_tuner, noise_child
from keras_augtune import AugmentTuner, PolicySpace
from keras_augtune.oracle import RandomForestOracle
from keras_augtune.evaluation.reward import reward_objective
from keras_augtune.ops import COLOR_ONLY_OPS
from keras_augtune.policy import Policy
from keras_augtune.space import baseline_values

# On grayscale images three of these four ops change nothing.
MOSTLY_NOOP = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1,
                          ops=["identity", "color", "add-to-hue-and-saturation", "invert"])


def _completed(tuner):
    return [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]


def _op_choices(oracle):
    return {tuple(h.values) for h in oracle.hyperparameters.space if h.name.endswith("/op")}


def test_noop_proposals_are_never_trained_twice(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, noise_child(), policy_space=MOSTLY_NOOP, max_trials=8, num_initial_points=4)
    tuner.search(x, y)
    trials = _completed(tuner)
    assert len(trials) == 8
    policies = [tuner.hypermodel.policy(t.hyperparameters) for t in trials]
    assert [p.is_noop(1) for p in policies].count(True) == 1 and policies[0].is_identity  # the baseline only
    keys = {json.dumps(MOSTLY_NOOP.canonical_values(t.hyperparameters.values, channels=1), sort_keys=True)
            for t in trials}
    assert len(keys) == len(trials)
    assert all(p.ops == ["invert"] for p in policies[1:])


def test_noop_trials_are_never_ranked_as_augmentations(tmp_path, digits):
    x, y = digits
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["identity", "rotate", "invert"])
    noop = space.to_values(Policy([[("rotate", 0.0, 0.7)]]))  # probability 0: changes nothing
    # an oracle without a canonicaliser (as a custom oracle might be) trains the no-op policy
    oracle = RandomForestOracle(objective=reward_objective(), max_trials=3, seed=1,
                                initial_values=[baseline_values(space), noop])
    child = noise_child(effect=lambda p: 0.05 if p.ops == ["rotate"] and p.is_noop() else 0.0)  # it scores best
    tuner = make_tuner(tmp_path, child, policy_space=space, oracle=oracle)
    tuner.search(x, y)
    results = tuner.results()
    assert len(results.completed) == 3
    noop_trial = next(t for t in results.completed if t.is_noop and not t.is_baseline)
    assert noop_trial.reward > max(t.reward for t in results.completed if t is not noop_trial)  # it scored best
    ranked = results.best()
    assert noop_trial not in ranked and results.baseline in ranked and len(ranked) == 2
    assert all(not p.is_noop() for p in tuner.get_best_policies(3) if p.metadata["trial_id"] != results.baseline.trial_id)
    table = [row for row in tuner.summary_text().split("policy\n", 1)[1].splitlines() if row[:4].strip().isdigit()]
    assert len(table) == 2 and not any(row.split()[1] == noop_trial.trial_id for row in table)
    assert [t.trial_id for t in results.best(skip_identity=True)] == [t.trial_id for t in ranked if not t.is_noop]


def test_default_space_on_grayscale_leaves_out_colour_ops_and_a_resume_keeps_the_space(tmp_path, digits):
    x, y = digits
    rgb = np.repeat(x, 3, axis=-1)

    def tuner(project, max_trials):
        return AugmentTuner(noise_child(), max_trials=max_trials, num_sub_policies=1, ops_per_sub_policy=1,
                            child_epochs=1, directory=str(tmp_path), project_name=project, seed=0, verbose=0,
                            confirm_top_k=0)  # the trials only

    gray = tuner("gray", 2)
    assert COLOR_ONLY_OPS <= set(gray.policy_space.ops)  # not decided before the data is seen
    gray.search(x, y)
    assert not COLOR_ONLY_OPS & set(gray.policy_space.ops)
    assert _op_choices(gray.oracle) == {tuple(gray.policy_space.ops)}
    resumed = tuner("gray", 3)
    resumed.search(rgb, y)  # resumed on colour images: the space the search began with is kept
    assert len(_completed(resumed)) == 3 and resumed.policy_space.ops == gray.policy_space.ops
    assert _op_choices(resumed.oracle) == {tuple(gray.policy_space.ops)}

    colour = tuner("rgb", 1)
    colour.search(rgb, y)
    assert COLOR_ONLY_OPS <= set(colour.policy_space.ops)
    again = tuner("rgb", 2)
    again.search(x, y)  # resumed on grayscale: the colour ops stay in the space (and in the oracle's)
    assert again.policy_space.ops == colour.policy_space.ops and len(_completed(again)) == 2
    # a user's explicit ops are kept on grayscale
    explicit = make_tuner(tmp_path / "explicit", noise_child(), policy_space=MOSTLY_NOOP, max_trials=1)
    explicit.search(x, y)
    assert explicit.policy_space == MOSTLY_NOOP
