"""The execution runner: one training of one configuration under one execution seed, kept everywhere it must be.

Every training of a search goes through `ExecutionRunner.run()`: a search trial's executions,
an intensifier's extra executions (the confirmation, the race) and the benchmarks' children.
For one configuration (trial values: policy, architecture, budget) and one execution index it

1. seeds everything from ``execution_seed(search seed, execution)`` (the same for every
   configuration: paired executions) and builds the model through Keras Tuner's build;
2. points the user's TensorBoard callbacks at the trial's folder (with Keras Tuner's HParams);
3. trains it for the configuration's budget (Hyperband's ``tuner/epochs`` or the search's);
4. scores it (the overfit-filtered reward of its history, or the objective's value when
   ``HyperModel.fit`` returned a number) and fails a diverged training;
5. stores the execution's reward and history ([`keras_augtune.records`][keras_augtune.records]), logs the
   reward to TensorBoard, and returns the notebook rows of the training.

``run_trial`` runs a trial's own executions (reusing those a stopped search had finished),
checkpoints its best model for ``get_best_models`` and writes its notebook rows;
``run_extra`` runs one more execution of any configuration (the intensifier's).
"""

from __future__ import annotations

import copy
import json
import math
import traceback
from typing import Any, Callable

import keras
import keras_tuner
import numpy as np

from keras_augtune import compat
from keras_augtune.evaluation.reward import REWARD, ExecutionReward, combine_executions, overfit_filtered_reward
from keras_augtune.bases import seed_base_layers
from keras_augtune.files import Notebook, save_weights
from keras_augtune.intensifier.base import Context
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.records import ExecutionStore
from keras_augtune.seeds import execution_seed
from keras_augtune.space import architecture_values
from keras_augtune.trials import FAILED, TRAIN_SIZE, epoch_budget, failure_reason

__all__ = ["ExecutionRunner", "build_seeded", "check_finite", "write_notebook", "pretraining_recorder"]

#: The notebook's last columns, after the metrics.
_NOTEBOOK_TAIL = (REWARD, "status", "error", "policy", "hyperparameters")


