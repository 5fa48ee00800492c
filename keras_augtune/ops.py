"""The augmentation op registry: one table mapping a magnitude in [0, 1] to an imgaug augmenter.

Every op is a row of `OPS`: ``name -> Op(parameter, strength, build)``.
``strength(m)`` turns the magnitude ``m`` into the op's own parameter (degrees,
pixels fraction, factor, ...), ``build(value)`` makes the imgaug augmenter.
The effect grows monotonically with the magnitude, and an op is the identity
exactly where its parameter is 0 ([`is_identity_at()`][keras_augtune.effects.is_identity_at]: magnitude 0 for every op,
and a little above it where the parameter is rounded, e.g. ``posterize`` below 0.125);
the ranges are AutoAugment-like (rotation up to ±30°, shear up to
±17°, translation up to 30 % of the side, ...), which fixes DeepAugment's
mapping bugs (blur sigma up to 25, rotation up to ±180°, an inverted
coarse-dropout range).

Ops that have no natural strength (flips, invert) use the magnitude as the
chance of applying the transform, as DeepAugment did for flips; colour-free
ops with a fixed effect (equalize, auto-contrast, fog, clouds) are blended
with the original image by the magnitude.

The table also records what a policy needs to recognise a no-op: ``color_only`` ops
change hue or saturation only and leave grayscale images (one channel, or three equal
channels) unchanged; ``involution`` names the self-inverse transform an op applies to
every image at magnitude 1 (``invert`` and ``solarize`` invert, the flips flip), so two
of the same in a row cancel. All of this is checked against imgaug on random images in
``tests/test_noop.py``.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from typing import Any, Callable, NamedTuple

from keras_augtune.checks import as_number
from keras_augtune.lazy import lazy_module

# imgaug is imported when the first augmenter is built: naming and checking ops stays instant.
iaa = lazy_module("imgaug.augmenters")
pillike = lazy_module("imgaug.augmenters.pillike")


class Op(NamedTuple):
    """One row of the op registry."""

    parameter: str  # what the magnitude controls, for the docs table
    strength: Callable[[float], Any]  # magnitude in [0, 1] -> the op's parameter (0: identity)
    build: Callable[[Any], iaa.Augmenter]  # parameter -> imgaug augmenter
    color_only: bool = False  # acts on hue/saturation only: grayscale images come back unchanged
    involution: str | None = None  # self-inverse transform applied to every image at magnitude 1


@functools.cache
def _color_images_only_class() -> type:
    """The `ColorImagesOnly` augmenter class (built on imgaug's, so defined on first use)."""

    class ColorImagesOnly(iaa.Sometimes):
        """Apply ``child`` to colour images only; grayscale ones (one channel, or three equal
        channels) pass unchanged. A hue or saturation shift has no hue to act on there: imgaug's
        HSV shift would tint gray pixels red and the channel mean back to grayscale darken them."""

        def __init__(self, child: iaa.Augmenter, seed: Any = None, name: str | None = None):
            super().__init__(1.0, then_list=[child], seed=seed, name=name)

        def _augment_batch_(self, batch, random_state, parents, hooks):
            with batch.propagation_hooks_ctx(self, hooks, parents):
                if batch.images is None:
                    return batch
                indices = [i for i, image in enumerate(batch.images) if _has_color(image)]
                if indices:
                    sub = batch.subselect_rows_by_indices(indices)
                    sub = self.then_list.augment_batch_(sub, parents=parents + [self], hooks=hooks)
                    batch = batch.invert_subselect_rows_by_indices_(indices, sub)
                return batch

    ColorImagesOnly.__qualname__ = "ColorImagesOnly"  # pickled by reference as keras_augtune.ops.ColorImagesOnly
    return ColorImagesOnly


def __getattr__(name: str) -> Any:  # PEP 562: ``ops.ColorImagesOnly`` is built on first access
    if name == "ColorImagesOnly":
        return _color_images_only_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _has_color(image: Any) -> bool:
    return image.ndim == 3 and image.shape[-1] >= 3 and not (
        (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    )


def _sym(limit: float) -> Callable[[float], float]:
    """A symmetric range ``[-limit*m, +limit*m]``, reported by its upper end."""
    return lambda m: round(limit * m, 4)


def _enhance(m: float) -> float:
    """PIL enhance factor deviation from 1 (AutoAugment: 1 ± 0.9)."""
    return round(0.9 * m, 4)


def _blend(augmenter_factory: Callable[[], iaa.Augmenter]) -> Callable[[float], iaa.Augmenter]:
    return lambda alpha: iaa.BlendAlpha(alpha, foreground=augmenter_factory())


def _unless_zero(build: Callable[[Any], iaa.Augmenter]) -> Callable[[Any], iaa.Augmenter]:
    """imgaug rejects a zero size/probability range in a few augmenters: 0 means identity."""
    return lambda value: iaa.Identity() if not value else build(value)


# fmt: off
#: The registry. Order matters only for display; names are kebab-case.
OPS: dict[str, Op] = {
    # -- DeepAugment's twenty types ------------------------------------------------------
    "crop":            Op("max crop per side (fraction)", _sym(0.25),
                          _unless_zero(lambda v: iaa.Crop(percent=(0.0, v), keep_size=True))),
    "gaussian-blur":   Op("max sigma (px)", _sym(2.0),
                          lambda v: iaa.GaussianBlur(sigma=(0.0, v))),
    "rotate":          Op("max |angle| (deg)", _sym(30.0),
                          lambda v: iaa.Rotate((-v, v))),
    "shear":           Op("max |shear| x and y (deg)", _sym(17.0),
                          lambda v: iaa.Affine(shear={"x": (-v, v), "y": (-v, v)})),
    "translate-x":     Op("max |shift| (fraction of width)", _sym(0.3),
                          lambda v: iaa.TranslateX(percent=(-v, v))),
    "translate-y":     Op("max |shift| (fraction of height)", _sym(0.3),
                          lambda v: iaa.TranslateY(percent=(-v, v))),
    "sharpen":         Op("max blend alpha", _sym(1.0),
                          lambda v: iaa.Sharpen(alpha=(0.0, v), lightness=1.0)),
    "emboss":          Op("max blend alpha", _sym(1.0),
                          lambda v: iaa.Emboss(alpha=(0.0, v), strength=1.0)),
    "additive-gaussian-noise": Op("max noise std (of 255)", _sym(25.5),
                          lambda v: iaa.AdditiveGaussianNoise(scale=(0.0, v))),
    "dropout":         Op("max fraction of pixels dropped", _sym(0.2),
                          _unless_zero(lambda v: iaa.Dropout(p=(0.0, v)))),
    "coarse-dropout":  Op("max fraction of area dropped", _sym(0.2),
                          _unless_zero(lambda v: iaa.CoarseDropout(p=(0.0, v), size_percent=(0.1, 0.3)))),
    "gamma-contrast":  Op("max |log2 gamma|", _sym(1.0),
                          lambda v: iaa.GammaContrast(gamma=(2.0 ** -v, 2.0 ** v))),
    "brighten":        Op("max |added value| (of 255)", lambda m: int(round(64.0 * m)),
                          lambda v: iaa.Add((-v, v))),
    "invert":          Op("chance of inverting", _sym(1.0),
                          lambda v: iaa.Invert(v), involution="invert"),
    "fog":             Op("fog blend alpha", _sym(1.0), _blend(lambda: iaa.Fog())),
    "clouds":          Op("clouds blend alpha", _sym(1.0), _blend(lambda: iaa.Clouds())),
    "add-to-hue-and-saturation": Op("max |hue/sat shift| (of 255)", lambda m: int(round(45.0 * m)),
                          _unless_zero(lambda v: _color_images_only_class()(iaa.AddToHueAndSaturation((-v, v)))),
                          color_only=True),
    "coarse-salt-pepper": Op("max fraction of area replaced", _sym(0.2),
                          _unless_zero(lambda v: iaa.CoarseSaltAndPepper(p=(0.0, v), size_percent=(0.1, 0.3)))),
    "horizontal-flip": Op("chance of flipping", _sym(1.0), lambda v: iaa.Fliplr(v), involution="flip-x"),
    "vertical-flip":   Op("chance of flipping", _sym(1.0), lambda v: iaa.Flipud(v), involution="flip-y"),
    # -- the AutoAugment / RandAugment set -----------------------------------------------
    "identity":        Op("(none)", lambda m: None, lambda v: iaa.Identity()),
    "auto-contrast":   Op("auto-contrast blend alpha", _sym(1.0),
                          _blend(lambda: pillike.Autocontrast(cutoff=0))),
    "equalize":        Op("equalize blend alpha", _sym(1.0), _blend(lambda: pillike.Equalize())),
    "solarize":        Op("threshold lowered from 256 by", lambda m: int(round(256 * m)),
                          lambda v: iaa.Solarize(p=1.0, threshold=256 - v), involution="invert"),
    "posterize":       Op("bits removed (of 8)", lambda m: int(round(4 * m)),
                          lambda v: pillike.Posterize(nb_bits=8 - v)),
    "contrast":        Op("max |factor - 1|", _enhance,
                          lambda v: pillike.EnhanceContrast(factor=(1 - v, 1 + v))),
    "color":           Op("max |saturation factor - 1|", _enhance,
                          lambda v: pillike.EnhanceColor(factor=(1 - v, 1 + v)), color_only=True),
    "brightness":      Op("max |brightness factor - 1|", _enhance,
                          lambda v: pillike.EnhanceBrightness(factor=(1 - v, 1 + v))),
    "sharpness":       Op("max |sharpness factor - 1|", _enhance,
                          lambda v: pillike.EnhanceSharpness(factor=(1 - v, 1 + v))),
    "cutout":          Op("square side (fraction of image)", _sym(0.4),
                          _unless_zero(lambda v: iaa.Cutout(nb_iterations=1, size=v, squared=True,
                                                            fill_mode="constant", cval=128))),
    "shear-x":         Op("max |shear| (deg)", _sym(17.0), lambda v: iaa.ShearX((-v, v))),
    "shear-y":         Op("max |shear| (deg)", _sym(17.0), lambda v: iaa.ShearY((-v, v))),
}
# fmt: on

#: Canonical op names, in table order.
OP_NAMES: tuple[str, ...] = tuple(OPS)

#: DeepAugment's twenty augmentation types (its ``AUG_TYPES``), the predecessor's space.
DEEPAUGMENT_OPS: tuple[str, ...] = OP_NAMES[:20]

#: The RandAugment / TrivialAugment op set (as in torchvision's ``autoaugment.py``).
RANDAUGMENT_OPS: tuple[str, ...] = (
    "identity", "auto-contrast", "equalize", "rotate", "solarize", "color", "posterize",
    "contrast", "brightness", "sharpness", "shear-x", "shear-y", "translate-x", "translate-y",
)

#: Extra spellings accepted for op names (beyond case, spaces, '_' and '-' differences).
ALIASES: dict[str, str] = {
    "histogram-equalize": "equalize",
    "histogramequalize": "equalize",
    "autocontrast": "auto-contrast",
    "fliplr": "horizontal-flip",
    "flipud": "vertical-flip",
    "saturation": "color",
    "gaussian-noise": "additive-gaussian-noise",
    "salt-and-pepper": "coarse-salt-pepper",
    "coarse-salt-and-pepper": "coarse-salt-pepper",
    "translate": "translate-x",
    "noop": "identity",
    "none": "identity",
}

#: Ops that need three channels (grayscale images are expanded to RGB for them).
COLOR_OPS: frozenset[str] = frozenset({"add-to-hue-and-saturation"})

#: Ops that act on colour only: the identity on grayscale images (``Op.color_only``).
COLOR_ONLY_OPS: frozenset[str] = frozenset(name for name, op in OPS.items() if op.color_only)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_LOOKUP: dict[str, str] = {_key(n): n for n in OP_NAMES}
_LOOKUP.update({_key(alias): target for alias, target in ALIASES.items()})


def resolve_op(name: Any) -> str:
    """Return the canonical name of an op, accepting aliases and DeepAugment spellings.

    ``resolve_op("GaussianBlur") == "gaussian-blur"``; an unknown name raises a
    ``ValueError`` that lists the closest known names.
    """
    if not isinstance(name, str):
        raise TypeError(f"An op name must be a string, got {type(name).__name__}: {name!r}.")
    found = _LOOKUP.get(_key(name))
    if found is not None:
        return found
    close = difflib.get_close_matches(name.lower(), list(OP_NAMES) + list(ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown augmentation op {name!r}.{hint} Known ops: {', '.join(OP_NAMES)}."
    )


def resolve_op_list(ops: Any, default: Any = None) -> list[str]:
    """Canonical, de-duplicated names of a list of ops; ``None`` gives ``default`` (all ops)."""
    if ops is None:
        return list(OP_NAMES if default is None else default)
    if isinstance(ops, str):
        raise TypeError(f"ops must be a list of op names, got the string {ops!r}; use [{ops!r}].")
    names = list(dict.fromkeys(resolve_op(o) for o in ops))
    if not names:
        raise ValueError("ops must name at least one op (or be None for the default set).")
    return names


def op_strength(name: str, magnitude: float) -> Any:
    """The op's own parameter at ``magnitude`` (what the docs table shows)."""
    return OPS[resolve_op(name)].strength(float(magnitude))


def build_augmenter(name: str, magnitude: float) -> iaa.Augmenter:
    """The imgaug augmenter for op ``name`` at ``magnitude`` in [0, 1]."""
    magnitude = check_unit("magnitude", magnitude)
    op = OPS[resolve_op(name)]
    return op.build(op.strength(magnitude))


def check_unit(what: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1] or raise a clear error naming ``what``."""
    number = as_number(value, f"The {what} must be a number in [0, 1], got {value!r}.")
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"The {what} must be in [0, 1], got {value!r}.")
    return number


def is_identity_at(name: str, magnitude: float, channels: int = 3) -> bool:
    """Whether op ``name`` at ``magnitude`` leaves every image with ``channels`` channels unchanged.

    True for ``identity``, wherever the op's parameter (``op_strength``) is 0, and for
    colour-only ops on grayscale (``channels == 1``). Exact, not approximate: an op whose
    parameter is tiny but not 0 (e.g. ``rotate`` at 1e-6) counts as changing images.
    """
    name = resolve_op(name)
    op, magnitude = OPS[name], check_unit("magnitude", magnitude)
    if name == "identity" or (op.color_only and _check_channels(channels) == 1):
        return True
    return not op.strength(magnitude)


def involution_at(name: str, magnitude: float) -> str | None:
    """The self-inverse transform op ``name`` applies to *every* image at ``magnitude``, or None.

    ``"invert"`` for ``invert`` and ``solarize`` at magnitude 1, ``"flip-x"``/``"flip-y"`` for
    the flips at magnitude 1: two of the same transform in a row cancel out. (The three
    transforms also commute with each other.)
    """
    op = OPS[resolve_op(name)]
    return op.involution if check_unit("magnitude", magnitude) == 1.0 else None


def identity_limit(name: str) -> float:
    """The largest magnitude at which op ``name`` is the identity (on colour images), to 1e-6.

    0 for most ops; more where the parameter is rounded (``posterize``: 0.125); 1 for ``identity``.
    """
    name = resolve_op(name)
    if is_identity_at(name, 1.0):
        return 1.0
    low, high = 0.0, 1.0  # is_identity_at(low) holds (every op is the identity at 0), high fails
    while high - low > 1e-7:
        middle = (low + high) / 2
        low, high = (middle, high) if is_identity_at(name, middle) else (low, middle)
    return math.floor(low * 1e6) / 1e6


def ops_for_channels(ops: Any, channels: int) -> list[str]:
    """The ops (names or ``None`` for all) that can change images with ``channels`` channels:
    colour-only ops are left out for grayscale (1 channel). ValueError when none is left."""
    names = resolve_op_list(ops)
    if _check_channels(channels) == 3:
        return names
    kept = [name for name in names if not OPS[name].color_only]
    if not kept:
        raise ValueError(
            f"Every op of {', '.join(names)} acts on colour only and does nothing on grayscale images; "
            "choose ops that change grayscale images."
        )
    return kept


def _check_channels(channels: Any) -> int:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")
    return int(channels)
