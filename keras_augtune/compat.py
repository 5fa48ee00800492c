"""The private Keras Tuner internals this package relies on, in one place, each with its reason.

Keras Tuner (1.4) has no public API for these needs; every reach into its private
code goes through a function here, and ``tests/test_compat.py`` checks each
assumption, so a Keras Tuner upgrade that breaks one fails there first, by name.

* ``keras_tuner.src.distribute.utils``: whether this process is the chief or a worker
  (from the ``KERASTUNER_*`` variables, as Keras Tuner reads them).
* ``BaseTuner._populate_initial_space``: Keras Tuner builds the hypermodel at construction
  to find the space, but the child needs the data's shape first; ``AugmentTuner`` overrides
  this hook to only declare the space, and runs Keras Tuner's own exploration in ``search``.
* ``Tuner._build_hypermodel``: the hook Keras Tuner's ``Hyperband`` overrides to start a
  continued trial (``tuner/trial_id``) from its parent's weights; ``AugmentTuner`` overrides
  it the same way, so that any oracle's Hyperband trials continue (``_try_build`` calls it).
* ``Tuner._configure_tensorboard_dir``: a ``keras.callbacks.TensorBoard`` passed to ``search``
  gets one folder per trial and execution, with the trial's hyperparameters for the HParams
  dashboard, exactly as in a plain Keras Tuner search (`configure_tensorboard()`).
* ``Tuner._get_checkpoint_fname``: where a trial's weights must be saved for
  ``get_best_models`` (``Tuner.load_model``) to find them.
* ``Oracle._set_project_dir``, ``Oracle._project_dir``: reloading a search's oracle from disk
  without a tuner (reports), and finding its trial files.
* ``Oracle._retry_queue``, ``Oracle._save_trial``: the chief hands a lost worker's trial to
  the next worker and writes the trial's new state (``distributed.py``).
* ``keras_tuner.src.protos``, ``keras_tuner.src.distribute.oracle_chief``: the chief's server
  loop with lost-worker recovery replaces Keras Tuner's (``distributed.py``).
* ``keras_tuner.src.engine.oracle.LOCKS`` / ``THREADS``: ``@synchronized`` releases the oracle's
  lock only when the method returns; the chief releases it after a failed request, or every
  later request would wait forever (``distributed.py``).
* ``HyperParameter._get_n_values``, ``._get_value_by_index``: a stepped numeric
  hyperparameter's grid (the oracle's encoding: `grid_size()`, `grid_values()`).
* ``Tuner._try_build``: Keras Tuner's build of a trial's model (its ``max_model_size`` check,
  the ``_build_hypermodel`` hook), used by the execution runner (`build_model()`).
* ``Oracle._duplicate``: whether values repeat a trial Keras Tuner already holds (the forest
  oracle never proposes one: `is_duplicate()`).
* ``Oracle._compute_values_hash``: the hash ``oracle.json`` keeps of each trial's values
  (``tried_so_far``, ``id_to_hash``); a damaged ``oracle.json`` is rebuilt from the trial files
  with Keras Tuner's own hash (`values_hash()`, ``repair.py``).
* ``HyperbandOracle``'s bracket state (``_current_iteration``, ``_current_bracket``,
  ``_brackets``, ``_start_new_bracket``) and plan (``_get_num_brackets``, ``_get_num_rounds``,
  ``_get_size``, ``_get_epochs``): ``RandomForestHyperbandOracle`` keeps Keras Tuner's bracket
  logic but runs the forest oracle's ``__init__`` (`start_brackets()`, `hyperband_plan()`); and
  the hook ``HyperbandOracle._random_values``, which it overrides so that the forest proposes each
  bracket's new trials (checked by `hyperband_asks_random_values()` in the tests).
* ``keras_tuner.src.utils.save_json``: every state file Keras Tuner writes (``oracle.json``,
  ``tuner0.json``, ``trial.json``, ``build_config.json``) goes through it as a plain write, so a
  full disk or a crash mid-write left half a file and a search that could not resume;
  `atomic_state_writes()` makes it write atomically (temporary file, fsync, rename).

Nothing else in the package or its benchmarks reaches into Keras Tuner's private code.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "is_chief", "is_worker", "explore_space", "configure_tensorboard", "build_model", "checkpoint_path",
    "set_project_dir", "retry_queue", "save_trial", "protos", "oracle_servicer_class", "grid_size", "grid_values",
    "project_dir", "release_lock_if_held", "is_duplicate", "values_hash", "start_brackets", "hyperband_plan", "atomic_state_writes",
]


def _distribute_utils():
    from keras_tuner.src.distribute import utils

    return utils


def is_chief() -> bool:
    """This process serves the oracle of a distributed search (``KERASTUNER_TUNER_ID`` holds "chief")."""
    return _distribute_utils().is_chief_oracle()


def is_worker() -> bool:
    """This process is a worker of a distributed search (its oracle is a client of the chief's)."""
    utils = _distribute_utils()
    return utils.has_chief_oracle() and not utils.is_chief_oracle()


def explore_space(tuner: Any) -> None:
    """Keras Tuner's own initial exploration of the hypermodel's space (declare, then build
    under every condition), skipping a subclass's override of ``_populate_initial_space``."""
    from keras_tuner.engine import base_tuner

    base_tuner.BaseTuner._populate_initial_space(tuner)


def configure_tensorboard(tuner: Any, callbacks: list, trial: Any, execution: int) -> list[str]:
    """Point each TensorBoard callback in ``callbacks`` at ``<log_dir>/<trial id>/execution<n>`` and
    add Keras Tuner's HParams callback for it (TensorFlow backend); returns those folders."""
    tuner._configure_tensorboard_dir(callbacks, trial, execution)
    return [str(c.log_dir) for c in callbacks if c.__class__.__name__ == "TensorBoard"]


def build_model(tuner: Any, hp: Any) -> Any:
    """Keras Tuner's build of ``hp``'s model (``Tuner._try_build``): the hypermodel's ``build`` through
    ``_build_hypermodel`` (Hyperband's weight loading), its size check (``max_model_size``) and
    ``compile`` when the hypermodel left the model uncompiled."""
    return tuner._try_build(hp)


def checkpoint_path(tuner: Any, trial_id: str) -> str:
    """The file ``tuner.load_model(trial)`` reads a trial's weights from."""
    return tuner._get_checkpoint_fname(trial_id)


def set_project_dir(oracle: Any, directory: str, project_name: str) -> None:
    """Point an oracle built outside a tuner at ``directory/project_name`` (then ``oracle.reload()``)."""
    oracle._set_project_dir(directory, project_name)


def project_dir(oracle: Any) -> str:
    """The folder holding an oracle's ``oracle.json`` and ``trial_*/trial.json`` files."""
    return oracle._project_dir


def retry_queue(oracle: Any) -> list:
    """The oracle's queue of trial ids to hand out again before any new trial."""
    return oracle._retry_queue


def save_trial(oracle: Any, trial: Any) -> None:
    """Write ``trial``'s state to its ``trial.json`` in the oracle's project directory."""
    oracle._save_trial(trial)


def protos() -> Any:
    """Keras Tuner's gRPC messages and service (``get_service()``, ``get_service_grpc()``)."""
    from keras_tuner.src import protos as module

    return module


def oracle_servicer_class() -> type:
    """The chief's gRPC servicer class, to subclass."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer


def grid_size(hp: Any) -> int:
    """How many values a stepped ``Int``/``Float`` hyperparameter has."""
    return int(hp._get_n_values())


def grid_values(hp: Any) -> list:
    """Every value of a stepped ``Int``/``Float`` hyperparameter, in order."""
    return [hp._get_value_by_index(i) for i in range(hp._get_n_values())]


def is_duplicate(oracle: Any, values: dict) -> bool:
    """Keras Tuner's own check that ``values`` repeat a trial ``oracle`` already holds (or queued)."""
    return bool(oracle._duplicate(values))


def values_hash(values: dict) -> str:
    """Keras Tuner's hash of a trial's values, as ``oracle.json`` keeps it (``tried_so_far``)."""
    from keras_tuner.src.engine import oracle as oracle_module

    return oracle_module.Oracle._compute_values_hash(None, values)  # a plain function of ``values``


def start_brackets(oracle: Any) -> None:
    """Set up a ``HyperbandOracle``'s bracket state as its ``__init__`` does (for a subclass that
    runs another ``__init__``): iteration 0, the largest bracket first, its first round started."""
    oracle._current_iteration = 0
    oracle._current_bracket = oracle._get_num_brackets() - 1
    oracle._brackets = []
    oracle._start_new_bracket()


def hyperband_plan(oracle: Any) -> list[dict[str, list[int]]]:
    """A ``HyperbandOracle``'s plan for one iteration: per bracket (largest first), the trials and
    epochs of each round."""
    plan = []
    for bracket in reversed(range(oracle._get_num_brackets())):
        rounds = range(oracle._get_num_rounds(bracket))
        plan.append({"trials": [oracle._get_size(bracket, r) for r in rounds],
                     "epochs": [oracle._get_epochs(bracket, r) for r in rounds]})
    return plan


def release_lock_if_held(oracle: Any) -> bool:
    """Release the oracle's ``@synchronized`` lock if the calling thread holds it (after a
    synchronized method raised); return whether it did."""
    import threading

    from keras_tuner.src.engine import oracle as oracle_module

    if oracle_module.THREADS.get(oracle) == threading.current_thread().name:
        oracle_module.THREADS[oracle] = None
        oracle_module.LOCKS[oracle].release()
        return True
    return False


def atomic_state_writes() -> bool:
    """Make Keras Tuner write its state files atomically, for the rest of the process.

    Keras Tuner (1.4) writes ``oracle.json``, ``<tuner id>.json`` and ``trial.json`` with
    ``utils.save_json``: ``open(path, "w")`` then ``write``, so an error (``ENOSPC``, ``EIO``) or
    a ``kill -9`` in between leaves a truncated file and the search cannot be resumed. This
    replaces that function (where ``Stateful.save`` and ``Tuner`` look it up) with one that writes
    through `keras_augtune.files.atomic_write()`: the old file stays whole until the new one
    is complete. A full or failing disk raises `StateWriteError`, a Keras Tuner ``FatalError``:
    Keras Tuner marks a trial FAILED on any other error after its training (its ``trial.json``
    written by ``update_trial``), so the search would go on without it; it stops instead, and
    the trial runs again on ``--resume``. Paths with a scheme (``gs://``) keep Keras Tuner's own
    writer. Idempotent; returns whether it installed the writer now.
    """
    from keras_tuner.src import utils

    if getattr(utils.save_json, "keras_augtune_atomic", False):
        return False
    plain = utils.save_json

    def save_json(path, obj):
        if "://" in str(path):
            return plain(path, obj)
        from keras_augtune.files import atomic_write, disk_error

        text = json.dumps(obj)
        try:
            atomic_write(path, text)
        except OSError as exc:
            if disk_error(exc) is None:
                raise
            raise _state_write_error()(exc.errno, exc.strerror, exc.filename) from exc
        return text

    save_json.keras_augtune_atomic = True
    save_json.plain = plain
    utils.save_json = save_json
    return True


def _state_write_error() -> type:
    """`StateWriteError`, built on first use (Keras Tuner is imported lazily)."""
    global StateWriteError
    if StateWriteError is None:
        import keras_tuner

        class _StateWriteError(OSError, keras_tuner.errors.FatalError):
            """A full or failing disk while Keras Tuner writes its state: an ``OSError`` (with its errno)
            that Keras Tuner treats as fatal (the search stops instead of failing the trial)."""

        StateWriteError = _StateWriteError
    return StateWriteError


#: The error `atomic_state_writes()`'s writer raises on a full or failing disk (None until first used).
StateWriteError = None