class ExecutionRunner:
    """Run, score and keep the trainings of one search.

    Args:
        tuner: the [`AugmentTuner`][keras_augtune.AugmentTuner] (its hypermodel, oracle objective,
            reward settings, seed, notebook and Keras Tuner's build, checkpoint and TensorBoard hooks).
        x, y: the training images and labels every execution trains on.
        fit: the keyword arguments of ``HyperModel.fit`` (``validation_data``, ``epochs``,
            ``batch_size``, ``callbacks``, ``verbose``, ...); each execution gets its own copy of
            the callbacks.
    """

    def __init__(self, tuner: Any, x: Any, y: Any, fit: dict[str, Any]):
        self.tuner, self.x, self.y = tuner, x, y
        self.fit = dict(fit)
        self.store = ExecutionStore(tuner.project_dir)
        self._rows: list[dict[str, Any]] = []  # the finished executions' rows of the running trial

    # ------------------------------------------------------------------ one execution
    def run(self, hp: Any, execution: int, trial: Any = None, key: str | None = None) -> tuple[Any, dict | None, Any, list]:
        """Train execution ``execution`` of the configuration ``hp`` (a ``HyperParameters``); its
        TensorBoard folders are ``trial``'s (none when ``trial`` is None: an architecture's
        no-augmentation run is no trial). Stores the execution under ``key`` (the trial id).
        Returns ``(score, history, model, rows)``: an [`ExecutionReward`][keras_augtune.evaluation.reward.ExecutionReward]
        (or the objective's value, history None), the trained model and its notebook rows."""
        fit = dict(self.fit)
        callbacks = _copy_callbacks(fit.pop("callbacks", None) or [])
        if trial is not None:
            log_dirs = compat.configure_tensorboard(self.tuner, callbacks, trial, execution)
        else:
            callbacks, log_dirs = [c for c in callbacks if c.__class__.__name__ != "TensorBoard"], []
        fit["epochs"], initial_epoch = epoch_budget(hp.values, fit.get("epochs"), fit)
        x, y = self.x, self.y
        if hp.values.get(TRAIN_SIZE) is not None:  # the race's larger (or smaller) training set
            x, y, weights = self.tuner.race_training(int(hp.values[TRAIN_SIZE]), execution)
            if "sample_weight" in fit:
                fit["sample_weight"] = weights
        model = self.build(hp, execution)
        score, history = self.score(self.tuner.hypermodel.fit(hp, model, x, y, callbacks=callbacks, **fit))
        reward = score if history is None else score.reward
        _log_reward(log_dirs, reward, self.tuner.hypermodel.policy(hp), fit["epochs"])
        self.store.add(hp.values, self.tuner.search_seed, execution, reward, history or {}, key)
        return score, history, model, self.rows(key, execution, score, history, initial_epoch)

    def build(self, hp: Any, execution: int) -> keras.Model:
        """The model of execution ``execution``: built under that execution's seed, which every
        configuration shares (same initial weights for the same architecture, same batch order,
        same augmentation seeds: paired evaluations)."""
        return build_seeded(lambda this_hp: compat.build_model(self.tuner, this_hp), hp,
                            execution_seed(self.tuner.search_seed, execution))

    def score(self, result: Any) -> tuple[Any, dict | None]:
        """(score, history) of what ``HyperModel.fit`` returned: the reward of a history (checked
        finite), or the objective's value of a number (history None)."""
        history = _history_of(result)
        if history is None:
            return _objective_value(result, self.tuner.oracle.objective), None
        check_finite(history)
        return overfit_filtered_reward(history, k=self.tuner.reward_k, max_gap=self.tuner.reward_max_gap), history

    def rows(self, key: Any, execution: int, score: Any, history: dict | None, initial_epoch: int = 0) -> list[dict]:
        """The notebook rows of one training: one per epoch with the training's own reward, or one
        row with the objective's value when ``HyperModel.fit`` returned a number."""
        if history is None:
            return [{"trial": key, "execution": execution, "epoch": "", self.tuner.oracle.objective.name: score}]
        rows = []
        for epoch in range(len(history.get("loss", []))):
            row = {"trial": key, "execution": execution, "epoch": initial_epoch + epoch + 1}
            row.update({name: float(values[epoch]) for name, values in history.items() if epoch < len(values)})
            row[REWARD] = score.reward  # this training's own reward (the trial's is their mean)
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ a trial, an extra execution
    def run_trial(self, trial: Any) -> dict[str, float]:
        """Train ``trial`` ``executions_per_trial`` times (executions a stopped search finished are
        read back, never repeated); checkpoint the best model; return the trial's metrics. Under
        density matching a trial trains nothing: its metrics are its policy's density score."""
        hp = trial.hyperparameters
        if self.tuner.density is not None:
            metrics = self.tuner.density.metrics(self.tuner.hypermodel.policy(hp))
            self.write_notebook(trial.trial_id, [{"trial": trial.trial_id, "execution": 0, "epoch": "", **metrics}], hp)
            return metrics
        stored = self.store.read(hp.values, self.tuner.search_seed)
        objective = self.tuner.oracle.objective
        scores: list[Any] = []
        self._rows = rows = []
        best_model_reward = -math.inf
        for execution in range(self.tuner.executions_per_trial):
            if stored is not None and execution in stored.rewards:  # finished before a stop: never repeated
                _, initial_epoch = epoch_budget(hp.values, self.fit.get("epochs"), dict(self.fit))
                score, history = self.score(stored.histories.get(execution) or stored.rewards[execution])
                rows.extend(self.rows(trial.trial_id, execution, score, history, initial_epoch))
                model = None
            else:
                score, history, model, new_rows = self.run(hp, execution, trial, trial.trial_id)
                rows.extend(new_rows)
            model_reward = score.reward if history is not None else score if objective.direction == "max" else -score
            if model is not None and model_reward > best_model_reward:
                save_weights(model, compat.checkpoint_path(self.tuner, trial.trial_id))
            best_model_reward = max(best_model_reward, model_reward)
            scores.append(score)
        if all(isinstance(s, ExecutionReward) for s in scores):
            metrics = combine_executions(scores)
        elif any(isinstance(s, ExecutionReward) for s in scores):
            raise TypeError("HyperModel.fit must return the same kind of result (a History or a number) for "
                            "every execution of a trial.")
        else:
            metrics = {objective.name: float(np.mean(scores))}
        self.write_notebook(trial.trial_id, rows, hp)
        return metrics

    def run_extra(self, values: dict[str, Any], trial_id: str | None, key: str, execution: int) -> float:
        """Train and store one more execution of the configuration ``values`` (an intensifier's), a
        trial's (``trial_id``: its TensorBoard folders get it as ``execution<n>``) or an
        architecture's no-augmentation run (no trial); its notebook rows go under ``key``.
        Returns its reward."""
        oracle = self.tuner.oracle
        trial = oracle.trials.get(trial_id) if trial_id is not None else None
        hp = trial.hyperparameters.copy() if trial is not None else oracle.get_space()
        hp.values = dict(values)
        score, history, _, rows = self.run(hp, execution, trial, trial_id)
        if history is not None:
            for row in rows:
                row["trial"] = key
            self.write_notebook(key, rows, hp, executions=[execution])
        return score if history is None else score.reward

    def context(self, log: Callable[[str], Any]) -> Context:
        """What an intensifier needs from this search ([`Context`][keras_augtune.intensifier.Context]):
        its executions are `run_extra()`'s, its lines go to ``log``."""
        tuner = self.tuner
        return Context(
            trial_values={trial_id: trial.hyperparameters.values for trial_id, trial in tuner.oracle.trials.items()},
            space=tuner.policy_space, store=self.store, search_seed=tuner.search_seed,
            own_executions=0 if tuner.density is not None else tuner.executions_per_trial,  # density trains nothing
            measure=lambda config, execution: self.run_extra(config.values, config.trial_id, config.notebook_key,
                                                             execution),
            log=log, base_name=None if tuner.hypermodel.base is None else tuner.hypermodel.base.name)

    # ------------------------------------------------------------------ the notebook
    def write_notebook(self, key: str, rows: list[dict[str, Any]], hp: Any = None, executions: Any = None) -> None:
        """Replace ``key``'s rows of the notebook (one row per trial, execution and epoch; the
        policy and architecture values of ``hp``); only those of ``executions`` when given."""
        write_notebook(self.tuner, key, rows, hp, executions)

    def record_failure(self, trial: Any, exc: BaseException) -> None:
        """Keep a failed trial in the notebook: the epochs it trained and a row with its reason."""
        rows = list(self._rows)
        execution = len({r["execution"] for r in rows})  # rows are those of the executions that finished
        reason = failure_reason("".join(traceback.format_exception(exc)))
        rows.append({"trial": trial.trial_id, "execution": execution, "epoch": "", "status": FAILED, "error": reason})
        try:
            self.write_notebook(trial.trial_id, rows, trial.hyperparameters)
        except Exception:  # the notebook must never hide the trial's own error
            pass


