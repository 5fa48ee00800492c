"""The Keras engine: twins cover the op table, match imgaug, draw per image, and train inside compiled steps."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_augtune import Policy, PolicyAugmentation  # noqa: E402
from keras_augtune import keras_engine  # noqa: E402
from keras_augtune.engines import ENGINES, check_engine, engine_module  # noqa: E402
from keras_augtune.keras_twins import NO_TWIN, TWINS  # noqa: E402
from keras_augtune.ops import OPS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _benchmark():
    spec = importlib.util.spec_from_file_location("engine_equivalence",
                                                  os.path.join(ROOT, "benchmarks", "engine_equivalence.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def photos():
    return _benchmark().sample_images(96)


def test_twins_are_keyed_by_the_op_table():
    assert set(TWINS) | set(NO_TWIN) == set(OPS)
    assert not set(TWINS) & set(NO_TWIN)
    assert keras_engine.supported_ops() == tuple(op for op in OPS if op not in NO_TWIN)


def test_engine_names():
    assert check_engine("keras") == "keras" and set(ENGINES) == {"imgaug", "keras"}
    assert engine_module("keras") is keras_engine
    with pytest.raises(ValueError, match="Did you mean 'keras'"):
        check_engine("kears")
    with pytest.raises(ValueError, match="Did you mean 'imgaug'"):
        Policy.identity().augment(np.zeros((1, 4, 4, 3), np.uint8), engine="imgau")


def test_policy_does_not_import_an_engine_at_import_time():
    import subprocess
    import sys

    code = "import sys, keras_augtune.policy; print('keras_augtune.execution' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("op,magnitude", [("equalize", 1.0), ("auto-contrast", 0.7), ("solarize", 0.6),
                                          ("posterize", 1.0), ("invert", 1.0), ("horizontal-flip", 1.0)])
def test_deterministic_twins_match_imgaug_pixel_for_pixel(photos, op, magnitude):
    row = _benchmark().compare(op, magnitude, photos)
    assert row["kind"] == "deterministic" and row["passed"], row


@pytest.mark.parametrize("op", ["rotate", "shear-x", "translate-y", "contrast", "cutout"])
def test_random_twins_match_imgaug_in_distribution(photos, op):
    row = _benchmark().compare(op, 1.0, photos)
    assert row["kind"] == "random" and row["passed"], row


def test_the_comparison_can_fail(photos):
    # a twin with the wrong strength is caught: rotate at 1.0 against imgaug at 0.3
    from scipy.stats import ks_2samp

    ours = Policy([[("rotate", 1.0, 1.0)]]).augment(photos, seed=1, engine="keras").astype(float)
    theirs = Policy([[("rotate", 1.0, 0.3)]]).augment(photos, seed=1).astype(float)
    change = [np.abs(a - photos).mean(axis=(1, 2, 3)) for a in (ours, theirs)]
    assert ks_2samp(*change).pvalue < 0.01


def test_per_image_probability_and_sub_policy_choice():
    images = np.full((600, 8, 8, 3), 10, np.uint8)
    flipped = Policy([[("invert", 0.3, 1.0)]]).augment(images, seed=0, engine="keras")
    share = np.mean(flipped[:, 0, 0, 0] == 245)
    assert 0.22 < share < 0.38  # per image, not all-or-nothing per batch
    chosen = Policy([[("invert", 1.0, 1.0)], [("identity", 1.0, 0.0)], [("identity", 1.0, 0.0)]])
    share = np.mean(chosen.augment(images, seed=0, engine="keras")[:, 0, 0, 0] == 245)
    assert 0.25 < share < 0.42  # one of three sub-policies, drawn per image
    two_steps = Policy([[("invert", 1.0, 1.0), ("brighten", 1.0, 0.0), ("invert", 0.5, 1.0)]])
    out = two_steps.augment(images, seed=0, engine="keras")[:, 0, 0, 0]
    assert set(np.unique(out)) == {10, 245} and 0.4 < np.mean(out == 10) < 0.6  # steps in order


def test_keras_engine_keeps_shape_dtype_and_range():
    rng = np.random.default_rng(0)
    gray = rng.random((4, 12, 12)).astype(np.float32)
    out = Policy.trivial_augment().augment(gray, seed=3, engine="keras")
    assert out.shape == gray.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    same = Policy.identity().augment(gray, seed=3, engine="keras")
    np.testing.assert_array_equal(same, gray)  # unchanged images are not quantised
    a = Policy.rand_augment().augment((gray * 255).astype(np.uint8), seed=5, engine="keras")
    b = Policy.rand_augment().augment((gray * 255).astype(np.uint8), seed=5, engine="keras")
    np.testing.assert_array_equal(a, b)


def test_ops_without_a_twin_are_refused_in_one_line():
    with pytest.raises(ValueError, match="no twin of 'fog'.*engine='imgaug'"):
        Policy([[("fog", 1.0, 0.5)]]).keras_layer()


def test_layer_trains_in_a_compiled_step_and_round_trips(tmp_path):
    policy = Policy([[("rotate", 0.8, 0.5), ("equalize", 0.5, 1.0)], [("cutout", 1.0, 0.3)]])
    layer = policy.keras_layer(value_range=(0, 255), seed=1)
    assert isinstance(layer, PolicyAugmentation) and layer.engine == "keras"
    model = keras.Sequential([keras.Input((16, 16, 3)), layer, keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    x = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3)).astype("float32")
    history = model.fit(x, np.arange(32) % 3, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[0].engine == "keras" and loaded.layers[0].policy == policy
    np.testing.assert_array_equal(loaded.layers[0](x[:2], training=False), x[:2])


def test_hypermodel_on_the_keras_engine_trains_a_child():
    import keras_tuner

    from keras_augtune import AugmentHyperModel, PolicySpace

    hypermodel = AugmentHyperModel("simple", engine="keras")
    assert not set(hypermodel.policy_space.ops) & set(NO_TWIN)  # the default space: only ops with a twin
    with pytest.raises(ValueError, match="no twin of 'clouds'"):
        AugmentHyperModel("simple", policy_space=PolicySpace(ops=["rotate", "clouds"]), engine="keras")
    with pytest.raises(ValueError, match="Did you mean 'keras'"):
        AugmentHyperModel("simple", engine="Keras ")
    hypermodel.configure((8, 8, 1), 3)
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    for k, name in enumerate(sorted(hp.values)):  # a policy that acts: rotate/equalize, probability 1, magnitude 0.5
        if name.endswith("/op") or name.endswith("_op"):
            hp.values[name] = ("rotate", "equalize")[k % 2]
        elif name.endswith("probability"):
            hp.values[name] = 1.0
        elif name.endswith("magnitude"):
            hp.values[name] = 0.5
    model = hypermodel.build(hp)
    layer = model.get_layer("policy_augmentation")
    assert layer.engine == "keras"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (24, 8, 8, 1)).astype("float32"), np.arange(24) % 3
    history = hypermodel.fit(hp, model, x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_masked_and_gathered_paths_agree(photos):
    # the masked whole-batch path (what jax.jit runs) and the gathered subsets (other backends)
    policy = Policy([[("equalize", 1.0, 1.0)], [("solarize", 1.0, 0.5), ("posterize", 1.0, 1.0)],
                     [("horizontal-flip", 1.0, 1.0)], [("identity", 1.0, 0.0)]])
    tables = keras_engine.compile_policy(policy)
    x = keras.ops.convert_to_tensor(photos.astype("float32"))
    masked, touched_masked = keras_engine.apply_tables(x, tables, seed=7, subsets=False)
    gathered, touched_gathered = keras_engine.apply_tables(x, tables, seed=7, subsets=True)
    np.testing.assert_array_equal(np.asarray(masked), np.asarray(gathered))
    np.testing.assert_array_equal(np.asarray(touched_masked), np.asarray(touched_gathered))
    assert 0 < np.mean(np.asarray(touched_masked)) < 1


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install 'jax[cpu]')")
def test_layer_trains_inside_a_jit_compiled_jax_step():
    # issue 23: the layer inside compiled steps of every backend; a fresh process picks the backend
    import subprocess
    import sys

    code = (
        "import numpy as np, keras\n"
        "from keras_augtune import Policy\n"
        "layer = Policy([[('rotate', 0.8, 0.5), ('equalize', 0.5, 1.0)], [('cutout', 1.0, 0.3)]])"
        ".keras_layer(value_range=(0, 255), seed=1)\n"
        "model = keras.Sequential([keras.Input((8, 8, 3)), layer, keras.layers.Flatten(), keras.layers.Dense(3)])\n"
        "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)).astype('float32')\n"
        "h = model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)\n"
        "print(keras.backend.backend(), model.jit_compile, bool(np.isfinite(h.history['loss'][-1])))\n"
        # the imgaug layer on JAX: jit_compile='auto' resolves to False, so its NumPy call can run
        "imgaug = keras.Sequential([keras.Input((8, 8, 3)), Policy([[('rotate', 1.0, 0.5)]])"
        ".keras_layer(engine='imgaug', value_range=(0, 255)), keras.layers.Flatten(), keras.layers.Dense(3)])\n"
        "imgaug.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "h = imgaug.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)\n"
        "print(imgaug.jit_compile, bool(np.isfinite(h.history['loss'][-1])))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-5:] == ["jax", "True", "True", "False", "True"]


def test_a_search_runs_on_the_keras_engine(tmp_path, digits):
    # through today's tuner: an AugmentHyperModel on the Keras engine passed as the hypermodel
    from conftest import make_tuner, tiny_model

    from keras_augtune import AugmentHyperModel

    hypermodel = AugmentHyperModel(tiny_model(), engine="keras")
    tuner = make_tuner(tmp_path, hypermodel=hypermodel, max_trials=2, child_epochs=1)
    tuner.search(*digits)
    models = [tuner.hypermodel.build(t.hyperparameters) for t in tuner.oracle.trials.values()]
    layers = [m.get_layer("policy_augmentation") for m in models
              if "policy_augmentation" in [layer.name for layer in m.layers]]
    assert layers and all(layer.engine == "keras" for layer in layers)
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
