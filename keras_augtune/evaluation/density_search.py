"""Density matching as a search's trial reward (``AugmentTuner(evaluator="density")``).

`DensitySearch` holds the [`DensityEvaluator`][keras_augtune.evaluation.density.DensityEvaluator]
of a search: fitted once on the search's training images when the search starts (its fold
models kept in the project folder, so a resumed search loads them), then every trial's reward
is the density score of the trial's policy — no training per trial.

A density score ranks policies by how much of the data's distribution they keep; it is not the
gain a policy brings to a trained model (no policy scores above no augmentation). The search's
confirmation ([`keras_augtune.intensifier.confirmation`][keras_augtune.intensifier.confirmation]) then trains the best
policies by density score and the baseline with the training reward, on paired executions:
the results rank those by their training reward, with paired gains; the other trials keep
their density score, without a gain.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from keras_augtune import compat
from keras_augtune.checks import check_choice
from keras_augtune.evaluation.density import DensityEvaluator
from keras_augtune.evaluation.reward import REWARD
from keras_augtune.files import file_lock
from keras_augtune.space import parse_name

__all__ = ["EVALUATORS", "DensitySearch"]

#: What ``AugmentTuner(evaluator=...)`` accepts by name (or a ``DensityEvaluator``).
EVALUATORS = ("training", "density")

#: The density score's variants, reported as trial metrics next to the reward.
_DETAILS = ("accuracy_mean", "accuracy_best", "neg_loss_mean", "neg_loss_best")


class DensitySearch:
    """The density evaluator of a search: fitted once (cached), then one score per trial."""

    def __init__(self, evaluator: DensityEvaluator, seeded_by_search: bool = False):
        self.evaluator = evaluator
        self.seeded_by_search = seeded_by_search

    @classmethod
    def resolve(cls, evaluator: Any, hypermodel: Any, epochs: int, batch_size: int,
                method: str = "bayesian") -> "DensitySearch | None":
        """``None`` for ``"training"``; for ``"density"`` a ``DensityEvaluator`` of the tuner's
        child (its default folds and draws, ``epochs``/``batch_size`` of the trials, seeded by the
        search's seed when it is fitted); a ``DensityEvaluator`` given is used as it is. The
        search ``method`` cannot be ``"hyperband"`` (no training per trial: no epochs to shorten)."""
        if not isinstance(evaluator, DensityEvaluator):
            if check_choice("evaluator (or a DensityEvaluator)", evaluator, EVALUATORS) == "training":
                return None
            evaluator = DensityEvaluator(hypermodel, epochs=epochs, batch_size=batch_size)
            seeded_by_search = True
        else:
            seeded_by_search = False
        if getattr(hypermodel, "base", None) is not None:
            raise ValueError("evaluator='density' scores a policy without the base recipe (it trains no child per "
                             "trial): give base= with evaluator='training', or leave base out.")
        if method == "hyperband":
            raise ValueError("evaluator='density' trains no child per trial, so method='hyperband' has no epochs "
                             "to shorten: use method='bayesian' (or 'random') with it.")
        return cls(evaluator, seeded_by_search=seeded_by_search)

    def start(self, oracle: Any, x: Any, y: Any, value_range: Any, project_dir: str, search_seed: int,
              log: Callable[[str], Any]) -> None:
        """Check that ``oracle``'s search can be density-scored (one process, no tuned model
        hyperparameters), then fit (or load) the fold models on its training images."""
        if compat.is_chief() or compat.is_worker():
            raise ValueError("evaluator='density' scores a policy in a second or two: run the search in one "
                             "process, not distributed.")
        from keras_tuner.engine.hyperparameters import Fixed

        tuned = [hp.name for hp in oracle.get_space().space if parse_name(hp.name) is None and not isinstance(hp, Fixed)]
        if tuned:
            raise ValueError(f"evaluator='density' scores policies with fold models built once, so it cannot tune "
                             f"the model's own hyperparameters ({', '.join(tuned)}): fix them, or use "
                             "evaluator='training'.")
        log(f"Density matching: fitting (or loading) {self.evaluator.folds} fold models on {len(y)} images.")
        self.fit(x, y, value_range, project_dir, search_seed)

    def fit(self, x: Any, y: Any, value_range: Any, project_dir: str, search_seed: int) -> None:
        """Fit the fold models on the search's training images, or load them from the project folder."""
        if self.seeded_by_search:
            self.evaluator.seed = int(search_seed)
        directory = os.path.join(project_dir, "density")
        os.makedirs(directory, exist_ok=True)
        with file_lock(os.path.join(directory, ".lock")):
            self.evaluator.fit(x, y, value_range=value_range, cache_dir=directory)

    def metrics(self, policy: Any) -> dict[str, float]:
        """A trial's metrics: ``reward`` (the density score) and every variant of it."""
        details = self.evaluator.score_details(policy)
        metrics = {f"density_{name}": float(details[name]) for name in _DETAILS}
        metrics[REWARD] = float(self.evaluator.value_of(details))
        return metrics
