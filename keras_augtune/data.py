"""Datasets: the search's inputs (arrays or a ``tf.data.Dataset``), checking ``(x, y)``,
stratified splits, and the data fingerprint a resumed or distributed search compares.

The offline loaders (scikit-learn's digits, an ``.npz``, a folder of class sub-folders) are in
[`keras_augtune.loaders`][keras_augtune.loaders]."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_augtune.checks import check_int
from keras_augtune.images import DataWarning, check_images  # noqa: F401 (DataWarning: also imported from here)

#: The fraction of the images held out for validation when no validation data is given.
VALIDATION_SPLIT = 0.2
#: Labels are class ids 0..K-1 with K at most this (ImageNet-21k has 21,841 classes): a
#: larger id is a mistake (an unmapped id, a hash), and would allocate K class names and outputs.
MAX_CLASSES = 100_000
#: At most this many images are hashed for the data fingerprint (evenly spread).
FINGERPRINT_SAMPLE = 64


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


@dataclass
class Inputs:
    """What ``search`` was given, as arrays: images, labels, sample weights (or None), the
    declared pixel range (or None) and class names (or None)."""

    x: Any
    y: Any
    sample_weight: Any = None
    value_range: Any = None
    class_names: list[str] | None = None


def search_inputs(x: Any, y: Any = None, sample_weight: Any = None, value_range: Any = None,
                  limit: int | None = None, what: str = "x") -> Inputs:
    """The search's inputs as arrays: ``x, y`` (and ``sample_weight``) as given, or read from a
    ``tf.data.Dataset`` ``x`` of ``(images, labels)`` or ``(images, labels, sample_weights)``
    elements, batched or not (``keras.utils.image_dataset_from_directory`` output included).

    A dataset is read into memory, at most its first ``limit`` images when ``limit`` is given
    (the search needs every image's label for its stratified split and subsample, and trains
    every trial on the same images). A dataset made by ``image_dataset_from_directory`` (it
    has ``class_names`` and ``file_paths``) holds float pixels in 0-255, as Keras documents:
    its ``value_range`` is (0, 255) unless one is declared, and its class names are kept.
    """
    if not _is_tf_dataset(x):
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
            if sample_weight.ndim != 1 or not np.issubdtype(sample_weight.dtype, np.number):
                raise ValueError(f"sample_weight must be a 1-D array of numbers (one per image), got shape "
                                 f"{sample_weight.shape} and dtype {sample_weight.dtype}.")
            if len(sample_weight) != len(x):
                raise ValueError(f"sample_weight has {len(sample_weight)} weights but {what} has {len(x)} images; "
                                 "they must match.")
        return Inputs(x, y, sample_weight, value_range)
    if y is not None or sample_weight is not None:
        raise ValueError(f"{what} is a tf.data.Dataset: it yields the labels (and sample weights) itself, so y and "
                         "sample_weight must not be given.")
    if limit is not None:
        check_int("limit", limit)
    spec = x.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        hint = (" Map dict elements to pairs first: ds.map(lambda d: (d['image'], d['label']))."
                if isinstance(spec, dict) else "")
        raise ValueError(f"A tf.data.Dataset given as {what} must yield (images, labels) or (images, labels, "
                         f"sample_weights) tuples; its elements are {spec}.{hint}")
    batched = _is_batched(spec[0].shape, spec[1].shape)
    parts: list[list[np.ndarray]] = [[] for _ in spec]
    count = 0
    for element in x:
        arrays = [np.asarray(t) for t in element]
        if not batched:
            arrays = [a[None] for a in arrays]
        if limit is not None:
            arrays = [a[: limit - count] for a in arrays]
        for part, array in zip(parts, arrays):
            part.append(array)
        count += len(arrays[0])
        if limit is not None and count >= limit:
            break
    if not count:
        raise ValueError(f"The tf.data.Dataset given as {what} is empty.")
    images, labels = np.concatenate(parts[0]), np.concatenate(parts[1])
    weights = np.concatenate(parts[2]) if len(parts) == 3 else None
    class_names = getattr(x, "class_names", None)
    if value_range is None and class_names is not None and hasattr(x, "file_paths"):
        value_range = (0.0, 255.0)  # image_dataset_from_directory: float32 pixels in 0-255
    return Inputs(images, labels, weights, value_range, list(class_names) if class_names is not None else None)


def _is_tf_dataset(x: Any) -> bool:
    import sys

    tf = sys.modules.get("tensorflow")  # a Dataset exists only once TensorFlow is imported
    return tf is not None and isinstance(x, tf.data.Dataset)


def _is_batched(image_shape: Any, label_shape: Any) -> bool:
    """Whether dataset elements are batches: images of rank 4; rank 3 with a batch axis of
    unknown size (``.batch()``) or with class-id labels of the same length; not rank 2."""
    rank = image_shape.rank
    if rank is None or rank not in (2, 3, 4):
        raise ValueError(f"Dataset images must have shape (H, W), (H, W, C) or a batch of those; got {image_shape}.")
    if rank != 3:
        return rank == 4
    if label_shape.rank == 0:
        return False
    if label_shape.rank == 2 or image_shape[0] is None:
        return True
    return image_shape[-1] not in (1, 3) and label_shape[0] == image_shape[0]


def check_dataset(x: Any, y: Any, value_range: Any = None, what: str = "x",
                  class_names: list[str] | None = None) -> Dataset:
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
    if labels.ndim == 0:
        raise ValueError(f"Labels must be an array with one class id per image, got a single value {labels!r}.")
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
        if labels.max() >= MAX_CLASSES:  # before anything is sized by the number of classes
            raise ValueError(
                f"Labels must be class ids 0..K-1 with K at most {MAX_CLASSES:,}; found the label "
                f"{labels.max():.0f} ({len(np.unique(labels))} distinct labels). Map them to 0..K-1 first: "
                "class_names, y = np.unique(y, return_inverse=True)."
            )
        num_classes = int(labels.max()) + 1
    labels = labels.astype(np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError(f"All labels are {present[0]}: a classifier needs at least two classes.")
    names = [str(i) for i in range(num_classes)]
    if class_names is not None and len(class_names) == num_classes:
        names = [str(c) for c in class_names]
    return Dataset(images, labels, batch.value_range, names, one_hot)


@dataclass
class SearchData:
    """The images a search trains and validates on: ``data`` (all images read), ``val`` (the
    validation set), ``train_index`` (the training images in ``data``), and the weights of both."""

    data: Dataset
    val: Dataset
    train_index: np.ndarray
    num_classes: int
    train_weights: np.ndarray | None = None
    val_weights: np.ndarray | None = None
    #: Every training image left after the validation split (in ``data``), before the subsample.
    pool_index: np.ndarray | None = None
    pool_weights: np.ndarray | None = None

    def race_size_error(self, size: int) -> str | None:
        """Why ``race_train_size=size`` cannot be drawn from the training pool (None when it can)."""
        pool = len(self.pool_index)
        if size > pool:
            return (f"race_train_size={size} is larger than the {pool} training images left after the "
                    f"validation split ({len(self.data.y)} in all).")
        classes = len(np.unique(self.data.y[self.pool_index]))
        return (f"race_train_size={size} is smaller than the {classes} classes: use at least {classes}."
                if size < classes and size < pool else None)


def check_validation_split(validation_split: Any) -> float:
    """``validation_split`` when it is a float in (0, 1); a one-line ``ValueError`` otherwise."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, float) or not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be a float in (0, 1), got {validation_split!r}.")
    return validation_split


