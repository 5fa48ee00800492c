"""The reward: the overfit-filtered top-K validation accuracy (DeepAugment's objective).

For each execution (DeepAugment's ``opt_samples``), take the epochs whose gap
``train accuracy - validation accuracy`` is at most ``max_gap``, and average the
``k`` highest validation accuracies among them. The trial's reward is the mean
over executions.

When *every* epoch of an execution is filtered out, the reward is the validation
accuracy of the least-overfit epoch minus its excess gap
(``val_acc - (gap - max_gap)``, floored at 0): still a number, never NaN, and
always below what the same accuracy would score without overfitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from keras_augtune.checks import check_int

#: Name of the objective the tuner reports.
REWARD = "reward"

_ACCURACY_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def reward_objective() -> "keras_tuner.Objective":
    """The Keras Tuner objective to maximise: ``Objective("reward", "max")``."""
    import keras_tuner  # here, not at the top: reading rewards and results needs no TensorFlow

    return keras_tuner.Objective(REWARD, direction="max")


def check_objective(objective: Any) -> Any:
    """``objective`` when it is the reward (``"reward"``, maximised); otherwise a one-line error.

    An augmentation search ranks its trials, measures their gains over no augmentation and names
    a winner on one quantity, the reward: another objective would rank on one number and decide
    on another. To rank on a quantity of your own, return it from ``HyperModel.fit`` as a number:
    it is then the execution's reward (higher is better)."""
    name = objective if isinstance(objective, str) else getattr(objective, "name", None)
    direction = "max" if isinstance(objective, str) else getattr(objective, "direction", None)
    if name != REWARD or direction != "max":
        shown = objective if isinstance(objective, str) else f"{name!r} ({direction})"
        raise ValueError(
            f"objective={shown} is not supported: the search ranks, measures gains and names a winner on "
            f"{REWARD!r} (the overfit-filtered validation accuracy, maximised). Leave objective unset, or "
            "return your own quantity from HyperModel.fit as a number (higher is better): it is then the reward.")
    return objective


@dataclass(frozen=True)
class ExecutionReward:
    """The reward of one training run and the numbers behind it."""

    reward: float
    best_val_accuracy: float
    final_val_accuracy: float
    final_accuracy: float
    epochs_kept: int
    epochs: int

    @property
    def all_filtered(self) -> bool:
        return self.epochs_kept == 0


def accuracy_keys(history: Mapping[str, Sequence[float]]) -> tuple[str, str]:
    """The (train, validation) accuracy keys of a Keras ``History.history``."""
    for key in _ACCURACY_KEYS:
        if key in history and f"val_{key}" in history:
            return key, f"val_{key}"
    raise ValueError(
        "The training history has no accuracy metric with a validation counterpart "
        f"(looked for {', '.join(_ACCURACY_KEYS)}; found {', '.join(sorted(history)) or 'nothing'}). "
        "Compile the model with metrics=['accuracy'] and pass validation data."
    )


def overfit_filtered_reward(history: Mapping[str, Sequence[float]], k: int = 3, max_gap: float = 0.10) -> ExecutionReward:
    """Score one training history (``History.history``): see the module docstring."""
    check_int("k (the number of best epochs averaged)", k)
    if not (isinstance(max_gap, (int, float)) and math.isfinite(max_gap)):
        raise ValueError(f"max_gap must be a finite number, got {max_gap!r}.")
    train_key, val_key = accuracy_keys(history)
    train, val = list(map(float, history[train_key])), list(map(float, history[val_key]))
    if not val or len(train) != len(val):
        raise ValueError(f"The history has {len(train)} training and {len(val)} validation accuracies.")
    if not all(math.isfinite(v) for v in train + val):
        raise ValueError("The history contains NaN or infinite accuracies.")
    gaps = [t - v for t, v in zip(train, val)]
    kept = sorted((v for v, g in zip(val, gaps) if g <= max_gap + 1e-12), reverse=True)
    if kept:
        reward = sum(kept[:k]) / len(kept[:k])
    else:
        least = min(range(len(val)), key=lambda i: gaps[i])
        reward = max(0.0, val[least] - (gaps[least] - max_gap))
    return ExecutionReward(
        reward=reward, best_val_accuracy=max(val), final_val_accuracy=val[-1],
        final_accuracy=train[-1], epochs_kept=len(kept), epochs=len(val),
    )


def combine_executions(rewards: Sequence[ExecutionReward]) -> dict[str, float]:
    """The trial's metrics: mean reward over executions plus the raw accuracies."""
    n = len(rewards)
    if not n:
        raise ValueError("No execution finished.")
    mean = lambda attr: sum(getattr(r, attr) for r in rewards) / n  # noqa: E731
    return {
        REWARD: mean("reward"),
        "val_accuracy": mean("best_val_accuracy"),
        "final_val_accuracy": mean("final_val_accuracy"),
        "accuracy": mean("final_accuracy"),
        "overfit_gap": mean("final_accuracy") - mean("final_val_accuracy"),
        "epochs_kept": mean("epochs_kept"),
    }
