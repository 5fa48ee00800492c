"""The Keras twins of the op table: each op of `keras_augtune.ops.OPS` written with ``keras.ops``, per image.

`TWINS` is keyed by the op names of `keras_augtune.ops.OPS` (never a second list of ops): the
op table keeps what a magnitude means (``Op.strength``: magnitude -> the op's parameter), and a
twin replaces only ``Op.build``: given a batch and each image's parameter (a vector, one value per
image, in the op's own unit), it draws the op's own randomness per image and transforms the batch.
Images are float32 ``(N, H, W, C)`` on imgaug's 0-255 scale, ``C`` 1 or 3; twins round and clip to
the uint8 grid as imgaug does. `NO_TWIN` says why the remaining ops have none (``tests/test_keras_engine.py`` checks that the two
cover the op table exactly).

Two kinds of twin:

* ``"affine"`` (crop, rotate, shear, translate): ``matrix(param, height, width, seed)`` gives each
  image's forward 3x3 matrix, built as imgaug's ``_AffineMatrixGenerator`` builds it (centre at
  ``(side - 1) / 2``, its ``tanh`` shear), so the engine warps every geometric op of a policy step
  in one batched ``keras.ops.image.affine_transform`` (bilinear, constant 0 fill, as imgaug).
* ``"image"``: ``apply(images, param, seed)`` returns the transformed batch.

``fidelity`` says how close each twin is meant to be to imgaug: ``"exact"`` (same formula, same
rounding) or ``"approximate"`` (same distribution of effects, e.g. a different interpolation or
mask shape). The measured differences are in ``benchmarks/results/engine_equivalence.json``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import keras
from keras import ops as K

_PI = math.pi


class Twin(NamedTuple):
    """One Keras twin: ``kind`` "affine" (``fn`` gives matrices) or "image" (``fn`` gives images)."""

    kind: str
    fn: Callable[..., Any]
    fidelity: str  # "exact" or "approximate"
    note: str = ""


# ---------------------------------------------------------------------- random draws, one per image
def _uniform(n, seed, low=0.0, high=1.0):
    return keras.random.uniform((n,), minval=low, maxval=high, seed=seed)


def _sym(param, seed):
    """A value drawn from [-param, param] per image (imgaug's ``(-v, v)`` ranges)."""
    n = K.shape(param)[0]
    return param * _uniform(n, seed, -1.0, 1.0)


def _up_to(param, seed):
    """A value drawn from [0, param] per image (imgaug's ``(0, v)`` ranges)."""
    return param * _uniform(K.shape(param)[0], seed)


def _chance(param, seed):
    """True for a fraction ``param`` of the images (imgaug's ``Fliplr(p)``, ``Invert(p)``)."""
    return _uniform(K.shape(param)[0], seed) < param


def _img(v):
    """A per-image vector broadcast against ``(N, H, W, C)``."""
    return K.reshape(v, (-1, 1, 1, 1))


def _float(condition):
    return K.cast(condition, "float32")


def _mix(mask, a, b):
    """``a`` where ``mask`` (0/1 floats, broadcast) is 1, else ``b``: arithmetic rather than a broadcast
    ``where``, which TensorFlow runs several times slower on the CPU (measured: 0.6 s vs 0.18 s on a
    256x224x224x3 batch); exact here, every value being a whole number on the 0-255 scale."""
    return b + mask * (a - b)


def select_rows(chosen, a, b):
    """Image ``i`` of ``a`` where ``chosen[i]``, else of ``b``: an exact row select on the flattened
    batch (a broadcast ``where`` over (N, H, W, C) is several times slower on TensorFlow's CPU)."""
    shape = K.shape(a)
    flat_a, flat_b = K.reshape(a, (shape[0], -1)), K.reshape(b, (shape[0], -1))
    picked = K.where(K.broadcast_to(chosen[:, None], K.shape(flat_a)), flat_a, flat_b)
    return K.reshape(picked, shape)


def _uint8(x):
    return K.clip(K.round(x), 0.0, 255.0)


def _luma(x):
    """PIL's ``convert("L")`` (ITU-R 601-2), rounded; a grayscale image is its own luma."""
    if x.shape[-1] == 1:
        return x
    r, g, b = x[..., 0:1], x[..., 1:2], x[..., 2:3]
    return K.round(r * 0.299 + g * 0.587 + b * 0.114)


# ---------------------------------------------------------------------- affine twins: forward matrices
def _affine(n, height, width, rotate=None, shear_x=None, shear_y=None, tx=None, ty=None):
    """imgaug's forward matrix ``T(c) T(t) Shear Rot T(-c)``, per image, as (N, 3, 3).

    Angles in radians; ``c`` = ((W - 1) / 2, (H - 1) / 2) as imgaug's centre plus its 0.5 shift.
    """
    zero, one = K.zeros((n,)), K.ones((n,))
    rotate = zero if rotate is None else rotate
    a, b, c, d = K.cos(rotate), -K.sin(rotate), K.sin(rotate), K.cos(rotate)
    sx = zero if shear_x is None else K.tanh(-shear_x)  # imgaug writes tanh, not tan: mirrored
    sy = zero if shear_y is None else K.tanh(shear_y)
    # shear (1, sx; sy, 1) after the rotation
    a, b, c, d = a + sx * c, b + sx * d, sy * a + c, sy * b + d
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    tx = zero if tx is None else tx
    ty = zero if ty is None else ty
    e = cx + tx - (a * cx + b * cy)
    f = cy + ty - (c * cx + d * cy)
    rows = [K.stack([a, b, e], -1), K.stack([c, d, f], -1), K.stack([zero, zero, one], -1)]
    return K.stack(rows, 1)


def _deg(v):
    return v * (_PI / 180.0)


def _rotate(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, rotate=_deg(_sym(param, seed)))


def _shear(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, shear_x=_deg(_sym(param, seed)), shear_y=_deg(_sym(param, seed)))


def _shear_x(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, shear_x=_deg(_sym(param, seed)))


def _shear_y(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, shear_y=_deg(_sym(param, seed)))


def _translate_x(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, tx=_sym(param, seed) * width)


def _translate_y(param, height, width, seed):
    return _affine(K.shape(param)[0], height, width, ty=_sym(param, seed) * height)


def _crop(param, height, width, seed):
    """``Crop(percent=(0, v), keep_size=True)``: each side cropped by [0, v] of the side (whole
    pixels), the rest resized back: a per-image scale and shift (bilinear where imgaug resizes
    with cubic interpolation: approximate)."""
    top, right, bottom, left = (K.round(_up_to(param, seed) * side) for side in (height, width, height, width))
    n = K.shape(param)[0]
    zero, one = K.zeros((n,)), K.ones((n,))
    scale_x, scale_y = width / (width - left - right), height / (height - top - bottom)
    # output pixel centre (x + 0.5) / W of the kept window [left, W - right)
    e = (0.5 - left) * scale_x - 0.5
    f = (0.5 - top) * scale_y - 0.5
    rows = [K.stack([scale_x, zero, e], -1), K.stack([zero, scale_y, f], -1), K.stack([zero, zero, one], -1)]
    return K.stack(rows, 1)


def inverse_transform(matrices):
    """Keras's ``affine_transform`` wants the output -> input map: the inverse of each forward matrix,
    flattened to its 8 parameters."""
    a, b, e = matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 0, 2]
    c, d, f = matrices[:, 1, 0], matrices[:, 1, 1], matrices[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    zero = K.zeros_like(a)
    return K.stack([ia, ib, -(ia * e + ib * f), ic, id_, -(ic * e + id_ * f), zero, zero], -1)


def warp(images, matrices):
    """Every image through its own forward matrix (bilinear, constant 0 fill: imgaug's Affine defaults)."""
    out = K.image.affine_transform(images, inverse_transform(matrices), interpolation="bilinear",
                                   fill_mode="constant", fill_value=0.0, data_format="channels_last")
    return _uint8(out)


# ---------------------------------------------------------------------- kernels
def _correlate3(x, kernel):
    """``cv2.filter2D`` with a 3x3 kernel and its default border (reflect-101)."""
    padded = K.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    height, width = x.shape[1], x.shape[2]
    out = 0.0
    for i in range(3):
        for j in range(3):
            if kernel[i][j]:
                out = out + kernel[i][j] * padded[:, i:i + height, j:j + width, :]
    return out


def _blend_kernel(effect):
    """imgaug's ``Convolve`` blends ``(1 - alpha) * identity + alpha * effect`` (alpha per image)."""
    def apply(x, param, seed):
        alpha = _img(_up_to(param, seed))
        return _uint8(x + alpha * (_correlate3(x, effect) - x))
    return apply


_SHARPEN = [[-1, -1, -1], [-1, 9, -1], [-1, -1, -1]]  # Sharpen(lightness=1): 8 + lightness
_EMBOSS = [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]  # Emboss(strength=1)


def _gaussian_blur(x, param, seed):
    """``GaussianBlur(sigma=(0, v))``: a separable Gaussian of each image's own sigma, as a weighted
    sum of shifted copies (reflect-101 border)."""
    sigma = _up_to(param, seed)
    radius = max(1, min(6, x.shape[1] - 1, x.shape[2] - 1))  # 3 sigma of the largest sigma (2 px)
    taps = K.arange(-radius, radius + 1, dtype="float32")
    weights = K.exp(-(taps[None, :] ** 2) / (2.0 * K.maximum(sigma, 1e-3)[:, None] ** 2))
    weights = weights / K.sum(weights, axis=1, keepdims=True)  # (N, taps)
    height, width = x.shape[1], x.shape[2]
    padded = K.pad(x, ((0, 0), (0, 0), (radius, radius), (0, 0)), mode="reflect")
    rows = sum(_img(weights[:, t]) * padded[:, :, t:t + width, :] for t in range(2 * radius + 1))
    padded = K.pad(rows, ((0, 0), (radius, radius), (0, 0), (0, 0)), mode="reflect")
    out = sum(_img(weights[:, t]) * padded[:, t:t + height, :, :] for t in range(2 * radius + 1))
    return _uint8(out)


# ---------------------------------------------------------------------- pixel twins
def _per_pixel(x, seed):
    """A uniform value per pixel, the same across channels (imgaug's ``per_channel=False``)."""
    shape = K.shape(x)
    return keras.random.uniform((shape[0], x.shape[1], x.shape[2], 1), seed=seed)


def _noise(x, param, seed):
    scale = _img(_up_to(param, seed))
    shape = K.shape(x)
    noise = keras.random.normal((shape[0], x.shape[1], x.shape[2], 1), seed=seed)
    return _uint8(x + scale * noise)


def _dropout(x, param, seed):
    p = _img(_up_to(param, seed))
    return x * _float(_per_pixel(x, seed) >= p)


def _coarse_mask(x, param, seed):
    """``size_percent=(0.1, 0.3)``: a mask drawn on a grid of ``max(3, round(side * s))`` cells per side
    (imgaug's ``min_size=3``), upsampled nearest, each cell dropped with chance ``p`` in [0, v]."""
    n = K.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    p = _up_to(param, seed)
    size = _uniform(n, seed, 0.1, 0.3)
    cells_y = K.maximum(3.0, K.round(height * size))
    cells_x = K.maximum(3.0, K.round(width * size))
    row = K.cast(K.floor(K.arange(height, dtype="float32")[None, :] * cells_y[:, None] / height), "int32")
    col = K.cast(K.floor(K.arange(width, dtype="float32")[None, :] * cells_x[:, None] / width), "int32")
    cells = keras.random.uniform((n, height, width), seed=seed)  # one value per cell (cells <= side)
    picked = K.take_along_axis(cells, K.broadcast_to(row[:, :, None], (n, height, width)), axis=1)
    picked = K.take_along_axis(picked, K.broadcast_to(col[:, None, :], (n, height, width)), axis=2)
    return picked[..., None] < p[:, None, None, None]


def _coarse_dropout(x, param, seed):
    return x * (1.0 - _float(_coarse_mask(x, param, seed)))


def _coarse_salt_pepper(x, param, seed):
    """imgaug's replacement: ``Beta(0.5, 0.5) * 255`` per element (mostly near 0 or 255)."""
    shape = K.shape(x)
    salt = _uint8(255.0 * keras.random.beta((shape[0], x.shape[1], x.shape[2], x.shape[3]), 0.5, 0.5, seed=seed))
    return _mix(_float(_coarse_mask(x, param, seed)), salt, x)


def _gamma(x, param, seed):
    low, high = 2.0 ** -param, 2.0 ** param
    gamma = _img(low + (high - low) * _uniform(K.shape(param)[0], seed))
    return _uint8(255.0 * K.power(x / 255.0, gamma))


def _brighten(x, param, seed):
    # DiscreteUniform(-v, v): integers, both ends included
    value = K.floor(_uniform(K.shape(param)[0], seed) * (2.0 * param + 1.0)) - param
    return _uint8(x + _img(value))


def _invert(x, param, seed):
    return select_rows(_chance(param, seed), 255.0 - x, x)


def _flip(axis):
    def apply(x, param, seed):
        return select_rows(_chance(param, seed), K.flip(x, axis=axis), x)
    return apply


def _blend(alpha, fg, x):
    return _uint8(_img(alpha) * fg + (1.0 - _img(alpha)) * x)


def _auto_contrast(x, param, seed):
    """PIL ``autocontrast(cutoff=0)`` per channel (min -> 0, max -> 255, truncated), blended by ``v``."""
    low = K.min(x, axis=(1, 2), keepdims=True)
    high = K.max(x, axis=(1, 2), keepdims=True)
    spread = high - low
    scaled = K.floor((x - low) * 255.0 / K.maximum(spread, 1.0))
    stretched = _mix(_float(spread > 0), K.clip(scaled, 0.0, 255.0), x)
    return _blend(param, stretched, x)


def _equalize(x, param, seed):
    """PIL ``equalize`` per channel (its step and lookup table, exactly), blended by ``v``."""
    n, channels = K.shape(x)[0], x.shape[-1]
    height, width = x.shape[1], x.shape[2]
    values = K.cast(K.reshape(K.transpose(x, (0, 3, 1, 2)), (-1, height * width)), "int32")  # (N*C, HW)
    # one histogram per (image, channel) as a segment sum over value + 256 * row: its length comes from
    # the shape alone, so it compiles under XLA and jax.jit (a bincount's length depends on the data)
    rows = K.arange(n * channels, dtype="int32")[:, None] * 256
    ids = K.reshape(values + rows, (-1,))
    hist = K.segment_sum(K.ones_like(ids, dtype="float32"), ids, num_segments=n * channels * 256)
    hist = K.reshape(hist, (n, channels, 256))
    values = K.reshape(values, (n, channels, height * width))
    levels = K.arange(256, dtype="float32")
    last = K.max(K.where(hist > 0, levels, -1.0), axis=-1, keepdims=True)  # the highest level used
    last_count = K.sum(K.where(levels == last, hist, 0.0), axis=-1, keepdims=True)
    step = K.floor((height * width - last_count) / 255.0)
    before = K.cumsum(hist, axis=-1) - hist  # pixels below each level
    lut = K.clip(K.floor((K.floor(step / 2.0) + before) / K.maximum(step, 1.0)), 0.0, 255.0)
    mapped = K.take_along_axis(lut, values, axis=-1)  # (N, C, HW)
    mapped = _mix(_float(step > 0), mapped, K.cast(values, "float32"))
    equalized = K.reshape(K.transpose(mapped, (0, 2, 1)), (n, height, width, channels))
    return _blend(param, equalized, x)


def _solarize(x, param, seed):
    return _mix(_float(x >= 256.0 - _img(param)), 255.0 - x, x)


def _posterize(x, param, seed):
    step = _img(2.0 ** param)
    return K.floor(x / step) * step


def _enhance(degenerate: Callable[[Any], Any]):
    """PIL ``ImageEnhance``: ``degenerate + f * (image - degenerate)``, f in [1 - v, 1 + v] per image."""
    def apply(x, param, seed):
        factor = _img(1.0 + _sym(param, seed))
        base = degenerate(x)
        return K.clip(K.floor(base + factor * (x - base)), 0.0, 255.0)  # PIL truncates its blend
    return apply


def _mean_luma(x):
    return K.floor(K.mean(_luma(x), axis=(1, 2, 3), keepdims=True) + 0.5)


def _smooth(x):
    """PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1, /13) inside, the border pixels left as they were."""
    smooth = _uint8(_correlate3(x, [[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13.0)
    height, width = x.shape[1], x.shape[2]
    inside = K.pad(K.ones((1, height - 2, width - 2, 1)), ((0, 0), (1, 1), (1, 1), (0, 0)))
    return _mix(inside, smooth, x)


def _color(x, param, seed):
    if x.shape[-1] == 1:  # colour only: grayscale images come back unchanged
        return x
    return _enhance(_luma)(x, param, seed)


def _hue_saturation(x, param, seed):
    """``AddToHueAndSaturation((-v, v))`` on colour images: one integer per image added to OpenCV's 8-bit
    saturation and, as ``trunc(value / 255 * 180)``, to its hue (0-179, wrapping); grayscale images
    (one channel, or three equal channels) unchanged, as ``ops.ColorImagesOnly`` does."""
    if x.shape[-1] == 1:
        return x
    value = K.floor(_uniform(K.shape(param)[0], seed) * (2.0 * param + 1.0)) - param  # DiscreteUniform(-v, v)
    hsv = K.image.rgb_to_hsv(x / 255.0, data_format="channels_last")
    hue = K.round(hsv[..., 0:1] * 180.0)  # OpenCV's 8-bit hue: half degrees
    shift = _img(K.sign(value) * K.floor(K.abs(value) * 180.0 / 255.0))
    hue = K.mod(hue + shift, 180.0) / 180.0
    saturation = K.clip(K.round(hsv[..., 1:2] * 255.0) + _img(value), 0.0, 255.0) / 255.0
    rgb = _uint8(255.0 * K.image.hsv_to_rgb(K.concatenate([hue, saturation, hsv[..., 2:3]], axis=-1),
                                            data_format="channels_last"))
    gray = K.all(K.reshape((x[..., 0] == x[..., 1]) & (x[..., 1] == x[..., 2]), (K.shape(x)[0], -1)), axis=1)
    return select_rows(gray, x, rgb)


def _cutout(x, param, seed):
    """One grey (128) square of side ``v`` x the height, centred uniformly over the image."""
    n = K.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    side = param * height
    cy, cx = _uniform(n, seed) * height, _uniform(n, seed) * width
    y1, x1 = K.round(cy - side / 2.0), K.round(cx - side / 2.0)
    y2, x2 = y1 + K.round(side), x1 + K.round(side)
    ys = K.arange(height, dtype="float32")[None, :, None, None]
    xs = K.arange(width, dtype="float32")[None, None, :, None]
    inside = (ys >= _img(y1)) & (ys < _img(y2)) & (xs >= _img(x1)) & (xs < _img(x2))
    return _mix(_float(inside), 128.0, x)


def _identity(x, param, seed):
    return x


# fmt: off
#: The twins, keyed by the names of `keras_augtune.ops.OPS`.
TWINS: dict[str, Twin] = {
    "identity":        Twin("image", _identity, "exact"),
    "crop":            Twin("affine", _crop, "approximate", "bilinear resize where imgaug's is cubic"),
    "rotate":          Twin("affine", _rotate, "exact"),
    "shear":           Twin("affine", _shear, "exact"),
    "shear-x":         Twin("affine", _shear_x, "exact"),
    "shear-y":         Twin("affine", _shear_y, "exact"),
    "translate-x":     Twin("affine", _translate_x, "exact"),
    "translate-y":     Twin("affine", _translate_y, "exact"),
    "gaussian-blur":   Twin("image", _gaussian_blur, "approximate", "kernel of radius 3 sigma (cv2 sizes it its way)"),
    "sharpen":         Twin("image", _blend_kernel(_SHARPEN), "exact"),
    "emboss":          Twin("image", _blend_kernel(_EMBOSS), "exact"),
    "additive-gaussian-noise": Twin("image", _noise, "exact"),
    "dropout":         Twin("image", _dropout, "exact"),
    "coarse-dropout":  Twin("image", _coarse_dropout, "approximate", "cell grid sized as imgaug's, its upsampling not"),
    "coarse-salt-pepper": Twin("image", _coarse_salt_pepper, "approximate", "cell grid sized as imgaug's, its upsampling not"),
    "gamma-contrast":  Twin("image", _gamma, "exact"),
    "brighten":        Twin("image", _brighten, "exact"),
    "invert":          Twin("image", _invert, "exact"),
    "horizontal-flip": Twin("image", _flip(2), "exact"),
    "vertical-flip":   Twin("image", _flip(1), "exact"),
    "auto-contrast":   Twin("image", _auto_contrast, "exact"),
    "equalize":        Twin("image", _equalize, "exact"),
    "solarize":        Twin("image", _solarize, "exact"),
    "posterize":       Twin("image", _posterize, "exact"),
    "contrast":        Twin("image", _enhance(_mean_luma), "exact"),  # PIL's formula, checked pixel for pixel
    "color":           Twin("image", _color, "exact"),
    "brightness":      Twin("image", _enhance(lambda x: K.zeros_like(x)), "exact"),
    "sharpness":       Twin("image", _enhance(_smooth), "exact"),
    "add-to-hue-and-saturation": Twin("image", _hue_saturation, "approximate",
                                      "Keras's float HSV rounded to OpenCV's 8-bit steps, not OpenCV's own"),
    "cutout":          Twin("image", _cutout, "approximate", "square placed as imgaug's, rounding may differ by a pixel"),
}
# fmt: on

#: The ops of the table without a Keras twin, and why (a policy using them runs on the imgaug engine).
NO_TWIN: dict[str, str] = {
    "fog": "procedural noise from imgaug's cloud layer generator, not reproducible in keras.ops",
    "clouds": "procedural noise from imgaug's cloud layer generator, not reproducible in keras.ops",
}
