"""Density matching as a search's trial reward (``AugmentTuner(evaluator="density")``) and the
training-reward check of the policies it ranks best.

:class:`DensitySearch` holds the :class:`~keras_augtune.evaluation.density.DensityEvaluator` of a
search: fitted once on the search's training images when the search starts (its fold models
kept in the project folder, so a resumed search loads them), then every trial's reward is the
density score of the trial's policy — no training per trial.

A density score ranks policies by how much of the data's distribution they keep; it is not the
gain a policy brings to a trained model (no policy scores above no augmentation). So the search
ends with a **check**: the ``top_k`` policies by density score (policies that change no image
left out) and the no-augmentation baseline are trained with the ordinary training reward, and
the results rank the checked policies first, by that reward, with their gain over the baseline's
training reward. The checked rewards are kept in ``<project>/density_check.json`` (written after
each training, so a stopped check resumes where it was).
"""

from __future__ import annotations

import json
import os
from typing import Any

from keras_augtune.checks import check_choice
from keras_augtune.evaluation.density import DensityEvaluator
from keras_augtune.evaluation.reward import REWARD
from keras_augtune.files import atomic_write_json, file_lock

__all__ = ["EVALUATORS", "DensitySearch", "DensityCheck"]

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
    def resolve(cls, evaluator: Any, hypermodel: Any, epochs: int, batch_size: int) -> "DensitySearch | None":
        """``None`` for ``"training"``; for ``"density"`` a :class:`DensityEvaluator` of the tuner's
        child (its default folds and draws, ``epochs``/``batch_size`` of the trials, seeded by the
        search's seed when it is fitted); a ``DensityEvaluator`` given is used as it is."""
        if isinstance(evaluator, DensityEvaluator):
            return cls(evaluator)
        if check_choice("evaluator (or a DensityEvaluator)", evaluator, EVALUATORS) == "training":
            return None
        return cls(DensityEvaluator(hypermodel, epochs=epochs, batch_size=batch_size), seeded_by_search=True)

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


class DensityCheck:
    """The training rewards of the checked trials (``<project>/density_check.json``)."""

    def __init__(self, project_dir: str):
        self.path = os.path.join(project_dir, "density_check.json")

    def read(self) -> dict[str, dict[str, Any]]:
        """``{trial_id: {"reward": training reward, "executions": n}}`` of the trials checked so far."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return data.get("trials", {}) if isinstance(data, dict) else {}

    def add(self, trial_id: str, reward: float, executions: int) -> None:
        trials = self.read()
        trials[str(trial_id)] = {"reward": float(reward), "executions": int(executions)}
        atomic_write_json(self.path, {"trials": trials})

    def apply(self, results: Any) -> Any:
        """Rank the checked trials of ``results`` (a ``SearchResults``) first, by training reward.

        A checked trial's ``reward`` becomes its training reward and its ``gain`` the difference
        to the baseline's training reward; the others keep their density score, without a gain
        (a density score and a training reward are not comparable)."""
        checked = self.read()
        if not checked:
            return results
        for trial in results.trials:
            record = checked.get(trial.trial_id)
            trial.gain = None
            if record is not None:
                trial.reward = record["reward"]
                trial.executions = record["executions"]
        baseline = results.baseline
        base = checked.get(baseline.trial_id) if baseline is not None else None
        sign = -1.0 if results.direction == "max" else 1.0
        ranked = sorted((t for t in results.completed if t.trial_id in checked), key=lambda t: sign * t.reward)
        for rank, trial in enumerate(ranked, start=1):
            trial.confirmed_rank = rank
            if base is not None:
                trial.gain = trial.reward - base["reward"]
        return results
