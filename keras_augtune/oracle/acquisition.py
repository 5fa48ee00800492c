"""Acquisition functions: how promising a candidate is, given the surrogate's mean and uncertainty.

Each is a small object with one interface, ``acquisition(mu, sigma, best) -> scores``:
``mu`` and ``sigma`` are the surrogate's predicted mean and standard deviation of the
candidates' *minimised* (standardised) objective, ``best`` the lowest observed value,
and a higher score means a more promising candidate. Non-finite inputs score lowest
instead of propagating NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["Acquisition", "EI", "PI", "LCB", "ACQUISITIONS", "make_acquisition"]

#: Acquisition names ``RandomForestOracle(acquisition=...)`` understands ("random": no model at all).
ACQUISITIONS = ("ei", "pi", "lcb", "random")


class Acquisition:
    """Interface: ``__call__(mu, sigma, best) -> scores`` (higher is better), for a minimised objective."""

    def __call__(self, mu: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class _Improvement(Acquisition):
    """Base of the acquisitions that measure improvement over ``best`` by at least the margin ``xi``."""

    def __init__(self, xi: float = 0.01):
        self.xi = xi

    def _z(self, mu, sigma, best):
        """``(improvement, improvement / sigma)``, computed without floating-point warnings."""
        mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            improvement = best - mu - self.xi
            return improvement, improvement / sigma


class EI(_Improvement):
    """Expected improvement over ``best`` by at least the margin ``xi``; always >= 0."""

    def __call__(self, mu, sigma, best):
        improvement, z = self._z(mu, sigma, best)
        with np.errstate(invalid="ignore", over="ignore"):
            scores = improvement * stats.norm.cdf(z) + np.asarray(sigma, dtype=float) * stats.norm.pdf(z)
        return np.where(np.isnan(scores), 0.0, np.maximum(scores, 0.0))


class PI(_Improvement):
    """Probability of improving on ``best`` by at least the margin ``xi``; in [0, 1]."""

    def __call__(self, mu, sigma, best):
        scores = stats.norm.cdf(self._z(mu, sigma, best)[1])
        return np.where(np.isnan(scores), 0.0, scores)


class LCB(Acquisition):
    """Lower confidence bound ``mu - kappa * sigma``, negated so that higher is better."""

    def __init__(self, kappa: float = 1.96):
        self.kappa = kappa

    def __call__(self, mu, sigma, best):
        mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):
            scores = -(mu - self.kappa * sigma)
        return np.where(np.isnan(scores), -np.inf, scores)


def make_acquisition(name: str, xi: float = 0.01, kappa: float = 1.96) -> Acquisition:
    """The acquisition object for one of the model-based names of :data:`ACQUISITIONS`."""
    if name == "ei":
        return EI(xi)
    if name == "pi":
        return PI(xi)
    if name == "lcb":
        return LCB(kappa)
    raise ValueError(f"`acquisition` must be one of {ACQUISITIONS[:3]} to build a model-based acquisition, got {name!r}.")
