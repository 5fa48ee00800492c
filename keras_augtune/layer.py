"""`PolicyAugmentation`: a Keras preprocessing layer that applies a `Policy` while training."""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np

from keras_augtune import keras_engine
from keras_augtune.checks import check_seed
from keras_augtune.engines import DEFAULT_ENGINE, check_engine
from keras_augtune.execution import numpy_function
from keras_augtune.images import check_value_range
from keras_augtune.policy import as_policy
from keras_augtune.seeds import derive_call_seed


@keras.saving.register_keras_serializable(package="keras_augtune")
class PolicyAugmentation(keras.layers.Layer):
    """Augment images with a [`Policy`][keras_augtune.Policy] when ``training=True``; identity otherwise.

    Args:
        policy: a ``Policy`` (or its dict / JSON form).
        value_range: the range of the layer's inputs. Default: the package's one rule
            (`keras_augtune.images`), as for ``Policy.augment`` and ``Policy.tf_map``:
            (0, 255) for integer inputs, (0, 1) for float inputs. A Keras model's inputs are
            float, so declare ``value_range=(0, 255)`` when they hold 0-255 pixels (Keras's own
            augmentation layers assume that range); inputs outside the range raise a
            ``ValueError`` saying so, and float inputs all within [0, 1] under a 0-255 range
            warn (they would be rounded to two levels).
        seed: optional int for reproducible augmentation (imgaug: call k uses seed (seed, k);
            keras: the seed of the layer's ``keras.random.SeedGenerator``).
        engine: ``"imgaug"`` (default) or ``"keras"`` (`keras_augtune.engines`).

    On the imgaug engine the layer runs imgaug on the CPU through ``tf.numpy_function`` and
    therefore needs the TensorFlow backend inside compiled models; with the JAX or torch
    backends it runs only in uncompiled steps (``jit_compile="auto"`` leaves such a model
    uncompiled: the layer's ``supports_jit`` is False), so augment in the ``tf.data`` pipeline
    with ``policy.tf_map()``, or use the Keras engine, to keep the step compiled. On the
    Keras engine it runs the ops' Keras twins (`keras_augtune.keras_twins`) in the graph, with
    each image's sub-policy, probabilities and magnitudes drawn per image: it works inside the
    compiled steps of every backend and on an accelerator. A policy using an op without a twin
    (``fog``, ``clouds``) is refused on that engine in one line.
    """

    def __init__(self, policy: Any, value_range: Any = None, seed: int | None = None,
                 engine: str = DEFAULT_ENGINE, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.policy = as_policy(policy)
        self.value_range = None if value_range is None else check_value_range(value_range)
        self.seed = check_seed(seed)
        self.engine = check_engine(engine)
        self._calls = itertools.count()
        if self.engine == "keras":
            self._tables = keras_engine.compile_policy(self.policy)
            self.seed_generator = keras.random.SeedGenerator(self.seed)
        # What Keras reads for jit_compile="auto": XLA compiles the Keras engine on JAX only. imgaug's
        # NumPy call never compiles, and on TensorFlow the engine's affine warp and per-op image subsets
        # have no XLA kernel (Keras's own RandomRotation says the same).
        self.supports_jit = self.engine == "keras" and keras.backend.backend() == "jax"

    def _augment(self, images: np.ndarray) -> np.ndarray:
        seed = derive_call_seed(self.seed, next(self._calls))
        return self.policy.augment(images, seed=seed, value_range=self.value_range)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        if self.engine == "keras":
            value_range = self.value_range
            if value_range is None:  # the package's one rule: (0, 1) for floats, (0, 255) for integers
                value_range = (0.0, 1.0) if "float" in str(inputs.dtype) else (0.0, 255.0)
            return keras_engine.apply(self.policy, inputs, self.seed_generator, value_range, tables=self._tables)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            return numpy_function(self._augment, inputs, name="policy_augmentation")
        try:
            array = np.asarray(keras.ops.convert_to_numpy(inputs))
        except Exception as exc:  # traced (jit) tensors cannot leave the graph
            raise RuntimeError(
                f"PolicyAugmentation runs imgaug on NumPy and cannot run inside a compiled {backend} "
                "graph. Use the TensorFlow backend (KERAS_BACKEND=tensorflow), or augment in the "
                "tf.data pipeline: ds.map(policy.tf_map()), or compile with jit_compile=False "
                "and run_eagerly=True."
            ) from exc
        out = self._augment(array)
        return keras.ops.convert_to_tensor(out, dtype=inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(policy=self.policy.to_dict(), seed=self.seed, engine=self.engine,
                      value_range=None if self.value_range is None else list(self.value_range))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PolicyAugmentation":
        return cls(**config)

