"""The confirmation intensifier's verdict on whole searches (the race's, the default, is calibrated in
test_calibration.py and tested end to end in test_race_search.py): a null search (the reward ignores the policy, or no policy can change
an image) says "no better" on at least 9 of 10 seeds; a planted effect (validation digits rotated
±20°, a space holding `rotate`) says "better", with `rotate` in the winner."""

import gc

import numpy as np

from conftest import SMALL_SPACE_OPS, make_tuner, noise_child
from keras_augtune import AugmentTuner, PolicySpace


def test_null_search_says_no_better_on_nine_of_ten_seeds(tmp_path, digits, monkeypatch):
    x, y = digits
    # Keras Tuner collects garbage around every build (about a second here with TensorFlow loaded), which
    # would dominate these 140 trainings of a child that does not train
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=SMALL_SPACE_OPS)
    verdicts = []
    for seed in range(10):
        tuner = make_tuner(tmp_path / str(seed), noise_child(), policy_space=space, seed=seed + 1, max_trials=6,
                           num_initial_points=3, confirm_top_k=3, confirm_executions=3,
                           intensifier="confirmation")
        tuner.search(x, y)
        results = tuner.results()
        verdict = results.verdict()
        assert verdict.winner is not None and verdict.winner.confirmed and verdict.winner.executions == 3
        # what the old report said: the best trial's unpaired gain over one baseline draw, always >= 0 here
        naive = max(t.reward for t in results.completed) - results.baseline.execution_rewards[0]
        verdicts.append((verdict.better, naive))
    no_better = [better for better, _ in verdicts].count(False)
    assert no_better >= 9, f"{no_better}/10 no better: {verdicts}"
    assert sum(naive > 0 for _, naive in verdicts) >= 5  # the winner's curse the verdict has to see through


def test_a_space_of_noops_says_no_better(tmp_path, digits):
    x, y = digits
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=2, ops=["identity", "color", "add-to-hue-and-saturation"])
    tuner = make_tuner(tmp_path, noise_child(), policy_space=space, max_trials=5, confirm_top_k=3,
                       intensifier="confirmation")
    tuner.search(x, y)  # grayscale: nothing to try after the baseline
    assert len(tuner.oracle.trials) == 1
    verdict = tuner.results().verdict()
    assert not verdict.better and verdict.winner is None and verdict.recommended.is_identity
    assert verdict.text == "No augmentation policy completed: use no augmentation."


def _rotated_digits():
    import imgaug.augmenters as iaa

    from keras_augtune.loaders import load_digits

    x, y = load_digits(16)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, val = order[:400], order[400:600]
    angles = np.where(rng.random(len(val)) < 0.5, -20.0, 20.0)
    x_val = np.stack([iaa.Affine(rotate=float(a)).augment_image(im) for a, im in zip(angles, x[val])])
    return x[train], y[train], x_val.reshape(-1, 16, 16, 1), y[val]


def test_planted_rotation_effect_says_better_with_rotate(tmp_path):
    import keras

    x, y, x_val, y_val = _rotated_digits()
    model = keras.Sequential([
        keras.Input((16, 16, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["identity", "rotate", "invert"],
                        magnitude_range=(0.5, 1.0), search_probabilities=False)
    # reward_max_gap=1: the rotated validation set makes every epoch "overfit" by the default 0.10
    tuner = AugmentTuner(model, max_trials=3, num_initial_points=3, policy_space=space, child_epochs=5,
                         batch_size=64, reward_max_gap=1.0, confirm_top_k=1, confirm_executions=3, intensifier="confirmation",
                         directory=str(tmp_path), seed=1, verbose=0)
    tuner.search(x, y, validation_data=(x_val, y_val))
    verdict = tuner.results().verdict()
    assert verdict.better, tuner.summary_text()
    assert "rotate" in verdict.winner.policy.ops and verdict.interval[0] > 0
    assert verdict.recommended.ops == verdict.winner.policy.ops
    assert tuner.get_best_policies(1)[0].metadata["trial_id"] == verdict.winner.trial_id
