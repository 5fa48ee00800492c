"""`Policy`: an AutoAugment-style augmentation policy and the three ways to apply it.

A policy is a list of sub-policies; each sub-policy is a short sequence of
``(op, probability, magnitude)``. For every image one sub-policy is drawn at
random and each of its ops fires with its own probability (randomness per image,
never per batch). The policy compiles to one imgaug augmenter
(``OneOf([Sequential([Sometimes(p, op), ...]), ...])``).

Apply it with :meth:`Policy.augment` (NumPy), :meth:`Policy.tf_map` (a
``tf.data`` map function) or the Keras layer :class:`keras_augtune.PolicyAugmentation`.
"""

from __future__ import annotations

import itertools
import json
import string
import threading
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import imgaug.augmenters as iaa
import numpy as np

from keras_augtune import images as image_utils
from keras_augtune.ops import (
    COLOR_OPS,
    RANDAUGMENT_OPS,
    build_augmenter,
    check_unit,
    resolve_op,
    resolve_op_list,
)

#: Version of the JSON format written by :meth:`Policy.to_json`.
FORMAT_VERSION = 1
FORMAT_NAME = "keras_augtune.Policy"

# One imgaug call at a time from tf.data's threads. imgaug is Python-bound (it holds the
# GIL nearly throughout), so parallel map calls cannot overlap anyway; left to fight over
# the GIL they ran slower than one call at a time (measured: benchmarks/throughput.py).
# Waiting on this lock releases the GIL, so TensorFlow's own work (batching, prefetching,
# the training step) still runs in parallel with the augmentation.
_TF_MAP_LOCK = threading.Lock()


class PolicyOp(NamedTuple):
    """One step of a sub-policy: apply ``op`` at ``magnitude`` with chance ``probability``."""

    op: str
    probability: float
    magnitude: float


