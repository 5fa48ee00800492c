"""Matplotlib helpers for notebooks and the docs.

* [`plot_op_grid()`][keras_augtune.plot.plot_op_grid]: every op (or a chosen few) at a few magnitudes on one image;
* [`plot_policy_examples()`][keras_augtune.plot.plot_policy_examples]: images beside several random augmentations by a policy.

Each function returns a `matplotlib.figure.Figure` and saves it to ``path``
when one is given. Figures are built with matplotlib's object API on the Agg
canvas, so no display is needed (servers, CI) and nothing is left open in
``pyplot``'s global state; in Jupyter the returned figure renders inline.

The search report ([`keras_augtune.report`][keras_augtune.report]) draws its figures with the same
helpers (`new_figure()`, `save_figure()`).
"""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any, Sequence

import numpy as np

from keras_augtune import images as image_utils
from keras_augtune.ops import check_unit, op_strength, resolve_op_list
from keras_augtune.policy import Policy, as_policy

__all__ = ["plot_op_grid", "plot_policy_examples"]

#: Largest grids the helpers draw: beyond this a figure is unreadable (and slow).
MAX_IMAGES = 32
MAX_AUGMENTATIONS = 20
MAX_MAGNITUDES = 11


# ---------------------------------------------------------------------- shared helpers
def new_figure(width: float, height: float):
    """A Figure on the Agg canvas (no display, no pyplot state), with a constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_path(path: Any) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike) or None, got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.splitext(path)[1]:
        raise ValueError(f"path {path!r} has no file extension: add one (.png, .pdf, .svg, .jpg) to pick the format.")
    return path


def save_figure(fig, path: Any, dpi: int = 90) -> None:
    """Save ``fig`` to ``path`` (its folder created), unless ``path`` is None."""
    if path is None:
        return
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=dpi)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer or None, got {seed!r}.")
    return int(seed)


def _check_count(what: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, got {value}.")
    return int(value)


def _as_display(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """A batch as floats in [0, 1], grayscale as (N, H, W), for ``imshow``."""
    low, high = value_range
    x = (np.asarray(images, dtype=np.float64) - low) / (high - low)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.clip(x, 0.0, 1.0)


def _show(ax, image: np.ndarray, title: str | None = None, fontsize: float = 8) -> None:
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------- op grid
def plot_op_grid(
    image: Any,
    ops: Sequence[str] | None = None,
    magnitudes: Sequence[float] = (0.0, 0.5, 1.0),
    seed: int | None = 0,
    path: Any = None,
    value_range: tuple[float, float] | None = None,
    ops_per_row: int | None = None,
):
    """A picture grid of each op at each magnitude, applied to one ``image``.

    Args:
        image: one image, ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, uint8 or float.
        ops: op names (aliases accepted); default every op of the registry.
        magnitudes: magnitudes in [0, 1] to show for every op.
        seed: seed of every cell (the same seed draws the same random parameters),
            ``None`` for fresh randomness.
        path: save the figure there too (format from the extension).
        value_range: range of float pixels; default (0, 255) for integers, (0, 1) for floats.
        ops_per_row: ops side by side in one row of the grid; default 1 for up to
            4 ops, else 4.

    Each op is applied with probability 1 (``Policy([[(op, 1.0, m)]])``), so ops
    whose magnitude is a chance (flips, invert) show one random draw at that chance.
    Returns the matplotlib ``Figure``.
    """
    batch = image_utils.check_images(_single_image(image)[None], value_range=value_range, what="image")
    names = resolve_op_list(ops)
    mags = _check_magnitudes(magnitudes)
    seed = _check_seed(seed)
    path = _check_path(path)
    if ops_per_row is None:
        ops_per_row = 1 if len(names) <= 4 else 4
    ops_per_row = _check_count("ops_per_row", ops_per_row, 1, 16)

    rows = -(-len(names) // ops_per_row)
    cols = ops_per_row * len(mags)
    fig = new_figure(1.15 * cols + 0.2, 1.35 * rows + 0.2)
    grid = fig.subplots(rows, cols, squeeze=False)
    for k, name in enumerate(names):
        row, first = divmod(k, ops_per_row)
        for j, m in enumerate(mags):
            out = Policy([[(name, 1.0, m)]]).augment(batch.array, seed=seed, value_range=batch.value_range)
            label = name if j == (len(mags) - 1) // 2 else ""  # the op's name once, over its block
            title = f"{label}\nm={m:g}: {_format_value(op_strength(name, m))}"
            _show(grid[row, first * len(mags) + j], _as_display(out, batch.value_range)[0], title, fontsize=6.5)
    for k in range(len(names), rows * ops_per_row):  # blank cells of a last, shorter row
        row, first = divmod(k, ops_per_row)
        for j in range(len(mags)):
            grid[row, first * len(mags) + j].set_axis_off()
    save_figure(fig, path)
    return fig


def _single_image(image: Any) -> np.ndarray:
    if isinstance(image, (list, tuple)):
        image = np.asarray(image)
    elif hasattr(image, "numpy") and not isinstance(image, np.ndarray):
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a NumPy array, got {type(image).__name__}.")
    if image.ndim == 4 and len(image) == 1:
        image = image[0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3)):
        raise ValueError(
            f"image must be one image of shape (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}; "
            "for a batch, pick one: images[0]."
        )
    return image


def _check_magnitudes(magnitudes: Any) -> list[float]:
    if isinstance(magnitudes, (str, bytes)) or not isinstance(magnitudes, Sequence):
        if isinstance(magnitudes, np.ndarray) and magnitudes.ndim == 1:
            magnitudes = magnitudes.tolist()
        else:
            raise TypeError(f"magnitudes must be a sequence of numbers in [0, 1], got {magnitudes!r}.")
    mags = [check_unit("magnitude", m) for m in magnitudes]
    if not 1 <= len(mags) <= MAX_MAGNITUDES:
        raise ValueError(f"magnitudes must hold 1 to {MAX_MAGNITUDES} values, got {len(mags)}.")
    return mags


# ---------------------------------------------------------------------- policy examples
def plot_policy_examples(
    policy: Any,
    images: Any,
    num_augmentations: int = 5,
    seed: int | None = 0,
    value_range: tuple[float, float] | None = None,
    path: Any = None,
    title: str | None = None,
):
    """Each image (a row) beside ``num_augmentations`` random augmentations by ``policy``.

    Args:
        policy: a [`Policy`][keras_augtune.Policy], or its dict / JSON form.
        images: a batch ``(N, H, W)``, ``(N, H, W, 1)`` or ``(N, H, W, 3)``, uint8 or float,
            at most 32 images.
        num_augmentations: augmented copies per image (columns), 1 to 20.
        seed: column k uses seed ``seed + k`` (reproducible figure); ``None`` for fresh
            randomness.
        value_range: range of float pixels; default (0, 255) for integers, (0, 1) for floats.
        path: save the figure there too (format from the extension).
        title: the figure's title; default the policy's ``metadata["name"]`` and its number
            of sub-policies; ``""`` for none (e.g. under a heading of its own).

    Returns the matplotlib ``Figure``.
    """
    policy = as_policy(policy)
    batch = image_utils.check_images(images, value_range=value_range)
    n = len(batch.array)
    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(
            f"images must hold 1 to {MAX_IMAGES} images, got {n}; pass a few, e.g. images[:8]."
        )
    count = _check_count("num_augmentations", num_augmentations, 1, MAX_AUGMENTATIONS)
    seed = _check_seed(seed)
    path = _check_path(path)

    columns = [batch.array] + [
        policy.augment(batch.array, seed=None if seed is None else seed + k, value_range=batch.value_range)
        for k in range(count)
    ]
    fig = new_figure(1.2 * (count + 1) + 0.2, 1.2 * n + (0.5 if title != "" else 0.3))
    grid = fig.subplots(n, count + 1, squeeze=False)
    for j, column in enumerate(columns):
        shown = _as_display(column, batch.value_range)
        for i in range(n):
            header = ("original" if j == 0 else f"augmented {j}") if i == 0 else None
            _show(grid[i, j], shown[i], header)
    if title is None:
        name = policy.metadata.get("name") if isinstance(policy.metadata, dict) else None
        title = f"{name or 'Policy'}: {len(policy)} sub-policies"
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
    return fig
