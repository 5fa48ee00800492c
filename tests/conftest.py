import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest


@pytest.fixture
def rgb_batch():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 33, 47, 3), dtype=np.uint8)


@pytest.fixture
def digits_small():
    """64 real 8x8 digits upscaled to 16x16, uint8 (N, 16, 16, 1), and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:64] * (255.0 / 16.0)).round().astype(np.uint8)
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)[..., None]
    return x, d.target[:64]


@pytest.fixture(scope="session")
def digits():
    """The first 200 of scikit-learn's digits at 12x12, uint8 (N, 12, 12, 1), and their labels."""
    from keras_augtune.data import load_digits

    x, y = load_digits(12)
    return x[:200], y[:200]


def tiny_model(classes=10, input_shape=(12, 12, 1), compiled=False, loss="sparse_categorical_crossentropy"):
    """A very small CNN (trains in a second on the 12x12 digits); ``compiled`` with Adam(0.01) and ``loss``."""
    import keras

    model = keras.Sequential([
        keras.Input(input_shape), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes, activation="softmax"),
    ])
    if compiled:
        model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"])
    return model


#: A small policy space for quick searches: 2 sub-policies of 1 op.
SMALL_SPACE_OPS = ["identity", "rotate", "invert", "translate-x"]


def make_tuner(tmp_path, hypermodel=None, **options):
    """An AugmentTuner sized for tests (3 trials, 2 epochs, a small space, seed 3, silent) in ``tmp_path``;
    ``options`` override those settings; the default child is :func:`tiny_model`."""
    from keras_augtune import AugmentTuner, PolicySpace

    settings = dict(max_trials=3, child_epochs=2, batch_size=32, directory=str(tmp_path), project_name="p",
                    seed=3, verbose=0,
                    policy_space=PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=SMALL_SPACE_OPS))
    settings.update(options)
    return AugmentTuner(hypermodel if hypermodel is not None else tiny_model(), **settings)
