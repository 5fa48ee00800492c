"""Preparing a search before its first trial: the policy space fitted to the images, the child's arrays, a preflight build.

``AugmentTuner.search`` calls `prepare()`, which runs these once the data is known: `settle_policy_space()` (the
colour-only ops left out on grayscale images; a resumed search keeps its space),
`child_arrays()` (what every execution trains and validates on) and `preflight()` (the errors
every trial would hit, reported before the first one).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_augtune import compat, distributed
from keras_augtune.data import data_fingerprint, prepare_search_data, stratified_subsample
from keras_augtune.records import BASE_FILE, ExecutionStore
from keras_augtune.runner import pretraining_recorder
from keras_augtune.seeds import subset_seed
from keras_augtune.space import PolicySpace, architecture_values, baseline_values, parse_name
from keras_augtune.warm_start import WarmStart

__all__ = ["prepare", "settle_policy_space", "check_base", "canonical_values", "child_arrays", "race_training", "preflight"]


def prepare(tuner: Any, x: Any, y: Any, validation_data: Any, value_range: Any, batch_size: int,
            fit_kwargs: dict) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Everything ``tuner.search`` does before its first trial: split and check the data, settle
    the policy space, configure and explore the child, run the preflight, and set up the warm start
    and the density evaluator, and the race's larger training subsets (``tuner.race_training``, with
    ``race_train_size``). ``fit_kwargs`` loses ``validation_split`` and gets the training
    images' ``sample_weight``. Returns ``(x_train, y_train, validation_data)``."""
    if keras.backend.backend() != "tensorflow" and tuner.hypermodel.engine != "keras":
        raise RuntimeError(
            "The imgaug engine augments inside the child model through tf.numpy_function, which needs "
            f"Keras's TensorFlow backend; Keras runs on {keras.backend.backend()!r} here. Pass engine='keras' "
            "(the Keras-native engine runs on every backend), or set KERAS_BACKEND=tensorflow before importing keras."
        )
    race_size = getattr(tuner.intensifier, "train_size", None)
    prepared = prepare_search_data(
        x, y, validation_data, value_range=value_range, sample_weight=fit_kwargs.pop("sample_weight", None),
        validation_split=fit_kwargs.pop("validation_split", tuner.validation_split),
        train_set_size=tuner.train_set_size, seed=tuner.search_seed, pool_size=race_size)
    if race_size is not None and prepared.race_size_error(race_size):
        raise ValueError(prepared.race_size_error(race_size))
    data, train_index, num_classes = prepared.data, prepared.train_index, prepared.num_classes
    tuner.dataset = data
    # a distributed chief serves its data's fingerprint; a worker refuses to search other data
    tuner._fingerprint = data_fingerprint(data.x, data.y, data.class_names)
    if compat.is_worker():
        distributed.check_worker_data(tuner.oracle, tuner._fingerprint)
    tuner._channels = int(data.input_shape[-1])
    check_base(tuner)
    settle_policy_space(tuner, tuner._default_ops)
    tuner.hypermodel.configure(data.input_shape, num_classes, data.value_range, one_hot=data.one_hot)
    compat.explore_space(tuner)  # now the child can be built

    x_train, y_train, validation = child_arrays(prepared, tuner.hypermodel.one_hot)
    tuner.race_training = None if race_size is None else race_training(prepared, tuner.hypermodel.one_hot,
                                                                       tuner.search_seed)
    if prepared.train_weights is not None:
        fit_kwargs["sample_weight"] = prepared.train_weights
    tuner.hypermodel.warm_start = None
    preflight(tuner, x_train[:2], y_train[:2], num_classes)
    if tuner.child_first_train_epochs:
        tuner.hypermodel.warm_start = WarmStart(
            tuner.child_first_train_epochs, x_train, y_train, validation, batch_size,
            tuner.pretrained_weights_path or os.path.join(tuner.project_dir, "warm_start"), seed=tuner.search_seed,
            sample_weight=prepared.train_weights, record=pretraining_recorder(tuner),
        )
    if tuner.density is not None:
        tuner.density.start(tuner.oracle, data.x[train_index], data.y[train_index], data.value_range,
                            tuner.project_dir, tuner.seed if tuner.seed is not None else int(tuner.oracle.seed),
                            tuner.display.write if tuner.search_verbose >= 1 else (lambda line: None))
    return x_train, y_train, validation


def check_base(tuner: Any) -> None:
    """Record the search's base recipe (``executions/base.json``), or refuse in one line to resume a
    search begun under another base (or without one): its rewards, and the execution records
    keyed by trial values alone, were measured after that base."""
    if compat.is_worker():
        return
    store, base = ExecutionStore(tuner.project_dir), tuner.hypermodel.base
    stored, current = store.read_plan(BASE_FILE), None if base is None else base.record()
    if tuner.oracle.trials or store.records():
        if stored != current:
            before = f"with the base {stored.get('name')!r}" if stored else "without a base"
            now = f"with the base {base.name!r}" if base is not None else "without one"
            raise ValueError(f"This search in {tuner.project_dir} began {before}: it cannot go on {now} (its rewards "
                             "were measured after the old one). Give the same base, or overwrite=True to start afresh.")
        return
    if current is not None:
        store.write_plan(current, BASE_FILE)
    elif stored is not None:
        os.remove(os.path.join(store.folder, BASE_FILE))


