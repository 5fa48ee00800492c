"""Matplotlib helpers for notebooks and the docs.

* [`plot_op_grid()`][keras_augtune.plot.plot_op_grid]: every op (or a chosen few) at a few magnitudes on one image;
* [`plot_policy_examples()`][keras_augtune.plot.plot_policy_examples]: images beside several random augmentations by a policy;
* the search report's figures: [`plot_rewards()`][keras_augtune.plot.plot_rewards] (reward per trial, the best so far,
  the no-augmentation baseline), [`plot_op_effects()`][keras_augtune.plot.plot_op_effects] (which ops help) and
  [`plot_importances()`][keras_augtune.plot.plot_importances] (the random forest's hyperparameter importances).

Each function returns a `matplotlib.figure.Figure` and saves it to ``path``
when one is given. Figures are built with matplotlib's object API on the Agg
canvas, so no display is needed (servers, CI) and nothing is left open in
``pyplot``'s global state; in Jupyter the returned figure renders inline.

The search report ([`keras_augtune.report`][keras_augtune.report]) assembles these figures into one page.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

from keras_augtune import images as image_utils
from keras_augtune.checks import check_count, check_seed
from keras_augtune.effects import OpEffects, estimate_op_effects
from keras_augtune.ops import check_unit, op_strength, resolve_op_list
from keras_augtune.policy import Policy, as_policy
from keras_augtune.space import parse_name
from keras_augtune.trials import RUNNING

__all__ = ["plot_op_grid", "plot_policy_examples", "plot_rewards", "plot_op_effects", "plot_importances"]

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
    seed = check_seed(seed)
    path = _check_path(path)
    if ops_per_row is None:
        ops_per_row = 1 if len(names) <= 4 else 4
    ops_per_row = check_count("ops_per_row", ops_per_row, 1, 16)

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
    count = check_count("num_augmentations", num_augmentations, 1, MAX_AUGMENTATIONS)
    seed = check_seed(seed)
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


# ---------------------------------------------------------------------- the search report's figures
def _results(results: Any):
    """A ``SearchResults`` from one, a tuner or a search directory."""
    from keras_augtune.report import load_search
    from keras_augtune.results import SearchResults

    return results if isinstance(results, SearchResults) else load_search(results)


def plot_rewards(results: Any, path: Any = None, ax: Any = None):
    """Reward per trial (dots; the no-augmentation trial grey), the best reward so far (a step
    line) and the no-augmentation baseline (a dashed line, with a band spanning its runs'
    rewards when it was trained more than once); failed trials are marked with an ``x``.
    The x-axis shows the trial ids, as the tables do.

    ``results``: a [`SearchResults`][keras_augtune.results.SearchResults], a tuner or a search directory.
    """
    results = _results(results)
    fig = None
    if ax is None:
        fig = new_figure(7.0, 3.4)
        ax = fig.subplots()
    x_of = {t.trial_id: t.number - 1 for t in results.trials}  # positions 0, 1, ...: KT's ids "00", "01", ...
    done = results.completed
    if done:
        for is_base, color, label in ((False, "#1f77b4", "trial reward"), (True, "#7f7f7f", "no-augmentation trial")):
            group = [t for t in done if t.is_noop == is_base]
            if group:
                ax.scatter([x_of[t.trial_id] for t in group], [t.reward for t in group], color=color, s=22,
                           zorder=3, label=label)
        best, best_x, best_y = -math.inf, [], []
        for t in done:
            best = max(best, t.reward)
            best_x.append(x_of[t.trial_id])
            best_y.append(best)
        ax.step(best_x, best_y, where="post", color="#2ca02c", lw=1.8, label="best so far")
    failed = [t for t in results.trials if not t.completed and t.status != RUNNING]
    if failed:
        low = min((t.reward for t in done), default=0.0)
        ax.scatter([x_of[t.trial_id] for t in failed], [low] * len(failed), marker="x", color="#d62728",
                   zorder=3, label="failed trial")
    baseline = results.baseline
    if baseline is not None:
        runs = [r for r in (baseline.execution_rewards or []) if r is not None]
        ax.axhline(baseline.reward, color="#ff7f0e", ls="--", lw=1.2, label="no augmentation")
        if len(runs) > 1:
            ax.axhspan(min(runs), max(runs), color="#ff7f0e", alpha=0.15, lw=0,
                       label=f"no augmentation, {len(runs)} runs (range)")
    ax.set_xlabel("trial")
    ax.set_ylabel("reward")
    ax.set_title("Reward per trial", fontsize=10)
    ax.grid(alpha=0.3)
    if results.trials:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ids = {x: trial_id for trial_id, x in x_of.items()}
        ax.set_xlim(-0.5, len(results.trials) - 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: ids.get(int(round(x)), "")))
    if done or failed:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no completed trial yet", ha="center", va="center", transform=ax.transAxes)
    if fig is not None:
        save_figure(fig, path, dpi=100)
    return fig if fig is not None else ax.figure


def short_name(name: str) -> str:
    """``augment/sub_policy_0/op_1/magnitude`` -> ``sub-policy 0, op 1: magnitude``."""
    parsed = parse_name(name)
    if parsed is None:
        return name
    _, i, j, field = parsed
    return f"sub-policy {i}, op {j}: {field}"


def importances_by_kind(importances: dict[str, float]) -> dict[str, float]:
    """Importances summed per kind: op type, magnitude, probability, and each other hyperparameter."""
    totals: dict[str, float] = {}
    for name, value in importances.items():
        parsed = parse_name(name)
        kind = {"op": "op type"}.get(parsed[3], parsed[3]) if parsed else name
        totals[kind] = totals.get(kind, 0.0) + value
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def plot_importances(results: Any, top: int = 15, path: Any = None, ax: Any = None):
    """The hyperparameter importances the oracle's random forest learned (top ``top``)."""
    results = _results(results)
    fig = None
    items = list(results.importances.items())[:top]
    if ax is None:
        fig = new_figure(7.0, 0.8 + 0.28 * max(len(items), 3))
        ax = fig.subplots()
    if items:
        names = [short_name(k) for k, _ in items][::-1]
        values = [v for _, v in items][::-1]
        ax.barh(names, values, color="#1f77b4")
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("importance (fraction of the forest's impurity decrease)")
    else:
        ax.text(0.5, 0.5, "needs at least two completed trials", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("Hyperparameter importances (random forest)", fontsize=10)
    if fig is not None:
        save_figure(fig, path, dpi=100)
    return fig if fig is not None else ax.figure


_VERDICT_COLORS = {"helps": "#2ca02c", "hurts": "#d62728", "unclear": "#7f7f7f"}


def plot_op_effects(results: Any, top: int | None = None, path: Any = None, ax: Any = None):
    """Each op's effect on the reward with its interval (best at the top), the number of trials
    behind it (in brackets) and the magnitudes where it helps (right); green: the interval is
    above 0, red: below, grey: unclear. Ops used by too few trials are left out.

    ``results``: an [`OpEffects`][keras_augtune.effects.OpEffects], a [`SearchResults`][keras_augtune.results.SearchResults], a
    tuner or a search directory; ``top``: at most that many ops (the best and the worst halves).
    """
    effects = results if isinstance(results, OpEffects) else estimate_op_effects(_results(results))
    rows = effects.estimated
    if top is not None and len(rows) > top:
        rows = rows[: (top + 1) // 2] + rows[len(rows) - top // 2:]
    fig = None
    if ax is None:
        fig = new_figure(8.0, 0.95 + 0.2 * max(len(rows), 3))
        ax = fig.subplots()
    if rows:
        ys = np.arange(len(rows))[::-1]
        for y, e in zip(ys, rows):
            color = _VERDICT_COLORS[e.verdict]
            ax.plot([e.low, e.high], [y, y], color=color, lw=2, solid_capstyle="butt")
            ax.plot([e.effect], [y], "o", color=color, ms=4.5)
        ax.axvline(0.0, color="#444", lw=0.8)
        ax.set_yticks(ys, [f"{e.op} ({e.trials})" for e in rows], fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        right = ax.secondary_yaxis("right")
        right.set_yticks(ys, ["" if e.helps_at is None else f"m {e.helps_at[0]:.2f}-{e.helps_at[1]:.2f}" for e in rows],
                         fontsize=7)
        right.tick_params(length=0)
        ax.set_xlabel(f"reward change per sub-policy applying the op, {effects.confidence:.0%} interval\n"
                      "(in brackets: trials using it; right: magnitudes where it helps)", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.text(0.5, 0.5, effects.note or "no op used by enough completed trials yet", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("Which augmentations help (op effects, pooled over slots)", fontsize=10)
    if fig is not None:
        save_figure(fig, path, dpi=100)
    return fig if fig is not None else ax.figure
