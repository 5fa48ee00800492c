"""The surrogate model: a regression forest that predicts a mean and an uncertainty."""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

__all__ = ["Forest", "FORESTS"]

#: Forest kinds ``Forest`` fits.
FORESTS = ("extra_trees", "random_forest")


class Forest:
    """A lean regression forest: scikit-learn trees fitted without per-tree overhead.

    ``"extra_trees"``: extremely randomised trees on all rows (as
    ``ExtraTreesRegressor``); ``"random_forest"``: CART trees on bootstrap
    samples (as ``RandomForestRegressor``). Prediction returns a mean and a
    standard deviation: the law-of-total-variance mixture over trees, i.e. the
    spread of the trees' means plus the mean within-leaf variance (Hutter et
    al., SMAC).
    """

    def __init__(self, kind, n_estimators, min_samples_leaf, max_features, seed, max_samples=None):
        self.kind = kind
        self.max_samples = max_samples
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.seed = seed
        self.trees = []

    def fit(self, features: np.ndarray, targets: np.ndarray) -> "Forest":
        """Fit the trees on ``features`` (n, d) and ``targets`` (n,); returns self."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        targets = np.ascontiguousarray(targets, dtype=np.float64).reshape(-1, 1)
        tree_seeds = np.random.SeedSequence(self.seed).generate_state(self.n_estimators)
        tree_class = ExtraTreeRegressor if self.kind == "extra_trees" else DecisionTreeRegressor
        self.trees = []
        with sklearn.config_context(skip_parameter_validation=True):
            for tree_seed in tree_seeds:
                tree = tree_class(
                    min_samples_leaf=self.min_samples_leaf,
                    max_features=self.max_features,
                    random_state=int(tree_seed),
                )
                n = targets.shape[0]
                size = n if self.max_samples is None else min(n, self.max_samples)
                rng = np.random.default_rng(int(tree_seed))
                weights = None
                if self.kind == "random_forest":  # bootstrap sample of `size` rows
                    weights = np.bincount(rng.integers(0, n, size), minlength=n).astype(np.float64)
                elif size < n:  # a random subset of `size` rows
                    weights = np.zeros(n)
                    weights[rng.choice(n, size, replace=False)] = 1.0
                if weights is not None:
                    rows = np.flatnonzero(weights)
                    tree.fit(features[rows], targets[rows], sample_weight=weights[rows], check_input=False)
                else:
                    tree.fit(features, targets, check_input=False)
                self.trees.append(tree)
        return self

    def predict(self, features: np.ndarray, min_variance: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Predicted mean and standard deviation at each row (variance floored at ``min_variance``)."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        mean = np.zeros(features.shape[0])
        second = np.zeros(features.shape[0])
        for tree in self.trees:
            leaves = tree.tree_.apply(features)
            tree_mean = tree.tree_.value[leaves, 0, 0]
            mean += tree_mean
            second += tree.tree_.impurity[leaves] + tree_mean * tree_mean
        mean /= len(self.trees)
        variance = np.maximum(second / len(self.trees) - mean * mean, min_variance)
        return mean, np.sqrt(variance)

    @property
    def feature_importances_(self) -> np.ndarray:
        return np.mean([tree.feature_importances_ for tree in self.trees], axis=0)
