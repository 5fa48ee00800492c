import numpy as np
import pytest

from keras_augtune.ops import (
    DEEPAUGMENT_OPS,
    OP_NAMES,
    OPS,
    RANDAUGMENT_OPS,
    build_augmenter,
    op_strength,
    resolve_op,
)
from keras_augtune.policy import Policy

DEEPAUGMENT_TYPES = [
    "crop", "gaussian-blur", "rotate", "shear", "translate-x", "translate-y", "sharpen", "emboss",
    "additive-gaussian-noise", "dropout", "coarse-dropout", "gamma-contrast", "brighten", "invert",
    "fog", "clouds", "add-to-hue-and-saturation", "coarse-salt-pepper", "horizontal-flip", "vertical-flip",
]


def test_registry_covers_deepaugment_and_randaugment_sets():
    assert list(DEEPAUGMENT_OPS) == DEEPAUGMENT_TYPES
    for name in ["identity", "auto-contrast", "equalize", "solarize", "posterize", "contrast", "color",
                 "brightness", "sharpness", "cutout", "shear-x", "shear-y"]:
        assert name in OP_NAMES
    assert set(RANDAUGMENT_OPS) <= set(OP_NAMES)
    assert len(set(OP_NAMES)) == len(OP_NAMES) == 32


@pytest.mark.parametrize("spelling,name", [
    ("gaussianblur", "gaussian-blur"), ("coarsesaltpepper", "coarse-salt-pepper"),
    ("GaussianBlur", "gaussian-blur"), ("translate_x", "translate-x"), ("addtohueandsaturation",
    "add-to-hue-and-saturation"), ("histogram-equalize", "equalize"), ("Rotate", "rotate"),
])
def test_aliases(spelling, name):
    assert resolve_op(spelling) == name


def test_unknown_op_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown augmentation op 'rotat'.*'rotate'"):
        resolve_op("rotat")
    with pytest.raises(TypeError, match="string"):
        resolve_op(3)


@pytest.mark.parametrize("name", OP_NAMES)
def test_strength_is_monotone_and_sane(name):
    values = [op_strength(name, m) for m in (0.0, 0.25, 0.5, 1.0)]
    if values[0] is None:
        assert name == "identity"
        return
    assert values == sorted(values), values
    assert values[0] == 0
    if name in ("rotate",):
        assert values[-1] <= 30
    if name in ("shear", "shear-x", "shear-y"):
        assert values[-1] <= 20
    if name == "gaussian-blur":
        assert values[-1] <= 3


def _deviation(name, magnitude, images):
    out = build_augmenter(name, magnitude).augment_images(images)
    return np.abs(out.astype(np.int32) - images.astype(np.int32)).mean()


@pytest.mark.parametrize("name", OP_NAMES)
def test_magnitude_zero_is_near_identity_and_one_changes_images(name, rgb_batch):
    images = np.repeat(rgb_batch // 2 + 40, 4, axis=0)  # low contrast, so auto-contrast has work
    assert _deviation(name, 0.0, images) < 1.0
    if name != "identity":
        assert _deviation(name, 1.0, images) > _deviation(name, 0.0, images)


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("shape,dtype", [
    ((3, 28, 28, 3), np.uint8), ((3, 33, 47), np.uint8), ((3, 33, 47, 1), np.uint8),
    ((3, 28, 28, 3), np.float32), ((2, 8, 8, 1), np.float64),
])
def test_every_op_preserves_shape_and_dtype(name, shape, dtype):
    rng = np.random.default_rng(1)
    images = rng.random(shape).astype(dtype) if dtype != np.uint8 else rng.integers(0, 256, shape, dtype=dtype)
    out = Policy([[(name, 1.0, 0.7)]]).augment(images, seed=0)
    assert out.shape == images.shape
    assert out.dtype == images.dtype
    if np.issubdtype(dtype, np.floating):
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_table_rows_are_complete():
    for name, op in OPS.items():
        assert op.parameter and callable(op.strength) and callable(op.build), name


def test_op_names_need_no_imgaug_and_augmenters_pickle():
    """The op table is read without importing imgaug (the command line's checks stay fast);
    an augmenter, the colour-only wrapper defined on first use among them, pickles by reference."""
    import pickle
    import subprocess
    import sys

    script = ("import sys; from keras_augtune.ops import resolve_op, OP_NAMES; resolve_op('Rotate'); "
              "sys.exit(1 if 'imgaug' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", script], timeout=60).returncode == 0
    from keras_augtune import ops

    augmenter = ops.build_augmenter("add-to-hue-and-saturation", 0.5)
    assert type(augmenter) is ops.ColorImagesOnly
    assert type(pickle.loads(pickle.dumps(augmenter))) is ops.ColorImagesOnly
