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
