import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Subprocesses that run a script by path (examples/, benchmarks/) put the script's folder first on
# sys.path, not this checkout: without this they import whichever keras_augtune is installed.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])

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
    from keras_augtune.loaders import load_digits

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
    """An AugmentTuner sized for tests (3 trials, 2 epochs, a small space, seed 3, silent, no confirmation
    step) in ``tmp_path``; ``options`` override those settings; the default child is :func:`tiny_model`."""
    from keras_augtune import AugmentTuner, PolicySpace

    settings = dict(max_trials=3, child_epochs=2, batch_size=32, directory=str(tmp_path), project_name="p",
                    seed=3, verbose=0, confirm_top_k=0,
                    policy_space=PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=SMALL_SPACE_OPS))
    settings.update(options)
    return AugmentTuner(hypermodel if hypermodel is not None else tiny_model(), **settings)


def spy_fit(tuner, record, stop_at=None):
    """Wrap the tuner's ``hypermodel.fit``: every training appends ``record(hp, model)`` to the list
    returned; training number ``stop_at`` (1-based) raises KeyboardInterrupt instead (a stop)."""
    calls = []
    original = tuner.hypermodel.fit

    def fit(hp, model, *args, **kwargs):
        calls.append(record(hp, model))
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        return original(hp, model, *args, **kwargs)

    tuner.hypermodel.fit = fit
    return calls


def noise_child(effect=None, level=0.85, shared=0.02, own=0.01, epochs_seen=None, width_effect=None):
    """A child that does not train (cheap), as a ``keras_tuner.HyperModel``: its "history" is a constant
    accuracy ``level``, plus noise shared by every trial at the same execution seed (``shared`` sd, drawn
    from NumPy's global state, which the tuner seeds per execution), plus noise of its own (``own`` sd,
    from the policy and that seed), plus ``effect(policy)``. With ``effect=None`` the reward ignores the
    policy: a null search. ``epochs_seen`` (a list) records each fit's epochs. ``width_effect``: the child
    declares an architecture hyperparameter ``width`` (1-3) that adds ``width_effect * width``."""
    import json
    import zlib

    import keras
    import keras_tuner

    class _NoiseChild(keras_tuner.HyperModel):
        def build(self, hp):
            if width_effect is not None:
                hp.Int("width", 1, 3)
            model = keras.Sequential([  # any image size and channel count
                keras.Input((None, None, None)), keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=(1, 2, 3))[:, None]),
                keras.layers.Dense(10, activation="softmax")])
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        def fit(self, hp, model, *args, epochs=1, **kwargs):
            from keras_augtune.space import PolicySpace, policy_of

            if epochs_seen is not None:
                epochs_seen.append(epochs)
            policy = policy_of(PolicySpace.from_hyperparameters(hp), hp.values)  # what the layer would apply
            common = np.random.normal()
            key = zlib.crc32(json.dumps(hp.values, sort_keys=True).encode())
            mine = np.random.default_rng([key, int(np.random.randint(2**31))]).normal()
            value = level + shared * common + own * mine + (effect(policy) if effect is not None else 0.0)
            if width_effect is not None:
                value += width_effect * hp.get("width")
            value = float(min(max(value, 0.0), 1.0))
            return {"loss": [1.0] * epochs, "accuracy": [value] * epochs, "val_accuracy": [value] * epochs}

    return _NoiseChild()


def make_images(folder, classes=("a", "b"), per_class=20, seed=0):
    """A class-folder image set: ``per_class`` random 12x12 grayscale PNGs in ``folder/<class>/``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(os.path.join(folder, name, f"{i}.png"))