class Policy:
    """An augmentation policy: sub-policies of ``(op, probability, magnitude)`` steps.

    ``Policy([[("rotate", 0.8, 0.5), ("invert", 0.2, 0.0)], [("shear", 1.0, 0.3)]])``

    ``metadata`` (a JSON-able dict, e.g. the search reward) travels with the policy
    through JSON but is ignored by equality.
    """

    def __init__(self, sub_policies: Iterable[Iterable[Any]], metadata: Mapping[str, Any] | None = None):
        if isinstance(sub_policies, (str, bytes)) or not isinstance(sub_policies, Iterable):
            raise TypeError(
                "A Policy is a list of sub-policies, each a list of (op, probability, magnitude) "
                f"tuples; got {type(sub_policies).__name__}."
            )
        parsed = []
        for i, sub_policy in enumerate(sub_policies):
            if isinstance(sub_policy, (str, bytes)) or not isinstance(sub_policy, Iterable):
                raise TypeError(
                    f"Sub-policy {i} must be a list of (op, probability, magnitude) tuples, "
                    f"got {sub_policy!r}."
                )
            steps = tuple(_parse_step(step, f"sub-policy {i}, op {j}") for j, step in enumerate(sub_policy))
            if not steps:
                raise ValueError(f"Sub-policy {i} is empty: give it at least one (op, probability, magnitude).")
            parsed.append(steps)
        if not parsed:
            raise ValueError("A Policy needs at least one sub-policy; use Policy.identity() for no augmentation.")
        self.sub_policies: tuple[tuple[PolicyOp, ...], ...] = tuple(parsed)
        self.metadata: dict[str, Any] = dict(metadata or {})
        # Compiled augmenters not in use, reused across calls. A pool rather than a
        # threading.local: tf.data runs tf.numpy_function in TensorFlow's own threads,
        # whose Python thread state (and every threading.local with it) is dropped after
        # each call, so a thread-local augmenter was rebuilt on every batch.
        self._idle_augmenters: list[iaa.Augmenter] = []

    # ------------------------------------------------------------------ factories
    @classmethod
    def identity(cls) -> "Policy":
        """The no-augmentation policy."""
        return cls([[("identity", 1.0, 0.0)]])

    @classmethod
    def rand_augment(cls, num_ops: int = 2, magnitude: float = 0.3, ops: Sequence[str] | None = None) -> "Policy":
        """RandAugment(N, M): ``num_ops`` ops drawn uniformly per image, all at ``magnitude``.

        ``magnitude`` is on this package's [0, 1] scale (RandAugment's M=9 of 30 is 0.3).
        """
        if isinstance(num_ops, bool) or not isinstance(num_ops, (int, np.integer)) or num_ops < 1:
            raise ValueError(f"num_ops must be a positive integer, got {num_ops!r}.")
        magnitude = check_unit("magnitude", magnitude)
        names = resolve_op_list(ops, RANDAUGMENT_OPS)
        subs = [[(op, 1.0, magnitude) for op in combo] for combo in itertools.product(names, repeat=int(num_ops))]
        return cls(subs, metadata={"name": f"RandAugment(N={num_ops}, M={magnitude:g})"})

    @classmethod
    def trivial_augment(cls, ops: Sequence[str] | None = None, num_magnitude_bins: int = 31) -> "Policy":
        """TrivialAugment: one op per image at a magnitude drawn uniformly from the bins."""
        if isinstance(num_magnitude_bins, bool) or not isinstance(num_magnitude_bins, (int, np.integer)) \
                or num_magnitude_bins < 2:
            raise ValueError(f"num_magnitude_bins must be an integer >= 2, got {num_magnitude_bins!r}.")
        names = resolve_op_list(ops, RANDAUGMENT_OPS)
        levels = np.linspace(0.0, 1.0, int(num_magnitude_bins))
        subs = [[(op, 1.0, float(m))] for op in names for m in levels]
        return cls(subs, metadata={"name": "TrivialAugment"})

    # ------------------------------------------------------------------ value semantics
    @property
    def ops(self) -> list[str]:
        """The distinct ops the policy uses, in order of first use."""
        return list(dict.fromkeys(step.op for sub in self.sub_policies for step in sub))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.sub_policies == other.sub_policies

    def __hash__(self) -> int:
        return hash(self.sub_policies)

    def __len__(self) -> int:
        return len(self.sub_policies)

    def __repr__(self) -> str:
        if len(self.sub_policies) > 8:
            name = self.metadata.get("name", "")
            return f"<Policy {name + ' ' if name else ''}with {len(self.sub_policies)} sub-policies>"
        lines = [
            "    [" + ", ".join(f"({s.op!r}, {s.probability:.3g}, {s.magnitude:.3g})" for s in sub) + "],"
            for sub in self.sub_policies
        ]
        return "Policy([\n" + "\n".join(lines) + "\n])"

    # ------------------------------------------------------------------ transforms
    def scaled(self, factor: float) -> "Policy":
        """A copy with every magnitude multiplied by ``factor`` and clipped to [0, 1].

        Probabilities and ops are unchanged; ``metadata["magnitude_scale"]`` records the
        factor (multiplied into any earlier scale). Policies searched on a small child tend to
        under-regularise a larger or longer-trained final model (RandAugment's finding):
        ``policy.scaled(1.5)`` is the stronger version of the same policy, ``scaled(0)``
        keeps only the ops that do something at magnitude 0 (flips, equalize, ...).
        """
        if isinstance(factor, (bool, str)) or factor is None:
            raise TypeError(f"The scale factor must be a finite number >= 0, got {factor!r}.")
        try:
            number = float(factor)
        except (TypeError, ValueError):
            raise TypeError(f"The scale factor must be a finite number >= 0, got {factor!r}.") from None
        if not (np.isfinite(number) and number >= 0.0):
            raise ValueError(f"The scale factor must be a finite number >= 0, got {factor!r}.")
        subs = [[(s.op, s.probability, min(1.0, s.magnitude * number)) for s in sub] for sub in self.sub_policies]
        metadata = dict(self.metadata)
        metadata["magnitude_scale"] = float(metadata.get("magnitude_scale", 1.0)) * number
        return Policy(subs, metadata=metadata)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the format of :meth:`to_json`)."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "sub_policies": [
                [{"op": s.op, "probability": s.probability, "magnitude": s.magnitude} for s in sub]
                for sub in self.sub_policies
            ],
            "metadata": self.metadata,
        }

    def to_json(self, path: str | None = None, indent: int | None = 2) -> str:
        """The policy as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Any) -> "Policy":
        """Inverse of :meth:`to_dict`; a malformed dict raises a ``ValueError`` naming the field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"A policy must be a JSON object, got {type(data).__name__}.")
        fmt = data.get("format", FORMAT_NAME)
        if fmt != FORMAT_NAME:
            raise ValueError(f"Field 'format' must be {FORMAT_NAME!r}, got {fmt!r}.")
        version = data.get("version", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"Field 'version' must be an integer, got {version!r}.")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"This policy was written by a newer keras_augtune (format version {version}); "
                f"this version reads format {FORMAT_VERSION}. Upgrade keras_augtune to read it."
            )
        if "sub_policies" not in data:
            raise ValueError("Field 'sub_policies' is missing: expected a list of lists of "
                             "{'op', 'probability', 'magnitude'} objects.")
        subs = data["sub_policies"]
        if not isinstance(subs, list):
            raise ValueError(f"Field 'sub_policies' must be a list, got {type(subs).__name__}.")
        steps = []
        for i, sub in enumerate(subs):
            if not isinstance(sub, list):
                raise ValueError(f"Field 'sub_policies[{i}]' must be a list, got {type(sub).__name__}.")
            row = []
            for j, step in enumerate(sub):
                where = f"sub_policies[{i}][{j}]"
                if not isinstance(step, Mapping):
                    raise ValueError(f"Field '{where}' must be an object with 'op', 'probability', 'magnitude'.")
                missing = [k for k in ("op", "probability", "magnitude") if k not in step]
                if missing:
                    raise ValueError(f"Field '{where}' is missing {', '.join(repr(k) for k in missing)}.")
                row.append((step["op"], step["probability"], step["magnitude"]))
            steps.append(row)
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ValueError(f"Field 'metadata' must be an object, got {type(metadata).__name__}.")
        return cls(steps, metadata=metadata)

    @classmethod
    def from_json(cls, text_or_path: str) -> "Policy":
        """Read a policy from JSON text or from a ``.json`` file path."""
        if not isinstance(text_or_path, str):
            raise TypeError(f"from_json takes JSON text or a file path, got {type(text_or_path).__name__}.")
        text = text_or_path
        if not text.lstrip().startswith(("{", "[")):
            try:
                with open(text_or_path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as exc:
                raise ValueError(f"Not JSON text and not a readable file: {text_or_path!r} ({exc}).") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Malformed policy JSON: {exc}.") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------------ DeepAugment formats
    def to_deepaugment_list(self) -> list[Any]:
        """DeepAugment's flat list ``[A_aug1_type, A_aug1_magnitude, A_aug2_type, ...]``.

        DeepAugment had no per-op probability (all ops fire); probabilities are dropped.
        """
        return [value for sub in self.sub_policies for step in sub for value in (step.op, step.magnitude)]

    def to_deepaugment_row(self) -> dict[str, Any]:
        """DeepAugment's top-policies row: ``{"A_aug1_type": ..., "A_aug1_magnitude": ..., ...}``.

        Probabilities other than 1 are kept in extra ``*_probability`` columns.
        """
        if len(self.sub_policies) > len(string.ascii_uppercase):
            raise ValueError("DeepAugment's row format has at most 26 sub-policies (A-Z).")
        row: dict[str, Any] = {}
        for letter, sub in zip(string.ascii_uppercase, self.sub_policies):
            for j, step in enumerate(sub, start=1):
                row[f"{letter}_aug{j}_type"] = step.op
                row[f"{letter}_aug{j}_magnitude"] = step.magnitude
                if step.probability != 1.0:
                    row[f"{letter}_aug{j}_probability"] = step.probability
        return row

    @classmethod
    def from_deepaugment(cls, flat_or_row: Sequence[Any] | Mapping[str, Any], ops_per_sub_policy: int = 2) -> "Policy":
        """Build a policy from DeepAugment's flat list or its top-policies row (dict/Series)."""
        if isinstance(flat_or_row, Mapping) or hasattr(flat_or_row, "to_dict"):
            row = dict(flat_or_row.to_dict() if hasattr(flat_or_row, "to_dict") else flat_or_row)
            subs = []
            for letter in string.ascii_uppercase:
                steps, j = [], 1
                while f"{letter}_aug{j}_type" in row:
                    mag_key = f"{letter}_aug{j}_magnitude"
                    if mag_key not in row:
                        raise ValueError(f"DeepAugment row has {letter}_aug{j}_type but no {mag_key!r}.")
                    steps.append((row[f"{letter}_aug{j}_type"], row.get(f"{letter}_aug{j}_probability", 1.0),
                                  row[mag_key]))
                    j += 1
                if not steps:
                    break
                subs.append(steps)
            if not subs:
                raise ValueError("Not a DeepAugment policy row: no 'A_aug1_type' column.")
            return cls(subs)
        flat = list(flat_or_row)
        width = 2 * ops_per_sub_policy
        if not flat or len(flat) % width:
            raise ValueError(
                f"DeepAugment's flat policy list alternates op type and magnitude, {ops_per_sub_policy} ops "
                f"per sub-policy: its length must be a positive multiple of {width}, got {len(flat)}."
            )
        pairs = [(flat[k], 1.0, flat[k + 1]) for k in range(0, len(flat), 2)]
        return cls([pairs[k:k + ops_per_sub_policy] for k in range(0, len(pairs), ops_per_sub_policy)])

    # ------------------------------------------------------------------ applying
    def to_imgaug(self) -> iaa.Augmenter:
        """The policy as one imgaug augmenter (expects uint8 RGB images)."""
        branches = [
            iaa.Sequential([iaa.Sometimes(s.probability, build_augmenter(s.op, s.magnitude)) for s in sub])
            for sub in self.sub_policies
        ]
        return branches[0] if len(branches) == 1 else iaa.OneOf(branches)

    def _take_augmenter(self) -> iaa.Augmenter:
        """An idle compiled augmenter, or a new randomly seeded one; give it back when done."""
        try:
            return self._idle_augmenters.pop()  # list.pop/append are atomic: thread-safe
        except IndexError:
            aug = self.to_imgaug()
            aug.seed_(int(np.random.SeedSequence().generate_state(1)[0]))
            return aug

    @property
    def is_identity(self) -> bool:
        """True when the policy never changes an image (only identity ops or zero probabilities)."""
        return all(s.op == "identity" or s.probability == 0.0 for sub in self.sub_policies for s in sub)

    @property
    def needs_color(self) -> bool:
        return any(op in COLOR_OPS for op in self.ops)

    def augment(self, images: Any, seed: int | None = None, value_range: tuple[float, float] | None = None) -> np.ndarray:
        """Augment a batch ``(N,H,W)``, ``(N,H,W,1)`` or ``(N,H,W,3)`` of uint8 or float images.

        Returns an array of the same shape and dtype. ``value_range`` is the range of
        float pixels (default (0, 255) for uint8, (0, 1) for floats). The same
        ``seed`` gives the same output.
        """
        batch = image_utils.check_images(images, value_range=value_range)
        if len(batch.array) == 0:
            return batch.array.copy()
        before = batch.to_uint8(color=self.needs_color)
        aug = self._take_augmenter()
        try:
            if seed is not None:
                aug.seed_(_seed_int(seed))
            out = aug.augment_images(before)
        finally:
            self._idle_augmenters.append(aug)
        return batch.from_uint8(out, before=before)

    def tf_map(self, batched: bool | None = None, seed: int | None = None,
               value_range: tuple[float, float] | None = None, num_workers: int = 0):
        """A ``tf.data`` map function: ``ds.map(policy.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)``.

        Elements may be an image or a tuple ``(image, label, ...)``; only the image
        is augmented. ``batched=None`` decides from the rank: 4 is a batch; 3 is one
        image when the last axis is 1 or 3, else a batch of grayscale images; 2 is
        one grayscale image. With a ``seed``, call k uses the derived seed (seed, k):
        bit-exact only when calls run in order (``num_parallel_calls=None``).

        imgaug holds Python's GIL, so in-process calls run one at a time. With
        ``num_workers=N`` the batches are augmented in N worker processes instead
        (same outputs for the same seeds), which uses N cores; map batched elements
        with ``num_parallel_calls >= N`` so that N batches are in flight.
        """
        import tensorflow as tf

        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}.")
        calls = itertools.count()
        pool = _worker_pool(int(num_workers)) if num_workers else None

        def augment_array(images: np.ndarray) -> np.ndarray:
            call_seed = derive_call_seed(seed, next(calls))
            single = _is_single_image(images, batched)
            batch = images[None] if single else images
            if pool is not None:
                out = pool.submit(_augment_in_worker, self, batch, call_seed, value_range).result()
            else:
                with _TF_MAP_LOCK:
                    out = self.augment(batch, seed=call_seed, value_range=value_range)
            return out[0] if single else out

        def augment_tensor(image):
            out = tf.numpy_function(augment_array, [image], Tout=image.dtype, stateful=True,
                                    name="keras_augtune_policy")
            out.set_shape(image.shape)
            return out

        @tf.autograph.experimental.do_not_convert  # plain Python, nothing for autograph to convert
        def map_fn(image, *rest):
            image = augment_tensor(image)
            return (image, *rest) if rest else image

        return map_fn

    # pickling (tf.data / multiprocessing) must not carry the compiled augmenters
    def __getstate__(self):
        return {"sub_policies": self.sub_policies, "metadata": self.metadata}

    def __setstate__(self, state):
        self.sub_policies = state["sub_policies"]
        self.metadata = state["metadata"]
        self._idle_augmenters = []


