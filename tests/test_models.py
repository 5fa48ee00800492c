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
