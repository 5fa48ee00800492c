"""The tf.data map and the Keras layer agree with policy.augment."""

import numpy as np
import pytest

import keras
import tensorflow as tf

from keras_augtune import Policy, PolicyAugmentation

POLICY = Policy([[("rotate", 0.9, 0.6), ("brighten", 0.5, 0.5)], [("invert", 1.0, 1.0)], [("cutout", 1.0, 0.5)]])


def test_tf_map_batched_matches_numpy_with_seed(rgb_batch):
    ds = tf.data.Dataset.from_tensor_slices((rgb_batch, np.arange(len(rgb_batch)))).batch(len(rgb_batch))
    images, labels = next(iter(ds.map(POLICY.tf_map(seed=5))))
    assert images.dtype == tf.uint8 and images.shape == rgb_batch.shape
    assert np.array_equal(images.numpy(), POLICY.augment(rgb_batch, seed=5))
    assert np.array_equal(labels.numpy(), np.arange(len(rgb_batch)))


def test_tf_map_unbatched_autotune_gray():
    x = np.random.default_rng(0).random((20, 28, 28, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(20))).map(POLICY.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
    out = np.stack([im.numpy() for im, _ in ds])
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert not np.array_equal(out, x)


def test_tf_map_image_only_elements():
    x = np.zeros((4, 33, 47), np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4).map(Policy([[("invert", 1.0, 1.0)]]).tf_map())
    assert np.all(next(iter(ds)).numpy() == 255)


def test_layer_training_only_and_seed(rgb_batch):
    x = rgb_batch.astype("float32")
    layer = PolicyAugmentation(POLICY, value_range=(0, 255), seed=5)
    assert np.array_equal(layer(x, training=False), x)
    out = layer(x, training=True)
    assert np.array_equal(np.asarray(out), POLICY.augment(x, seed=5, value_range=(0, 255)))


def test_layer_inside_fit_and_save_load(tmp_path, digits_small):
    x, y = digits_small
    x = x.astype("float32") / 255.0
    model = keras.Sequential([
        keras.Input((16, 16, 1)),
        PolicyAugmentation(POLICY, value_range=(0, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.layers[0]
    assert isinstance(layer, PolicyAugmentation)
    assert layer.policy == POLICY and layer.value_range == (0.0, 1.0)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_layer_bad_arguments():
    with pytest.raises(TypeError, match="policy must be a Policy"):
        PolicyAugmentation(3)
    with pytest.raises(ValueError, match="value_range"):
        PolicyAugmentation(POLICY, value_range=(5, 1))
    assert PolicyAugmentation(POLICY.to_dict()).policy == POLICY


def test_tf_map_in_worker_processes_matches_in_process(rgb_batch):
    x = np.concatenate([rgb_batch] * 4)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(6)
    in_process = np.concatenate([b.numpy() for b in ds.map(POLICY.tf_map(seed=2))])
    in_workers = np.concatenate([b.numpy() for b in ds.map(POLICY.tf_map(seed=2, num_workers=2))])
    assert np.array_equal(in_process, in_workers)
    assert not np.array_equal(in_process, x)
    with pytest.raises(ValueError, match="num_workers"):
        POLICY.tf_map(num_workers=-1)


@pytest.mark.parametrize("order", ["keras_augtune first", "keras first"])
def test_saved_model_with_the_layer_loads_in_a_fresh_process_after_import_keras_augtune(tmp_path, order):
    """Registered at import without importing Keras early: both import orders, in a new process."""
    import os
    import subprocess
    import sys

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2)(PolicyAugmentation(POLICY, seed=1)(inputs))
    path = str(tmp_path / "model.keras")
    keras.Model(inputs, outputs).save(path)
    imports = ("import keras_augtune, sys\nassert 'keras' not in sys.modules  # still lazy\nimport keras\n"
               if order == "keras_augtune first" else "import keras\nimport keras_augtune\n")
    code = imports + (
        f"model = keras.saving.load_model({path!r})\n"
        "layer = model.layers[1]\n"
        "assert type(layer).__name__ == 'PolicyAugmentation' and layer.policy == keras_augtune.Policy.from_dict("
        f"{POLICY.to_dict()!r}), layer.policy\n"
        "print('loaded')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and "loaded" in run.stdout, run.stderr[-2000:]


def test_one_pixel_range_rule_for_the_layer_augment_and_tf_map(rgb_batch):
    """[0, 1] float images get the same treatment everywhere (the layer used to assume 0-255:
    2 distinct output values); data contradicting the range is refused or warned about."""
    from keras_augtune.data import DataWarning

    policy = Policy([[("rotate", 1.0, 0.5)]])
    x = rgb_batch.astype("float32") / 255.0
    from_layer = np.asarray(PolicyAugmentation(policy, seed=5)(x, training=True))
    from_map = next(iter(tf.data.Dataset.from_tensors(x).map(policy.tf_map(seed=5)))).numpy()
    from_numpy = policy.augment(x, seed=5)
    assert len(np.unique(from_layer)) > 100 and from_layer.max() <= 1.0
    assert np.array_equal(from_layer, from_numpy) and np.array_equal(from_map, from_numpy)
    with pytest.warns(DataWarning, match=r"all within \[0, 1\], but value_range is \(0, 255\)"):
        policy.augment(x, value_range=(0, 255))
    with pytest.raises(ValueError, match=r"outside the value_range of float32 images with none declared \(0, 1\); "
                                         r"pass value_range=\(0, 255\)"):
        policy.augment(x * 255.0)
    with pytest.raises(Exception, match=r"pass value_range=\(0, 255\)"):  # from inside the layer's numpy_function
        PolicyAugmentation(policy)(x * 255.0, training=True)


def test_tf_map_on_dict_elements_and_dict_label_pairs(rgb_batch):
    labels = np.arange(len(rgb_batch))
    expected = POLICY.augment(rgb_batch, seed=5)
    ds = tf.data.Dataset.from_tensor_slices({"image": rgb_batch, "label": labels}).batch(len(labels))
    out = next(iter(ds.map(POLICY.tf_map(seed=5))))
    assert set(out) == {"image", "label"}
    assert np.array_equal(out["image"].numpy(), expected) and np.array_equal(out["label"].numpy(), labels)
    pairs = tf.data.Dataset.from_tensor_slices(({"pixels": rgb_batch, "id": labels}, labels)).batch(len(labels))
    features, label = next(iter(pairs.map(POLICY.tf_map(seed=5, image_key="pixels"))))
    assert np.array_equal(features["pixels"].numpy(), expected) and np.array_equal(features["id"].numpy(), labels)
    assert np.array_equal(label.numpy(), labels)
    with pytest.raises(KeyError, match="without the image feature 'image' .they have 'pixels', 'id'.. Pass image_key="):
        pairs.map(POLICY.tf_map())
    plural = tf.data.Dataset.from_tensor_slices({"images": rgb_batch})
    with pytest.raises(KeyError, match="Did you mean image_key='images'"):
        plural.map(POLICY.tf_map())


def test_a_single_rgba_image_is_not_a_batch_of_grayscale_images():
    from keras_augtune.images import is_single_image

    rgba = np.zeros((32, 32, 4), np.uint8)
    assert is_single_image(rgba) and not is_single_image(np.zeros((32, 32, 5)))
    with pytest.raises(ValueError, match=r"got 4 \(shape \(1, 32, 32, 4\)\)\. RGBA images are not augmented"):
        POLICY.augment(rgba[None])
    ds = tf.data.Dataset.from_tensors(rgba).map(POLICY.tf_map())
    with pytest.raises(Exception, match="RGBA images are not augmented"):
        next(iter(ds))