def prepare_search_data(x: Any, y: Any, validation_data: Any = None, value_range: Any = None, sample_weight: Any = None,
                        validation_split: float = VALIDATION_SPLIT, train_set_size: int | None = None,
                        seed: int | None = None, pool_size: int | None = None) -> SearchData:
    """What ``AugmentTuner.search`` trains on: the inputs checked (`search_inputs()`,
    [`check_dataset()`][keras_augtune.data.check_dataset]), the stratified validation split (unless ``validation_data`` is
    given) and the stratified ``train_set_size`` subsample, with ``sample_weight`` following
    the images through both. ``pool_size``: training images some trainings need beyond the
    subsample (the race's ``race_train_size``): read that many too."""
    check_validation_split(validation_split)
    limit = None
    if train_set_size is not None:  # read no more of a dataset than the subsample (and its split) needs
        wanted = max(train_set_size, pool_size or 0)
        limit = wanted if validation_data is not None else int(np.ceil(wanted / (1.0 - validation_split)))
    inputs = search_inputs(x, y, sample_weight, value_range, limit=limit)
    data = check_dataset(inputs.x, inputs.y, value_range=inputs.value_range, class_names=inputs.class_names)
    weights = inputs.sample_weight
    if validation_data is not None:
        if _is_tf_dataset(validation_data):
            held = search_inputs(validation_data, what="validation_data")
        elif isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3):
            held = search_inputs(*validation_data, what="validation_data x")
        else:
            raise ValueError("validation_data must be a pair (x_val, y_val), a triple (x_val, y_val, "
                             "sample_weight) or a tf.data.Dataset of such tuples.")
        val = check_dataset(held.x, held.y, value_range=data.value_range, what="validation_data x")
        if val.input_shape != data.input_shape:
            raise ValueError(f"validation images have shape {val.input_shape}, training images {data.input_shape}.")
        train_index, val_weights = np.arange(len(data.y)), held.sample_weight
    else:
        train_index, val_index = stratified_split(data.y, validation_split, seed)
        val = Dataset(data.x[val_index], data.y[val_index], data.value_range, data.class_names, data.one_hot)
        val_weights = None if weights is None else weights[val_index]
    pool_index, pool_weights = train_index, None if weights is None else weights[train_index]
    if train_set_size is not None:
        if train_set_size > len(train_index):
            raise ValueError(
                f"train_set_size={train_set_size} is larger than the {len(train_index)} training "
                f"images left after the validation split ({len(data.y)} in all)."
            )
        train_index = train_index[stratified_subsample(data.y[train_index], train_set_size, seed)]
    return SearchData(data, val, train_index, max(data.num_classes, val.num_classes),
                      None if weights is None else weights[train_index], val_weights, pool_index, pool_weights)


