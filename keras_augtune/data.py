"""Datasets: the search's inputs (arrays or a ``tf.data.Dataset``), checking ``(x, y)``,
stratified splits, and the offline loaders (scikit-learn's digits, an ``.npz`` with ``x``/``y``,
a folder of class sub-folders)."""

from __future__ import annotations

import collections
import os
import warnings
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_augtune.checks import check_int
from keras_augtune.images import DataWarning, check_images  # noqa: F401 (DataWarning: also imported from here)

#: The fraction of the images held out for validation when no validation data is given.
VALIDATION_SPLIT = 0.2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: Labels are class ids 0..K-1 with K at most this (ImageNet-21k has 21,841 classes): a
#: larger id is a mistake (an unmapped id, a hash), and would allocate K class names and outputs.
MAX_CLASSES = 100_000


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


def prepare_search_data(x: Any, y: Any, validation_data: Any = None, value_range: Any = None, sample_weight: Any = None,
                        validation_split: float = VALIDATION_SPLIT, train_set_size: int | None = None,
                        seed: int | None = None) -> SearchData:
    """What ``AugmentTuner.search`` trains on: the inputs checked (`search_inputs()`,
    [`check_dataset()`][keras_augtune.data.check_dataset]), the stratified validation split (unless ``validation_data`` is
    given) and the stratified ``train_set_size`` subsample, with ``sample_weight`` following
    the images through both."""
    if isinstance(validation_split, bool) or not isinstance(validation_split, float) or not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must be a float in (0, 1), got {validation_split!r}.")
    limit = None
    if train_set_size is not None:  # read no more of a dataset than the subsample (and its split) needs
        limit = train_set_size if validation_data is not None else int(np.ceil(train_set_size / (1.0 - validation_split)))
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
    if train_set_size is not None:
        if train_set_size > len(train_index):
            raise ValueError(
                f"train_set_size={train_set_size} is larger than the {len(train_index)} training "
                f"images left after the validation split ({len(data.y)} in all)."
            )
        train_index = train_index[stratified_subsample(data.y[train_index], train_set_size, seed)]
    return SearchData(data, val, train_index, max(data.num_classes, val.num_classes),
                      None if weights is None else weights[train_index], val_weights)


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
    check_int("train_set_size", size)
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
    """Images and labels from an ``.npz`` holding arrays ``x`` and ``y`` (numeric arrays only:
    object arrays are never unpickled)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such .npz file: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not an .npz archive (an .npz is a zip of .npy arrays); "
                         "write one with np.savez(path, x=images, y=labels).")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("x", "y") if k not in data.files]
            if missing:
                raise KeyError(f"{path} must hold arrays 'x' and 'y'; missing {missing}, found {data.files}.")
            arrays = []
            for key in ("x", "y"):
                try:
                    arrays.append(data[key])
                except ValueError as exc:
                    if "pickle" in str(exc):  # an object array: refused, never unpickled
                        raise ValueError(f"Array '{key}' in {path} holds Python objects, which are not loaded "
                                         "(unsafe); store numbers: uint8 or float images, integer labels.") from None
                    raise ValueError(f"Cannot read array '{key}' of {path}: {exc}") from None
            return arrays[0], arrays[1]
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"Cannot read {path} as an .npz archive: {exc}") from None


def load_image_folder(path: str, image_size: int | None = None, grayscale: bool | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images from ``path/<class>/*.jpg|png|...`` as uint8 (N, H, W, C), labels and class names.

    Images are resized to ``image_size`` (default: the most common size among them; a
    `DataWarning` says how many were resized) and converted to RGB, or to grayscale
    when ``grayscale`` (default: when every image is). 16-bit images are scaled to 0-255,
    float images must hold values in [0, 1]; 32-bit integer images are refused (no standard
    scale). Hidden files and folders (``.name``, e.g. macOS ``._x.png``) are skipped.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No such image folder: {path}")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{path} must hold one sub-folder per class (at least two); found {len(classes)}.")
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        found = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
        if not found:
            raise ValueError(f"Class folder {folder} has no image files ({', '.join(IMAGE_SUFFIXES)}).")
        files.extend((os.path.join(folder, f), label) for f in found)
    sizes = [_image_size(file) for file, _ in files]  # headers only: nothing decoded yet
    if image_size is not None:
        size = (int(image_size), int(image_size))
    else:
        size, count = collections.Counter(sizes).most_common(1)[0]
        if count < len(sizes):
            odd = next(i for i, s in enumerate(sizes) if s != size)
            warnings.warn(DataWarning(
                f"{len(sizes) - count} of {len(sizes)} images are not {size[0]}x{size[1]}, the most common size "
                f"(e.g. {files[odd][0]} is {sizes[odd][0]}x{sizes[odd][1]}): resized to {size[0]}x{size[1]}. "
                "Choose the size with --image-size (image_size=)."), stacklevel=2)
    images, modes = [], set()
    for file, _ in files:
        pixels, mode = _decode_image(file, size)
        images.append(pixels)
        modes.add(mode)
    if grayscale is None:
        grayscale = modes == {"L"}
    x = np.stack([np.repeat(p[..., None], 3, axis=-1) if p.ndim == 2 else p for p in images])
    if grayscale:
        x = np.rint(x.mean(axis=-1, keepdims=True)).astype(np.uint8)
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, classes


def _image_size(file: str) -> tuple[int, int]:
    """(width, height) from the file's header; refuses images too large to decode safely."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with our message
            with Image.open(file) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        width = height = None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"Cannot read image {file}: {exc}") from None
    if width is None or (limit and width * height > limit):
        declared = "" if width is None else f"{width}x{height} = {width * height / 1e6:.0f} megapixels, "
        raise ValueError(f"Image {file} declares {declared}more than the {limit / 1e6:.0f}-megapixel limit "
                         "(a decompression bomb, or a huge image): remove or shrink it.")
    return width, height