def _parse_step(step: Any, where: str) -> PolicyOp:
    if isinstance(step, Mapping):
        step = (step.get("op"), step.get("probability"), step.get("magnitude"))
    if isinstance(step, (str, bytes)) or not isinstance(step, Sequence) or len(step) != 3:
        raise ValueError(f"{where.capitalize()} must be an (op, probability, magnitude) tuple, got {step!r}.")
    op, probability, magnitude = step
    return PolicyOp(
        resolve_op(op),
        check_unit(f"probability of {where}", probability),
        check_unit(f"magnitude of {where}", magnitude),
    )


def as_policy(policy: Any) -> "Policy":
    """A :class:`Policy` from a Policy, its dict form, JSON text or a JSON file path."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, dict):
        return Policy.from_dict(policy)
    if isinstance(policy, str):
        return Policy.from_json(policy)
    raise TypeError(f"policy must be a Policy, a policy dict or JSON, got {type(policy).__name__}.")


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
    return cached.augment(images, seed=seed, value_range=value_range)


def derive_call_seed(seed: int | None, call: int) -> int | None:
    """The seed of call ``call`` of a stateful path (tf.data map, layer): call 0 uses ``seed``."""
    if seed is None:
        return None
    return seed if call == 0 else _seed_int((seed, call))


def _seed_int(seed: Any) -> int:
    """A 31-bit imgaug seed from an int or a tuple of ints."""
    return int(np.random.SeedSequence(seed).generate_state(1)[0] & 0x7FFFFFFF)


def _is_single_image(images: np.ndarray, batched: bool | None) -> bool:
    if batched is not None:
        return not batched
    if images.ndim == 2:
        return True
    return images.ndim == 3 and images.shape[-1] in (1, 3)
