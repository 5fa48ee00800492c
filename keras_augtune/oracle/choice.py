"""Which oracle a search runs: the built-in random forest (Bayesian, random or Hyperband), or a user's made to start with the baseline.

``AugmentTuner`` builds its oracle here (`build_oracle()`), so the tuner only composes it. A
user's Keras Tuner oracle is taken as it is, except that its first trial is made the
no-augmentation baseline (`baseline_first()`), so that every result reads as a gain over it.
"""

from __future__ import annotations

from typing import Any, Callable

import keras_tuner

from keras_augtune.oracle.hyperband import RandomForestHyperbandOracle
from keras_augtune.oracle.random_forest import RandomForestOracle
from keras_augtune.space import PolicySpace, baseline_values, is_baseline
from keras_augtune.trials import EPOCHS, INITIAL_EPOCH, RUNNING

__all__ = ["METHODS", "build_oracle", "baseline_first"]

#: What ``AugmentTuner(method=...)`` accepts.
METHODS = ("bayesian", "random", "hyperband")

#: Keras Tuner arguments that configure an oracle (with their defaults): a user's oracle takes them itself.
_ORACLE_ARGUMENTS = (("hyperparameters", None), ("tune_new_entries", True), ("allow_new_entries", True),
                     ("max_retries_per_trial", 0))


def build_oracle(method: str, space: PolicySpace, *, objective: Any, max_trials: int, num_initial_points: int | None,
                 seed: int | None, baseline_trial: bool, canonical_values: Callable[[dict], dict],
                 max_epochs: int, factor: int, hyperparameters: Any = None, **options: Any) -> keras_tuner.Oracle:
    """The built-in oracle of ``method``: the forest with expected improvement (``"bayesian"``),
    random proposals (``"random"``), or Hyperband's brackets with the forest proposing
    (``"hyperband"``, up to ``max_epochs``, reduction factor ``factor``). Its first trial is
    the no-augmentation baseline when ``baseline_trial``; ``options`` are Keras Tuner's oracle
    arguments (``tune_new_entries``, ``max_retries_per_trial``, ...)."""
    if hyperparameters is not None:  # the policy is always searched, whatever tune/allow_new_entries say
        hyperparameters = hyperparameters.copy()
        space.declare(hyperparameters)
    oracle_class, extra = RandomForestOracle, {"acquisition": "random" if method == "random" else "ei"}
    if method == "hyperband":
        oracle_class, extra = RandomForestHyperbandOracle, {"max_epochs": max_epochs, "factor": factor}
    return oracle_class(
        objective=objective, max_trials=max_trials,
        num_initial_points=10 if num_initial_points is None else num_initial_points, **extra, seed=seed,
        initial_values=[baseline_values(space)] if baseline_trial else None, canonical_values=canonical_values,
        hyperparameters=hyperparameters, **options,
    )


def check_user_oracle(oracle: keras_tuner.Oracle, **arguments: Any) -> None:
    """Refuse the Keras Tuner ``arguments`` that configure an oracle when the user gave one: they
    belong to that oracle."""
    passed = [name for name, default in _ORACLE_ARGUMENTS
              if name in arguments and arguments[name] is not default and arguments[name] != default]
    if passed:
        raise ValueError(f"{', '.join(passed)} configure the oracle: pass them to the oracle you give "
                         f"(oracle={type(oracle).__name__}(...)), not to AugmentTuner.")


def baseline_first(oracle: keras_tuner.Oracle, space: PolicySpace) -> None:
    """Make the first trial of ``oracle`` (a user's) the no-augmentation baseline.

    Wraps the instance's ``populate_space`` (the public hook every oracle implements):
    until the oracle holds a baseline trial, it returns the baseline values (the
    space's defaults elsewhere), without asking the oracle's own strategy. A Hyperband
    oracle's baseline trains its full budget (``max_epochs``), as its last rounds do.
    """
    populate = oracle.populate_space
    budget = {}
    if isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
        budget = {EPOCHS: int(oracle.max_epochs), INITIAL_EPOCH: 0}

    def populate_space(trial_id):
        if not any(is_baseline(space, t.hyperparameters.values) for t in oracle.trials.values()):
            values = {**oracle.get_space().values, **baseline_values(space), **budget}
            return {"status": RUNNING, "values": values}
        return populate(trial_id)

    oracle.populate_space = populate_space