_16_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _decode_image(file: str, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The image's pixels as uint8 (H, W) grayscale or (H, W, 3) RGB at ``size``, and "L" or "RGB"."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            im.load()
            if im.mode in _16_BIT_MODES or (im.mode == "I" and im.format == "PNG"):  # 16-bit grayscale
                im = _to_8_bit(file, np.asarray(im, dtype=np.float64), 65535.0, "16-bit")
            elif im.mode == "F":  # 32-bit float: values in [0, 1]
                im = _to_8_bit(file, np.asarray(im, dtype=np.float64), 1.0, "float")
            elif im.mode == "I":
                raise ValueError(f"Image {file} has 32-bit integer pixels, which have no standard scale to "
                                 "0-255: save it as 8- or 16-bit, or load the images yourself into an .npz.")
            mode = "L" if im.mode in ("L", "1") else "RGB"
            im = im.convert(mode)
            if im.size != size:
                im = im.resize(size, Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8), mode
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"Cannot read image {file}: {exc}") from None


def _to_8_bit(file: str, pixels: np.ndarray, top: float, kind: str):
    """An 8-bit grayscale PIL image from ``pixels`` in [0, top] (refused when outside)."""
    from PIL import Image

    if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > top:
        raise ValueError(f"Image {file} has {kind} pixels in [{np.nanmin(pixels):g}, {np.nanmax(pixels):g}], "
                         f"outside [0, {top:g}]: rescale it to [0, {top:g}] or to 8-bit.")
    return Image.fromarray(np.rint(pixels * (255.0 / top)).astype(np.uint8))


def load_data(spec: str, image_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``"digits"``, a path to an ``.npz``, or a class-per-folder image directory."""
    if spec == "digits":
        x, y = load_digits(image_size or 32)
        return x, y, [str(i) for i in range(10)]
    if spec.endswith(".npz"):
        x, y = load_npz(spec)
        return x, y, check_dataset(x, y).class_names
    if os.path.isdir(spec):
        return load_image_folder(spec, image_size=image_size)
    raise FileNotFoundError(f"--data must be 'digits', an .npz file or an image folder; {spec!r} is none of these.")
