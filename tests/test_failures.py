"""Failing trials: a diverging or crashing child is recorded FAILED with its reason and the
search goes on; errors that would fail every trial stop the search at once with a clear message."""

import csv

import keras
import keras_tuner
import numpy as np
import pytest

import conftest
from conftest import tiny_model
from keras_augtune import PolicySpace

SMALL_SPACE = PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=["identity", "rotate", "invert"])


class ScriptedChild(keras_tuner.HyperModel):
    """Trains normally, except on the fit calls listed in ``modes`` (0-based call index)."""

    def __init__(self, modes):
        super().__init__()
        self.modes = modes
        self.calls = 0

    def build(self, hp):
        return tiny_model(compiled=True)

    def fit(self, hp, model, *args, **kwargs):
        mode = self.modes.get(self.calls, "ok")
        self.calls += 1
        if mode == "raise":
            raise RuntimeError("child exploded")
        if mode == "nan":  # a genuinely diverged model: its loss is NaN from the first epoch
            model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
        history = model.fit(*args, **kwargs)
        if mode == "inf":  # Keras reports an infinite validation loss
            history.history["val_loss"][-1] = float("inf")
        return history


def make_tuner(tmp_path, hypermodel, **kwargs):
    options = dict(max_trials=5, child_epochs=1, policy_space=SMALL_SPACE, seed=1, verbose=1)
    return conftest.make_tuner(tmp_path, hypermodel, **{**options, **kwargs})


def test_nan_inf_and_raising_children_fail_with_reason_and_search_goes_on(tmp_path, digits, capsys):
    x, y = digits
    tuner = make_tuner(tmp_path, ScriptedChild({1: "nan", 3: "raise", 4: "inf"}))
    tuner.search(x, y)
    trials = {t.trial_id: t for t in tuner.oracle.trials.values()}
    assert sorted(trials) == ["0", "1", "2", "3", "4"]
    status = {k: t.status for k, t in trials.items()}
    assert status == {"0": "COMPLETED", "1": "FAILED", "2": "COMPLETED", "3": "FAILED", "4": "FAILED"}
    assert "The child model diverged: loss became nan at epoch 1" in trials["1"].message
    assert "RuntimeError: child exploded" in trials["3"].message
    assert "The child model diverged: val_loss became inf at epoch 1" in trials["4"].message
    # failed, never retried (a failure is a result: retrying a diverging policy wastes a trial)
    assert all(tuner.oracle._run_times[k] == 1 for k in trials)
    out = capsys.readouterr().out
    assert "Trial 1 (2/5) failed: The child model diverged: loss became nan at epoch 1" in out
    assert "Trial 3 (4/5) failed: RuntimeError: child exploded" in out
    # results only from completed trials; the summary counts the failures
    assert {p.metadata["trial_id"] for p in tuner.get_best_policies(5)} == {"0", "2"}
    assert "2 completed, 3 failed trials" in tuner.summary_text()
    with open(tuner.notebook_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["trial"] for r in rows if r["epoch"]} == {"0", "2"}  # epochs of the trainings that finished
    failed = {r["trial"]: r for r in rows if r["status"] == "FAILED"}  # and one row per failed trial, with its reason
    assert sorted(failed) == ["1", "3", "4"] and failed["3"]["error"] == "RuntimeError: child exploded"
    assert failed["1"]["error"] == "The child model diverged: loss became nan at epoch 1." and failed["1"]["policy"]


def test_consecutive_failures_stop_the_search_with_the_reasons(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, ScriptedChild({i: "raise" for i in range(10)}),
                       max_consecutive_failed_trials=2, baseline_trial=False)
    with pytest.raises(RuntimeError) as info:
        tuner.search(x, y)
    message = str(info.value)
    assert "The search stopped: 2 trials in a row failed (max_consecutive_failed_trials=2)" in message
    assert "trial 0: RuntimeError: child exploded; trial 1: RuntimeError: child exploded" in message
    assert "Traceback" not in message
    assert len(tuner.oracle.trials) == 2  # stopped at once, not after max_trials


def test_failures_in_between_successes_do_not_stop_the_search(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, ScriptedChild({0: "raise", 2: "raise"}), max_trials=4,
                       max_consecutive_failed_trials=2, baseline_trial=False)
    tuner.search(x, y)
    assert [tuner.oracle.trials[k].status for k in "0123"] == ["FAILED", "COMPLETED", "FAILED", "COMPLETED"]


def test_loss_that_does_not_fit_the_labels_stops_before_any_trial(tmp_path, digits):
    x, y = digits  # integer class ids, but the user compiled with a one-hot loss
    tuner = make_tuner(tmp_path, tiny_model(compiled=True, loss="categorical_crossentropy"))
    with pytest.raises(ValueError, match="loss cannot be computed on the labels \\(integer class ids"):
        tuner.search(x, y)
    assert not tuner.oracle.trials


def test_model_output_not_matching_one_hot_labels_stops_before_any_trial(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, tiny_model(classes=3, compiled=True, loss="categorical_crossentropy"))
    with pytest.raises(ValueError, match=r"output has shape \(3,\) per image, but the labels have 10 classes"):
        tuner.search(x, keras.utils.to_categorical(y, 10))
    assert not tuner.oracle.trials


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_consecutive_failed_trials_must_be_positive(tmp_path, value):
    with pytest.raises(ValueError, match="max_consecutive_failed_trials must be a positive integer"):
        make_tuner(tmp_path, "simple", max_consecutive_failed_trials=value)


def test_failure_reason_keeps_the_exception_type_and_its_meaningful_line(tmp_path):
    """Keras's multi-line errors end with a list of layers: the reason is the type and the first line(s)."""
    import traceback

    from keras_augtune.trials import failure_reason

    path = str(tmp_path / "other.weights.h5")
    tiny_model(classes=3).save_weights(path)  # another model's weights
    try:
        try:
            tiny_model().load_weights(path)
        except Exception as exc:  # as AugmentTuner.run_trial wraps a child's error
            raise keras_tuner.errors.FailedTrialError(f"{type(exc).__name__}: {exc}") from exc
    except keras_tuner.errors.FailedTrialError:
        message = traceback.format_exc()
    assert message.strip().splitlines()[-1].startswith("[<")  # what the reason used to be
    reason = failure_reason(message)
    assert reason.startswith("ValueError: ") and "could not be loaded" in reason, reason
    assert "\n" not in reason and len(reason) <= 300
    assert failure_reason("worker lost: trial re-queued") == "worker lost: trial re-queued"
    assert failure_reason(None) == "unknown error"
