"""What the benchmark scripts share: the machine and its load, the data splits, a child trained as the tuner trains one.

Each script imports it as ``from _common import ...`` (the scripts run from any folder: they put
their own folder and the project root on ``sys.path`` first, see `setup_paths()`).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_paths() -> None:
    """Put the project root (the package) and this folder (``_common``) on ``sys.path``."""
    for path in (ROOT, os.path.dirname(os.path.abspath(__file__))):
        if path not in sys.path:
            sys.path.insert(0, path)


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages now (benchmarks need the machine to themselves: say the load)."""
    return [round(v, 2) for v in os.getloadavg()]


def machine(**versions: str) -> dict[str, Any]:
    """The machine a result was measured on: processor, cores, Python, the load now and any
    library ``versions`` given (e.g. ``tensorflow=tf.__version__``)."""
    return {"machine": platform.machine(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "load": load_average(), **versions}


def load_split(data: str, train_size: int, validation_size: float, seed: int = 0):
    """``(name, x_train, y_train, x_val, y_val)``: fixed splits, the same for every run.

    ``data`` is ``"digits"`` (scikit-learn's, 32x32: a stratified ``validation_size`` split as the
    tuner's with ``seed``, then a stratified ``train_size`` subsample) or a folder with
    ``train/`` and ``test/`` class folders (``train_size`` images from ``train``, the held-out
    images from ``test``: ``validation_size`` of them when > 1, else 1,000)."""
    from keras_augtune.data import stratified_split, stratified_subsample
    from keras_augtune.loaders import load_digits, load_image_folder

    if data == "digits":
        x, y = load_digits(32)
        train, val = stratified_split(y, validation_size, seed)
        keep = train[stratified_subsample(y[train], min(train_size, len(train)), seed)]
        return "digits", x[keep], y[keep], x[val], y[val]
    x, y, classes = load_image_folder(os.path.join(data, "train"))
    xv, yv, classes_v = load_image_folder(os.path.join(data, "test"))
    if classes != classes_v:
        raise SystemExit(f"train and test class folders differ: {classes} vs {classes_v}")
    keep = stratified_subsample(y, min(train_size, len(y)), seed)
    held = stratified_subsample(yv, min(int(validation_size) if validation_size > 1 else 1000, len(yv)), seed)
    return os.path.basename(os.path.normpath(data)), x[keep], y[keep], xv[held], yv[held]


def trial_hyperparameters(hypermodel, values: dict):
    """The ``HyperParameters`` a tuner trial with these values would hand to ``build``."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(values)
    return hp


def train_child(hypermodel, values: dict, x, y, validation_data, epochs: int, batch_size: int, seed: int):
    """One execution as the tuner's runner trains it (`keras_augtune.runner`): the augmented child
    of ``values`` built under ``seed`` (weights, batch order and augmentation paired across
    configurations), fitted through the hypermodel, its history checked finite and scored with
    the overfit-filtered reward. Returns ``(ExecutionReward, history)``."""
    import keras

    from keras_augtune.evaluation.reward import overfit_filtered_reward
    from keras_augtune.runner import build_seeded, check_finite

    hp = trial_hyperparameters(hypermodel, values)
    model = build_seeded(hypermodel.build, hp, seed)
    history = hypermodel.fit(hp, model, x, y, validation_data=validation_data, epochs=epochs,
                             batch_size=batch_size, verbose=0).history
    keras.backend.clear_session()
    check_finite(history)
    return overfit_filtered_reward(history), history
