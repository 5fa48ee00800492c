"""The imgaug engine: a `Policy` run as compiled imgaug augmenters on NumPy batches, tf.data maps, worker processes.

[`Policy`][keras_augtune.policy.Policy] is the value (sub-policies and their JSON);
this module executes it on the default engine (`keras_augtune.engines`; the other one,
``"keras"``, is `keras_augtune.keras_engine`). ``Policy.augment``, ``Policy.tf_map`` and the
[`PolicyAugmentation`][keras_augtune.PolicyAugmentation] layer all come here on this engine.

A policy compiles to one imgaug augmenter
(``OneOf([Sequential([Sometimes(p, op), ...]), ...])``): for every image one
sub-policy is drawn and each of its ops fires with its own probability.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from keras_augtune import images as image_utils
from keras_augtune.checks import check_int
from keras_augtune.ops import build_augmenter, iaa
from keras_augtune.seeds import derive_call_seed, derive_seed

if TYPE_CHECKING:
    from keras_augtune.policy import Policy

# One imgaug call at a time from tf.data's threads. imgaug is Python-bound (it holds the
# GIL nearly throughout), so parallel map calls cannot overlap anyway; left to fight over
# the GIL they ran slower than one call at a time (measured: benchmarks/throughput.py).
# Waiting on this lock releases the GIL, so TensorFlow's own work (batching, prefetching,
# the training step) still runs in parallel with the augmentation.
_TF_MAP_LOCK = threading.Lock()

# Compiled augmenters not in use, per policy, reused across calls. A pool rather than a
# threading.local: tf.data runs tf.numpy_function in TensorFlow's own threads, whose
# Python thread state (and every threading.local with it) is dropped after each call,
# so a thread-local augmenter was rebuilt on every batch.
_IDLE: "weakref.WeakKeyDictionary[Policy, list[iaa.Augmenter]]" = weakref.WeakKeyDictionary()
_IDLE_LOCK = threading.Lock()


def to_imgaug(policy: "Policy") -> iaa.Augmenter:
    """``policy`` as one imgaug augmenter (expects uint8 RGB images)."""
    branches = [
        iaa.Sequential([iaa.Sometimes(s.probability, build_augmenter(s.op, s.magnitude)) for s in sub])
        for sub in policy.sub_policies
    ]
    return branches[0] if len(branches) == 1 else iaa.OneOf(branches)


def _idle(policy: "Policy") -> list:
    with _IDLE_LOCK:
        return _IDLE.setdefault(policy, [])


def _take_augmenter(policy: "Policy") -> iaa.Augmenter:
    """An idle compiled augmenter, or a new randomly seeded one; give it back when done."""
    try:
        return _idle(policy).pop()  # list.pop/append are atomic: thread-safe
    except IndexError:
        aug = to_imgaug(policy)
        aug.seed_(int(np.random.SeedSequence().generate_state(1)[0]))
        return aug


def augment(policy: "Policy", images: Any, seed: int | None = None,
            value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Augment a batch with ``policy``: see [`Policy.augment`][keras_augtune.Policy.augment]."""
    batch = image_utils.check_images(images, value_range=value_range)
    if len(batch.array) == 0:
        return batch.array.copy()
    before = batch.to_uint8(color=policy.needs_color)
    aug = _take_augmenter(policy)
    try:
        if seed is not None:
            aug.seed_(derive_seed(seed))
        out = aug.augment_images(before)
    finally:
        _idle(policy).append(aug)
    return batch.from_uint8(out, before=before)


def numpy_function(fn: Callable[[np.ndarray], np.ndarray], tensor: Any, name: str) -> Any:
    """``fn`` on ``tensor``'s NumPy value inside a TensorFlow graph; same dtype and static shape."""
    import tensorflow as tf

    out = tf.numpy_function(fn, [tensor], Tout=tensor.dtype, stateful=True, name=name)
    out.set_shape(tensor.shape)
    return out


def tf_map(policy: "Policy", batched: bool | None = None, seed: int | None = None,
           value_range: tuple[float, float] | None = None, num_workers: int = 0, image_key: str = "image"):
    """A ``tf.data`` map function: see [`Policy.tf_map`][keras_augtune.Policy.tf_map]."""
    import tensorflow as tf

    num_workers = check_int("num_workers", num_workers, minimum=0)
    if not isinstance(image_key, str):
        raise TypeError(f"image_key must be the name of the image feature (a str), got {type(image_key).__name__}.")
    calls = itertools.count()
    pool = _worker_pool(num_workers) if num_workers else None

    def augment_array(images: np.ndarray) -> np.ndarray:
        call_seed = derive_call_seed(seed, next(calls))
        single = image_utils.is_single_image(images, batched)
        batch = images[None] if single else images
        if pool is not None:
            out = pool.submit(_augment_in_worker, policy, batch, call_seed, value_range).result()
        else:
            with _TF_MAP_LOCK:
                out = augment(policy, batch, seed=call_seed, value_range=value_range)
        return out[0] if single else out

    def augment_tensor(image):
        return numpy_function(augment_array, image, name="keras_augtune_policy")

    @tf.autograph.experimental.do_not_convert  # plain Python, nothing for autograph to convert
    def map_fn(first, *rest):
        # an image; (image, label, ...); a dict of features; or (dict of features, label, ...)
        if isinstance(first, dict):
            first = {**first, image_key: augment_tensor(_feature(first, image_key))}
        else:
            first = augment_tensor(first)
        return (first, *rest) if rest else first

    return map_fn


def _feature(features: dict, key: str) -> Any:
    """``features[key]``, or a ``KeyError`` naming the keys there are (and the closest one)."""
    if key not in features:
        import difflib

        close = difflib.get_close_matches(key, [str(k) for k in features], n=1, cutoff=0.5)
        hint = f" Did you mean image_key={close[0]!r}?" if close else " Pass image_key= naming the image feature."
        raise KeyError(f"The dataset's elements are dicts without the image feature {key!r} (they have "
                       f"{', '.join(repr(k) for k in features)}).{hint}")
    return features[key]


_POOLS: dict[int, Any] = {}


def _worker_pool(num_workers: int):
    """A process pool shared by every ``tf_map(num_workers=N)`` of this process (spawned:
    TensorFlow's threads make forking unsafe; the workers import imgaug, not TensorFlow)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = _POOLS.get(num_workers)
    if pool is None:
        pool = _POOLS[num_workers] = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"))
    return pool


_WORKER_POLICIES: dict[Any, "Policy"] = {}


def _augment_in_worker(policy: "Policy", images: np.ndarray, seed: int | None, value_range) -> np.ndarray:
    # keep one Policy (and its compiled augmenters) per distinct policy in each worker
    cached = _WORKER_POLICIES.setdefault(policy.sub_policies, policy)
    return augment(cached, images, seed=seed, value_range=value_range)
