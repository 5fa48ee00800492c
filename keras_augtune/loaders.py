"""Offline image loaders: scikit-learn's digits, an ``.npz`` holding ``x``/``y``, and a folder with
one sub-folder of images per class (read safely: regular files only, sizes bounded)."""

from __future__ import annotations

import collections
import os
import stat
import warnings
import zipfile

import numpy as np

from keras_augtune.checks import MAX_IMAGE_SIZE, check_int
from keras_augtune.data import check_dataset
from keras_augtune.images import DataWarning

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The most pixel bytes a loader allocates (images x height x width x channels): beyond this the
#: images would not fit in the memory of the machines a search runs on.
MAX_PIXEL_BYTES = 8 * 2**30
#: Files that mark a folder as a keras_augtune search's output (never a class of images).
_RUN_MARKS = (".keras_augtune.lock", "run.json")
#: EXIF orientations that turn the stored image by 90 degrees (width and height swap).
_TRANSPOSED = (5, 6, 7, 8)


def check_image_size(image_size, count: int = 1, channels: int = 3) -> int:
    """``image_size`` when it is an integer from 1 to `MAX_IMAGE_SIZE` and ``count`` images of that
    size fit in `MAX_PIXEL_BYTES`; otherwise a one-line ``ValueError``."""
    size = check_int("image_size", image_size, maximum=MAX_IMAGE_SIZE)
    need = count * size * size * channels
    if need > MAX_PIXEL_BYTES:
        raise ValueError(f"image_size {size}: {count:,} images of {size}x{size}x{channels} would take "
                         f"{need / 2**30:.0f} GiB, more than the {MAX_PIXEL_BYTES / 2**30:.0f} GiB a loader "
                         "allocates; choose a smaller size.")
    return size


def load_digits(image_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upscaled to ``image_size`` (uint8, (N, S, S, 1)), offline."""
    import imgaug
    from sklearn.datasets import load_digits as sk_load_digits

    check_image_size(image_size, 1797, 1)
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
    classes = []
    for d in sorted(os.listdir(path)):
        folder = os.path.join(path, d)
        if d.startswith(".") or not os.path.isdir(folder):
            continue
        if any(os.path.exists(os.path.join(folder, mark)) for mark in _RUN_MARKS):
            warnings.warn(DataWarning(f"skipped {folder}: it is a keras_augtune search's output folder, not a "
                                      "class of images (keep --out outside --data)."), stacklevel=2)
            continue
        classes.append(d)
    if len(classes) < 2:
        raise ValueError(f"{path} must hold one sub-folder per class (at least two); found {len(classes)}.")
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        folder = os.path.join(path, name)
        found = []
        for f in sorted(os.listdir(folder)):
            if not f.lower().endswith(IMAGE_SUFFIXES) or f.startswith("."):
                continue
            if _regular_file(os.path.join(folder, f)):
                found.append(f)
        if not found:
            raise ValueError(f"Class folder {folder} has no image files ({', '.join(IMAGE_SUFFIXES)}).")
        files.extend((os.path.join(folder, f), label) for f in found)
    if image_size is not None:
        check_image_size(image_size, len(files))
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
        if len(files) * size[0] * size[1] * 3 > MAX_PIXEL_BYTES:
            raise ValueError(f"{len(files):,} images of {size[0]}x{size[1]} would take more than the "
                             f"{MAX_PIXEL_BYTES / 2**30:.0f} GiB a loader allocates; choose a smaller --image-size.")
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


def _regular_file(file: str) -> bool:
    """Whether ``file`` is a regular file (after links); anything else (a FIFO, a device, a socket,
    a folder) is skipped with a `DataWarning`, since opening it may block forever."""
    try:
        mode = os.stat(file).st_mode
    except OSError as exc:
        raise ValueError(f"Cannot read image {file}: {exc.strerror or exc}") from None
    if stat.S_ISREG(mode):
        return True
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
    warnings.warn(DataWarning(f"skipped {file}: it is {kind}, not an image file."), stacklevel=3)
    return False


def _image_size(file: str) -> tuple[int, int]:
    """(width, height) from the file's header; refuses images too large to decode safely."""
    from PIL import Image, UnidentifiedImageError

    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with our message
            with Image.open(file) as im:
                width, height = im.size
                if _orientation(im) in _TRANSPOSED:  # shown turned by 90 degrees: width and height swap
                    width, height = height, width
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


def _orientation(im) -> int | None:
    """The EXIF orientation tag (1-8) of an open image, or None."""
    try:
        value = im.getexif().get(0x0112)  # Orientation
    except Exception:  # a damaged EXIF block: show the pixels as stored
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _decode_image(file: str, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The image's pixels as uint8 (H, W) grayscale or (H, W, 3) RGB at ``size`` (turned as its
    EXIF orientation says), and "L" or "RGB"."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            im.load()
            if _orientation(im) not in (None, 1):  # phone photos: stored sideways, turned when shown
                im = ImageOps.exif_transpose(im)
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
    """``"digits"``, a path to an ``.npz``, or a class-per-folder image directory; images resized to
    ``image_size`` x ``image_size`` when given (an ``.npz``'s are kept as stored otherwise)."""
    if spec == "digits":
        x, y = load_digits(image_size or 32)
        return x, y, [str(i) for i in range(10)]
    if spec.endswith(".npz"):
        x, y = load_npz(spec)
        data = check_dataset(x, y)
        if image_size is not None:
            check_image_size(image_size, len(data.x), data.x.shape[-1])
        if image_size is not None and data.x.shape[1:3] != (image_size, image_size):
            x = resize_images(data.x, image_size)
        return x, y, data.class_names
    if os.path.isdir(spec):
        return load_image_folder(spec, image_size=image_size)
    raise FileNotFoundError(f"--data must be 'digits', an .npz file or an image folder; {spec!r} is none of these.")


def resize_images(x: np.ndarray, image_size: int) -> np.ndarray:
    """A batch (N, H, W, C) of uint8 images resized to ``image_size`` x ``image_size``."""
    import imgaug

    if x.dtype != np.uint8:
        raise ValueError("--image-size resizes uint8 images only; store the .npz images as uint8 "
                         "(0-255) or resize them yourself.")
    return imgaug.imresize_many_images(x, (image_size, image_size)).reshape(len(x), image_size, image_size, x.shape[-1])
