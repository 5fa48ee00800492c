"""Warm start: pretrain the child once without augmentation, and start every trial from those weights.

DeepAugment's ``child_first_train_epochs``: :class:`WarmStart` is handed to the
:class:`~keras_augtune.hypermodel.AugmentHyperModel` (its ``warm_start``), which calls
:meth:`WarmStart.load` on every freshly built child. The first call for an
architecture trains that child without augmentation and saves its weights; later
calls (and resumed searches) load the saved file.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from keras_augtune.space import architecture_values, baseline_values


class WarmStart:
    """Pretrained starting weights for the child, one file per architecture.

    Args:
        epochs: pretraining epochs (without augmentation).
        x, y, validation_data, batch_size: the pretraining data, as the trials see it.
        path: a ``.weights.h5`` file, or a folder that gets one
            ``child_<architecture hash>.weights.h5`` per architecture.
    """

    def __init__(self, epochs: int, x: Any, y: Any, validation_data: Any, batch_size: int, path: str):
        self.epochs = int(epochs)
        self.x, self.y, self.validation_data, self.batch_size = x, y, validation_data, batch_size
        self.path = path
        self._weights: dict[str, str] = {}

    def load(self, hypermodel: Any, hp: Any, child: Any) -> None:
        """Set ``child``'s weights to the pretrained ones of its architecture."""
        child.load_weights(self.weights_file(hypermodel, hp))

    def weights_file(self, hypermodel: Any, hp: Any) -> str:
        """The pretrained weights of ``hp``'s architecture; trains them on the first call."""
        values = architecture_values(hp.values)
        key = hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]
        if key in self._weights:
            return self._weights[key]
        path = self.path
        if not path.endswith(".weights.h5"):
            os.makedirs(path, exist_ok=True)
            path = os.path.join(path, f"child_{key}.weights.h5")
        if not os.path.exists(path):
            self._pretrain(hypermodel, hp, path)
        self._weights[key] = path
        return path

    def _pretrain(self, hypermodel: Any, hp: Any, path: str) -> None:
        baseline_hp = hp.copy()
        baseline_hp.values.update(baseline_values(hypermodel.policy_space))
        child = hypermodel.build_child(baseline_hp)
        model = hypermodel.wrap(baseline_hp, child)
        model.fit(self.x, self.y, validation_data=self.validation_data, epochs=self.epochs,
                  batch_size=self.batch_size, verbose=0)
        child.save_weights(path)
