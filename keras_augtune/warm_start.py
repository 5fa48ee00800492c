"""Warm start: pretrain the child once without augmentation, and start every trial from those weights.

DeepAugment's ``child_first_train_epochs``: `WarmStart` is handed to the
[`AugmentHyperModel`][keras_augtune.hypermodel.AugmentHyperModel] (its ``warm_start``), which calls
`WarmStart.load()` on every freshly built child. The first call for a key
trains that child without augmentation and saves its weights; later calls (and
resumed searches) load the saved file.

The **key** of a weights file is what the weights depend on: the child's
architecture (`architecture_signature()`: each layer's class, activation and
weight shapes, so a learning rate, batch size or dropout rate is not part of it),
the input shape, a fingerprint of the pretraining data, and the pretraining
settings (epochs, batch size, seed). A file made under another key (another run,
model, data or setting) is never loaded: it is pretrained again.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from keras_augtune.files import atomic_write_json, save_weights
from keras_augtune.data import data_fingerprint
from keras_augtune.space import baseline_values

WEIGHTS_SUFFIX = ".weights.h5"


class WarmStart:
    """Pretrained starting weights for the child, one file per key (see the module docstring).

    Args:
        epochs: pretraining epochs (without augmentation).
        x: the pretraining images, as the trials see them.
        y: their labels.
        validation_data: the validation pair, as the trials see it.
        batch_size: the trials' batch size.
        sample_weight: the images' weights, if any.
        path: a folder that gets one ``child_<key>.weights.h5`` per key, or a
            ``.weights.h5`` file (with its key in ``<file>.json`` beside it; a second key
            in the same search gets ``<file stem>_<key>.weights.h5``).
        seed: the search's seed (pretraining is seeded by it).
        record: called as ``record(key, history)`` after each pretraining (the tuner's notebook).
    """

    def __init__(self, epochs: int, x: Any, y: Any, validation_data: Any, batch_size: int, path: str,
                 seed: int | None = None, sample_weight: Any = None, record: Any = None):
        self.epochs = int(epochs)
        self.record = record
        self.sample_weight = sample_weight
        self.x, self.y, self.validation_data, self.batch_size = x, y, validation_data, batch_size
        self.path = path
        self.seed = seed
        self.data_fingerprint = data_fingerprint(x, y, [])["sample_sha256"]
        if sample_weight is not None:
            self.data_fingerprint += data_fingerprint(sample_weight, y, [])["sample_sha256"][:8]
        self._weights: dict[str, str] = {}

    def load(self, hypermodel: Any, hp: Any, child: Any) -> None:
        """Set ``child``'s weights to the pretrained ones of its key."""
        child.load_weights(self.weights_file(hypermodel, hp, child))

    def key(self, hypermodel: Any, child: Any) -> tuple[str, dict[str, Any]]:
        """The short key of ``child``'s weights and what it is made of."""
        material = {
            "architecture": architecture_signature(child, hypermodel.input_shape),
            "input_shape": list(hypermodel.input_shape),
            "data": self.data_fingerprint,
            "epochs": self.epochs, "batch_size": int(self.batch_size), "seed": self.seed,
        }
        digest = hashlib.sha1(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
        return digest, material

    def weights_file(self, hypermodel: Any, hp: Any, child: Any) -> str:
        """The pretrained weights for ``child``; trains them on the first call for its key."""
        key, material = self.key(hypermodel, child)
        if key in self._weights:
            return self._weights[key]
        if self.path.endswith(WEIGHTS_SUFFIX):
            path = self.path
            if path in self._weights.values():  # this search already keeps another key there
                path = f"{path[: -len(WEIGHTS_SUFFIX)]}_{key}{WEIGHTS_SUFFIX}"
            sidecar = path + ".json"
            if not (os.path.exists(path) and _read_key(sidecar) == key):  # missing, or made under another key
                self._pretrain(hypermodel, hp, path, key)
                atomic_write_json(sidecar, {"key": key, **material})
        else:
            os.makedirs(self.path, exist_ok=True)
            path = os.path.join(self.path, f"child_{key}{WEIGHTS_SUFFIX}")
            if not os.path.exists(path):
                self._pretrain(hypermodel, hp, path, key)
        self._weights[key] = path
        return path

    def _pretrain(self, hypermodel: Any, hp: Any, path: str, key: str) -> None:
        baseline_hp = hp.copy()
        baseline_hp.values.update(baseline_values(hypermodel.policy_space))
        child = hypermodel.build_child(baseline_hp)
        model = hypermodel.wrap(baseline_hp, child)
        history = model.fit(self.x, self.y, validation_data=self.validation_data, epochs=self.epochs,
                            batch_size=self.batch_size, sample_weight=self.sample_weight, verbose=0)
        save_weights(child, path)
        if self.record is not None:
            self.record(key, history.history)


def architecture_signature(model: Any, input_shape: Any) -> list:
    """What pretrained weights depend on in ``model``: for each layer in order, its class, its
    activation and its weights' shapes (not layer names, which Keras numbers per process, and
    not a dropout rate, learning rate or batch size). A model not yet built is built first."""
    import keras

    if not model.weights and not model.built:
        model(keras.ops.zeros((1, *input_shape)))
    rows: list = [type(model).__name__]

    def walk(layer: Any) -> None:
        sublayers = getattr(layer, "layers", None)
        if sublayers is not None and layer is not model and isinstance(layer, keras.Model):
            rows.append(type(layer).__name__)
        if sublayers is not None and isinstance(layer, keras.Model):
            for sub in sublayers:
                walk(sub)
            return
        try:
            activation = layer.get_config().get("activation")
        except Exception:  # a layer without a serialisable config
            activation = None
        rows.append([type(layer).__name__, activation if isinstance(activation, str) else None,
                     [list(w.shape) for w in layer.weights]])

    walk(model)
    return rows


def _read_key(sidecar: str) -> str | None:
    try:
        with open(sidecar, encoding="utf-8") as f:
            return json.load(f).get("key")
    except (OSError, ValueError, AttributeError):
        return None
