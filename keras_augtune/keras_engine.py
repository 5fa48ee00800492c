"""The Keras engine: a `Policy` run with ``keras.ops`` inside the graph, per image, on any Keras backend.

It mirrors the imgaug engine (`keras_augtune.execution`), which compiles a policy to
``OneOf([Sequential([Sometimes(p, op), ...]), ...])``: for every image one sub-policy is drawn
uniformly, and each of its steps fires with its own probability, at its own magnitude. Here the
policy becomes three small tables indexed by (sub-policy, step): the op, the probability and the
op's parameter (``Op.strength`` of the magnitude, from the one op table in `keras_augtune.ops`).
Each image draws its sub-policy; then, step position by step position, every op present at that
position runs once on the whole batch with each image's own parameter (`keras_augtune.keras_twins`)
and is kept where that image's sub-policy has that op there and its probability fired. The
geometric ops of a position share one batched per-image affine warp. All randomness comes from a
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


def apply_tables(images: Any, tables: PolicyTables, seed: Any) -> Any:
    """Augment a float32 batch ``(N, H, W, C)`` on the 0-255 scale (C = 1 or 3) with a compiled policy.

    ``seed``: a ``keras.random.SeedGenerator`` (or anything ``keras.random`` takes as a seed).
    """
    import keras
    from keras import ops as K

    from keras_augtune.keras_twins import TWINS, warp

    x = K.cast(images, "float32")
    n = K.shape(x)[0]
    height, width = x.shape[1], x.shape[2]
    ids = {name: i for i, name in enumerate(tables.ops)}
    sub = keras.random.randint((n,), 0, len(tables.op_ids), seed=seed)  # one sub-policy per image
    for j, names in enumerate(tables.per_step):
        if not names:
            continue
        op_j = K.take(K.convert_to_tensor(tables.op_ids[:, j]), sub)
        fired = keras.random.uniform((n,), seed=seed) < K.take(K.convert_to_tensor(tables.probabilities[:, j]), sub)
        param = K.take(K.convert_to_tensor(tables.parameters[:, j]), sub)
        geometric = [name for name in names if TWINS[name].kind == "affine"]
        if geometric:  # one warp for every geometric op of this step: each image its own matrix
            matrices = K.broadcast_to(K.eye(3)[None], (n, 3, 3))
            for name in geometric:
                chosen = fired & (op_j == ids[name])
                matrices = K.where(chosen[:, None, None], TWINS[name].fn(param, height, width, seed), matrices)
            chosen = fired & K.any(K.stack([op_j == ids[name] for name in geometric], 0), axis=0)
            x = K.where(chosen[:, None, None, None], warp(x, matrices), x)
        for name in names:
            if TWINS[name].kind == "image":
                chosen = fired & (op_j == ids[name])
                x = K.where(chosen[:, None, None, None], TWINS[name].fn(x, param, seed), x)
    return x


def to_unit_scale(images: Any, value_range: tuple[float, float]) -> Any:
    """Float images in ``value_range`` onto imgaug's 0-255 scale (clipped, as imgaug's uint8)."""
    from keras import ops as K

    low, high = value_range
    x = K.cast(images, "float32")
    return K.clip(K.round((x - low) * (255.0 / (high - low))), 0.0, 255.0)


def from_unit_scale(images: Any, value_range: tuple[float, float], dtype: Any) -> Any:
    """Inverse of `to_unit_scale`, cast to ``dtype``."""
    from keras import ops as K

    low, high = value_range
    return K.cast(images * ((high - low) / 255.0) + low, dtype)


def apply(policy: "Policy", images: Any, seed: Any, value_range: tuple[float, float],
          tables: PolicyTables | None = None) -> Any:
    """A batch tensor ``(N, H, W)`` / ``(N, H, W, C)`` in ``value_range`` augmented, same shape and dtype."""
    from keras import ops as K

    tables = compile_policy(policy) if tables is None else tables
    dtype = images.dtype
    x = images[..., None] if len(images.shape) == 3 else images
    before = to_unit_scale(x, value_range)
    out = apply_tables(before, tables, seed)
    # images the policy left unchanged come back exactly as they came in (no quantisation), as on imgaug
    unchanged = K.all(K.reshape(K.equal(out, before), (K.shape(out)[0], -1)), axis=1)
    out = K.where(unchanged[:, None, None, None], K.cast(x, "float32"), from_unit_scale(out, value_range, "float32"))
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
