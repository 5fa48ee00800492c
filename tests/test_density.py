"""Density matching: folds, determinism, identity = clean accuracy, destructive policies score lower."""

import numpy as np
import pytest

from keras_augtune import Policy
from keras_augtune.data import stratified_folds
from keras_augtune.evaluation.density import DensityEvaluator

INVERT = Policy([[("invert", 1.0, 1.0)]])
CUTOUT = Policy([[("cutout", 1.0, 1.0)]])


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:360] * (255.0 / 16.0)).round().astype(np.uint8)
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]  # 16x16 grayscale
    return x, d.target[:360]


@pytest.fixture(scope="module")
def fitted(digits):
    return DensityEvaluator(folds=3, epochs=2, batch_size=32, draws=2, seed=3).fit(*digits)


def test_stratified_folds_hold_every_item_out_once():
    y = np.repeat(np.arange(4), 6)
    folds = stratified_folds(y, 3, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(len(y)))
    for kept, h in folds:
        assert set(y[h]) == set(range(4)) and not set(kept) & set(h)
    with pytest.raises(ValueError, match="class 3 has 2 image"):
        stratified_folds(np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]), 3, seed=0)
    with pytest.raises(ValueError, match="folds must be an integer >= 2"):
        stratified_folds(y, 1, seed=0)


def test_identity_scores_the_clean_held_out_accuracy(fitted, digits):
    x, y = digits
    correct = 0
    for model, held in zip(fitted.models, fitted.fold_indices):  # computed independently of score()
        probabilities = model.predict(x[held], verbose=0)
        correct += int((probabilities.argmax(axis=1) == y[held]).sum())
    clean = correct / len(y)
    assert fitted.score(Policy.identity()) == pytest.approx(clean, abs=1e-12)
    assert fitted.clean_score == pytest.approx(clean, abs=1e-12)
    assert clean > 0.3  # the fold models learnt something in 2 epochs


def test_destructive_policies_score_lower(fitted):
    identity = fitted.score_details(Policy.identity())
    for policy in (INVERT, CUTOUT):
        details = fitted.score_details(policy)
        assert details["accuracy_mean"] < identity["accuracy_mean"] - 0.05
        assert details["neg_loss_mean"] < identity["neg_loss_mean"]
    assert fitted.score(INVERT) < fitted.score(Policy.identity())


def test_scores_are_deterministic_for_a_seed(fitted, digits):
    ta = Policy.trivial_augment()
    details = fitted.score_details(ta)
    repeat = fitted.score_details(ta)
    details.pop("seconds"), repeat.pop("seconds")
    assert repeat == details
    again = DensityEvaluator(folds=3, epochs=2, batch_size=32, draws=2, seed=3).fit(*digits)
    assert again.clean_details == fitted.clean_details  # same folds, same training
    assert again.score(ta) == fitted.score(ta)
    assert details["accuracy_best"] >= details["accuracy_mean"]
    assert details["neg_loss_best"] >= details["neg_loss_mean"]


def test_metric_and_reduction_pick_the_number(fitted):
    details = fitted.score_details(CUTOUT)
    for metric, reduction, key in (("loss", "mean", "neg_loss_mean"), ("accuracy", "best", "accuracy_best")):
        fitted.metric, fitted.reduction = metric, reduction
        try:
            assert fitted.score(CUTOUT) == details[key]
        finally:
            fitted.metric, fitted.reduction = "accuracy", "mean"


@pytest.mark.parametrize("kwargs,exc,message", [
    ({"folds": 1}, ValueError, "folds must be an integer >= 2"),
    ({"draws": 0}, ValueError, "draws must be a positive integer"),
    ({"epochs": 1.5}, ValueError, "epochs must be a positive integer"),
    ({"metric": "acuracy"}, ValueError, "Did you mean 'accuracy'"),
    ({"reduction": "max"}, ValueError, "reduction must be one of 'mean', 'best'"),
    ({"model": "simpel"}, ValueError, "Did you mean 'simple'"),
    ({"seed": "0"}, TypeError, "seed must be an integer"),
])
def test_bad_options(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        DensityEvaluator(**kwargs)


def test_score_before_fit_and_too_few_images():
    with pytest.raises(RuntimeError, match="not fitted: call fit"):
        DensityEvaluator().score(Policy.identity())
    x = np.zeros((8, 8, 8, 1), np.uint8)
    with pytest.raises(ValueError, match="Too few images for 3 stratified folds"):
        DensityEvaluator(folds=3).fit(x, np.array([0] * 6 + [1] * 2))
