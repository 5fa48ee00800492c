"""What the surrogate is fitted on: the encoded trials, split by what is known about them."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
from scipy import stats
from keras_tuner.engine import trial as trial_module

__all__ = ["Rows", "TrainingData"]

#: Scores given to running trials ("constant liar") and how failed trials are fitted.
LIARS = ("mean", "best", "worst")
FAILED_POLICIES = ("ignore", "worst")
#: Transformations of the minimised scores before they are standardised and fitted.
TARGETS = ("standardise", "log", "rank")


@dataclasses.dataclass(frozen=True)
class Rows:
    """Encoded trials: ``codes`` and ``active`` arrays of shape ``(n, dims)`` (see ``encoding``)."""

    codes: np.ndarray
    active: np.ndarray

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, indices) -> "Rows":
        return Rows(self.codes[indices], self.active[indices])

    @staticmethod
    def stack(parts: Iterable["Rows"]) -> "Rows":
        parts = list(parts)
        return Rows(np.vstack([p.codes for p in parts]), np.vstack([p.active for p in parts]))


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The trials an oracle has seen, in trial order within each group.

    Attributes:
        observed: Completed trials with a finite score.
        scores: Their scores, sign-flipped for ``"max"`` objectives (always minimised).
        failed: Failed or invalid trials, and completed ones with a NaN/infinite score.
        running: Trials still running (parallel workers).
    """

    observed: Rows
    scores: np.ndarray
    failed: Rows
    running: Rows

    @classmethod
    def from_trials(cls, trials, rows: Rows, direction: str, running_ids) -> "TrainingData | None":
        """Split ``trials`` (encoded as ``rows``, same order); None before the first finite score."""
        sign = -1.0 if direction == "max" else 1.0
        observed, scores, failed, running = [], [], [], []
        for i, trial in enumerate(trials):
            if trial.trial_id in running_ids:
                running.append(i)
            elif trial.status == trial_module.TrialStatus.COMPLETED and is_finite(trial.score):
                observed.append(i)
                scores.append(sign * float(trial.score))
            elif trial.status in (
                trial_module.TrialStatus.COMPLETED,  # with a NaN/inf score
                trial_module.TrialStatus.FAILED,
                trial_module.TrialStatus.INVALID,
            ):
                failed.append(i)
        if not observed:
            return None
        return cls(rows.take(observed), np.array(scores), rows.take(failed), rows.take(running))

    def standardised_scores(self, target: str = "standardise") -> np.ndarray:
        """The observed scores, transformed, then centred and scaled to unit standard deviation.

        ``target``: ``"standardise"`` (no transformation); ``"log"``: SMAC's log scaling,
        ``log((y - lo) / (max - lo))`` with ``lo`` below the minimum by the distance from
        the minimum to the 5th percentile, which spreads the best scores apart;
        ``"rank"``: normal quantiles of the ranks (a Gaussian copula: only the order counts).
        """
        y = transform_scores(self.scores, target)
        center = float(np.mean(y))
        scale = float(np.std(y)) or 1.0
        return (y - center) / scale

    def fit_set(
        self, failed_trials: str = "ignore", constant_liar: str = "mean", with_lies: bool = True,
        target: str = "standardise",
    ):
        """Rows and targets to fit, and the standardised observed scores.

        Returns ``(rows, targets, y)``: the observed trials with ``y`` (transformed and
        standardised scores); with ``failed_trials="worst"`` the failed trials with the
        worst ``y``; with ``with_lies`` the running trials with the ``constant_liar`` score.
        """
        y = self.standardised_scores(target)
        parts, targets = [self.observed], [y]
        if failed_trials == "worst" and len(self.failed):
            parts.append(self.failed)
            targets.append(np.full(len(self.failed), y.max()))
        if with_lies and len(self.running):
            lie = {"mean": 0.0, "best": y.min(), "worst": y.max()}[constant_liar]
            parts.append(self.running)
            targets.append(np.full(len(self.running), lie))
        return Rows.stack(parts), np.concatenate(targets), y


def is_finite(score) -> bool:
    """Whether a trial's score is a finite number."""
    try:
        return score is not None and math.isfinite(float(score))
    except (TypeError, ValueError):
        return False


def transform_scores(scores: np.ndarray, target: str) -> np.ndarray:
    """Minimised scores under one of :data:`TARGETS` (order preserved)."""
    scores = np.asarray(scores, dtype=float)
    if target == "standardise" or scores.size < 2:
        return scores
    if target == "log":
        low, high = float(scores.min()), float(scores.max())
        if high == low:
            return np.zeros_like(scores)
        floor = low - (float(np.percentile(scores, 5)) - low) - 1e-10 * max(1.0, abs(low))
        return np.log((scores - floor) / (high - floor))
    if target == "rank":
        return stats.norm.ppf((stats.rankdata(scores) - 0.5) / scores.size)
    raise ValueError(f"`target` must be one of {TARGETS}, got {target!r}.")
