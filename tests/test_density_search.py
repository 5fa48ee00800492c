"""AugmentTuner(evaluator="density"): fold models fitted once (cached in the project), trials scored
without training, the best policies checked with the training reward; DensityEvaluator's cache."""

import json
import os

import numpy as np
import pytest

from conftest import make_tuner, tiny_model
from keras_augtune import Policy
from keras_augtune.evaluation.density import DensityEvaluator
from keras_augtune.hypermodel import AugmentHyperModel


@pytest.fixture
def fits(monkeypatch):
    """Every child training (fold models, trials, checks), counted."""
    calls = []
    original = AugmentHyperModel.fit

    def counted(self, hp, model, *args, **kwargs):
        calls.append(kwargs.get("epochs"))
        return original(self, hp, model, *args, **kwargs)

    monkeypatch.setattr(AugmentHyperModel, "fit", counted)
    return calls


def test_density_search_scores_without_training_then_checks_the_best(tmp_path, digits, fits, capsys):
    x, y = digits
    tuner = make_tuner(tmp_path, evaluator="density", max_trials=5, child_epochs=1, confirm_top_k=2, verbose=1)
    tuner.search(x, y)
    evaluator = tuner.density.evaluator
    assert evaluator.fitted and evaluator.folds == 3 and evaluator.cached_folds == 0
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    assert [t.status for t in trials] == ["COMPLETED"] * 5
    # 3 fold models, no training for the 5 trials, then the baseline and 2 policies checked
    assert len(fits) == 3 + 3
    baseline = trials[0]
    assert baseline.metrics.get_best_value("reward") == pytest.approx(evaluator.clean_score)
    some = trials[2]
    policy = tuner.hypermodel.policy(some.hyperparameters)
    assert some.metrics.get_best_value("reward") == pytest.approx(evaluator.score(policy))
    assert {"density_accuracy_mean", "density_neg_loss_best"} <= set(some.metrics.metrics)
    # the check: its training rewards rank the checked policies first
    checked = json.loads((tmp_path / "p" / "density_check.json").read_text())["trials"]
    assert len(checked) == 3 and baseline.trial_id in checked
    results = tuner.results()
    assert results.baseline_reward == pytest.approx(checked[baseline.trial_id]["reward"])
    ranked = results.best()
    top = [t.trial_id for t in ranked[:3]]
    assert set(top) == set(checked)
    assert [t.reward for t in ranked[:3]] == sorted((c["reward"] for c in checked.values()), reverse=True)
    best = tuner.get_best_policies(1)[0]
    if best.metadata["trial_id"] != baseline.trial_id:
        assert best.metadata["gain"] == pytest.approx(best.metadata["reward"] - checked[baseline.trial_id]["reward"])
    assert all(t.gain is None for t in ranked[3:])  # density scores: no gain in training units
    raw = tuner.results(checked=False)
    assert [t.trial_id for t in raw.best()] == [t.trial_id for t in sorted(
        raw.completed, key=lambda t: (-t.score, int(t.trial_id)))]  # by density score alone
    assert raw.baseline_reward == pytest.approx(evaluator.clean_score)
    out = capsys.readouterr().out
    assert "Density matching: fitting (or loading) 3 fold models" in out and out.count("Check ") == 3

    # resume with more trials: the fold models are loaded, checked trials are not trained again
    fits.clear()
    resumed = make_tuner(tmp_path, evaluator="density", max_trials=7, child_epochs=1, confirm_top_k=2)
    resumed.search(x, y)
    assert resumed.density.evaluator.cached_folds == 3
    again = json.loads((tmp_path / "p" / "density_check.json").read_text())["trials"]
    assert {k: v for k, v in again.items() if k in checked} == checked
    assert len(fits) == len(again) - len(checked)  # only the newly checked policies trained


def test_density_evaluator_cache(tmp_path, digits):
    x, y = digits
    cache = str(tmp_path / "cache")
    first = DensityEvaluator(tiny_model(), folds=2, epochs=1, draws=1, seed=4).fit(x, y, cache_dir=cache)
    assert first.cached_folds == 0 and sorted(os.listdir(cache)) == ["density.json", "fold_0.weights.h5",
                                                                        "fold_1.weights.h5"]
    policy = Policy([[("rotate", 1.0, 0.5)]])
    again = DensityEvaluator(tiny_model(), folds=2, epochs=1, draws=1, seed=4).fit(x, y, cache_dir=cache)
    assert again.cached_folds == 2
    assert again.score(policy) == pytest.approx(first.score(policy))
    assert again.clean_score == pytest.approx(first.clean_score)
    # other settings or other data: trained again, never loaded
    assert DensityEvaluator(tiny_model(), folds=2, epochs=2, draws=1, seed=4).fit(x, y, cache_dir=cache).cached_folds == 0
    assert DensityEvaluator(tiny_model(), folds=2, epochs=2, draws=1, seed=4).fit(x[:150], y[:150],
                                                                                 cache_dir=cache).cached_folds == 0


def test_density_bad_settings(tmp_path, digits):
    with pytest.raises(ValueError, match="Did you mean 'density'"):
        make_tuner(tmp_path, evaluator="densty")
    with pytest.raises(ValueError, match="method='hyperband' has no epochs"):
        make_tuner(tmp_path, evaluator="density", method="hyperband")
    with pytest.raises(ValueError, match="confirm_top_k"):
        make_tuner(tmp_path, evaluator="density", confirm_top_k=-1)

    import keras_tuner

    class Joint(keras_tuner.HyperModel):
        def build(self, hp):
            hp.Int("units", 4, 8, step=4)
            return tiny_model()

    x, y = digits
    tuner = make_tuner(tmp_path, Joint(), evaluator="density", overwrite=True)
    with pytest.raises(ValueError, match=r"cannot tune the model's own hyperparameters \(units\)"):
        tuner.search(x, y)
    assert np.isfinite(DensityEvaluator(tiny_model(), folds=2, epochs=1, draws=1).fit(x, y).clean_score)