def one_per_class(y: np.ndarray, n: int, order: Any = None) -> list[int]:
    """Indices of ``n`` items (all when fewer), one per class first: the first item of each class
    in ``order`` (default: the stored order), then the next items of ``order``; sorted when no
    ``order`` is given. For the few images a grid or a report shows."""
    stable = order is None
    order = np.arange(len(y)) if stable else np.asarray(order)
    picked: list[int] = []
    seen: set = set()
    for i in order:
        if len(picked) == n:
            break
        if y[i] not in seen:
            seen.add(y[i])
            picked.append(int(i))
    taken = set(picked)
    picked += [int(i) for i in order if int(i) not in taken][: max(n - len(picked), 0)]
    return sorted(picked) if stable else picked


def split_sizes(n: int, validation_split: float) -> tuple[int, int]:
    """(training, validation) image counts when ``validation_split`` of ``n`` images is held out."""
    held = int(np.ceil(validation_split * n))
    return n - held, held


def stratified_split(y: np.ndarray, held_out: float | int, seed: int | None, what: str = "validation") -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with every class on both sides, or a clear error when impossible.

    ``held_out`` is a fraction in (0, 1) or a number of items.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(held_out, (float, np.floating)):
        if not 0.0 < held_out < 1.0:
            raise ValueError(f"The {what} fraction must be between 0 and 1, got {held_out!r}.")
        n_held = split_sizes(len(y), held_out)[1]
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

    check_int("folds", folds, minimum=2)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        raise ValueError(
            f"Too few images for {folds} stratified folds: class {classes[counts.argmin()]} has "
            f"{counts.min()} image(s), and every fold needs one of each class. Add data or use fewer folds."
        )
    splitter = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=seed)
    return [(np.sort(kept), np.sort(held)) for kept, held in splitter.split(np.zeros(len(y)), y)]


def stratified_subsample(y: np.ndarray, size: int, seed: int | None, what: str = "train_set_size") -> np.ndarray:
    """Indices of a stratified subsample of ``size`` items (all of them when ``size == len(y)``)."""
    check_int(what, size)
    if size > len(y):
        raise ValueError(f"{what}={size} is larger than the {len(y)} images available.")
    if size == len(y):
        return np.arange(len(y))
    classes = len(np.unique(y))
    if size < classes:
        raise ValueError(f"{what}={size} is smaller than the {classes} classes: a stratified subsample "
                         f"needs at least one image of each class; use at least {classes} (or all {len(y)}).")
    _, chosen = stratified_split(y, int(size), seed, what=f"{what} subsample")
    return chosen


def data_fingerprint(x: np.ndarray, y: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """What ``--resume`` compares: image count, shape and type, classes and their counts, and a
    SHA-256 of the labels and of an evenly spread sample of the images."""
    x, y = np.asarray(x), np.asarray(y)
    sample = np.unique(np.linspace(0, len(x) - 1, num=min(len(x), FINGERPRINT_SAMPLE)).astype(np.int64))
    digest = hashlib.sha256()
    digest.update(f"{x.shape}{x.dtype}".encode())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(np.ascontiguousarray(x[sample]).tobytes())
    counts = np.bincount(y, minlength=len(class_names)) if y.ndim == 1 else np.asarray(y).sum(axis=0)
    return {
        "images": int(len(x)), "image_shape": [int(s) for s in x.shape[1:]], "dtype": str(x.dtype),
        "classes": [str(c) for c in class_names], "class_counts": [int(c) for c in counts],
        "sample_sha256": digest.hexdigest(),
    }


def fingerprint_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words (empty when the data is the same)."""
    changes = []
    old_classes, new_classes = list(before.get("classes", [])), list(now["classes"])
    if old_classes != new_classes:
        added = [c for c in new_classes if c not in old_classes]
        removed = [c for c in old_classes if c not in new_classes]
        detail = "; ".join(part for part in (
            f"added {', '.join(map(repr, added[:5]))}" if added else "",
            f"removed {', '.join(map(repr, removed[:5]))}" if removed else "") if part) or "renumbered"
        changes.append(f"{len(new_classes)} classes (was {len(old_classes)}: {detail})")
    if before.get("images") != now["images"]:
        changes.append(f"{now['images']:,} images (was {before.get('images')})")
    elif old_classes == new_classes and before.get("class_counts") != now["class_counts"]:
        changes.append("the images per class differ")
    if before.get("image_shape") != now["image_shape"] or before.get("dtype") != now["dtype"]:
        shape = "x".join(map(str, now["image_shape"]))
        old = "x".join(map(str, before.get("image_shape") or []))
        changes.append(f"images of {shape} {now['dtype']} (was {old} {before.get('dtype')})")
    if not changes and before.get("sample_sha256") != now["sample_sha256"]:
        changes.append("the same counts and shapes, but different image or label content")
    return changes
