"""The Keras engine: a `Policy` run with ``keras.ops`` inside the graph, per image, on any Keras backend.

It mirrors the imgaug engine (`keras_augtune.execution`), which compiles a policy to
``OneOf([Sequential([Sometimes(p, op), ...]), ...])``: for every image one sub-policy is drawn
uniformly, and each of its steps fires with its own probability, at its own magnitude. Here the
policy becomes three small tables indexed by (sub-policy, step): the op, the probability and the
op's parameter (``Op.strength`` of the magnitude, from the one op table in `keras_augtune.ops`).
Each image draws its sub-policy; then, step position by step position, every op present at that
position runs once, with each image's own parameter (`keras_augtune.keras_twins`), on the images
whose sub-policy has that op there and whose probability fired: gathered and put back in order
on TensorFlow and torch, or on the whole batch under a mask on JAX (``jax.jit`` needs static
shapes). The geometric ops of a position share one batched per-image affine warp. All randomness comes from a
``keras.random.SeedGenerator``, so the same code runs eagerly, in ``tf.function`` / ``jax.jit``
compiled steps, and on an accelerator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from keras_augtune import images as image_utils
from keras_augtune.ops import OPS

if TYPE_CHECKING:
    from keras_augtune.policy import Policy


class PolicyTables(NamedTuple):
    """A policy as (sub-policy, step) tables; sub-policies shorter than the longest are padded
    with steps that never fire."""

    op_ids: np.ndarray  # (S, L) int32: index into `ops`
    probabilities: np.ndarray  # (S, L) float32
    parameters: np.ndarray  # (S, L) float32: the op's parameter (Op.strength of the magnitude)
    ops: tuple[str, ...]  # the distinct ops, index = op id
    per_step: tuple[tuple[str, ...], ...]  # for each step position, the ops that can fire there


def supported_ops() -> tuple[str, ...]:
    """The ops of the table that have a Keras twin, in table order."""
    from keras_augtune.keras_twins import TWINS

    return tuple(name for name in OPS if name in TWINS)


def check_policy(policy: "Policy") -> None:
    """A one-line ``ValueError`` when ``policy`` uses an op without a Keras twin."""
    from keras_augtune.keras_twins import NO_TWIN

    missing = [op for op in policy.ops if op in NO_TWIN]
    if missing:
        reasons = "; ".join(f"{op!r}: {NO_TWIN[op]}" for op in missing)
        raise ValueError(f"The Keras engine has no twin of {', '.join(map(repr, missing))} ({reasons}); "
                         "run this policy with engine='imgaug', or leave these ops out.")


def compile_policy(policy: "Policy") -> PolicyTables:
    """The tables of ``policy`` (refused with `check_policy` when an op has no twin)."""
    check_policy(policy)
    ops = tuple(policy.ops)
    length = max(len(sub) for sub in policy.sub_policies)
    shape = (len(policy.sub_policies), length)
    op_ids, probabilities, parameters = np.zeros(shape, np.int32), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    per_step: list[dict[str, None]] = [{} for _ in range(length)]
    for s, sub in enumerate(policy.sub_policies):
        for j, step in enumerate(sub):
            op_ids[s, j] = ops.index(step.op)
            probabilities[s, j] = step.probability
            parameters[s, j] = float(OPS[step.op].strength(step.magnitude) or 0.0)
            if step.op != "identity" and step.probability > 0.0:
                per_step[j][step.op] = None
    return PolicyTables(op_ids, probabilities, parameters, ops, tuple(tuple(step) for step in per_step))


def apply_tables(images: Any, tables: PolicyTables, seed: Any, subsets: bool | None = None) -> Any:
    """Augment a float32 batch ``(N, H, W, C)`` on the 0-255 scale (C = 1 or 3) with a compiled policy.

    Returns the batch and, per image, whether any step fired on it. ``seed``: a
    ``keras.random.SeedGenerator`` (or anything ``keras.random`` takes as a seed). ``subsets``: run
    each op on the images that drew it only (gathered, then put back in order) rather than on the whole
    batch under a mask; default: on every backend but JAX, whose compiled steps need static shapes.
    """
    import keras
    from keras import ops as K

    from keras_augtune.keras_twins import TWINS, select_rows, warp

    if subsets is None:
        subsets = keras.backend.backend() != "jax"
    x = K.cast(images, "float32")
    n = K.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    ids = {name: i for i, name in enumerate(tables.ops)}

    def run_step(x, groups):
        """Each ``transform(images, index)`` of ``groups`` on the images it was chosen for (groups are
        disjoint: one op per image and step); ``index`` selects those images' per-image values."""
        if not subsets:  # the whole batch, kept where chosen: static shapes, what jax.jit needs
            for chosen, transform in groups:
                x = select_rows(chosen, transform(x, None), x)
            return x
        # the chosen images only (a TrivialAugment batch does 1 op's work per image, not 14), put
        # back in order by one gather per step rather than one full-batch scatter per op
        parts, order = [], []
        for chosen, transform in groups:
            index = K.nonzero(chosen)[0]
            picked = K.take(x, index, axis=0)
            # skipped when no image drew the op (reductions such as a max refuse an empty batch)
            parts.append(K.cond(K.any(chosen), lambda t=transform, p=picked, i=index: t(p, i), lambda p=picked: p))
            order.append(index)
        rest = K.nonzero(~K.any(K.stack([chosen for chosen, _ in groups], 0), axis=0))[0]
        parts.append(K.take(x, rest, axis=0))
        order.append(rest)
        return K.take(K.concatenate(parts, axis=0), K.argsort(K.concatenate(order, axis=0)), axis=0)

    def pick(values, index):
        return values if index is None else K.take(values, index, axis=0)

    sub = keras.random.randint((n,), 0, len(tables.op_ids), seed=seed)  # one sub-policy per image
    touched = K.zeros((n,), "bool")
    for j, names in enumerate(tables.per_step):
        if not names:
            continue
        op_j = K.take(K.convert_to_tensor(tables.op_ids[:, j]), sub)
        fired = keras.random.uniform((n,), seed=seed) < K.take(K.convert_to_tensor(tables.probabilities[:, j]), sub)
        param = K.take(K.convert_to_tensor(tables.parameters[:, j]), sub)
        groups = []
        geometric = [name for name in names if TWINS[name].kind == "affine"]
        if geometric:  # one warp for every geometric op of this step: each image its own matrix
            matrices = K.broadcast_to(K.eye(3)[None], (n, 3, 3))
            for name in geometric:
                chosen = fired & (op_j == ids[name])
                matrices = K.where(chosen[:, None, None], TWINS[name].fn(param, height, width, seed), matrices)
            chosen = fired & K.any(K.stack([op_j == ids[name] for name in geometric], 0), axis=0)
            groups.append((chosen, lambda images, index, m=matrices: warp(images, pick(m, index))))
        for name in names:
            if TWINS[name].kind == "image":
                chosen = fired & (op_j == ids[name])
                groups.append((chosen, lambda images, index, fn=TWINS[name].fn, v=param: fn(images, pick(v, index), seed)))
        x = run_step(x, groups)
        touched = touched | K.any(K.stack([chosen for chosen, _ in groups], 0), axis=0)
    return x, touched


