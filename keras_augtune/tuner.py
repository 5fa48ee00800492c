"""`AugmentTuner`: the trial lifecycle of a policy (and architecture) search, in ordinary Keras code."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import traceback
from typing import Any, Sequence

import keras
import keras_tuner
import numpy as np

from keras_augtune import compat, distributed, heap, runs
from keras_augtune.checks import check_choice, check_int, check_seed
from keras_augtune.data import VALIDATION_SPLIT, Dataset, prepare_search_data
from keras_augtune.effects import OpEffects, estimate_op_effects
from keras_augtune.evaluation.density_search import DensitySearch
from keras_augtune.evaluation.reward import (
    REWARD,
    ExecutionReward,
    combine_executions,
    overfit_filtered_reward,
    reward_objective,
)
from keras_augtune.confirmation import Confirmation, Configuration, plan_confirmation
from keras_augtune.executions import ExecutionStore
from keras_augtune.files import Notebook, load_weights
from keras_augtune.hypermodel import AugmentHyperModel
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.oracle import RandomForestHyperbandOracle, RandomForestOracle
from keras_augtune.policy import Policy
from keras_augtune.results import SearchResults, TrialDisplay
from keras_augtune.seeds import execution_seed
from keras_augtune.space import PolicySpace, architecture_values, baseline_values, is_baseline, parse_name
from keras_augtune.trials import COMPLETED, EPOCHS, FAILED, FINISHED, INITIAL_EPOCH, budget_of, failure_reason
from keras_augtune.warm_start import WarmStart

METHODS = ("bayesian", "random", "hyperband")


class AugmentTuner(keras_tuner.Tuner):
    """Search the data-augmentation policy that suits your images (and, jointly, your
    model's own hyperparameters) with a random-forest Bayesian-optimisation oracle.

    ``AugmentTuner(hypermodel).search(x, y)`` trains the child model once per trial on
    images augmented by the trial's policy and scores it with the overfit-filtered
    top-K validation accuracy ([`keras_augtune.evaluation.reward`][keras_augtune.evaluation.reward]). Trial 0 is the
    no-augmentation baseline, so every result reads as a gain over it. Execution ``e`` of every
    trial trains under the same seed (paired evaluations), policies that change no image are
    never trained after the baseline, and the best policies are confirmed on more paired
    executions before the verdict (``results().verdict()``) names a winner.

    Args:
        hypermodel: a ``keras_tuner.HyperModel`` or ``build(hp)`` function, a
            ``keras.Model``, a built-in model name, or an [`AugmentHyperModel`][keras_augtune.AugmentHyperModel];
            ``None`` uses the built-in ``"simple"`` CNN.
        objective: what the oracle maximises; default the ``"reward"``.
        max_trials: total trials, baseline included, across resumed runs.
        method: ``"bayesian"`` (random forest + expected improvement), ``"random"``, or
            ``"hyperband"``: multi-fidelity search, Hyperband's successive halving over child
            epochs (up to ``child_epochs``) with the random forest proposing each bracket's new
            policies ([`RandomForestHyperbandOracle`][keras_augtune.RandomForestHyperbandOracle]; see
            ``docs/how-to/multi-fidelity.md``). Weak policies stop after a few epochs; the
            baseline and the policies that survive every round train ``child_epochs``.
        num_initial_points: random trials before the forest takes over (default 10); with
            ``"hyperband"``, the completed trials a budget needs before the forest is fitted on it.
        hyperband_factor: Hyperband's reduction factor η (default 3): each round keeps the best
            third of its trials and trains them three times longer.
        policy_space: a [`PolicySpace`][keras_augtune.PolicySpace]; or give ``num_sub_policies``,
            ``ops_per_sub_policy``, ``ops`` and ``search_probabilities``.
        executions_per_trial: trainings per trial, rewards averaged (DeepAugment's ``opt_samples``).
        reward_k: the reward's K: how many of the best (not overfitting) epochs are averaged.
        reward_max_gap: the reward's overfitting threshold (train minus validation accuracy).
        train_set_size: stratified subsample of the training images used by the search.
        validation_split: stratified fraction held out when ``validation_data`` is not given.
        child_epochs: epochs of each child model's training.
        batch_size: batch size of each child model's training.
        child_first_train_epochs: if > 0, pretrain the child once without augmentation
            for this many epochs; each trial starts from those weights with a fresh optimizer.
            One pretraining per architecture (layers and weight shapes, not learning rate,
            batch size or dropout), input shape, data and pretraining setting: a file made
            under another is never loaded (`keras_augtune.warm_start`).
        pretrained_weights_path: where the warm-start weights are kept: a folder (default
            ``warm_start`` in the project dir) or a ``.weights.h5`` file.
        baseline_trial: run the no-augmentation baseline as trial 0 (default True).
        confirm_top_k: how many of the best policies the confirmation re-evaluates (below).
        confirm_executions: after the trials, the ``confirm_top_k`` best policies
            (default 3, no-op policies skipped), the baseline and, under joint architecture tuning,
            the no-augmentation run of each of their architectures are brought to
            ``confirm_executions`` paired executions each (default 3) before a winner is named:
            an extra cost beyond ``max_trials``, shown in the log and the summary. ``0`` for
            either (or ``confirm_executions=1``) turns it off ([`keras_augtune.confirmation`][keras_augtune.confirmation]).
        notebook_path: the per-epoch CSV (default ``<project dir>/notebook.csv``).
        directory: as in Keras Tuner: where the project folder is made.
        project_name: as in Keras Tuner: the project folder's name.
        overwrite: as in Keras Tuner: start afresh instead of reloading the project.
        seed: as in Keras Tuner (also seeds the split, the trainings and the oracle).
        max_consecutive_failed_trials: stop the search, with the failures' reasons, when this
            many trials in a row fail (default 3).
        max_retries_per_trial: as in Keras Tuner: a trial that raised is run again up to this
            many times (default 0: a failed trial is never retried; a diverging child never is).
        hyperparameters: as in Keras Tuner, for the child's own hyperparameters; the
            policy's (``augment/*``) are always searched.
        tune_new_entries: as in Keras Tuner, for the child's own hyperparameters.
        allow_new_entries: as in Keras Tuner, for the child's own hyperparameters.
        oracle: any Keras Tuner oracle instead of the built-in random forest (then pass the
            oracle's own arguments to it). Its ``tuner/epochs`` and ``tuner/initial_epoch``
            (Hyperband) set each trial's epochs, and its first trial is the no-augmentation
            baseline when ``baseline_trial``.
        worker_timeout: distributed search only (``KERASTUNER_*`` environment variables):
            seconds without a heartbeat after which the chief takes a running trial back from
            its worker and hands it to another one (see ``docs/reliability.md``).
        evaluator: how a trial scores its policy: ``"training"`` (default: train the child with
            it, the overfit-filtered reward), ``"density"`` (Fast AutoAugment's density matching:
            the child is trained once per fold on clean data when the search starts, then each
            trial scores its policy on augmented held-out images without training, in a second
            or two; the confirmation then trains the best policies by density score with the
            training reward; see ``docs/how-to/density.md``), or a configured
            [`DensityEvaluator`][keras_augtune.evaluation.density.DensityEvaluator].
        verbose: 0 silent, 1 one line per trial, 2 also Keras Tuner's and Keras's progress.
        **kwargs: passed on to ``keras_tuner.Tuner`` (e.g. ``max_model_size``).
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 20,
        *,
        method: str = "bayesian",
        num_initial_points: int | None = None,
        policy_space: PolicySpace | None = None,
        num_sub_policies: int = 5,
        ops_per_sub_policy: int = 2,
        ops: Sequence[str] | None = None,
        search_probabilities: bool = True,
        executions_per_trial: int = 1,
        reward_k: int = 3,
        reward_max_gap: float = 0.10,
        train_set_size: int | None = None,
        validation_split: float = VALIDATION_SPLIT,
        child_epochs: int = 10,
        batch_size: int = 64,
        child_first_train_epochs: int = 0,
        pretrained_weights_path: str | None = None,
        baseline_trial: bool = True,
        confirm_top_k: int = 3,
        confirm_executions: int = 3,
        notebook_path: str | None = None,
        directory: str | None = None,
        project_name: str | None = "augtune",
        overwrite: bool = False,
        seed: int | None = None,
        verbose: int = 1,
        oracle: keras_tuner.Oracle | None = None,
        max_consecutive_failed_trials: int = 3,
        worker_timeout: float = 120.0,  # distributed.WORKER_TIMEOUT, written out so the API reference shows it
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        hyperband_factor: int = 3,
        evaluator: Any = "training",
        **kwargs: Any,
    ):
        check_int("max_trials", max_trials)
        check_int("executions_per_trial", executions_per_trial)
        check_int("child_epochs", child_epochs)
        check_int("batch_size", batch_size)
        check_int("reward_k", reward_k)
        check_int("child_first_train_epochs", child_first_train_epochs, minimum=0)
        check_int("max_consecutive_failed_trials", max_consecutive_failed_trials)
        check_int("max_retries_per_trial", max_retries_per_trial, minimum=0)
        check_int("confirm_top_k", confirm_top_k, minimum=0)
        check_int("confirm_executions", confirm_executions, minimum=0)
        if isinstance(worker_timeout, bool) or not isinstance(worker_timeout, (int, float)) or not worker_timeout > 0:
            raise ValueError(f"worker_timeout must be a positive number of seconds, got {worker_timeout!r}.")
        if train_set_size is not None:
            check_int("train_set_size", train_set_size)
        if not isinstance(validation_split, float) or not 0.0 < validation_split < 1.0:
            raise ValueError(f"validation_split must be a float in (0, 1), got {validation_split!r}.")
        check_choice("method", method, METHODS)
        check_int("hyperband_factor", hyperband_factor, minimum=2)
        check_seed(seed)

        default_ops = policy_space is None and ops is None and not isinstance(hypermodel, AugmentHyperModel)
        if isinstance(hypermodel, AugmentHyperModel):
            if policy_space is not None:
                hypermodel.policy_space = policy_space
        else:
            if policy_space is None:
                policy_space = PolicySpace(
                    num_sub_policies=num_sub_policies, ops_per_sub_policy=ops_per_sub_policy,
                    ops=ops, search_probabilities=search_probabilities,
                )
            hypermodel = AugmentHyperModel(hypermodel, policy_space=policy_space)
        self.policy_space = hypermodel.policy_space
        #: The tuner chose the ops (the user gave none): ``search`` leaves out the colour-only ones on grayscale.
        self._default_ops = default_ops
        self._channels: int | None = None  # of the searched images, known in search()

        objective = reward_objective() if objective is None else objective
        if oracle is None:
            initial = [baseline_values(self.policy_space)] if baseline_trial else None
            if hyperparameters is not None:  # the policy is always searched, whatever tune/allow_new_entries say
                hyperparameters = hyperparameters.copy()
                self.policy_space.declare(hyperparameters)
            oracle_class, options = RandomForestOracle, {"acquisition": "random" if method == "random" else "ei"}
            if method == "hyperband":
                oracle_class, options = RandomForestHyperbandOracle, {"max_epochs": child_epochs,
                                                                      "factor": hyperband_factor}
            oracle = oracle_class(
                objective=objective, max_trials=max_trials,
                num_initial_points=10 if num_initial_points is None else num_initial_points, **options,
                seed=seed, initial_values=initial, canonical_values=self._canonical_values,
                hyperparameters=hyperparameters,
                tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
                max_retries_per_trial=max_retries_per_trial,
                max_consecutive_failed_trials=max_consecutive_failed_trials,
            )
        else:
            passed = [name for name, value, default in (
                ("hyperparameters", hyperparameters, None), ("tune_new_entries", tune_new_entries, True),
                ("allow_new_entries", allow_new_entries, True), ("max_retries_per_trial", max_retries_per_trial, 0),
            ) if value is not default and value != default]
            if passed:
                raise ValueError(f"{', '.join(passed)} configure the oracle: pass them to the oracle you give "
                                 f"(oracle={type(oracle).__name__}(...)), not to AugmentTuner.")
            if baseline_trial:
                self._baseline_first(oracle)
        self.method = method
        self.seed = seed
        self.density = DensitySearch.resolve(evaluator, hypermodel, child_epochs, batch_size)
        if self.density is not None and method == "hyperband":
            raise ValueError("evaluator='density' trains no child per trial, so method='hyperband' has no epochs "
                             "to shorten: use method='bayesian' (or 'random') with it.")
        self.reward_k = int(reward_k)
        self.reward_max_gap = float(reward_max_gap)
        self.train_set_size = train_set_size
        self.validation_split = validation_split
        self.child_epochs = int(child_epochs)
        self.batch_size = int(batch_size)
        self.child_first_train_epochs = int(child_first_train_epochs)
        self.confirm_top_k = int(confirm_top_k)
        self.confirm_executions = int(confirm_executions)
        self.pretrained_weights_path = pretrained_weights_path
        self.search_verbose = int(verbose)
        self.worker_timeout = float(worker_timeout)
        self._heartbeat: distributed.Heartbeat | None = None
        self._process_seed = int(np.random.SeedSequence().entropy % (2**31))  # only without any seed
        super().__init__(
            oracle=oracle, hypermodel=hypermodel, directory=directory, project_name=project_name,
            overwrite=overwrite, executions_per_trial=executions_per_trial, **kwargs,
        )
        self.notebook_path = notebook_path or os.path.join(self.project_dir, "notebook.csv")
        self.dataset: Dataset | None = None
        #: The one-line trial summaries; set ``display.write`` to send them elsewhere than ``print``.
        self.display = TrialDisplay()
        if compat.is_worker():
            distributed.sleep_when_idle(self.oracle)

    # ------------------------------------------------------------------ search
    def _populate_initial_space(self):  # a Keras Tuner hook (see keras_augtune.compat.explore_space)
        # Before search() the data (input shape, classes) is unknown: declare the policy
        # space (and the user hypermodel's declared hyperparameters) now, build later.
        hp = self.oracle.get_space()
        self.hypermodel.declare_hyperparameters(hp)
        self.oracle.update_space(hp)
        if self.hypermodel.child_hypermodel is not None:
            # A user's build(hp) can run without the data: explore it now, as Keras Tuner does,
            # so search_space_summary() lists its hyperparameters before search(). One that
            # needs the data is explored (and its errors reported) by search().
            try:
                compat.explore_space(self)
            except Exception:
                pass

    def _check_full_budget(self, epochs: int) -> None:
        """A multi-fidelity oracle fixed the full budget when it was built: ``search(epochs=...)``
        cannot change it."""
        max_epochs = getattr(self.oracle, "max_epochs", None)
        if isinstance(self.oracle, RandomForestHyperbandOracle) and epochs != max_epochs:
            raise ValueError(
                f"method='hyperband' trains each trial for the epochs its bracket gives, up to {max_epochs} "
                f"(the child_epochs the search began with); epochs={epochs} cannot change that: pass "
                f"child_epochs={max_epochs} and no search(epochs=...)."
            )

    def _baseline_first(self, oracle: keras_tuner.Oracle) -> None:
        """Make the first trial of ``oracle`` (a user's) the no-augmentation baseline.

        Wraps the instance's ``populate_space`` (the public hook every oracle implements):
        until the oracle holds a baseline trial, it returns the baseline values (the
        space's defaults elsewhere), without asking the oracle's own strategy. A Hyperband
        oracle's baseline trains its full budget (``max_epochs``), as its last rounds do.
        """
        populate = oracle.populate_space
        space = self.policy_space
        budget = {}
        if isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
            budget = {EPOCHS: int(oracle.max_epochs), INITIAL_EPOCH: 0}

        def populate_space(trial_id):
            if not any(is_baseline(space, t.hyperparameters.values) for t in oracle.trials.values()):
                values = {**oracle.get_space().values, **baseline_values(space), **budget}
                return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}
            return populate(trial_id)

        oracle.populate_space = populate_space

    def search(self, x: Any, y: Any = None, validation_data: Any = None, epochs: int | None = None,
               batch_size: int | None = None, callbacks: list | None = None, verbose: int | None = None,
               value_range: Any = None, **fit_kwargs: Any) -> None:
        """Run the search on images ``x`` (N, H, W[, C]) and labels ``y`` (ids or one-hot), or on a
        ``tf.data.Dataset`` ``x`` of ``(images, labels[, sample_weights])``, batched or not
        (``keras.utils.image_dataset_from_directory`` output included; see
        `keras_augtune.data.search_inputs()` for what is read into memory).

        ``validation_data=(x_val, y_val[, weights])`` (or a dataset) replaces the stratified
        ``validation_split``, which ``search(..., validation_split=0.3)`` sets for this search;
        ``sample_weight`` follows the images through the split and the ``train_set_size``
        subsample; ``epochs``/``batch_size`` override ``child_epochs``/``batch_size``;
        ``value_range`` declares the pixel range (default: (0, 255) for integer images,
        (0, 1) for float images). Validation images are never augmented.
        """
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "AugmentTuner augments inside the child model with imgaug (through tf.numpy_function), "
                f"which needs Keras's TensorFlow backend; Keras runs on {keras.backend.backend()!r} here. "
                "Set KERAS_BACKEND=tensorflow before importing keras. A Policy itself works with any "
                "backend in a tf.data pipeline: ds.map(policy.tf_map())."
            )
        if verbose is not None:
            self.search_verbose = int(verbose)
        epochs = self.child_epochs if epochs is None else check_int("epochs", epochs)
        self._check_full_budget(epochs)
        batch_size = self.batch_size if batch_size is None else check_int("batch_size", batch_size)
        prepared = prepare_search_data(
            x, y, validation_data, value_range=value_range, sample_weight=fit_kwargs.pop("sample_weight", None),
            validation_split=fit_kwargs.pop("validation_split", self.validation_split),
            train_set_size=self.train_set_size, seed=self.search_seed)
        data, val, train_index, num_classes = prepared.data, prepared.val, prepared.train_index, prepared.num_classes
        self.dataset = data
        self._settle_policy_space(data.input_shape[-1])
        self.hypermodel.configure(data.input_shape, num_classes, data.value_range, one_hot=data.one_hot)
        compat.explore_space(self)  # now the child can be built

        x_train = data.x[train_index].astype("float32")
        x_val = val.x.astype("float32")
        y_train, y_val = self._labels(data.y[train_index], num_classes), self._labels(val.y, num_classes)
        validation = (x_val, y_val) if prepared.val_weights is None else (x_val, y_val, prepared.val_weights)
        if prepared.train_weights is not None:
            fit_kwargs["sample_weight"] = prepared.train_weights
        self.hypermodel.warm_start = None
        self._preflight(x_train[:2], y_train[:2], num_classes)
        if self.child_first_train_epochs:
            self.hypermodel.warm_start = WarmStart(
                self.child_first_train_epochs, x_train, y_train, validation, batch_size,
                self.pretrained_weights_path or os.path.join(self.project_dir, "warm_start"), seed=self.search_seed,
                sample_weight=prepared.train_weights, record=self._record_pretraining,
            )
        if self.density is not None:
            self._fit_density(data.x[train_index], data.y[train_index], data.value_range)
        self.oracle.verbose = 1 if self.search_verbose >= 2 else 0
        heap.freeze()  # Keras Tuner's per-trial gc.collect() then scans only what the trials create
        try:
            if compat.is_chief():
                # Keras Tuner's chief would wait forever for a dead worker's trial: serve with recovery.
                self.save()
                distributed.serve(self.oracle, worker_timeout=self.worker_timeout, log=self.display.write)
                return
            fit = dict(validation_data=validation, epochs=epochs, batch_size=batch_size,
                       callbacks=list(callbacks or []), verbose=1 if self.search_verbose >= 2 else 0, **fit_kwargs)
            super().search(x_train, y_train, **fit)
            self._confirm(x_train, y_train, **fit)
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise
            raise RuntimeError(self._consecutive_failures_message()) from exc
        finally:
            heap.thaw()

    def _settle_policy_space(self, channels: int) -> None:
        """Fix the searched policy space for images with ``channels`` channels, before the first trial.

        On grayscale images the default space (no ``ops`` given) leaves out the colour-only ops,
        which change nothing there. A resumed search keeps the space it began with (the one its
        oracle declared), whatever the images. The oracle's canonicaliser reads the channels
        from here (`_canonical_values()`).
        """
        self._channels = int(channels)
        if compat.is_worker():  # the chief decided: its oracle holds the space
            declared, started = PolicySpace.from_hyperparameters(self.oracle.get_space()), True
        else:
            declared, started = PolicySpace.from_hyperparameters(self.oracle.hyperparameters), bool(self.oracle.trials)
        if started:
            if declared is None or declared.ops == self.policy_space.ops:
                return
            space = dataclasses.replace(self.policy_space, ops=declared.ops)
        elif self._default_ops:
            space = self.policy_space.for_channels(self._channels)
            if space == self.policy_space:
                return
        else:
            return
        self.policy_space = self.hypermodel.policy_space = space
        if not started:  # no trial yet: declare the narrowed space afresh
            hp = keras_tuner.HyperParameters()
            self.hypermodel.declare_hyperparameters(hp)
            hp.merge([h for h in self.oracle.hyperparameters.space if parse_name(h.name) is None])
            self.oracle.hyperparameters = hp

    def _canonical_values(self, values: dict) -> dict:
        """The oracle's canonicaliser: a policy that changes no image of the searched data (its
        channels read when a proposal is made) is the no-augmentation baseline, never trained twice."""
        try:
            return self.policy_space.canonical_values(values, channels=self._channels or 3)
        except ValueError:  # a no-op policy in a space that cannot express the baseline (baseline_trial=False)
            return {"no-op policy": True, **architecture_values(values)}

    def _consecutive_failures_message(self) -> str:
        """Why the search stopped early: the reasons of the last failed trials."""
        limit = self.oracle.max_consecutive_failed_trials
        reasons = []
        for trial_id in list(self.oracle.end_order)[-limit:]:
            trial = self.oracle.trials[trial_id]
            reasons.append(f"trial {trial_id}: {failure_reason(trial.message)}")
        return (
            f"The search stopped: {limit} trials in a row failed (max_consecutive_failed_trials={limit}), "
            "so every trial is likely to fail the same way. "
            + "; ".join(reasons)
            + ". Fix the cause (the full tracebacks are in each trial's trial.json), or pass a larger "
            "max_consecutive_failed_trials to tolerate more failures. Finished trials are kept: "
            "run the search again with the same directory to continue."
        )

    def _labels(self, y: np.ndarray, num_classes: int) -> np.ndarray:
        return keras.utils.to_categorical(y, num_classes) if self.hypermodel.one_hot else y

    def _preflight(self, sample: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        """Fail at once, with a clear message, on errors every trial would hit."""
        hp = self.oracle.get_space()
        try:
            hp.values.update(baseline_values(self.policy_space))
        except ValueError:  # a space without a no-augmentation policy (baseline_trial=False): its defaults
            pass
        try:
            model = self.hypermodel.build(hp)
            out = model(sample, training=False)
        except Exception as exc:
            raise ValueError(f"Building or calling the child model failed before the search started: {exc}") from exc
        shape = tuple(out.shape)
        if len(shape) != 2 or shape[-1] != num_classes:
            raise ValueError(
                f"The model's output has shape {shape[1:]} per image, but the labels have {num_classes} "
                f"classes: the last layer must output {num_classes} class scores."
            )
        if getattr(model, "compiled", False):
            try:
                keras.ops.convert_to_numpy(model.compute_loss(x=sample, y=labels, y_pred=out, training=False))
            except Exception as exc:
                kind = "one-hot rows" if self.hypermodel.one_hot else "integer class ids"
                raise ValueError(
                    f"The child model's loss cannot be computed on the labels ({kind}, shape "
                    f"{labels.shape[1:] or '()'} per image) before the search started: {exc} "
                    "Use a sparse loss for integer labels or a categorical loss for one-hot labels."
                ) from exc
        keras.backend.clear_session()

    # ------------------------------------------------------------------ one trial
    def run_trial(self, trial, *args, **kwargs):
        """Train the child ``executions_per_trial`` times; a crash or divergence fails the trial
        (recorded with its reason, never retried) and the search goes on."""
        try:
            if self.density is not None:
                return self._density_trial(trial)
            return self._run_executions(trial, *args, **kwargs)
        except keras_tuner.errors.FailedTrialError as exc:
            self._record_failure(trial, exc)
            raise
        except (keras_tuner.errors.FatalError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if not runs.disk_error(exc):
                self._record_failure(trial, exc)
            if runs.disk_error(exc):  # not the trial's fault: stop the search, the trial re-runs on resume
                raise keras_tuner.errors.FatalError(f"{type(exc).__name__}: {exc}") from exc
            if getattr(self.oracle, "max_retries_per_trial", 0):
                raise  # Keras Tuner marks it INVALID and runs it again, up to max_retries_per_trial
            raise keras_tuner.errors.FailedTrialError(f"{type(exc).__name__}: {exc}") from exc

    def _run_executions(self, trial, x, y, validation_data=None, epochs=None, batch_size=None, callbacks=None,
                        verbose=0, **fit_kwargs):
        hp = trial.hyperparameters
        policy = self.hypermodel.policy(hp)
        epochs, initial_epoch = _epoch_budget(hp, epochs, fit_kwargs)
        store = ExecutionStore(self.project_dir)
        stored = store.read(hp.values, self.search_seed)
        rewards: list[Any] = []
        rows: list[dict[str, Any]] = []
        self._rows = rows  # what a failure leaves in the notebook
        best_model_reward = -math.inf
        for execution in range(self.executions_per_trial):
            model = None
            if stored is not None and execution in stored.rewards:  # finished before a stop: never repeated
                result = stored.histories.get(execution) or stored.rewards[execution]
            else:
                execution_callbacks = _copy_callbacks(callbacks or [])
                log_dirs = compat.configure_tensorboard(self, execution_callbacks, trial, execution)
                result, model = self._train_execution(
                    hp, execution, x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
                    callbacks=execution_callbacks, verbose=verbose, **fit_kwargs)
            score, history = self._score(result)
            if history is None:  # Keras Tuner's convention: a number is the objective's value
                rows.append({"trial": trial.trial_id, "execution": execution, "epoch": "",
                             self.oracle.objective.name: score})
                model_reward = score if self.oracle.objective.direction == "max" else -score
            else:
                rows.extend(_history_rows(trial.trial_id, execution, history, score.reward, initial_epoch))
                model_reward = score.reward
            rewards.append(score)
            if model is not None:
                _log_reward(log_dirs, score if history is None else score.reward, policy, epochs)
                if model_reward > best_model_reward:
                    model.save_weights(compat.checkpoint_path(self, trial.trial_id))
                store.add(hp.values, self.search_seed, execution, score if history is None else score.reward,
                          history or {}, trial.trial_id)
            best_model_reward = max(best_model_reward, model_reward)
        if all(isinstance(r, ExecutionReward) for r in rewards):
            metrics = combine_executions(rewards)
        elif any(isinstance(r, ExecutionReward) for r in rewards):
            raise TypeError("HyperModel.fit must return the same kind of result (a History or a number) for "
                            "every execution of a trial.")
        else:
            metrics = {self.oracle.objective.name: float(np.mean(rewards))}
        self._write_notebook(trial.trial_id, rows, hp)
        return metrics

    def _train_execution(self, hp, execution: int, x, y, **fit_kwargs) -> tuple[Any, keras.Model]:
        """Build and train the model of ``hp`` for execution ``execution`` (``fit_kwargs`` hold the
        callbacks, already copied); returns what ``HyperModel.fit`` returned and the trained model."""
        model = self._build_for_execution(hp, execution)
        return self.hypermodel.fit(hp, model, x, y, **fit_kwargs), model

    def _score(self, result: Any) -> tuple[Any, dict | None]:
        """(score, history) of what ``HyperModel.fit`` returned: the [`ExecutionReward`][keras_augtune.evaluation.reward.ExecutionReward] of a
        history (checked finite), or the objective's value of a number (history None)."""
        history = _history_of(result)
        if history is None:
            return _objective_value(result, self.oracle.objective), None
        _check_finite(history)
        return overfit_filtered_reward(history, k=self.reward_k, max_gap=self.reward_max_gap), history

    # ------------------------------------------------------------------ confirmation
    def _confirm(self, x, y, callbacks=None, **fit) -> None:
        """Confirmation (intensification, [`keras_augtune.confirmation`][keras_augtune.confirmation]): bring the best
        policies and the no-augmentation runs they are compared with to ``confirm_executions``
        paired executions each. Off in distributed searches and when the objective is not the reward."""
        objective = getattr(self.oracle, "objective", None)
        if (compat.is_worker() or self.confirm_top_k < 1 or self.confirm_executions < 2
                or getattr(objective, "name", None) != REWARD):
            return
        trial_values = {trial_id: trial.hyperparameters.values for trial_id, trial in self.oracle.trials.items()}
        configurations = plan_confirmation(self.results(), trial_values, self.policy_space, self.confirm_top_k)
        if not configurations:
            return
        log = self.display.note if self.search_verbose >= 1 else (lambda line: None)
        own = 0 if self.density is not None else self.executions_per_trial  # density trials train nothing
        confirmation = Confirmation(ExecutionStore(self.project_dir), self.search_seed,
                                    max(self.confirm_executions, self.executions_per_trial), own, log)
        confirmation.run(configurations, lambda config, execution: self._confirm_execution(
            config, execution, x, y, callbacks=callbacks, **fit))

    def _confirm_execution(self, config: Configuration, execution: int, x, y, callbacks=None, **fit) -> float:
        """Train and store one confirmation execution (a trial's TensorBoard folders get it as
        ``execution<n>``, like the trial's own); returns its reward."""
        trial = self.oracle.trials.get(config.trial_id) if config.trial_id is not None else None
        hp = trial.hyperparameters.copy() if trial is not None else self.oracle.get_space()
        hp.values = dict(config.values)
        execution_callbacks = _copy_callbacks(callbacks or [])
        if trial is not None:
            compat.configure_tensorboard(self, execution_callbacks, trial, execution)
        else:  # an architecture's no-augmentation run is no trial: no TensorBoard folder of its own
            execution_callbacks = [c for c in execution_callbacks if c.__class__.__name__ != "TensorBoard"]
        fit["epochs"], initial_epoch = _epoch_budget(hp, fit.get("epochs"), fit)  # a Hyperband trial's epochs
        result, _ = self._train_execution(hp, execution, x, y, callbacks=execution_callbacks, **fit)
        score, history = self._score(result)
        reward = score if history is None else score.reward
        ExecutionStore(self.project_dir).add(config.values, self.search_seed, execution, reward, history or {},
                                             config.trial_id)
        if history is not None:  # the notebook: the trial's rows, or the architecture's no-augmentation run's
            key = config.trial_id if config.trial_id is not None else f"no-augmentation-{config.key}"
            self._write_notebook(key, _history_rows(key, execution, history, reward, initial_epoch), hp,
                                 executions=[execution])
        return reward

    @property
    def search_seed(self) -> int:
        """The seed every execution's seed derives from ([`keras_augtune.seeds.execution_seed()`][keras_augtune.seeds.execution_seed]).

        ``seed`` when given; otherwise the oracle's seed, which Keras Tuner draws once and keeps
        in the oracle's state, so a resumed search pairs its executions with the earlier ones.
        (A distributed worker's oracle is a client without a seed: pass ``seed`` there.)
        """
        if self.seed is not None:
            return int(self.seed)
        seed = getattr(self.oracle, "seed", None) if not compat.is_worker() else None
        return int(seed) if seed is not None else self._process_seed

    def _build_for_execution(self, hp, execution: int) -> keras.Model:
        """The model of execution ``execution``: built under that execution's seed, which every
        trial shares (same initial weights for the same architecture, same batch order, same
        augmentation seeds: paired evaluations)."""
        seed = execution_seed(self.search_seed, execution)
        keras.utils.set_random_seed(seed)
        model = self._try_build(hp)
        for layer in model.layers:
            if isinstance(layer, PolicyAugmentation):
                layer.seed = seed
        return model

    def _write_notebook(self, key: str, rows: list[dict[str, Any]], hp: Any = None, executions: Any = None) -> None:
        """Replace ``key``'s rows of the notebook (one row per trial, execution and epoch, with
        each training's own reward; the policy and the architecture values of ``hp``); only
        those of ``executions`` when given (a confirmation's)."""
        if hp is not None:
            policy = json.dumps(self.hypermodel.policy(hp).to_dict()["sub_policies"], separators=(",", ":"))
            architecture = json.dumps(architecture_values(hp.values), separators=(",", ":"))
            for row in rows:
                row.update(policy=policy, hyperparameters=architecture)
        Notebook(self.notebook_path, tail=(REWARD, "status", "error", "policy", "hyperparameters")).write_trial(
            key, rows, executions)

    # ------------------------------------------------------------------ density matching
    def _fit_density(self, x, y, value_range) -> None:
        """Fit the density evaluator's fold models on the training images (or load them: they
        are kept in the project folder)."""
        if compat.is_chief() or compat.is_worker():
            raise ValueError("evaluator='density' scores a policy in a second or two: run the search in one "
                             "process, not distributed.")
        tuned = [hp.name for hp in self.oracle.get_space().space
                 if parse_name(hp.name) is None and not isinstance(hp, keras_tuner.engine.hyperparameters.Fixed)]
        if tuned:
            raise ValueError(f"evaluator='density' scores policies with fold models built once, so it cannot tune "
                             f"the model's own hyperparameters ({', '.join(tuned)}): fix them, or use "
                             "evaluator='training'.")
        seed = self.seed if self.seed is not None else int(self.oracle.seed)
        if self.search_verbose >= 1:
            self.display.write(f"Density matching: fitting (or loading) {self.density.evaluator.folds} fold models "
                               f"on {len(y)} images.")
        self.density.fit(x, y, value_range, self.project_dir, seed)

    def _density_trial(self, trial) -> dict[str, float]:
        """A trial's metrics under ``evaluator="density"``: its policy's density score (no training)."""
        metrics = self.density.metrics(self.hypermodel.policy(trial.hyperparameters))
        self._write_notebook(trial.trial_id, [{"trial": trial.trial_id, "execution": 0, "epoch": "", **metrics}],
                             trial.hyperparameters)
        return metrics

    def _record_failure(self, trial, exc: BaseException) -> None:
        """Keep a failed trial in the notebook: the epochs it trained and a row with its reason."""
        rows = list(getattr(self, "_rows", None) or [])
        execution = len({r["execution"] for r in rows})  # rows are those of the executions that finished
        reason = failure_reason("".join(traceback.format_exception(exc)))
        rows.append({"trial": trial.trial_id, "execution": execution, "epoch": "", "status": FAILED, "error": reason})
        try:
            self._write_notebook(trial.trial_id, rows, trial.hyperparameters)
        except Exception:  # the notebook must never hide the trial's own error
            pass

    def _record_pretraining(self, key: str, history: dict) -> None:
        """Keep the warm start's pretraining epochs in the notebook (trial ``pretraining-<key>``)."""
        trial = f"pretraining-{key}"
        rows = [{"trial": trial, "execution": 0, "epoch": epoch + 1,
                 **{name: float(values[epoch]) for name, values in history.items() if epoch < len(values)}}
                for epoch in range(len(history.get("loss", [])))]
        self._write_notebook(trial, rows)

    def _build_hypermodel(self, hp):
        """Keras Tuner's build; a Hyperband trial that continues another (``tuner/trial_id``)
        starts from that trial's saved weights, as Keras Tuner's ``Hyperband`` does (with a
        fresh optimizer: Keras's warning that it skips the saved optimizer state is silenced)."""
        model = super()._build_hypermodel(hp)
        if "tuner/trial_id" in hp.values:
            load_weights(model, compat.checkpoint_path(self, hp.values["tuner/trial_id"]))
        return model

    def on_trial_begin(self, trial):
        # The previous trial's objects are garbage now: collect them, and freeze what survives
        # (heap.py), so Keras Tuner's clean-up before the build scans only this trial's objects.
        keras.backend.clear_session(free_memory=False)
        heap.settle()
        super().on_trial_begin(trial)
        self.display.started(trial.trial_id)
        if compat.is_worker():  # tell the chief we are alive while the trial runs
            self._heartbeat = distributed.Heartbeat(
                self.oracle, trial.trial_id, distributed.heartbeat_interval(self.worker_timeout))

    def on_trial_end(self, trial):
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        super().on_trial_end(trial)
        if self.search_verbose >= 1:
            self.display.ended(trial, self._trial_line)

    def _trial_line(self, trial, seconds: float) -> str:
        if compat.is_worker():  # a worker's oracle is a gRPC client: it has no `trials`
            head = f"[{self.tuner_id}] Trial {trial.trial_id}"
        else:
            done = len([t for t in self.oracle.trials.values() if t.status in FINISHED])
            head = f"Trial {trial.trial_id} ({done}/{self.oracle.max_trials})"  # the id the tables show
        if trial.status != COMPLETED:
            return TrialDisplay.failed_line(head, trial.status, trial.message, seconds)
        if compat.is_worker():  # the metrics went to the chief: read them back from there
            trial = self.oracle.get_trial(trial.trial_id)
        reward = trial.metrics.get_best_value(REWARD)
        results = self.results()
        by_score = self.density is not None  # trials compare density scores (the confirmation's training rewards differ)
        best = results.best(1, by_score=by_score)

        def value(t):  # the number the line shows for a trial
            return None if t is None else t.score if by_score else t.reward

        baseline, best_value = value(results.baseline), value(best[0]) if best else reward
        budget = budget_of(trial.hyperparameters)
        if budget is not None and budget != results.full_budget:  # a short trial: no gain to show
            head, baseline = f"{head} [{budget}/{results.full_budget} epochs]", None
        return TrialDisplay.line(head, reward, baseline, best_value, seconds,
                                 self.hypermodel.policy(trial.hyperparameters).effective(self._channels or 3))

    # ------------------------------------------------------------------ results
    def results(self, num_trials: int = 1) -> SearchResults:
        """The results so far ([`SearchResults`][keras_augtune.results.SearchResults]).

        A distributed worker's oracle is a client of the chief's: it sees only the
        chief's ``num_trials`` best trials, and no baseline.
        """
        if compat.is_worker():
            return SearchResults.from_trials(self.oracle.get_best_trials(num_trials), self.policy_space,
                                             self.oracle.objective, self.project_dir, with_baseline=False,
                                             channels=self._channels)
        return SearchResults.from_oracle(self.oracle, self.policy_space, self.project_dir, channels=self._channels)

    def op_effects(self, **options: Any) -> OpEffects:
        """Every op's estimated effect on the reward, pooled over the policy's slots: its change
        of the reward per sub-policy applying it (with an interval), the magnitudes where it
        helps, and how many trials used it; best first ([`keras_augtune.effects`][keras_augtune.effects];
        ``options`` as [`estimate_op_effects()`][keras_augtune.effects.estimate_op_effects] takes them).

            print(tuner.op_effects().table())
        """
        return estimate_op_effects(self.results(), space=self.policy_space, **options)

    def baseline_reward(self) -> float | None:
        """The reward of the no-augmentation baseline trial (None until it has run)."""
        return self.results().baseline_reward

    def get_best_policies(self, num_policies: int = 1) -> list[Policy]:
        """The best policies, best first (the confirmed ones by their mean over all executions),
        each with ``metadata`` holding its reward, ``gain`` (mean paired difference to no
        augmentation), ``gain_interval`` (95 %, or None), ``executions``, the trial id and the
        architecture values. Policies that change no image are never listed, except the
        no-augmentation baseline itself. Whether the winner beat no augmentation beyond the
        noise is ``tuner.results().verdict()``."""
        check_int("num_policies", num_policies)
        return self.results(num_policies).best_policies(num_policies)

    def export_policies(self, path: str, num_policies: int = 5) -> list[Policy]:
        """Write the best policies to a JSON file (read back with [`load_policies()`][keras_augtune.load_policies])."""
        return self.results(num_policies).write_policies(path, num_policies)

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best trials (reward, paired gain over no augmentation with its interval,
        executions, accuracy, policy), the confirmation's cost and the verdict."""
        print(self.summary_text(num_trials))

    def summary_text(self, num_trials: int = 10) -> str:
        return self.results(num_trials).summary_text(num_trials)


def _copy_callbacks(callbacks: list) -> list:
    """Fresh copies of the user's callbacks for one execution (as Keras Tuner does)."""
    try:
        return copy.deepcopy(callbacks)
    except Exception:
        raise keras_tuner.errors.FatalValueError(
            "All callbacks used during a search should be deep-copyable (since they are reused across "
            f"trials). It is not possible to do `copy.deepcopy({callbacks})`"
        ) from None


def _log_reward(log_dirs: list[str], reward: float, policy: Policy, step: int) -> None:
    """Add the execution's reward (an HParams metric) and its policy as text to its TensorBoard folders."""
    if not log_dirs:
        return
    import tensorflow as tf

    from keras_augtune.results import describe_policy

    for log_dir in log_dirs:
        with tf.summary.create_file_writer(log_dir).as_default():
            tf.summary.scalar(REWARD, reward, step=step)
            tf.summary.text("policy", describe_policy(policy), step=step)


def _epoch_budget(hp, epochs: int, fit_kwargs: dict) -> tuple[int, int]:
    """(epochs, initial_epoch) of a trial: Hyperband's ``tuner/epochs`` and ``tuner/initial_epoch``
    when the oracle set them (``fit_kwargs`` gets the initial epoch), else the search's epochs."""
    if "tuner/epochs" not in hp.values:
        return epochs, int(fit_kwargs.get("initial_epoch", 0))
    fit_kwargs["initial_epoch"] = int(hp.values.get("tuner/initial_epoch", 0))
    return int(hp.values["tuner/epochs"]), fit_kwargs["initial_epoch"]


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


def _history_rows(trial_id: str, execution: int, history: dict, reward: float, initial_epoch: int = 0) -> list[dict]:
    """The notebook rows of one training: one per epoch, with the training's own reward."""
    rows = []
    for epoch in range(len(history.get("loss", []))):
        row = {"trial": trial_id, "execution": execution, "epoch": initial_epoch + epoch + 1}
        row.update({key: float(values[epoch]) for key, values in history.items() if epoch < len(values)})
        row[REWARD] = reward  # this training's own reward (the trial's is their mean)
        rows.append(row)
    return rows


def _check_finite(history: dict) -> None:
    for key, values in history.items():
        for epoch, value in enumerate(values, start=1):
            if not math.isfinite(float(value)):
                raise keras_tuner.errors.FailedTrialError(
                    f"The child model diverged: {key} became {value} at epoch {epoch}."
                )
