"""Built-in child models: a CPU-friendly default CNN, DeepAugment's ``basiccnn``,
wide ResNets ``wrn_<depth>_<width>``, and ``mobilenetv2`` / ``inceptionv3`` from
``keras.applications`` (``weights=None``, input adapted).

``build_model(name, input_shape, num_classes)`` returns an uncompiled ``keras.Model``
with a softmax output. They expect floats in [0, 1]; `AugmentHyperModel` rescales to that.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

from keras_augtune.lazy import lazy_module

# Keras (and TensorFlow under it) is imported when the first model is built: checking a
# model's name stays instant.
keras = lazy_module("keras")
layers = lazy_module("keras.layers")

#: The default child model's name.
DEFAULT_MODEL = "simple"


def simple_cnn(input_shape, num_classes, width: int = 32, bn_momentum: float = 0.5) -> keras.Model:
    """A small CNN (~95k parameters at width 32): a trial on ~1,000 32x32 images in seconds.

    ``bn_momentum`` 0.5: a trial is a few hundred steps, and with Keras's 0.99 (or even 0.9)
    the moving statistics lag the weights so far that validation accuracy measures the lag,
    not generalisation (digits, 500 images, 10 epochs: validation 0.69-0.88 at 0.97 training
    accuracy with 0.9; 0.94-0.96 with 0.5). For long trainings pass 0.9 or 0.99.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.ReLU()(x)
        if i < 2:
            x = layers.MaxPooling2D()(x) if min(x.shape[1:3]) >= 2 else x
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"simple_cnn_{width}")


def basic_cnn(input_shape, num_classes) -> keras.Model:
    """DeepAugment's ``basiccnn`` (the Keras CIFAR-10 example CNN, ~1.25M parameters at 32x32)."""
    inputs = keras.Input(input_shape)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="basiccnn")


def wide_resnet(input_shape, num_classes, depth: int = 16, width: int = 2) -> keras.Model:
    """Wide ResNet WRN-depth-width (Zagoruyko & Komodakis, 2016); depth = 6n + 4."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"A wide ResNet needs depth = 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}.")
    if width < 1:
        raise ValueError(f"A wide ResNet needs width >= 1, got {width}.")
    blocks = (depth - 4) // 6

    def block(x, filters, stride):
        shortcut = x
        y = layers.BatchNormalization()(x)
        y = layers.ReLU()(y)
        if stride != 1 or x.shape[-1] != filters:
            shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(y)
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        return layers.Add()([shortcut, y])

    inputs = keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    for stage, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for i in range(blocks):
            x = block(x, filters, 2 if (i == 0 and stage > 0) else 1)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=f"wrn_{depth}_{width}")


def _application(factory: Callable, min_size: int) -> Callable:
    def build(input_shape, num_classes) -> keras.Model:
        h, w, c = input_shape
        size = (max(h, min_size), max(w, min_size))
        inputs = keras.Input(input_shape)
        x = inputs
        if (h, w) != size:
            x = layers.Resizing(*size)(x)
        if c != 3:
            x = layers.Concatenate()([x, x, x]) if c == 1 else layers.Conv2D(3, 1)(x)
        base = factory(include_top=False, weights=None, input_shape=(*size, 3), pooling="avg")
        outputs = layers.Dense(num_classes, activation="softmax")(base(x))
        return keras.Model(inputs, outputs, name=base.name)

    return build


#: Named builders: ``name -> builder(input_shape, num_classes)``.
MODELS: dict[str, Callable[..., keras.Model]] = {
    "simple": simple_cnn,
    "basiccnn": basic_cnn,
    "mobilenetv2": _application(lambda **options: keras.applications.MobileNetV2(**options), 32),
    "inceptionv3": _application(lambda **options: keras.applications.InceptionV3(**options), 75),
}

_WRN = re.compile(r"^wrn_(\d+)_(\d+)$")


def check_model_name(name: str) -> str:
    """Return the normalised model name, or raise a ``ValueError`` with the closest names."""
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a string, got {type(name).__name__}.")
    key = name.strip().lower().replace("-", "_")
    if key in MODELS:
        return key
    if key.startswith("wrn"):
        match = _WRN.match(key)
        if not match:
            raise ValueError(
                f"Malformed wide-ResNet name {name!r}: write wrn_<depth>_<width>, e.g. 'wrn_16_2' "
                "(depth = 6n + 4, width >= 1)."
            )
        depth, width = int(match.group(1)), int(match.group(2))
        if depth < 10 or (depth - 4) % 6 or width < 1:
            raise ValueError(
                f"Invalid wide ResNet {name!r}: depth must be 6n + 4 (10, 16, 22, 28, 40, ...) "
                f"and width >= 1, got depth {depth}, width {width}."
            )
        return key
    close = difflib.get_close_matches(key, list(MODELS) + ["wrn_16_2", "wrn_28_10"], n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown model {name!r}.{hint} Built-in models: {', '.join(MODELS)}, wrn_<depth>_<width>."
    )


def build_model(name: str, input_shape, num_classes: int) -> keras.Model:
    """Build the built-in child model ``name`` for ``input_shape`` (H, W, C) and ``num_classes``."""
    key = check_model_name(name)
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, got {num_classes}.")
    match = _WRN.match(key)
    if match:
        return wide_resnet(input_shape, num_classes, depth=int(match.group(1)), width=int(match.group(2)))
    return MODELS[key](input_shape, num_classes)
