"""Datasets: checking ``(x, y)``, stratified splits, and the offline loaders
(scikit-learn's digits, an ``.npz`` with ``x``/``y``, a folder of class sub-folders)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_augtune.images import check_images

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Dataset:
    """Validated images (N, H, W, C) and integer labels (N,), with class names."""

    x: np.ndarray
    y: np.ndarray
    value_range: tuple[float, float]
    class_names: list[str]
    one_hot: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]


def check_dataset(x: Any, y: Any, value_range: Any = None, what: str = "x") -> Dataset:
    """Validate images and labels, with a clear error naming the problem.

    Images: (N, H, W), (N, H, W, 1) or (N, H, W, 3), numeric, finite, inside
    ``value_range``. Labels: integer class ids ``0..K-1`` (N,) or one-hot (N, K).
    """
    if y is None:
        raise ValueError("Labels are missing: call search(x, y) with one label per image.")
    batch = check_images(x, value_range=value_range, what=what)
    images = batch.array
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(y)
    if labels.dtype == object or not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
        hint = ""
        if labels.dtype.kind in "USO":  # class names: say how to turn them into ids
            hint = (" To use class names, map them to ids first: "
                    "class_names, y = np.unique(y, return_inverse=True).")
        raise TypeError(f"Labels must be integer class ids or one-hot rows, got dtype {labels.dtype}.{hint}")
    if len(labels) != len(images):
        raise ValueError(f"{what} has {len(images)} images but y has {len(labels)} labels; they must match.")
    if len(images) == 0:
        raise ValueError("The dataset is empty.")
    one_hot = labels.ndim == 2 and labels.shape[1] > 1
    if one_hot:
        if not np.all((labels == 0) | (labels == 1)) or not np.all(labels.sum(axis=1) == 1):
            raise ValueError("2-D labels must be one-hot rows (a single 1 per row, zeros elsewhere).")
        num_classes = labels.shape[1]
        labels = labels.argmax(axis=1)
    else:
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(f"Labels must have shape (N,) or one-hot (N, K), got {labels.shape}.")
        if np.issubdtype(labels.dtype, np.floating):
            if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
                raise ValueError(
                    "Labels are floats with fractional or NaN values; classification needs integer "
                    "class ids 0..K-1 (or one-hot rows)."
                )
        if labels.min() < 0:
            raise ValueError(f"Labels must be class ids 0..K-1; found a negative label {labels.min()}.")
        num_classes = int(labels.max()) + 1
    labels = labels.astype(np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"All labels are {present[0]}: a classifier needs at least two classes.")
    return Dataset(images, labels, batch.value_range, [str(i) for i in range(num_classes)], one_hot)


def stratified_split(y: np.ndarray, held_out: float | int, seed: int | None, what: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with every class on both sides, or a clear error when impossible.

    ``held_out`` is a fraction in (0, 1) or a number of items.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(held_out, (float, np.floating)):
        if not 0.0 < held_out < 1.0:
            raise ValueError(f"The {what} fraction must be between 0 and 1, got {held_out!r}.")
        n_held = int(np.ceil(held_out * len(y)))
    else:
        n_held = int(held_out)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2 or n_held < len(classes) or len(y) - n_held < len(classes):
        rare = classes[counts.argmin()]
        raise ValueError(
            f"Too few images for a stratified {what} split: {len(classes)} classes need at least 2 "
            f"images each (class {rare} has {counts.min()}), and both parts at least one image per "
            f"class ({len(y) - n_held} kept, {n_held} held out). Add data or change the {what} size."
        )
    kept, held = train_test_split(np.arange(len(y)), test_size=n_held, stratify=y, random_state=seed)
    return np.sort(kept), np.sort(held)


def stratified_folds(y: np.ndarray, folds: int, seed: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold indices: ``folds`` pairs (kept, held_out); every item is held out once.

    Raises a clear error when a class has fewer than ``folds`` items (some fold would lack it).
    """
    from sklearn.model_selection import StratifiedKFold

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}.")
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ValueError(
            f"Too few images for {folds} stratified folds: class {classes[counts.argmin()]} has "
            f"{counts.min()} image(s), and every fold needs one of each class. Add data or use fewer folds."
        )
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    return [(np.sort(kept), np.sort(held)) for kept, held in splitter.split(np.zeros(len(y)), y)]


def stratified_subsample(y: np.ndarray, size: int, seed: int | None) -> np.ndarray:
    """Indices of a stratified subsample of ``size`` items (all of them when ``size == len(y)``)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"train_set_size must be a positive integer, got {size!r}.")
    if size > len(y):
        raise ValueError(f"train_set_size={size} is larger than the {len(y)} images available.")
    if size == len(y):
        return np.arange(len(y))
    _, chosen = stratified_split(y, int(size), seed, what="train_set_size subsample")
    return chosen


def load_digits(image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upscaled to ``image_size`` (uint8, (N, S, S, 1)), offline."""
    import imgaug
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    x = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    if image_size != 8:
        x = imgaug.imresize_many_images(x, (image_size, image_size), interpolation="cubic")
        x = x.reshape(len(x), image_size, image_size, 1)
    return x, digits.target.astype(np.int64)


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from an ``.npz`` holding arrays ``x`` and ``y``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise ValueError(f"{path} must hold arrays 'x' and 'y'; missing {missing}, found {data.files}.")
            return data["x"], data["y"]
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and "must hold" in str(exc):
            raise
        raise ValueError(f"Cannot read {path} as an .npz archive: {exc}") from None


def load_image_folder(path: str, image_size: int | None = None, grayscale: bool | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images from ``path/<class>/*.jpg|png|...`` as uint8 (N, H, W, C), labels and class names.

    Images are resized to ``image_size`` (default: the size of the first image) and
    converted to RGB, or to grayscale when ``grayscale`` (default: when every image is).
    """
    from PIL import Image, UnidentifiedImageError

    if not os.path.isdir(path):
        raise FileNotFoundError(f"No such image folder: {path}")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{path} must hold one sub-folder per class (at least two); found {len(classes)}.")
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        found = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
        if not found:
            raise ValueError(f"Class folder {folder} has no image files ({', '.join(IMAGE_SUFFIXES)}).")
        files.extend((os.path.join(folder, f), label) for f in found)
    images, modes = [], set()
    size = None if image_size is None else (int(image_size), int(image_size))
    for file, _ in files:
        try:
            with Image.open(file) as im:
                im.load()
                modes.add("L" if im.mode in ("L", "1", "I;16", "I") else "RGB")
                im = im.convert("RGB")
                size = size or im.size
                if im.size != size:
                    im = im.resize(size, Image.BILINEAR)
                images.append(np.asarray(im, dtype=np.uint8))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"Cannot read image {file}: {exc}") from None
    x = np.stack(images)
    if grayscale is None:
        grayscale = modes == {"L"}
    if grayscale:
        x = np.rint(x.mean(axis=-1, keepdims=True)).astype(np.uint8)
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, classes


def load_data(spec: str, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``"digits"``, a path to an ``.npz``, or a class-per-folder image directory."""
    if spec == "digits":
        x, y = load_digits(image_size or 32)
        return x, y, [str(i) for i in range(10)]
    if spec.endswith(".npz"):
        x, y = load_npz(spec)
        return x, y, [str(i) for i in range(int(np.max(y)) + 1)] if np.ndim(y) == 1 else []
    if os.path.isdir(spec):
        return load_image_folder(spec, image_size=image_size)
    raise FileNotFoundError(f"--data must be 'digits', an .npz file or an image folder; {spec!r} is none of these.")
