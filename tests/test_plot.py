"""keras_augtune.plot: figures are drawn and saved at sane sizes; bad arguments raise clearly."""

import numpy as np
import pytest

from keras_augtune import Policy
from keras_augtune.ops import OP_NAMES
from keras_augtune.plot import plot_op_grid, plot_policy_examples

POLICY = Policy([[("rotate", 1.0, 0.5), ("invert", 0.5, 1.0)], [("cutout", 1.0, 0.5)]])


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, size=(20, 24, 3), dtype=np.uint8)


def test_op_grid_every_op_written(tmp_path, image):
    path = tmp_path / "sub" / "grid.png"
    fig = plot_op_grid(image, path=path)
    assert path.is_file() and 20_000 < path.stat().st_size < 5_000_000
    width, height = fig.get_size_inches()
    assert 5 < width < 30 and 5 < height < 30
    assert len([ax for ax in fig.axes if ax.has_data()]) == 3 * len(OP_NAMES)


def test_op_grid_subset_gray_float_no_path(tmp_path):
    gray = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    fig = plot_op_grid(gray, ops=["GaussianBlur", "add-to-hue-and-saturation"], magnitudes=[0.2, 1.0], seed=None)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title().startswith("gaussian-blur")
    assert not list(tmp_path.iterdir())


def test_policy_examples_written(tmp_path, digits_small):
    x, _ = digits_small
    path = tmp_path / "examples.png"
    fig = plot_policy_examples(POLICY, x[:4], num_augmentations=3, path=path)
    assert path.is_file() and 5_000 < path.stat().st_size < 2_000_000
    assert len(fig.axes) == 4 * 4
    assert fig.axes[0].get_title() == "original"
    assert fig.get_suptitle() == "Policy: 2 sub-policies"
    untitled = plot_policy_examples(POLICY, x[:2], num_augmentations=2, title="")
    assert untitled.get_suptitle() == "" and untitled.axes[0].get_title() == "original"
    assert plot_policy_examples(POLICY, x[:2], num_augmentations=2, title="mine").get_suptitle() == "mine"


def test_policy_examples_seeded_and_json(rgb_batch, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    plot_policy_examples(POLICY.to_json(), rgb_batch[:2], num_augmentations=2, seed=3, path=a)
    plot_policy_examples(POLICY.to_dict(), rgb_batch[:2], num_augmentations=2, seed=3, path=b)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"ops": ["rotat"]}, ValueError, "Did you mean 'rotate'"),
        ({"ops": "rotate"}, TypeError, "list of op names"),
        ({"ops": []}, ValueError, "at least one op"),
        ({"magnitudes": (0.5, 1.5)}, ValueError, r"in \[0, 1\]"),
        ({"magnitudes": ()}, ValueError, "1 to"),
        ({"magnitudes": 0.5}, TypeError, "sequence"),
        ({"seed": -1}, TypeError, "seed"),
        ({"path": 3}, TypeError, "path"),
        ({"path": "grid"}, ValueError, "extension"),
        ({"ops_per_row": 0}, ValueError, "ops_per_row"),
    ],
)
def test_op_grid_bad_args(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_op_grid(image, **{"ops": ["rotate"], **kwargs})


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError, "one image"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "one image"),
        (np.full((8, 8), 2.0, np.float32), ValueError, "value_range"),
        ("image.png", TypeError, "NumPy array"),
    ],
)
def test_op_grid_bad_image(bad, error, match):
    with pytest.raises(error, match=match):
        plot_op_grid(bad, ops=["rotate"])


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((3, np.zeros((2, 8, 8, 3), np.uint8)), {}, TypeError, "policy must be"),
        (("rotate", np.zeros((2, 8, 8, 3), np.uint8)), {}, ValueError, "Not JSON"),
        ((POLICY, np.zeros((2, 8, 8, 5), np.uint8)), {}, ValueError, "channels"),
        ((POLICY, np.zeros((0, 8, 8, 3), np.uint8)), {}, ValueError, "1 to 32 images"),
        ((POLICY, np.zeros((33, 8, 8, 3), np.uint8)), {}, ValueError, "1 to 32 images"),
        ((POLICY, np.zeros((2, 8, 8, 3), np.uint8)), {"num_augmentations": 0}, ValueError, "num_augmentations"),
        ((POLICY, np.zeros((2, 8, 8, 3), np.uint8)), {"num_augmentations": 2.5}, TypeError, "integer"),
        ((POLICY, np.zeros((2, 8, 8, 3), np.uint8)), {"seed": "a"}, TypeError, "seed"),
    ],
)
def test_policy_examples_bad_args(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        plot_policy_examples(*args, **kwargs)
