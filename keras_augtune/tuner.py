"""`AugmentTuner`: the Keras Tuner lifecycle of a policy (and architecture) search, composing the parts.

The tuner checks its arguments, builds its oracle (`keras_augtune.oracle.choice`), prepares the
data and the policy space, then hands every training to the runner (`keras_augtune.runner`),
the trials' end to the intensifier (`keras_augtune.intensifier`) and the live lines to the
display (`keras_augtune.display`); the results are read through `keras_augtune.results`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import keras
import keras_tuner
import numpy as np

from keras_augtune import compat, distributed, heap
from keras_augtune.checks import MAX_EPOCHS, check_choice, check_int, check_seed
from keras_augtune.data import VALIDATION_SPLIT, Dataset, check_validation_split
from keras_augtune.display import TrialDisplay, trial_line
from keras_augtune.effects import OpEffects, estimate_op_effects
from keras_augtune.evaluation.density_search import DensitySearch
from keras_augtune.evaluation.reward import check_objective, reward_objective
from keras_augtune.files import disk_error, load_weights
from keras_augtune.hypermodel import AugmentHyperModel
from keras_augtune.intensifier import make_intensifier
from keras_augtune.intensifier.race import FIRST_EXECUTION
from keras_augtune.oracle import RandomForestHyperbandOracle
from keras_augtune.oracle.choice import METHODS, baseline_first, build_oracle, check_user_oracle
from keras_augtune.policy import Policy
from keras_augtune.results import SearchResults
from keras_augtune.preparation import canonical_values, prepare
from keras_augtune.runner import ExecutionRunner
from keras_augtune.space import PolicySpace
from keras_augtune.trials import RESUME_FROM, consecutive_failures_message

__all__ = ["AugmentTuner", "METHODS"]


class AugmentTuner(keras_tuner.Tuner):
    """Search the data-augmentation policy that suits your images (and, jointly, your
    model's own hyperparameters) with a random-forest Bayesian-optimisation oracle.

    ``AugmentTuner(hypermodel).search(x, y)`` trains the child once per trial on images augmented by
    the trial's policy, scored by the overfit-filtered top-K validation accuracy ([`keras_augtune.evaluation.reward`][keras_augtune.evaluation.reward]).
    Trial 0 is the no-augmentation baseline; execution ``e`` of every trial trains under one seed
    (paired); the best policies then race the recipes and no augmentation on fresh paired
    executions before the verdict (``results().verdict()``) names what to use.

    Args:
        hypermodel: a ``keras_tuner.HyperModel`` or ``build(hp)`` function, a
            ``keras.Model``, a built-in model name, or an [`AugmentHyperModel`][keras_augtune.AugmentHyperModel];
            ``None`` uses the built-in ``"simple"`` CNN.
        objective: what the oracle maximises; default the ``"reward"``.
        max_trials: total trials, baseline included, across resumed runs.
        method: ``"bayesian"`` (random forest + expected improvement), ``"random"``, or
            ``"hyperband"``: Hyperband's successive halving over child epochs (up to ``child_epochs``),
            the forest proposing each bracket's new policies ([`RandomForestHyperbandOracle`][keras_augtune.RandomForestHyperbandOracle];
            ``docs/how-to/multi-fidelity.md``): weak policies stop after a few epochs.
        num_initial_points: random trials before the forest takes over (default 10); with
            ``"hyperband"``, the completed trials a budget needs before the forest is fitted on it.
        hyperband_factor: Hyperband's reduction factor η (default 3): each round keeps the best
            third of its trials and trains them three times longer.
        policy_space: a [`PolicySpace`][keras_augtune.PolicySpace]; or give ``num_sub_policies``,
            ``ops_per_sub_policy``, ``ops`` and ``search_probabilities``.
        executions_per_trial: trainings per trial, rewards averaged (DeepAugment's ``opt_samples``).
        reward_k, reward_max_gap: the reward's K (how many of the best epochs not overfitting are
            averaged) and its overfitting threshold (train minus validation accuracy).
        train_set_size: stratified subsample of the training images used by the search.
        validation_split: stratified fraction held out when ``validation_data`` is not given.
        child_epochs, batch_size: the epochs and batch size of each child model's training.
        child_first_train_epochs: if > 0, pretrain the child once without augmentation for this
            many epochs; each trial starts from those weights with a fresh optimizer (one
            pretraining per architecture, input shape and data: `keras_augtune.warm_start`).
        pretrained_weights_path: where the warm-start weights are kept: a folder (default
            ``warm_start`` in the project dir) or a ``.weights.h5`` file.
        baseline_trial: run the no-augmentation baseline as trial 0 (default True).
        intensifier: what happens after the trials, an extra cost beyond ``max_trials``: ``"race"``
            (default; [`Race`][keras_augtune.intensifier.Race]): the ``confirm_top_k`` best policies, the
            ``recipes`` and no augmentation race on fresh paired executions (successive halving, then
            ``confirm_executions`` executions of the finalists, optionally at ``race_epochs``), and the
            verdict names a searched policy, a recipe or no augmentation with intervals corrected for
            the pick; ``"confirmation"`` ([`Confirmation`][keras_augtune.intensifier.Confirmation]):
            the best policies re-measured on their own seeds; or an [`Intensifier`][keras_augtune.intensifier.Intensifier].
        confirm_top_k, confirm_executions: searched policies entering the race (default 4) and the
            executions of its confirmation (default 14); ``0`` for either turns intensification off.
        recipes: the recipes raced ([`resolve_recipes()`][keras_augtune.recipes.resolve_recipes]): default
            TrivialAugment and RandAugment(N=2, M=0.3 / 0.6); names, Policies, or ``()`` for none.
        race_epochs, race_train_size: the race's child epochs and training images (a stratified subsample per
            execution, paired; default the trials'), up to what the final model gets.
        base: a recipe every candidate (trials, recipes, no augmentation) is applied after: a name (``"crop-flip"``,
            [`keras_augtune.bases`][keras_augtune.bases]), a ``Policy`` or a Keras preprocessing layer; the baseline
            is the base alone, and the recommendation is the base then the verdict's (``results().augmentation()``).
        engine: where the policy layer augments: ``"imgaug"`` (default; NumPy on the CPU, TensorFlow
            backend) or ``"keras"`` (per image in the graph, any backend and device: ``keras_augtune.engines``).
        notebook_path: the per-epoch CSV (default ``<project dir>/notebook.csv``).
        directory, project_name, overwrite: as in Keras Tuner (the project folder, and whether to start
            afresh instead of reloading it).
        seed: as in Keras Tuner (also seeds the split, the trainings and the oracle).
        max_consecutive_failed_trials: stop the search, with the failures' reasons, when this
            many trials in a row fail (default 3).
        max_retries_per_trial: as in Keras Tuner: a trial that raised is run again up to this
            many times (default 0: a failed trial is never retried; a diverging child never is).
        hyperparameters, tune_new_entries, allow_new_entries: as in Keras Tuner, for the child's own
            hyperparameters; the policy's (``augment/*``) are always searched.
        oracle: any Keras Tuner oracle instead of the built-in random forest (then pass the
            oracle's own arguments to it). Its ``tuner/epochs`` and ``tuner/initial_epoch``
            (Hyperband) set each trial's epochs, and its first trial is the no-augmentation
            baseline when ``baseline_trial``.
        worker_timeout: distributed search only (``KERASTUNER_*`` environment variables):
            seconds without a heartbeat after which the chief takes a running trial back from
            its worker and hands it to another one (see ``docs/reliability.md``).
        evaluator: how a trial scores its policy: ``"training"`` (default: train the child, the
            overfit-filtered reward), ``"density"`` (Fast AutoAugment's density matching: fold models
            trained once on clean data score each policy on augmented held-out images, without
            training; ``docs/how-to/density.md``), or a [`DensityEvaluator`][keras_augtune.evaluation.density.DensityEvaluator].
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
        num_sub_policies: int = 5, ops_per_sub_policy: int = 2,
        ops: Sequence[str] | None = None, search_probabilities: bool = True,
        executions_per_trial: int = 1,
        reward_k: int = 3, reward_max_gap: float = 0.10,
        train_set_size: int | None = None, validation_split: float = VALIDATION_SPLIT,
        child_epochs: int = 10, batch_size: int = 64,
        child_first_train_epochs: int = 0, pretrained_weights_path: str | None = None,
        baseline_trial: bool = True,
        confirm_top_k: int = 4, confirm_executions: int = 14,
        notebook_path: str | None = None,
        directory: str | None = None, project_name: str | None = "augtune", overwrite: bool = False,
        seed: int | None = None, verbose: int = 1,
        oracle: keras_tuner.Oracle | None = None,
        max_consecutive_failed_trials: int = 3,
        worker_timeout: float = 120.0,  # distributed.WORKER_TIMEOUT, written out so the API reference shows it
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True, allow_new_entries: bool = True, max_retries_per_trial: int = 0,
        hyperband_factor: int = 3,
        evaluator: Any = "training",
        intensifier: Any = "race",
        recipes: Any = None,
        race_epochs: int | None = None, race_train_size: int | None = None,
        base: Any = None, engine: str | None = None,
        **kwargs: Any,
    ):
        for name, value, low, high in (
                ("max_trials", max_trials, 1, None), ("executions_per_trial", executions_per_trial, 1, FIRST_EXECUTION - 1),
                ("child_epochs", child_epochs, 1, MAX_EPOCHS), ("batch_size", batch_size, 1, None),
                ("reward_k", reward_k, 1, None), ("child_first_train_epochs", child_first_train_epochs, 0, MAX_EPOCHS),
                ("max_consecutive_failed_trials", max_consecutive_failed_trials, 1, None),
                ("max_retries_per_trial", max_retries_per_trial, 0, None), ("hyperband_factor", hyperband_factor, 2, None),
                ("train_set_size", 1 if train_set_size is None else train_set_size, 1, None)):
            check_int(name, value, minimum=low, maximum=high)
        self.validation_split, self.worker_timeout = check_validation_split(validation_split), \
            distributed.check_worker_timeout(worker_timeout)
        check_choice("method", method, METHODS)
        check_seed(seed)
        intensifier = make_intensifier(intensifier, confirm_top_k, confirm_executions, recipes, race_epochs,
                                       race_train_size)

        hypermodel, default_ops = AugmentHyperModel.of(
            hypermodel, policy_space, engine, base, num_sub_policies=num_sub_policies, ops_per_sub_policy=ops_per_sub_policy,
            ops=ops, search_probabilities=search_probabilities)
        self.policy_space = hypermodel.policy_space
        #: The tuner chose the ops (the user gave none): ``search`` leaves out the colour-only ones on grayscale.
        self._default_ops = default_ops
        self._channels: int | None = None  # of the searched images, known in search()

        objective = check_objective(reward_objective() if objective is None else objective)
        if oracle is None:
            oracle = build_oracle(
                method, self.policy_space, objective=objective, max_trials=max_trials,
                num_initial_points=num_initial_points, seed=seed, baseline_trial=baseline_trial,
                canonical_values=lambda values: canonical_values(self, values), max_epochs=child_epochs, factor=hyperband_factor,
                hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
                allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial,
                max_consecutive_failed_trials=max_consecutive_failed_trials)
        else:
            check_objective(getattr(oracle, "objective", None))
            check_user_oracle(oracle, hyperparameters=hyperparameters, tune_new_entries=tune_new_entries,
                              allow_new_entries=allow_new_entries, max_retries_per_trial=max_retries_per_trial)
            if baseline_trial:
                baseline_first(oracle, self.policy_space)
        self.method, self.seed = method, seed
        self.density = DensitySearch.resolve(evaluator, hypermodel, child_epochs, batch_size, method)
        self.reward_k, self.reward_max_gap = int(reward_k), float(reward_max_gap)
        self.train_set_size = train_set_size
        self.child_epochs, self.batch_size = int(child_epochs), int(batch_size)
        self.child_first_train_epochs = int(child_first_train_epochs)
        self.intensifier = intensifier
        self.pretrained_weights_path = pretrained_weights_path
        self.search_verbose = int(verbose)
        self._heartbeat: distributed.Heartbeat | None = None
        self._runner: ExecutionRunner | None = None
        self._fingerprint: dict | None = None  # of the searched data (a distributed chief serves it)
        self._process_seed = int(np.random.SeedSequence().entropy % (2**31))  # only without any seed
        compat.atomic_state_writes()  # Keras Tuner's oracle.json, tuner0.json, trial.json: never half-written
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
            # A user's build(hp) may run without the data: explore it now, as Keras Tuner does (so
            # search_space_summary() lists its hyperparameters); else search() explores it.
            try:
                compat.explore_space(self)
            except Exception:
                pass

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
        if verbose is not None:
            self.search_verbose = int(verbose)
        epochs = self.child_epochs if epochs is None else check_int("epochs", epochs, maximum=MAX_EPOCHS)
        if isinstance(self.oracle, RandomForestHyperbandOracle):
            self.oracle.check_epochs(epochs)
        batch_size = self.batch_size if batch_size is None else check_int("batch_size", batch_size)
        x_train, y_train, validation = prepare(self, x, y, validation_data, value_range, batch_size, fit_kwargs)
        self.oracle.verbose = 1 if self.search_verbose >= 2 else 0
        heap.freeze()  # Keras Tuner's per-trial gc.collect() then scans only what the trials create
        fit = dict(validation_data=validation, epochs=epochs, batch_size=batch_size,
                   callbacks=list(callbacks or []), verbose=1 if self.search_verbose >= 2 else 0, **fit_kwargs)
        self._runner = ExecutionRunner(self, x_train, y_train, fit)
        try:
            if compat.is_chief():
                # Keras Tuner's chief would wait forever for a dead worker's trial: serve with recovery,
                # then race the workers' results itself.
                self.save()
                distributed.serve(self.oracle, worker_timeout=self.worker_timeout, log=self.display.write,
                                  data_fingerprint=self._fingerprint)
                self._intensify()
                return
            with self.display.running(None if compat.is_worker() else self.oracle.remaining_trials(),
                                      show=self.search_verbose >= 1 and not compat.is_worker()):  # a worker: lines only
                super().search(x_train, y_train, **fit)
                self._intensify()
        except RuntimeError as exc:
            if "consecutive failures" not in str(exc):
                raise
            raise RuntimeError(consecutive_failures_message(self.oracle)) from exc
        finally:
            heap.thaw()

    # ------------------------------------------------------------------ one trial
    def run_trial(self, trial, *args, **kwargs):
        """Train the child ``executions_per_trial`` times (`keras_augtune.runner`); a crash or
        divergence fails the trial (recorded with its reason, never retried) and the search goes on."""
        runner = self._runner
        try:
            return runner.run_trial(trial)
        except keras_tuner.errors.FailedTrialError as exc:
            runner.record_failure(trial, exc)
            raise
        except (keras_tuner.errors.FatalError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if disk_error(exc):  # not the trial's fault: stop the search, the trial re-runs on resume
                raise keras_tuner.errors.FatalError(f"{type(exc).__name__}: {exc}") from exc
            runner.record_failure(trial, exc)
            if getattr(self.oracle, "max_retries_per_trial", 0):
                raise  # Keras Tuner marks it INVALID and runs it again, up to max_retries_per_trial
            raise keras_tuner.errors.FailedTrialError(f"{type(exc).__name__}: {exc}") from exc

    def _intensify(self) -> None:
        """After the trials, the intensifier measures the best configurations on more paired
        executions (`keras_augtune.intensifier`); in a distributed search, the chief's."""
        if compat.is_worker() or self.intensifier is None or not self.intensifier.active:
            return
        log = self.display.note if self.search_verbose >= 1 else (lambda line: None)
        self.intensifier.intensify(self.results(), self._runner.context(log))

    @property
    def search_seed(self) -> int:
        """The seed every execution's seed derives from ([`keras_augtune.seeds.execution_seed()`][keras_augtune.seeds.execution_seed]).

        ``seed`` when given; otherwise the oracle's seed, which Keras Tuner draws once and keeps
        in the oracle's state, so a resumed search pairs its executions with the earlier ones.
        (A distributed worker's oracle is a client without a seed: pass ``seed`` there.)
        """
        seed = self.seed if self.seed is not None or compat.is_worker() else getattr(self.oracle, "seed", None)
        return int(seed) if seed is not None else self._process_seed

    def get_state(self) -> dict:
        """Keras Tuner's tuner state (``tuner0.json``): the data the child was configured for, so that
        a reloaded tuner rebuilds its models (``get_best_models()``) before any new search."""
        return {"data": self.hypermodel.data_config()} if self.hypermodel.configured else {}

    def set_state(self, state: dict) -> None:
        if isinstance(state, dict) and isinstance(state.get("data"), dict) and not self.hypermodel.configured:
            self.hypermodel.configure(**state["data"])
            self._channels = int(self.hypermodel.input_shape[-1])

    def _build_hypermodel(self, hp):
        """Keras Tuner's build; a Hyperband trial that continues another (``tuner/trial_id``)
        starts from that trial's saved weights, as Keras Tuner's ``Hyperband`` does (with a
        fresh optimizer: Keras's warning that it skips the saved optimizer state is silenced)."""
        model = super()._build_hypermodel(hp)
        if RESUME_FROM in hp.values:
            load_weights(model, compat.checkpoint_path(self, hp.values[RESUME_FROM]))
        return model

    def on_trial_begin(self, trial):
        # Collect the previous trial's objects and freeze what survives (heap.py): Keras Tuner's
        # clean-up before the build then scans only this trial's objects.
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
            self.display.ended(trial, lambda t, seconds: trial_line(self, t, seconds))

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
        """Every op's effect on the reward per sub-policy applying it, with a simultaneous interval, best
        first: ``print(tuner.op_effects().table())`` ([`keras_augtune.effects`][keras_augtune.effects];
        ``options`` as [`estimate_op_effects()`][keras_augtune.effects.estimate_op_effects] takes them)."""
        return estimate_op_effects(self.results(), space=self.policy_space, **options)

    def baseline_reward(self) -> float | None:
        """The reward of the no-augmentation baseline trial (None until it has run)."""
        return self.results().baseline_reward

    def get_best_policies(self, num_policies: int = 1) -> list[Policy]:
        """The best policies, best first (the confirmed ones by their mean over all executions), each
        with ``metadata`` holding its reward, ``gain`` over no augmentation and its ``gain_interval``
        (paired, 95 %, or None), ``executions``, the trial id and the architecture values. Whether the
        winner beat no augmentation beyond the noise is ``tuner.results().verdict()``."""
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