def settle_policy_space(tuner: Any, default_ops: bool) -> None:
    """Fix ``tuner``'s searched policy space for the images' channels (``tuner._channels``), before
    the first trial.

    On grayscale images the default space (``default_ops``: no ``ops`` given) leaves out the
    colour-only ops, which change nothing there. A resumed search keeps the space it began with
    (the one its oracle declared), whatever the images.
    """
    oracle = tuner.oracle
    if compat.is_worker():  # the chief decided: its oracle holds the space
        declared, started = PolicySpace.from_hyperparameters(oracle.get_space()), True
    else:
        declared, started = PolicySpace.from_hyperparameters(oracle.hyperparameters), bool(oracle.trials)
    if started:
        if declared is None or declared.ops == tuner.policy_space.ops:
            return
        space = dataclasses.replace(tuner.policy_space, ops=declared.ops)
    elif default_ops:
        space = tuner.policy_space.for_channels(tuner._channels)
        if space == tuner.policy_space:
            return
    else:
        return
    tuner.policy_space = tuner.hypermodel.policy_space = space
    if not started:  # no trial yet: declare the narrowed space afresh
        hp = keras_tuner.HyperParameters()
        tuner.hypermodel.declare_hyperparameters(hp)
        hp.merge([h for h in oracle.hyperparameters.space if parse_name(h.name) is None])
        oracle.hyperparameters = hp


def canonical_values(tuner: Any, values: dict) -> dict:
    """``tuner``'s oracle canonicaliser: a policy that changes no image of the searched data (its
    channels read when a proposal is made) is the no-augmentation baseline, never trained twice."""
    try:
        return tuner.policy_space.canonical_values(values, channels=tuner._channels or 3)
    except ValueError:  # a no-op policy in a space that cannot express the baseline (baseline_trial=False)
        return {"no-op policy": True, **architecture_values(values)}


def child_arrays(prepared: Any, one_hot: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``(x_train, y_train, validation_data)`` of the prepared search data
    (`keras_augtune.data.prepare_search_data()`): float32 images, labels as ids or one-hot rows,
    and the validation tuple (with its sample weights when given)."""
    data, val = prepared.data, prepared.val
    x_train, x_val = data.x[prepared.train_index].astype("float32"), val.x.astype("float32")
    y_train, y_val = _labels(prepared, data.y[prepared.train_index], one_hot), _labels(prepared, val.y, one_hot)
    validation = (x_val, y_val) if prepared.val_weights is None else (x_val, y_val, prepared.val_weights)
    return x_train, y_train, validation


def race_training(prepared: Any, one_hot: bool, search_seed: int):
    """``training(size, execution) -> (x, y, sample_weight)``: the race's training images for one
    execution (``race_train_size``), a stratified subsample of ``size`` of every training image left
    after the validation split (all of them when ``size`` is their number). Its seed is the
    execution's ([`subset_seed()`][keras_augtune.seeds.subset_seed]), the same for every raced
    configuration, so the race's executions stay paired."""
    pool, weights = prepared.pool_index, prepared.pool_weights
    pool_y = prepared.data.y[pool]

    def training(size: int, execution: int) -> tuple[np.ndarray, np.ndarray, Any]:
        chosen = stratified_subsample(pool_y, int(size), subset_seed(search_seed, execution), what="race_train_size")
        index = pool[chosen]
        x = prepared.data.x[index].astype("float32")
        return x, _labels(prepared, prepared.data.y[index], one_hot), None if weights is None else weights[chosen]

    return training


def _labels(prepared: Any, y: np.ndarray, one_hot: bool) -> np.ndarray:
    return keras.utils.to_categorical(y, prepared.num_classes) if one_hot else y


def preflight(tuner: Any, sample: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    """Build the baseline's child and call it (and its loss) on two images: fail at once, with a
    clear message, on the errors every trial would hit."""
    hypermodel = tuner.hypermodel
    hp = tuner.oracle.get_space()
    try:
        hp.values.update(baseline_values(tuner.policy_space))
    except ValueError:  # a space without a no-augmentation policy (baseline_trial=False): its defaults
        pass
    try:
        model = hypermodel.build(hp)
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
            kind = "one-hot rows" if hypermodel.one_hot else "integer class ids"
            raise ValueError(
                f"The child model's loss cannot be computed on the labels ({kind}, shape "
                f"{labels.shape[1:] or '()'} per image) before the search started: {exc} "
                "Use a sparse loss for integer labels or a categorical loss for one-hot labels."
            ) from exc
    keras.backend.clear_session()