def to_unit_scale(images: Any, value_range: tuple[float, float]) -> Any:
    """Float images in ``value_range`` onto imgaug's 0-255 scale (clipped, as imgaug's uint8)."""
    from keras import ops as K

    low, high = value_range
    x = K.cast(images, "float32")
    if (low, high) != (0.0, 255.0):
        x = (x - low) * (255.0 / (high - low))
    return K.clip(K.round(x), 0.0, 255.0)


def from_unit_scale(images: Any, value_range: tuple[float, float], dtype: Any) -> Any:
    """Inverse of `to_unit_scale`, cast to ``dtype``."""
    from keras import ops as K

    low, high = value_range
    if (low, high) != (0.0, 255.0):
        images = images * ((high - low) / 255.0) + low
    return K.cast(images, dtype)


def apply(policy: "Policy", images: Any, seed: Any, value_range: tuple[float, float],
          tables: PolicyTables | None = None) -> Any:
    """A batch tensor ``(N, H, W)`` / ``(N, H, W, C)`` in ``value_range`` augmented, same shape and dtype."""
    from keras import ops as K

    from keras_augtune.keras_twins import select_rows

    tables = compile_policy(policy) if tables is None else tables
    dtype = images.dtype
    x = images[..., None] if len(images.shape) == 3 else images
    out, touched = apply_tables(to_unit_scale(x, value_range), tables, seed)
    # images no step fired on come back exactly as they came in (no quantisation), as on imgaug
    out = select_rows(touched, from_unit_scale(out, value_range, "float32"), K.cast(x, "float32"))
    out = K.cast(out, dtype)
    return K.squeeze(out, -1) if len(images.shape) == 3 else out


def augment(policy: "Policy", images: Any, seed: int | None = None,
            value_range: tuple[float, float] | None = None) -> np.ndarray:
    """`Policy.augment` on the Keras engine: a NumPy batch in, a NumPy batch of the same shape and dtype out."""
    import keras

    batch = image_utils.check_images(images, value_range=value_range)
    if len(batch.array) == 0:
        return batch.array.copy()
    generator = keras.random.SeedGenerator(seed)
    out = apply(policy, keras.ops.convert_to_tensor(batch.array.astype(np.float32)), generator, batch.value_range)
    out = np.asarray(keras.ops.convert_to_numpy(out))
    if np.issubdtype(batch.array.dtype, np.integer):
        out = np.rint(out)
    return out.astype(batch.array.dtype)