def build_seeded(build: Callable[[Any], keras.Model], hp: Any, seed: int) -> keras.Model:
    """``build(hp)`` under ``seed``: Keras's global seeds (initial weights, batch order) and every
    policy layer's augmentation seed, so two configurations built under one seed are paired. The
    base recipe's layer (`keras_augtune.bases`) gets its own seed derived from ``seed``: the base and
    the candidate's policy never draw the same randomness."""
    keras.utils.set_random_seed(seed)
    model = build(hp)
    for layer in model.layers:
        if isinstance(layer, PolicyAugmentation):
            layer.seed = seed
    seed_base_layers(model, seed)
    return model


def write_notebook(tuner: Any, key: str, rows: list[dict[str, Any]], hp: Any = None, executions: Any = None) -> None:
    """Replace ``key``'s rows of ``tuner``'s notebook, with the policy and architecture values of ``hp``."""
    if hp is not None:
        policy = json.dumps(tuner.hypermodel.policy(hp).to_dict()["sub_policies"], separators=(",", ":"))
        architecture = json.dumps(architecture_values(hp.values), separators=(",", ":"))
        for row in rows:
            row.update(policy=policy, hyperparameters=architecture)
    Notebook(tuner.notebook_path, tail=_NOTEBOOK_TAIL).write_trial(key, rows, executions)


