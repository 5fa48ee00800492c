"""AugmentTuner(evaluator="density"): fold models fitted once (cached in the project), trials scored
without training, the best policies confirmed with the training reward; DensityEvaluator's cache."""

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


def test_density_search_scores_without_training_then_confirms_the_best(tmp_path, digits, fits, capsys):
    x, y = digits
    tuner = make_tuner(tmp_path, evaluator="density", max_trials=5, child_epochs=1, confirm_top_k=2,
                       confirm_executions=2, verbose=1, intensifier="confirmation")
    tuner.search(x, y)
    evaluator = tuner.density.evaluator
    assert evaluator.fitted and evaluator.folds == 3 and evaluator.cached_folds == 0
    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    assert [t.status for t in trials] == ["COMPLETED"] * 5
    # 3 fold models, no training for the 5 trials, then the baseline and 2 policies confirmed on 2 executions
    assert len(fits) == 3 + 3 * 2
    baseline = trials[0]
    assert baseline.metrics.get_best_value("reward") == pytest.approx(evaluator.clean_score)
    some = trials[2]
    policy = tuner.hypermodel.policy(some.hyperparameters)
    assert some.metrics.get_best_value("reward") == pytest.approx(evaluator.score(policy))
    assert {"density_accuracy_mean", "density_neg_loss_best"} <= set(some.metrics.metrics)
    # the confirmation: the best by density score, trained; ranked first by their training reward
    results = tuner.results()
    confirmed = [t for t in results.trials if t.confirmed]
    assert len(confirmed) == 3 and results.baseline.confirmed and all(t.executions == 2 for t in confirmed)
    by_density = [t.trial_id for t in results.best(skip_identity=True, by_score=True)[:2]]
    assert {t.trial_id for t in confirmed if not t.is_baseline} == set(by_density)
    ranked = results.best()
    assert {t.trial_id for t in ranked[:3]} == {t.trial_id for t in confirmed}
    assert [t.reward for t in ranked[:3]] == sorted((t.reward for t in confirmed), reverse=True)
    for t in confirmed:  # rewards are the training rewards now, not density scores
        assert t.reward == pytest.approx(sum(t.execution_rewards) / 2)
        assert t.gain is not None and (t.is_baseline or t.gain_interval is not None)
    assert len(ranked) > 3 and all(t.gain is None for t in ranked[3:])  # density scores: no gain in training units
    verdict, winner = results.verdict(), next(t for t in ranked if not t.is_baseline)  # judged on training rewards
    assert verdict.winner.trial_id == winner.trial_id and verdict.gain == winner.gain
    assert verdict.better == (winner.gain_interval[0] > 0)
    out = capsys.readouterr().out
    assert "Density matching: fitting (or loading) 3 fold models" in out and "Confirmation" in out

    # resume with more trials: the fold models are loaded, confirmed trainings are not repeated
    fits.clear()
    resumed = make_tuner(tmp_path, evaluator="density", max_trials=7, child_epochs=1, confirm_top_k=2,
                         confirm_executions=2, intensifier="confirmation")
    resumed.search(x, y)
    assert resumed.density.evaluator.cached_folds == 3
    again = [t for t in resumed.results().trials if t.confirmed]
    new = {t.trial_id for t in again} - {t.trial_id for t in confirmed}
    assert len(fits) == 2 * len(new)  # only the newly confirmed policies trained


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
