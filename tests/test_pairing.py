"""Paired evaluations: execution e of every trial shares one seed (initial weights, batch order,
augmentation seeds), derived from the search seed and e only; the search seed survives a resume."""

import keras
import numpy as np

from conftest import make_tuner, spy_fit
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.seeds import execution_seed


def _spy_fits(tuner):
    """Record, for every training, the trial's policy, the child's weights before training and the
    augmentation layer's seed."""
    def record(hp, model):
        layer = next((l for l in model.layers if isinstance(l, PolicyAugmentation)), None)
        return {"policy": tuner.hypermodel.policy(hp), "weights": [w.copy() for w in model.get_weights()],
                "aug_seed": None if layer is None else layer.seed}

    return spy_fit(tuner, record)


def test_same_execution_index_same_start_across_trials(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, max_trials=3, child_epochs=1, executions_per_trial=2)
    calls = _spy_fits(tuner)
    tuner.search(x, y)
    assert len(calls) == 3 * 2  # trials in order, executions 0 and 1 of each
    by_execution = {0: calls[0::2], 1: calls[1::2]}
    assert len({str(c["policy"]) for c in by_execution[0]}) == 3  # three different policies...
    for execution, group in by_execution.items():
        for other in group[1:]:  # ...start from the same weights at the same execution index
            for a, b in zip(group[0]["weights"], other["weights"]):
                np.testing.assert_array_equal(a, b)
        seeds = {c["aug_seed"] for c in group if c["aug_seed"] is not None}
        assert seeds == {execution_seed(3, execution)}  # and draw the same augmentation seeds
    assert any(not np.array_equal(a, b) for a, b in zip(calls[0]["weights"], calls[1]["weights"]))


def test_search_seed_without_seed_is_fixed_and_survives_resume(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, seed=None, max_trials=1, child_epochs=1)
    seed = tuner.search_seed
    assert seed == tuner.oracle.seed and tuner.search_seed == seed
    tuner.search(x, y)
    resumed = make_tuner(tmp_path, seed=None, max_trials=2, child_epochs=1, overwrite=False)
    assert resumed.search_seed == seed
    keras.backend.clear_session()