def pretraining_recorder(tuner: Any) -> Callable[[str, dict], None]:
    """What keeps the warm start's pretraining epochs in the notebook (trial ``pretraining-<key>``)."""
    def record(key: str, history: dict) -> None:
        trial = f"pretraining-{key}"
        rows = [{"trial": trial, "execution": 0, "epoch": epoch + 1,
                 **{name: float(values[epoch]) for name, values in history.items() if epoch < len(values)}}
                for epoch in range(len(history.get("loss", [])))]
        write_notebook(tuner, trial, rows)
    return record


def _copy_callbacks(callbacks: list) -> list:
    """Fresh copies of the user's callbacks for one execution (as Keras Tuner does)."""
    try:
        return copy.deepcopy(callbacks)
    except Exception:
        raise keras_tuner.errors.FatalValueError(
            "All callbacks used during a search should be deep-copyable (since they are reused across "
            f"trials). It is not possible to do `copy.deepcopy({callbacks})`"
        ) from None


def _log_reward(log_dirs: list[str], reward: float, policy: Any, step: int) -> None:
    """Add the execution's reward (an HParams metric) and its policy as text to its TensorBoard folders."""
    if not log_dirs:
        return
    import tensorflow as tf

    from keras_augtune.results import describe_policy

    for log_dir in log_dirs:
        with tf.summary.create_file_writer(log_dir).as_default():
            tf.summary.scalar(REWARD, reward, step=step)
            tf.summary.text("policy", describe_policy(policy), step=step)


def _history_of(result: Any) -> dict | None:
    """The per-epoch history in what ``HyperModel.fit`` returned (a History or its dict), or
    None when it returned a number (Keras Tuner: the objective's value)."""
    history = getattr(result, "history", result)
    if isinstance(history, dict) and all(isinstance(v, (list, tuple, np.ndarray)) for v in history.values()):
        return history
    if isinstance(result, (int, float, np.number)) and not isinstance(result, bool):
        return None
    raise TypeError(f"HyperModel.fit must return a keras History (or its .history dict) or a number (the "
                    f"objective's value); got {type(result).__name__}: {result!r:.80}.")


def _objective_value(value: Any, objective: Any) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise keras_tuner.errors.FailedTrialError(f"HyperModel.fit returned {value} as the objective's value.")
    if not isinstance(getattr(objective, "name", None), str) or getattr(objective, "direction", None) not in ("min", "max"):
        raise TypeError("HyperModel.fit returned a number, which is the objective's value, but the objective "
                        f"{objective!r} has no single name and direction.")
    return value


def check_finite(history: dict) -> None:
    """Fail the trial (``FailedTrialError``) when any metric of ``history`` is not finite: the child diverged."""
    for key, values in history.items():
        for epoch, value in enumerate(values, start=1):
            if not math.isfinite(float(value)):
                raise keras_tuner.errors.FailedTrialError(
                    f"The child model diverged: {key} became {value} at epoch {epoch}."
                )
