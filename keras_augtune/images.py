"""Checking image batches and converting them to and from imgaug's uint8 layout.

**The pixel-range rule**, one for ``Policy.augment``, ``Policy.tf_map``, the
``PolicyAugmentation`` layer and the search: images are in ``value_range`` when one is
declared; otherwise integer images are in (0, 255) and float images in (0, 1)
(`default_value_range()`). Data that contradicts the range is refused (pixels
outside it) or warned about (float pixels all within [0, 1] under a declared 0-255
range: they would be quantised to two levels).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


class DataWarning(UserWarning):
    """Something about the data the user should know (e.g. images of mixed sizes were resized)."""


def default_value_range(dtype: np.dtype) -> tuple[float, float]:
    """The pixel range of images with no declared range: (0, 255) for integer images, (0, 1) for float images."""
    return (0.0, 1.0) if np.issubdtype(dtype, np.floating) else (0.0, 255.0)


def check_value_range(value_range: Any) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a (low, high) pair of numbers, got {value_range!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"value_range must have finite low < high, got {value_range!r}.")
    return low, high


def is_single_image(images: np.ndarray, batched: bool | None = None) -> bool:
    """Whether an array is one image rather than a batch (``batched`` decides when given).

    Rank 2 is one grayscale image; rank 3 is one image when the last axis is 1, 3 or 4
    channels (4: RGBA, which `check_images()` then refuses by name), else a batch of
    grayscale images; rank 4 is a batch.
    """
    if batched is not None:
        return not batched
    if images.ndim == 2:
        return True
    return images.ndim == 3 and images.shape[-1] in (1, 3, 4)


@dataclass
class ImageBatch:
    """A validated batch: ``array`` is (N,H,W), (N,H,W,1) or (N,H,W,3)."""

    array: np.ndarray
    value_range: tuple[float, float]

    @property
    def channels(self) -> int:
        return 1 if self.array.ndim == 3 else self.array.shape[-1]

    def to_uint8(self, color: bool = False) -> np.ndarray:
        """(N,H,W,C) uint8 in [0, 255]; C is 3 when ``color`` (grayscale is repeated)."""
        x = self.array if self.array.ndim == 4 else self.array[..., None]
        if x.dtype != np.uint8 or self.value_range != (0.0, 255.0):
            low, high = self.value_range
            x = np.rint((x.astype(np.float32) - low) * (255.0 / (high - low)))
            x = np.clip(x, 0, 255).astype(np.uint8)
        if color and x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        return x

    def from_uint8(self, out: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
        """Back to the batch's own shape, dtype and range.

        When ``before`` (what `to_uint8()` gave) is passed, images that came back
        unchanged are returned exactly as they came in (no quantisation round trip).
        """
        if out.shape[-1] == 3 and self.channels == 1:
            out = np.rint(out.mean(axis=-1, keepdims=True)).astype(np.uint8)
            if before is not None:
                before = before[..., :1]
        if self.array.ndim == 3:
            out = out[..., 0]
            if before is not None:
                before = before[..., 0]
        dtype = self.array.dtype
        if dtype == np.uint8 and self.value_range == (0.0, 255.0):
            return out
        low, high = self.value_range
        result = out.astype(np.float64) * ((high - low) / 255.0) + low
        if not np.issubdtype(dtype, np.floating):
            result = np.rint(result)
        result = result.astype(dtype)
        if before is not None:
            unchanged = np.all((out == before).reshape(len(out), -1), axis=1)
            result[unchanged] = self.array[unchanged]
        return result


def check_images(images: Any, value_range: Any = None, what: str = "images") -> ImageBatch:
    """Validate a batch of images, raising a clear ``TypeError``/``ValueError`` on bad input."""
    if isinstance(images, (list, tuple)):
        try:
            images = np.asarray(images)
        except ValueError:
            raise ValueError(f"{what} must be a rectangular array; the list has images of different sizes.") from None
    elif hasattr(images, "numpy") and not isinstance(images, np.ndarray):
        images = images.numpy()
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{what} must be a NumPy array, got {type(images).__name__}.")
    if images.dtype == bool or not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise TypeError(
            f"{what} must hold numbers (uint8 or float pixels), got dtype {images.dtype}."
        )
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{what} must be a batch of shape (N, H, W), (N, H, W, 1) or (N, H, W, 3); "
            f"got rank {images.ndim} with shape {images.shape}."
        )
    if images.ndim == 4 and images.shape[-1] not in (1, 3):
        rgba = (" RGBA images are not augmented (the ops would move the colours but not the alpha "
                "mask): drop the alpha channel, images[..., :3], or composite it first.") if images.shape[-1] == 4 else ""
        raise ValueError(
            f"{what} must have 1 (grayscale) or 3 (RGB) channels in the last axis, "
            f"got {images.shape[-1]} (shape {images.shape}).{rgba}"
        )
    if images.size and min(images.shape[1:3]) < 1:
        raise ValueError(f"{what} have an empty height or width: shape {images.shape}.")
    declared = value_range is not None
    value_range = check_value_range(value_range) if declared else default_value_range(images.dtype)
    if images.size:
        floating = np.issubdtype(images.dtype, np.floating)
        if floating and not np.all(np.isfinite(images)):
            bad = int(np.sum(~np.isfinite(images)))
            raise ValueError(f"{what}: {bad} pixel value(s) are NaN or infinite.")
        _check_range(images, value_range, declared, floating, what)
    return ImageBatch(images, value_range)


def _check_range(images: np.ndarray, value_range: tuple[float, float], declared: bool, floating: bool, what: str) -> None:
    """Refuse pixels outside ``value_range``; warn when float pixels look like [0, 1] under a 0-255 range."""
    low, high = value_range
    lo_seen, hi_seen = float(images.min()), float(images.max())
    slack = 1e-3 * (high - low)
    if lo_seen < low - slack or hi_seen > high + slack:
        source = "the declared value_range" if declared else f"the value_range of {images.dtype} images with none declared"
        hint = ("pass value_range=(0, 255) for float pixels in 0-255 (e.g. uint8 images cast to float, as "
                "a Keras model's inputs are)" if floating and not declared and lo_seen >= 0 and hi_seen <= 255
                else "pass value_range=(low, high) that matches your data")
        raise ValueError(
            f"{what} have pixel values in [{lo_seen:g}, {hi_seen:g}], outside {source} "
            f"({low:g}, {high:g}); {hint}."
        )
    if declared and floating and high - low > 2.0 and lo_seen >= low and 0.0 < hi_seen <= low + 1.0:
        warnings.warn(DataWarning(
            f"{what} are float pixels all within [{low:g}, {low + 1:g}], but value_range is ({low:g}, {high:g}): "
            "each would be rounded to one of two levels. If your images are in [0, 1], pass value_range=(0, 1) "
            "(or leave value_range unset: float images default to (0, 1))."), stacklevel=3)
