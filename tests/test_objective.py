import math

import pytest

from keras_augtune.evaluation.reward import combine_executions, overfit_filtered_reward


def history(train, val):
    return {"accuracy": train, "val_accuracy": val, "loss": [1.0] * len(train)}


def test_top_k_of_unfiltered_epochs():
    h = history([0.5, 0.6, 0.7, 0.95, 0.99], [0.5, 0.55, 0.65, 0.70, 0.72])
    r = overfit_filtered_reward(h, k=3, max_gap=0.10)
    # epochs 4 and 5 overfit (gap 0.25, 0.27): best three of the rest are 0.65, 0.55, 0.5
    assert r.reward == pytest.approx((0.65 + 0.55 + 0.5) / 3)
    assert r.epochs_kept == 3 and r.best_val_accuracy == 0.72


def test_fewer_kept_epochs_than_k():
    r = overfit_filtered_reward(history([0.5, 0.99], [0.6, 0.6]), k=3)
    assert r.reward == pytest.approx(0.6) and r.epochs_kept == 1


def test_all_epochs_filtered_falls_back_without_nan():
    r = overfit_filtered_reward(history([0.9, 1.0], [0.6, 0.65]), k=3, max_gap=0.1)
    # least-overfit epoch: gap 0.30 -> 0.6 - (0.30 - 0.10) = 0.40
    assert r.all_filtered and r.reward == pytest.approx(0.40)
    assert not math.isnan(r.reward)
    worst = overfit_filtered_reward(history([1.0], [0.05]), max_gap=0.1)
    assert worst.reward == 0.0


def test_gap_threshold_is_inclusive_and_configurable():
    h = history([0.8], [0.7])
    assert overfit_filtered_reward(h, max_gap=0.10).epochs_kept == 1
    assert overfit_filtered_reward(h, max_gap=0.05).epochs_kept == 0


def test_other_accuracy_names_and_errors():
    h = {"acc": [0.5], "val_acc": [0.5]}
    assert overfit_filtered_reward(h).reward == 0.5
    with pytest.raises(ValueError, match="no accuracy metric"):
        overfit_filtered_reward({"loss": [1.0], "val_loss": [1.0]})
    with pytest.raises(ValueError, match="NaN"):
        overfit_filtered_reward(history([float("nan")], [0.5]))
    with pytest.raises(ValueError, match="positive integer"):
        overfit_filtered_reward(history([0.5], [0.5]), k=0)


def test_executions_are_averaged():
    a = overfit_filtered_reward(history([0.5], [0.5]))
    b = overfit_filtered_reward(history([0.7], [0.7]))
    m = combine_executions([a, b])
    assert m["reward"] == pytest.approx(0.6) and m["val_accuracy"] == pytest.approx(0.6)
