import keras
import numpy as np
import pytest

from keras_augtune.models import build_model


def test_basiccnn_is_deepaugments():
    # DeepAugment's basiccnn on CIFAR-10 has 1,250,858 parameters (NOTES.md)
    assert build_model("basiccnn", (32, 32, 3), 10).count_params() == 1_250_858


def test_default_child_is_small():
    assert build_model("simple", (32, 32, 3), 10).count_params() < 150_000


@pytest.mark.parametrize("name", ["simple", "basiccnn", "wrn_10_1", "mobilenetv2", "inceptionv3"])
@pytest.mark.parametrize("shape,classes", [((16, 16, 1), 3), ((20, 28, 3), 7)])
def test_builtin_models_take_any_size_and_channels(name, shape, classes):
    model = build_model(name, shape, classes)
    out = model(np.zeros((2, *shape), "float32"), training=False)
    assert tuple(out.shape) == (2, classes)
    np.testing.assert_allclose(np.sum(out, axis=1), 1.0, rtol=1e-5)  # softmax
    keras.backend.clear_session()


def test_wide_resnet_depth_and_width():
    small, wide = build_model("wrn_10_1", (16, 16, 3), 10), build_model("wrn_10_2", (16, 16, 3), 10)
    assert wide.count_params() > 2 * small.count_params()
    with pytest.raises(ValueError, match="depth must be 6n"):
        build_model("wrn_12_1", (16, 16, 3), 10)


def test_default_child_validation_is_not_held_down_by_batchnorm_lag():
    # A trial is a few dozen steps: with slow BatchNorm statistics the validation accuracy
    # stays near chance while training accuracy is high, and the reward measures the lag.
    from keras_augtune.loaders import load_digits

    keras.utils.set_random_seed(0)
    x, y = load_digits(32)
    x = x.astype("float32") / 255.0
    model = build_model("simple", (32, 32, 1), 10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:400], y[:400], validation_data=(x[1500:1700], y[1500:1700]), epochs=6,
                        batch_size=64, verbose=0).history
    assert history["accuracy"][-1] > 0.8
    assert history["val_accuracy"][-1] > history["accuracy"][-1] - 0.15


@pytest.mark.parametrize("wrap,expected", [(False, False), (True, False), ("logits", True)])
def test_the_loss_reads_a_nested_childs_softmax(wrap, expected):
    """A user's child wrapped as Sequential([..., a whole model]) ends in that model's softmax:
    the loss must take probabilities (it took them for logits: wrong on JAX and PyTorch)."""
    import keras_tuner

    from keras_augtune import AugmentHyperModel

    inner = build_model("simple", (8, 8, 1), 3)
    if wrap == "logits":
        inner = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    child = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255.0), inner]) if wrap else inner
    hypermodel = AugmentHyperModel(child)
    hypermodel.configure((8, 8, 1), 3)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.loss.from_logits is expected
    keras.backend.clear_session()
