"""RandomForestOracle: the Keras Tuner oracle that composes encoding, forest, acquisition and candidates.

How a proposal is made (details in ``docs/oracle.md``):

1. The first ``num_initial_points`` trials are seeded random samples.
2. Then every proposal refits a forest (``forest``) on the encoded
   (``encoding``) completed trials (``training_data``), scores
   candidates (``candidates``: random samples plus mutations of the best
   trials, refined once around the most promising) with an acquisition function
   (``acquisition``) using the spread of the trees as uncertainty, and
   returns the best candidate that was never tried.
3. Trials still running (parallel workers) enter the fit with a "constant liar"
   score, so concurrent workers are sent different points.

Everything random is derived from ``(seed, trial number)``: the same seed gives
the same proposals, also after a save/reload (the state is JSON; the forest is
refitted on demand).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
from keras_tuner.engine import oracle as oracle_module
from keras_tuner.engine import trial as trial_module

from keras_augtune import compat
from keras_augtune.checks import check_choice, check_int
from keras_augtune.oracle.acquisition import ACQUISITIONS, make_acquisition
from keras_augtune.oracle.candidates import MAXIMISERS, CandidateGenerator, LocalSearch
from keras_augtune.oracle.encoding import SpaceEncoder
from keras_augtune.oracle.forest import FORESTS, Forest
from keras_augtune.oracle.initial_design import INITIAL_DESIGNS, space_filling_design
from keras_augtune.oracle.training_data import FAILED_POLICIES, LIARS, TARGETS, Rows, TrainingData
from keras_augtune.seeds import derive_seed
from keras_augtune.trials import in_order, trial_index

__all__ = ["RandomForestOracle"]

# How many of the best-scored candidates are checked against Keras Tuner's own duplicate test.
_MAX_CHECKED = 50


class RandomForestOracle(oracle_module.Oracle):
    """Keras Tuner oracle: Bayesian optimisation with a random-forest surrogate.

    Works on any Keras Tuner search space (``Choice``, ``Int``, ``Float``,
    ``Boolean``, ``Fixed``, conditional scopes, hyperparameters that appear mid-
    search). Use it with any tuner: ``kt.Tuner(oracle=RandomForestOracle(...), hypermodel=...)``.

    The defaults are those before issue 16's levers: on 30 held-out seeds of the policy
    benchmark they beat the best lever combination found on tuning seeds (pooled slots +
    local search + 7 initial points + ``min_samples_leaf=1``) at 25-100 trials (paired
    20-10, 21-9, 21-9); the levers stay options (``docs/benchmarks.md``, "Lever by lever").

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
        pool_policies: Add exchangeable-slot features for policy hyperparameters
            (named as by ``PolicySpace``): per op, its probability-weighted count and
            mean magnitude over all slots, so every trial informs every slot.
        slot_features: With ``pool_policies``, also keep the slot-specific features
            of the pooled policy hyperparameters (False: the forest sees the policy
            only as the pooled bag of ops).
        initial_design: ``"random"`` or ``"space_filling"`` (a Latin hypercube in
            which policy slots cover every op as early as possible).
        maximiser: How candidates are generated: ``"mutation"`` (random samples,
            mutations of the best trials, one refinement round) or ``"local_search"``
            (SMAC-style: sorted random samples plus hill climbs from the best points).
        random_share: Share of model-phase proposals that are random samples instead
            (interleaved exploration, as SMAC's 20 %).
        target: Transformation of the scores before they are standardised:
            ``"standardise"`` (none), ``"log"`` (SMAC's log scaling) or ``"rank"``.
        canonical_values: Optional callable mapping a trial's values dict to its
            canonical values dict (e.g. every policy that changes no image to the
            no-augmentation baseline's values). When given, a proposal whose canonical
            form equals that of a tried, running or queued initial trial is never
            proposed. A constructor argument, not oracle state: pass it again when
            resuming.
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
        pool_policies=False,
        slot_features=True,
        initial_design="random",
        maximiser="mutation",
        random_share=0.0,
        target="standardise",
        initial_values=None,
        canonical_values=None,
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
        self.pool_policies = pool_policies
        self.slot_features = slot_features
        self.initial_design = initial_design
        self.maximiser = maximiser
        self.random_share = random_share
        self.target = target
        if initial_values is not None and (
            not isinstance(initial_values, (list, tuple)) or not all(isinstance(v, dict) for v in initial_values)
        ):
            raise ValueError("`initial_values` must be a list of dicts of hyperparameter values.")
        self.initial_values = [dict(v) for v in initial_values or []]
        if canonical_values is not None and not callable(canonical_values):
            raise TypeError(
                f"`canonical_values` must be a callable (values dict -> canonical values dict) or None, "
                f"got {type(canonical_values).__name__}."
            )
        self.canonical_values = canonical_values
        self._canonical_cache: dict = {}
        self._validate_options()

    # ------------------------------------------------------------------ options
    _OPTIONS = (
        "num_initial_points", "acquisition", "n_estimators", "forest", "min_samples_leaf",
        "max_features", "max_samples", "xi", "kappa", "num_candidates", "num_parents", "constant_liar",
        "failed_trials", "pool_policies", "slot_features", "initial_design", "maximiser", "random_share", "target", "initial_values",
    )

    #: Options that older oracle states do not store, with the value they had then: a search
    #: saved before them resumes with the proposals it would have made, not with today's defaults.
    _UNSTORED_BEFORE = {
        "pool_policies": False, "slot_features": True, "initial_design": "random", "maximiser": "mutation",
        "random_share": 0.0, "target": "standardise",
    }

    def _validate_options(self):
        if self.max_trials is not None:
            check_int("`max_trials`", self.max_trials)
        for name, minimum in (("num_initial_points", 0), ("n_estimators", 1), ("min_samples_leaf", 1),
                              ("num_candidates", 2), ("num_parents", 1)):
            check_int(f"`{name}`", getattr(self, name), minimum=minimum)
        if self.max_samples is not None:
            check_int("`max_samples`", self.max_samples, minimum=2)
        if isinstance(self.acquisition, str):
            self.acquisition = self.acquisition.lower()
        for name, choices in (("acquisition", ACQUISITIONS), ("forest", FORESTS), ("constant_liar", LIARS),
                              ("failed_trials", FAILED_POLICIES), ("initial_design", INITIAL_DESIGNS),
                              ("maximiser", MAXIMISERS), ("target", TARGETS)):
            check_choice(f"`{name}`", getattr(self, name), tuple(choices))
        for name in ("pool_policies", "slot_features"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        share = self.random_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
            raise ValueError(f"`random_share` must be a number in [0, 1), got {share!r}.")
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
        self._canonical_cache = {}
        stored = any(name in state for name in self._OPTIONS)  # none in an oracle.json rebuilt by repair.py
        for name in self._OPTIONS:
            if name in state:
                setattr(self, name, state[name])
            elif stored and name in self._UNSTORED_BEFORE:  # a state saved before the option existed: its value then
                setattr(self, name, self._UNSTORED_BEFORE[name])

    # ------------------------------------------------------------------ proposals
    def populate_space(self, trial_id):
        """Propose the values of trial ``trial_id`` (see the class docstring)."""
        index = trial_index(trial_id)
        queued = self._next_initial_values()
        if queued is not None:
            return {"status": trial_module.TrialStatus.RUNNING, "values": queued}
        rng = np.random.default_rng([int(self.seed), index])
        encoder = SpaceEncoder(self.hyperparameters.space, self.pool_policies, self.slot_features)
        trials = self._trials_in_order()
        rows = self._encode_trials(encoder, trials)
        tried = set(encoder.keys(rows.codes, rows.active))
        canonical_seen = self._canonical_keys()
        data = None
        if self.acquisition != "random":
            data = self._training_data(trials, rows)
        if data is None or len(data.observed) < max(self.num_initial_points, 2):
            values = None
            if self.initial_design == "space_filling" and self.acquisition != "random":
                values = self._design_proposal(encoder, tried, canonical_seen)
            if values is None:
                values = self._random_proposal(encoder, rng, tried, canonical_seen)
        elif self.random_share and np.random.default_rng([int(self.seed), index, 5]).random() < self.random_share:
            values = self._random_proposal(encoder, rng, tried, canonical_seen)
        else:
            values = self._model_proposal(encoder, rng, tried, canonical_seen, data, index)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _initial_values_filled(self):
        """``initial_values`` with their defaults filled in, in order."""
        filled = []
        for values in self.initial_values:
            hp = self.hyperparameters.copy()
            hp.values.update({k: v for k, v in values.items() if k in hp})
            filled.append(dict(hp.values))
        return filled

    def _next_initial_values(self):
        """The first of ``initial_values`` no trial has taken yet (defaults fill the gaps)."""
        taken = [t.hyperparameters.values for t in self.trials.values()]
        for full in self._initial_values_filled():
            if not any(all(seen.get(k) == v for k, v in full.items()) for seen in taken):
                return full
        return None

    def _encode_trials(self, encoder, trials) -> Rows:
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
        return Rows(codes, active)

    def _trials_in_order(self):
        # Reloaded trials come back in directory order: sort so a resumed search refits the same forest.
        return in_order(self.trials.values())

    # ------------------------------------------------------------------ canonical forms
    def _canonical_key(self, values: Mapping[str, Any]) -> str:
        canonical = self.canonical_values(dict(values))
        if not isinstance(canonical, Mapping):
            raise TypeError(
                f"`canonical_values` must return a dict of values, got {type(canonical).__name__}."
            )
        return json.dumps(dict(canonical), sort_keys=True, default=repr)

    def _canonical_keys(self) -> set:
        """Canonical keys of every trial (any status) and queued initial value; empty without a canonicaliser."""
        if self.canonical_values is None:
            return set()
        keys = set()
        cache = self._canonical_cache
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            hit = cache.get(trial.trial_id)
            if hit is None or hit[0] != len(values):
                hit = cache[trial.trial_id] = (len(values), self._canonical_key(values))
            keys.add(hit[1])
        keys.update(self._canonical_key(values) for values in self._initial_values_filled())
        return keys

    def _is_new(self, values: dict, canonical_seen: set) -> bool:
        """Neither a duplicate for Keras Tuner nor, canonically, a trial already tried or queued."""
        if compat.is_duplicate(self, values):
            return False
        return self.canonical_values is None or self._canonical_key(values) not in canonical_seen

    # ------------------------------------------------------------------ proposal kinds
    def _random_proposal(self, encoder, rng, tried, canonical_seen):
        for _ in range(4):
            values = self._first_new(encoder, rng.random((64, encoder.dims)), tried, canonical_seen)
            if values is not None:
                return values
        return None

    def _design_proposal(self, encoder, tried, canonical_seen):
        """The first row of the space-filling initial design that is new (None when all were tried)."""
        size = max(self.num_initial_points, 2)
        units = space_filling_design(encoder, size, np.random.default_rng([int(self.seed), 0, 3]))
        return self._first_new(encoder, units, tried, canonical_seen)

    def _first_new(self, encoder, units, tried, canonical_seen):
        """The values of the first of ``units`` (unit-cube rows) that is new (``_is_new``); the
        rows found not new join ``tried``. None when none is new."""
        codes, active = encoder.decode(units)
        for i, key in enumerate(encoder.keys(codes, active)):
            if key not in tried:
                values = encoder.values(codes[i], active[i])
                if self._is_new(values, canonical_seen):
                    return values
                tried.add(key)
        return None

    def _training_data(self, trials, rows: Rows) -> TrainingData | None:
        """Completed, failed and running trials, with the scores to minimise."""
        running_ids = {t.trial_id for t in self.ongoing_trials.values()}
        return TrainingData.from_trials(trials, rows, self.objective.direction, running_ids)

    def _fit(self, encoder, data: TrainingData, random_state, with_lies=True):
        """Fit the forest; returns (forest, standardised observed scores)."""
        rows, targets, y = data.fit_set(self.failed_trials, self.constant_liar, with_lies, self.target)
        forest = Forest(
            self.forest, self.n_estimators, self.min_samples_leaf, self.max_features, random_state, self.max_samples
        )
        forest.fit(encoder.features(rows.codes, rows.active), targets)
        return forest, y

    def _model_proposal(self, encoder, rng, tried, canonical_seen, data: TrainingData, index):
        forest, y = self._fit(encoder, data, random_state=derive_seed(self.seed, index, 1, bits=32))
        acquisition = make_acquisition(self.acquisition, xi=self.xi, kappa=self.kappa)
        best = float(y.min())

        def score(rows: Rows) -> np.ndarray:
            mu, sigma = forest.predict(encoder.features(rows.codes, rows.active))
            return acquisition(mu, sigma, best)

        parents = data.observed.take(np.argsort(y, kind="stable")[: self.num_parents])
        kind = LocalSearch if self.maximiser == "local_search" else CandidateGenerator
        generator = kind(encoder, self.num_candidates, self.num_parents)
        pool = generator.generate(parents, score, tried, rng)
        if pool is not None:
            for i in pool.best_first()[:_MAX_CHECKED]:
                values = encoder.values(pool.rows.codes[i], pool.rows.active[i])
                if self._is_new(values, canonical_seen):
                    return values
        return self._random_proposal(encoder, rng, tried, canonical_seen)

    # ------------------------------------------------------------------ insight
    def hyperparameter_importances(self) -> dict[str, float]:
        """How much each hyperparameter explains the scores, per the forest.

        Impurity-based importances of a forest fitted to the completed trials,
        summed over each hyperparameter's encoded columns, normalised to sum to 1
        and sorted from most to least important. Empty before two completed trials.
        """
        encoder = SpaceEncoder(self.hyperparameters.space)
        trials = self._trials_in_order()
        data = self._training_data(trials, self._encode_trials(encoder, trials))
        if data is None or len(data.observed) < 2 or not encoder.columns:
            return {}
        forest, _ = self._fit(encoder, data, random_state=derive_seed(self.seed, 0, 2, bits=32), with_lies=False)
        totals: dict[str, float] = {}
        for name, importance in zip(encoder.feature_names, forest.feature_importances_):
            totals[name] = totals.get(name, 0.0) + float(importance)
        norm = sum(totals.values()) or 1.0
        return dict(sorted(((k, v / norm) for k, v in totals.items()), key=lambda kv: -kv[1]))
