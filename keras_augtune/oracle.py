"""Bayesian optimisation for Keras Tuner with a random-forest surrogate.

:class:`RandomForestOracle` is a ``keras_tuner.Oracle``: pass it to any
``keras_tuner.Tuner`` (``kt.Tuner(oracle=RandomForestOracle(...), ...)``) and it
tunes every hyperparameter of the search space, augmentation policy and model
architecture together. How it works (details in ``docs/oracle.md``):

1. The first ``num_initial_points`` trials are seeded random samples.
2. Then every proposal refits a forest (extra-trees by default) on the encoded
   completed trials, scores thousands of candidates (random samples plus local
   mutations of the best trials, refined once around the most promising) with an
   acquisition function (expected improvement, probability of improvement or
   lower confidence bound) using the spread of the trees as uncertainty, and
   returns the best candidate that was never tried.
3. Trials still running (parallel workers) enter the fit with a "constant liar"
   score, so concurrent workers are sent different points.

Everything random is derived from ``(seed, trial number)``: the same seed gives
the same proposals, also after a save/reload (the state is JSON; the forest is
refitted on demand).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import oracle as oracle_module
from keras_tuner.engine import trial as trial_module
from scipy import stats
import sklearn
from sklearn.tree import DecisionTreeRegressor, ExtraTreeRegressor

__all__ = ["RandomForestOracle", "ACQUISITIONS"]

#: Acquisition functions :class:`RandomForestOracle` understands.
ACQUISITIONS = ("ei", "pi", "lcb", "random")
_FORESTS = ("extra_trees", "random_forest")
_LIARS = ("mean", "best", "worst")
_FAILED_POLICIES = ("ignore", "worst")

#: Feature value of an inactive (or not yet existing) hyperparameter.
INACTIVE = -1.0
# Dedup key of an inactive hyperparameter (never a real code).
_INACTIVE_CODE = -np.inf
# Above this many grid points a stepped numeric hyperparameter is snapped by arithmetic.
_MAX_GRID = 100_000


# ----------------------------------------------------------------------------- encoding
class _Column:
    """How one non-fixed hyperparameter maps to a unit value, a code and features.

    * unit ``u`` in [0, 1]: what candidates are sampled and mutated in;
    * code: a float identifying the value (choice index, numeric value, 0/1);
    * features: what the forest sees ((log-)scaled position, one-hot, 0/1).
    """

    def __init__(self, hp: Any):
        self.hp = hp
        self.name = hp.name
        self.one_hot = False
        self.num_values = 0  # > 0 for discrete-by-index types (Choice, Boolean)
        self.grid = None  # sorted values of stepped numerics
        self.grid_edges = None
        if isinstance(hp, hp_module.Choice):
            self.kind = "choice"
            self.num_values = len(hp.values)
            self.index_of = {value: float(i) for i, value in enumerate(hp.values)}
            self.one_hot = not hp.ordered
        elif isinstance(hp, hp_module.Boolean):
            self.kind = "boolean"
            self.num_values = 2
        elif isinstance(hp, (hp_module.Int, hp_module.Float)):
            self.kind = "int" if isinstance(hp, hp_module.Int) else "float"
            self.low = float(hp.min_value)
            self.high = float(hp.max_value)
            self.sampling = hp.sampling or "linear"
            if hp.step is not None and hp._get_n_values() <= _MAX_GRID:
                grid = np.array([hp._get_value_by_index(i) for i in range(hp._get_n_values())], dtype=float)
                grid = np.unique(grid[(grid >= self.low - 1e-12) & (grid <= self.high + 1e-12)])
                if grid.size:
                    self.grid = grid
                    positions = self.position(grid)
                    order = np.argsort(positions)
                    self.grid = grid[order]
                    self.grid_edges = (positions[order][1:] + positions[order][:-1]) / 2.0
        else:  # pragma: no cover - KT has no other non-fixed type
            raise TypeError(f"RandomForestOracle cannot encode hyperparameter {hp!r}.")
        self.width = self.num_values if self.one_hot else 1

    # numeric helpers ---------------------------------------------------------
    def position(self, values: np.ndarray) -> np.ndarray:
        """(Log-)scaled position of numeric values in [0, 1]."""
        low, high = self.low, self.high
        if high == low:
            return np.full(np.shape(values), 0.5)
        values = np.clip(np.asarray(values, dtype=float), low, high)
        if self.sampling == "log":
            return np.log(values / low) / math.log(high / low)
        if self.sampling == "reverse_log":
            return 1.0 - np.log((high + low - values) / low) / math.log(high / low)
        return (values - low) / (high - low)

    def _from_position(self, units: np.ndarray) -> np.ndarray:
        low, high = self.low, self.high
        if self.sampling == "log":
            return low * np.power(high / low, units)
        if self.sampling == "reverse_log":
            return high + low - low * np.power(high / low, 1.0 - units)
        return low + units * (high - low)

    # unit -> code -------------------------------------------------------------
    def decode(self, units: np.ndarray) -> np.ndarray:
        """Codes of the values that the unit values ``units`` stand for."""
        if self.num_values:
            return np.minimum(np.floor(units * self.num_values), self.num_values - 1).astype(float)
        if self.grid is not None:
            return self.grid[np.searchsorted(self.grid_edges, units)]
        values = np.clip(self._from_position(units), self.low, self.high)
        if self.hp.step is not None:  # huge stepped range: snap arithmetically (linear steps)
            step = float(self.hp.step)
            values = np.clip(self.low + np.round((values - self.low) / step) * step, self.low, self.high)
        if self.kind == "int":
            values = np.clip(np.round(values), math.ceil(self.low), math.floor(self.high))
        return values

    def code_to_unit(self, code: float) -> float:
        """A unit value that decodes back to ``code``."""
        if self.num_values:
            return (code + 0.5) / self.num_values
        return float(self.position(np.array([code]))[0])

    # value <-> code -----------------------------------------------------------
    def code_of(self, value: Any) -> float | None:
        """The code of a trial's value, or None if it is not a value of this hyperparameter."""
        try:
            if self.kind == "choice":
                return self.index_of.get(value)
            if self.kind == "boolean":
                return 1.0 if bool(value) else 0.0
            value = float(value)
        except (ValueError, TypeError):
            return None
        return value if math.isfinite(value) else None

    def value_of(self, code: float) -> Any:
        """The Python value a code stands for (types as Keras Tuner returns them)."""
        if self.kind == "choice":
            return self.hp.values[int(code)]
        if self.kind == "boolean":
            return bool(code >= 0.5)
        if self.kind == "int":
            return int(round(code))
        return float(code)

    def contains(self, codes: np.ndarray, allowed: list) -> np.ndarray:
        """Whether each code's value is one of ``allowed`` (a ``Parent`` condition)."""
        if self.kind == "choice":
            indices = [i for i, v in enumerate(self.hp.values) if v in allowed]
            return np.isin(codes, indices)
        if self.kind == "boolean":
            return np.isin(codes.astype(bool), [bool(a) for a in allowed if isinstance(a, (bool, int))])
        numbers = [float(a) for a in allowed if isinstance(a, (int, float)) and not isinstance(a, bool)]
        return np.isin(codes, numbers)

    def features(self, codes: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Forest features, shape ``(n, width)``; inactive rows are :data:`INACTIVE`."""
        n = codes.shape[0]
        if self.one_hot:
            out = np.zeros((n, self.width))
            rows = np.flatnonzero(active)
            out[rows, codes[rows].astype(int)] = 1.0
        elif self.num_values:
            out = ((codes + 0.5) / self.num_values)[:, None] if self.kind == "choice" else codes[:, None].copy()
        else:
            out = self.position(np.where(active, codes, self.low))[:, None]
        out[~active] = INACTIVE
        return out


class _SpaceEncoder:
    """Vectorised encoding of a Keras Tuner search space (``HyperParameters.space``)."""

    def __init__(self, space: list):
        self.space = list(space)
        self.columns: list[_Column] = []
        self.slot: dict[int, int] = {}  # position in space -> column index (non-fixed only)
        for position, hp in enumerate(self.space):
            if not isinstance(hp, hp_module.Fixed):
                self.slot[position] = len(self.columns)
                self.columns.append(_Column(hp))
        self.num_features = sum(c.width for c in self.columns)
        self.feature_names = [c.name for c in self.columns for _ in range(c.width)]
        self.num_values = np.array([c.num_values for c in self.columns])

    @property
    def dims(self) -> int:
        return len(self.columns)

    def decode(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit rows -> (codes, active), both ``(n, dims)``; conditions are applied in space order."""
        n = units.shape[0]
        codes = np.empty((n, self.dims))
        active = np.zeros((n, self.dims), dtype=bool)
        for j, column in enumerate(self.columns):
            codes[:, j] = column.decode(units[:, j])
        self._apply_conditions(codes, active)
        return codes, active

    def _apply_conditions(self, codes: np.ndarray, active: np.ndarray) -> None:
        n = codes.shape[0]
        by_name: dict[str, list] = {}  # name -> [(column or Fixed hp, column index or None, active mask)]
        for position, hp in enumerate(self.space):
            mask = np.ones(n, dtype=bool)
            for condition in hp.conditions:
                mask &= self._condition_mask(condition, by_name, codes, n)
            j = self.slot.get(position)
            if j is not None:
                active[:, j] = mask
            by_name.setdefault(hp.name, []).append((hp, j, mask))

    def _condition_mask(self, condition, by_name, codes, n) -> np.ndarray:
        if not (hasattr(condition, "name") and hasattr(condition, "values")):
            raise TypeError(f"RandomForestOracle supports Parent conditions only, got {condition!r}.")
        result = np.zeros(n, dtype=bool)
        for hp, j, mask in by_name.get(condition.name, []):
            if j is None:  # a Fixed parent
                holds = np.full(n, hp.value in condition.values)
            else:
                holds = self.columns[j].contains(codes[:, j], condition.values)
            result |= mask & holds
        return result

    def encode_values(self, values_list: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Trials' value dicts -> (codes, active); missing or unknown values count as inactive."""
        n = len(values_list)
        codes = np.zeros((n, self.dims))
        active = np.zeros((n, self.dims), dtype=bool)
        for j, column in enumerate(self.columns):
            name = column.name
            for i, values in enumerate(values_list):
                if name in values:
                    code = column.code_of(values[name])
                    if code is not None:
                        codes[i, j] = code
                        active[i, j] = True
        # A value only counts if its own conditions hold in that trial.
        if n:
            implied = np.zeros_like(active)
            self._apply_conditions(np.where(active, codes, 0.0), implied)
            active &= implied
        return codes, active

    def features(self, codes: np.ndarray, active: np.ndarray) -> np.ndarray:
        if not self.columns:
            return np.zeros((codes.shape[0], 0))
        return np.hstack([c.features(codes[:, j], active[:, j]) for j, c in enumerate(self.columns)])

    def keys(self, codes: np.ndarray, active: np.ndarray) -> list[bytes]:
        """Hashable identity of each row (active values only)."""
        marked = np.ascontiguousarray(np.where(active, codes, _INACTIVE_CODE))
        return [row.tobytes() for row in marked]

    def units_of(self, codes: np.ndarray, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Unit rows that decode to the given codes; inactive entries get random units."""
        units = rng.random(codes.shape)
        for j, column in enumerate(self.columns):
            rows = np.flatnonzero(active[:, j])
            if rows.size:
                if column.num_values:
                    units[rows, j] = (codes[rows, j] + 0.5) / column.num_values
                else:
                    units[rows, j] = column.position(codes[rows, j])
        return units

    def values(self, codes_row: np.ndarray, active_row: np.ndarray) -> dict:
        """The Keras Tuner values dict of one row (active hyperparameters only, Fixed included)."""
        values: dict[str, Any] = {}
        hps = hp_module.HyperParameters()
        for position, hp in enumerate(self.space):
            j = self.slot.get(position)
            if j is None:
                hps.merge([hp])
                if hps.is_active(hp):
                    values[hp.name] = hp.value
                    hps.values[hp.name] = hp.value
            elif active_row[j]:
                values[hp.name] = self.columns[j].value_of(codes_row[j])
                hps.values[hp.name] = values[hp.name]
        return values


# ----------------------------------------------------------------------------- forest
class _Forest:
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

    def fit(self, features: np.ndarray, targets: np.ndarray) -> "_Forest":
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


# ----------------------------------------------------------------------------- oracle
class RandomForestOracle(oracle_module.Oracle):
    """Keras Tuner oracle: Bayesian optimisation with a random-forest surrogate.

    Works on any Keras Tuner search space (``Choice``, ``Int``, ``Float``,
    ``Boolean``, ``Fixed``, conditional scopes, hyperparameters that appear mid-
    search). Use it with any tuner: ``kt.Tuner(oracle=RandomForestOracle(...), hypermodel=...)``.

    Args:
        objective: As in Keras Tuner: a string, ``keras_tuner.Objective`` or a list
            of them. Both ``"min"`` and ``"max"`` directions are handled.
        max_trials: Total number of trials (across resumed runs).
        num_initial_points: Completed trials sampled at random before the forest
            takes over. ``None`` means 10. With ``num_initial_points >= max_trials``
            the search is pure random search.
        acquisition: ``"ei"`` (expected improvement), ``"pi"`` (probability of
            improvement), ``"lcb"`` (lower/upper confidence bound) or ``"random"``
            (seeded, de-duplicated random search; no forest is fitted).
        n_estimators: Trees in the forest.
        forest: ``"extra_trees"`` (default) or ``"random_forest"`` (bootstrap, as
            scikit-optimize's ``"RF"``).
        min_samples_leaf: Minimum trial count per leaf (3 smooths noisy rewards).
        max_features: ``max_features`` of the scikit-learn forest (fraction, int,
            ``"sqrt"``, or ``None`` for all features).
        max_samples: Each tree is fitted on at most this many trials (a random subset,
            or a bootstrap sample of this size for ``"random_forest"``), which bounds
            the cost of a proposal in long searches; ``None`` uses all trials.
        xi: Exploration margin of EI and PI, in units of the scores' standard deviation.
        kappa: Exploration weight of LCB.
        num_candidates: Candidates scored per proposal (half random samples, half
            mutations of the best completed trials), before one refinement round.
        num_parents: How many of the best completed trials are mutated.
        constant_liar: Score given to running trials in the fit: ``"mean"``,
            ``"best"`` or ``"worst"`` of the completed scores.
        failed_trials: ``"ignore"`` (default) leaves failed/invalid trials out of the
            fit; ``"worst"`` fits them with the worst completed score so the forest
            learns to avoid regions that crash.
        initial_values: Trials to run first, in order, before any proposal (a list of
            dicts of values; missing ones take their defaults). ``AugmentTuner`` puts
            the no-augmentation baseline here.
        seed: Random seed; ``None`` draws one (and stores it in the oracle state).
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in ``keras_tuner.Oracle``.
    """

    def __init__(
        self,
        objective=None,
        max_trials=10,
        num_initial_points=10,
        acquisition="ei",
        n_estimators=32,
        forest="extra_trees",
        min_samples_leaf=3,
        max_features=0.5,
        max_samples=200,
        xi=0.01,
        kappa=1.96,
        num_candidates=1024,
        num_parents=5,
        constant_liar="mean",
        failed_trials="ignore",
        initial_values=None,
        seed=None,
        hyperparameters=None,
        allow_new_entries=True,
        tune_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
    ):
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.num_initial_points = 10 if num_initial_points is None else num_initial_points
        self.acquisition = acquisition
        self.n_estimators = n_estimators
        self.forest = forest
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_samples = max_samples
        self.xi = xi
        self.kappa = kappa
        self.num_candidates = num_candidates
        self.num_parents = num_parents
        self.constant_liar = constant_liar
        self.failed_trials = failed_trials
        if initial_values is not None and (
            not isinstance(initial_values, (list, tuple)) or not all(isinstance(v, dict) for v in initial_values)
        ):
            raise ValueError("`initial_values` must be a list of dicts of hyperparameter values.")
        self.initial_values = [dict(v) for v in initial_values or []]
        self._validate_options()

    # ------------------------------------------------------------------ options
    _OPTIONS = (
        "num_initial_points", "acquisition", "n_estimators", "forest", "min_samples_leaf",
        "max_features", "max_samples", "xi", "kappa", "num_candidates", "num_parents", "constant_liar",
        "failed_trials", "initial_values",
    )

    def _validate_options(self):
        def positive_int(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")

        if self.max_trials is not None:
            positive_int("max_trials", self.max_trials)
        positive_int("num_initial_points", self.num_initial_points, minimum=0)
        positive_int("n_estimators", self.n_estimators)
        positive_int("min_samples_leaf", self.min_samples_leaf)
        positive_int("num_candidates", self.num_candidates, minimum=2)
        positive_int("num_parents", self.num_parents)
        if self.max_samples is not None:
            positive_int("max_samples", self.max_samples, minimum=2)
        if isinstance(self.acquisition, str):
            self.acquisition = self.acquisition.lower()
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"`acquisition` must be one of {ACQUISITIONS}, got {self.acquisition!r}.")
        if self.forest not in _FORESTS:
            raise ValueError(f"`forest` must be one of {_FORESTS}, got {self.forest!r}.")
        if self.constant_liar not in _LIARS:
            raise ValueError(f"`constant_liar` must be one of {_LIARS}, got {self.constant_liar!r}.")
        if self.failed_trials not in _FAILED_POLICIES:
            raise ValueError(f"`failed_trials` must be one of {_FAILED_POLICIES}, got {self.failed_trials!r}.")
        for name in ("xi", "kappa"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"`{name}` must be a number >= 0, got {value!r}.")
        mf = self.max_features
        valid_mf = (
            mf is None
            or mf in ("sqrt", "log2")
            or (isinstance(mf, float) and 0.0 < mf <= 1.0)
            or (isinstance(mf, int) and not isinstance(mf, bool) and mf >= 1)
        )
        if not valid_mf:
            raise ValueError(
                f"`max_features` must be a fraction in (0, 1], a positive int, 'sqrt', 'log2' or None, got {mf!r}."
            )

    def get_state(self):
        state = super().get_state()
        state.update({name: getattr(self, name) for name in self._OPTIONS})
        return state

    def set_state(self, state):
        super().set_state(state)
        self._encoding_signature, self._encoding_cache = None, {}
        for name in self._OPTIONS:
            if name in state:
                setattr(self, name, state[name])

    # ------------------------------------------------------------------ proposals
    def populate_space(self, trial_id):
        """Propose the values of trial ``trial_id`` (see the class docstring)."""
        index = _trial_index(trial_id)
        queued = self._next_initial_values()
        if queued is not None:
            return {"status": trial_module.TrialStatus.RUNNING, "values": queued}
        rng = np.random.default_rng([int(self.seed), index])
        encoder = _SpaceEncoder(self.hyperparameters.space)
        trials = self._trials_in_order()
        codes, active = self._encode_trials(encoder, trials)
        tried = set(encoder.keys(codes, active))
        data = None
        if self.acquisition != "random":
            data = self._training_data(trials, codes, active)
        if data is None or len(data["observed"]) < max(self.num_initial_points, 2):
            values = self._random_proposal(encoder, rng, tried)
        else:
            values = self._model_proposal(encoder, rng, tried, data, index)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _next_initial_values(self):
        """The first of ``initial_values`` no trial has taken yet (defaults fill the gaps)."""
        taken = [t.hyperparameters.values for t in self.trials.values()]
        for values in self.initial_values:
            hp = self.hyperparameters.copy()
            hp.values.update({k: v for k, v in values.items() if k in hp})
            full = hp.values
            if not any(all(seen.get(k) == v for k, v in full.items()) for seen in taken):
                return dict(full)
        return None

    def _encode_trials(self, encoder, trials):
        """Encode trials, reusing the rows of finished trials while the space is unchanged."""
        signature = tuple(id(hp) for hp in encoder.space)
        if getattr(self, "_encoding_signature", None) != signature:
            self._encoding_signature, self._encoding_cache = signature, {}
        cache = self._encoding_cache
        codes = np.zeros((len(trials), encoder.dims))
        active = np.zeros((len(trials), encoder.dims), dtype=bool)
        todo = []
        for i, trial in enumerate(trials):
            hit = cache.get(trial.trial_id)
            if hit is not None and hit[0] == trial.status and hit[1] == len(trial.hyperparameters.values):
                codes[i], active[i] = hit[2], hit[3]
            else:
                todo.append(i)
        if todo:
            new_codes, new_active = encoder.encode_values([trials[i].hyperparameters.values for i in todo])
            codes[todo], active[todo] = new_codes, new_active
            for k, i in enumerate(todo):
                trial = trials[i]
                if trial.status in (trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED):
                    cache[trial.trial_id] = (trial.status, len(trial.hyperparameters.values), new_codes[k], new_active[k])
        return codes, active

    def _trials_in_order(self):
        # Reloaded trials come back in directory order: sort so a resumed search refits the same forest.
        return sorted(self.trials.values(), key=lambda t: (_trial_index(t.trial_id), str(t.trial_id)))

    def _random_proposal(self, encoder, rng, tried):
        for _ in range(4):
            units = rng.random((64, encoder.dims))
            codes, active = encoder.decode(units)
            for i, key in enumerate(encoder.keys(codes, active)):
                if key not in tried:
                    values = encoder.values(codes[i], active[i])
                    if not self._duplicate(values):
                        return values
                    tried.add(key)
        return None

    def _training_data(self, trials, codes, active):
        """Encoded completed, failed and running trials (in that order) with the scores to minimise."""
        sign = -1.0 if self.objective.direction == "max" else 1.0
        ongoing_ids = {t.trial_id for t in self.ongoing_trials.values()}
        observed, scores, failed, running = [], [], [], []
        for i, trial in enumerate(trials):
            if trial.trial_id in ongoing_ids:
                running.append(i)
            elif trial.status == trial_module.TrialStatus.COMPLETED and _finite(trial.score):
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
        order = observed + failed + running
        return {
            "observed": np.array(scores),
            "codes": codes[order],
            "active": active[order],
            "num_failed": len(failed),
            "num_running": len(running),
        }

    def _fit(self, encoder, data, random_state, with_lies=True):
        """Fit the forest; returns (forest, standardised observed scores)."""
        y = data["observed"]
        num_observed = len(y)
        center = float(np.mean(y))
        scale = float(np.std(y)) or 1.0
        y_std = (y - center) / scale
        targets = [y_std]
        rows = num_observed
        if self.failed_trials == "worst" and data["num_failed"]:
            targets.append(np.full(data["num_failed"], y_std.max()))
            rows += data["num_failed"]
        if with_lies and data["num_running"]:
            lie = {"mean": 0.0, "best": y_std.min(), "worst": y_std.max()}[self.constant_liar]
            targets.append(np.full(data["num_running"], lie))
            running = slice(num_observed + data["num_failed"], None)
            codes = np.vstack([data["codes"][:rows], data["codes"][running]])
            active = np.vstack([data["active"][:rows], data["active"][running]])
        else:
            codes, active = data["codes"][:rows], data["active"][:rows]
        features = encoder.features(codes, active)
        forest = _Forest(
            self.forest, self.n_estimators, self.min_samples_leaf, self.max_features, random_state, self.max_samples
        )
        forest.fit(features, np.concatenate(targets))
        return forest, y_std

    def _acquisition_values(self, mu, sigma, best):
        """Acquisition to maximise, for a minimised standardised objective."""
        if self.acquisition == "lcb":
            return -(mu - self.kappa * sigma)
        improvement = best - mu - self.xi
        z = improvement / sigma
        if self.acquisition == "pi":
            return stats.norm.cdf(z)
        return improvement * stats.norm.cdf(z) + sigma * stats.norm.pdf(z)

    def _mutate(self, encoder, units, active, num_children, rng):
        """Children of unit rows: 1-3 active hyperparameters changed each."""
        parents = rng.integers(0, units.shape[0], size=num_children)
        children = units[parents].copy()
        parent_active = active[parents]
        num_changes = 1 + rng.binomial(2, 0.3, size=num_children)
        order = np.argsort(np.where(parent_active, rng.random(children.shape), 2.0), axis=1)
        ranks = np.argsort(order, axis=1)
        change = (ranks < num_changes[:, None]) & parent_active
        num_values = encoder.num_values[None, :].repeat(num_children, axis=0)
        # Discrete hyperparameters: move to a different value, uniformly.
        discrete = change & (num_values > 1)
        if discrete.any():
            n = num_values[discrete]
            current = np.minimum(np.floor(children[discrete] * n), n - 1)
            offset = 1 + np.floor(rng.random(n.shape) * (n - 1))
            shifted = (current + offset) % n
            children[discrete] = (shifted + 0.5) / n
        # Numeric ones: a Gaussian step (70 %) or a fresh uniform draw (30 %).
        numeric = change & (num_values == 0)
        if numeric.any():
            size = int(numeric.sum())
            local = np.clip(children[numeric] + rng.normal(0.0, 0.1, size=size), 0.0, 1.0)
            children[numeric] = np.where(rng.random(size) < 0.7, local, rng.random(size))
        return children

    def _model_proposal(self, encoder, rng, tried, data, index):
        forest, y_std = self._fit(encoder, data, random_state=_derived_seed(self.seed, index, 1))
        best = float(y_std.min())
        # Parents: the best completed trials.
        order = np.argsort(y_std, kind="stable")[: self.num_parents]
        parent_units = encoder.units_of(data["codes"][order], data["active"][order], rng)
        parent_codes, parent_active = encoder.decode(parent_units)
        num_random = self.num_candidates // 2
        units = np.vstack([
            rng.random((num_random, encoder.dims)),
            self._mutate(encoder, parent_units, parent_active, self.num_candidates - num_random, rng),
        ])
        pool_units, pool_codes, pool_active, pool_score = [], [], [], []
        seen = set(tried)

        def score(batch_units):
            codes, active = encoder.decode(batch_units)
            keep = []
            for i, key in enumerate(encoder.keys(codes, active)):
                if key not in seen:
                    seen.add(key)
                    keep.append(i)
            if not keep:
                return None
            codes, active, batch_units = codes[keep], active[keep], batch_units[keep]
            mu, sigma = forest.predict(encoder.features(codes, active))
            pool_units.append(batch_units)
            pool_codes.append(codes)
            pool_active.append(active)
            pool_score.append(self._acquisition_values(mu, sigma, best))
            return True

        score(units)
        if not pool_score:
            return self._random_proposal(encoder, rng, tried)
        # Refinement: mutate the most promising candidates once more.
        first = pool_score[0]
        top = np.argsort(-first, kind="stable")[: self.num_parents]
        score(self._mutate(encoder, pool_units[0][top], pool_active[0][top], self.num_candidates // 2, rng))
        codes = np.vstack(pool_codes)
        active = np.vstack(pool_active)
        scores = np.concatenate(pool_score)
        for i in np.argsort(-scores, kind="stable")[:50]:
            values = encoder.values(codes[i], active[i])
            if not self._duplicate(values):
                return values
        return self._random_proposal(encoder, rng, tried)

    # ------------------------------------------------------------------ insight
    def hyperparameter_importances(self) -> dict[str, float]:
        """How much each hyperparameter explains the scores, per the forest.

        Impurity-based importances of a forest fitted to the completed trials,
        summed over each hyperparameter's encoded columns, normalised to sum to 1
        and sorted from most to least important. Empty before two completed trials.
        """
        encoder = _SpaceEncoder(self.hyperparameters.space)
        trials = self._trials_in_order()
        codes, active = self._encode_trials(encoder, trials)
        data = self._training_data(trials, codes, active)
        if data is None or len(data["observed"]) < 2 or not encoder.columns:
            return {}
        forest, _ = self._fit(encoder, data, random_state=_derived_seed(self.seed, 0, 2), with_lies=False)
        totals: dict[str, float] = {}
        for name, importance in zip(encoder.feature_names, forest.feature_importances_):
            totals[name] = totals.get(name, 0.0) + float(importance)
        norm = sum(totals.values()) or 1.0
        return dict(sorted(((k, v / norm) for k, v in totals.items()), key=lambda kv: -kv[1]))


def _finite(score) -> bool:
    try:
        return score is not None and math.isfinite(float(score))
    except (TypeError, ValueError):
        return False


def _trial_index(trial_id) -> int:
    text = str(trial_id)
    return int(text) if text.isdigit() else zlib.crc32(text.encode("utf-8"))


def _derived_seed(seed, index, stream) -> int:
    return int(np.random.SeedSequence([int(seed), int(index), int(stream)]).generate_state(1)[0])
