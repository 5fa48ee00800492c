"""Checking image batches and converting them to and from imgaug's uint8 layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def default_value_range(dtype: np.dtype) -> tuple[float, float]:
    """(0, 255) for integer images, (0, 1) for float images."""
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

    Rank 2 is one grayscale image; rank 3 is one image when the last axis is 1 or 3
    channels, else a batch of grayscale images; rank 4 is a batch.
    """
    if batched is not None:
        return not batched
    if images.ndim == 2:
        return True
    return images.ndim == 3 and images.shape[-1] in (1, 3)


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

        When ``before`` (what :meth:`to_uint8` gave) is passed, images that came back
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
        raise ValueError(
            f"{what} must have 1 (grayscale) or 3 (RGB) channels in the last axis, "
            f"got {images.shape[-1]} (shape {images.shape})."
        )
    if images.size and min(images.shape[1:3]) < 1:
        raise ValueError(f"{what} have an empty height or width: shape {images.shape}.")
    value_range = default_value_range(images.dtype) if value_range is None else check_value_range(value_range)
    if images.size:
        if np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
            bad = int(np.sum(~np.isfinite(images)))
            raise ValueError(f"{what}: {bad} pixel value(s) are NaN or infinite.")
        low, high = value_range
        lo_seen, hi_seen = float(images.min()), float(images.max())
        slack = 1e-3 * (high - low)
        if lo_seen < low - slack or hi_seen > high + slack:
            raise ValueError(
                f"{what} have pixel values in [{lo_seen:g}, {hi_seen:g}], outside the declared "
                f"value_range ({low:g}, {high:g}); pass value_range=(low, high) that matches your data."
            )
    return ImageBatch(images, value_range)
