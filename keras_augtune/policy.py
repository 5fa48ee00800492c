"""`Policy`: the value of an AutoAugment-style augmentation policy, and its JSON form.

A policy is a list of sub-policies; each sub-policy is a short sequence of
``(op, probability, magnitude)``. For every image one sub-policy is drawn at
random and each of its ops fires with its own probability (randomness per image,
never per batch).

Apply it with [`Policy.augment()`][keras_augtune.Policy.augment] (NumPy), [`Policy.tf_map()`][keras_augtune.Policy.tf_map] (a
``tf.data`` map function) or the Keras layer [`keras_augtune.PolicyAugmentation`][keras_augtune.PolicyAugmentation];
all three run on an engine (`keras_augtune.engines`): imgaug by default (`keras_augtune.execution`),
or the Keras twins of the ops inside the graph (``engine="keras"``, `keras_augtune.keras_engine`).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from keras_augtune.checks import as_number, check_int
from keras_augtune.engines import DEFAULT_ENGINE, engine_module
from keras_augtune.files import atomic_write
from keras_augtune.ops import (
    COLOR_OPS,
    RANDAUGMENT_OPS,
    check_unit,
    involution_at,
    is_identity_at,
    resolve_op,
    resolve_op_list,
)

#: Version of the JSON format written by [`Policy.to_json()`][keras_augtune.Policy.to_json].
FORMAT_VERSION = 1
FORMAT_NAME = "keras_augtune.Policy"
#: Limits on what a policy file may hold (AutoAugment's policies have 25 sub-policies of 2 ops;
#: a search writes a few kilobytes): beyond them a file is refused, not built.
MAX_JSON_BYTES = 10_000_000
MAX_SUB_POLICIES = 1_000
MAX_OPS_PER_SUB_POLICY = 100


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
        num_ops = check_int("num_ops", num_ops)
        magnitude = check_unit("magnitude", magnitude)
        names = resolve_op_list(ops, RANDAUGMENT_OPS)
        subs = [[(op, 1.0, magnitude) for op in combo] for combo in itertools.product(names, repeat=int(num_ops))]
        return cls(subs, metadata={"name": f"RandAugment(N={num_ops}, M={magnitude:g})"})

    @classmethod
    def trivial_augment(cls, ops: Sequence[str] | None = None, num_magnitude_bins: int = 31) -> "Policy":
        """TrivialAugment: one op per image at a magnitude drawn uniformly from the bins."""
        num_magnitude_bins = check_int("num_magnitude_bins", num_magnitude_bins, minimum=2)
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
        number = as_number(factor, f"The scale factor must be a finite number >= 0, got {factor!r}.")
        if not (np.isfinite(number) and number >= 0.0):
            raise ValueError(f"The scale factor must be a finite number >= 0, got {factor!r}.")
        subs = [[(s.op, s.probability, min(1.0, s.magnitude * number)) for s in sub] for sub in self.sub_policies]
        metadata = dict(self.metadata)
        metadata["magnitude_scale"] = float(metadata.get("magnitude_scale", 1.0)) * number
        return Policy(subs, metadata=metadata)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the format of [`to_json()`][keras_augtune.Policy.to_json])."""
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
            atomic_write(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Any) -> "Policy":
        """Inverse of [`to_dict()`][keras_augtune.Policy.to_dict]; a malformed dict raises a ``ValueError`` naming the field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"A policy must be a JSON object, got {type(data).__name__}.")
        fmt = data.get("format", FORMAT_NAME)
        if fmt != FORMAT_NAME:
            raise ValueError(f"Field 'format' must be {FORMAT_NAME!r}, got {fmt!r}.")
        version = data.get("version", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"Field 'version' must be an integer, got {_short(version)}.")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"This policy was written by a newer keras_augtune (format version {_short(version)}); "
                f"this version reads format {FORMAT_VERSION}. Upgrade keras_augtune to read it."
            )
        if "sub_policies" not in data:
            raise ValueError("Field 'sub_policies' is missing: expected a list of lists of "
                             "{'op', 'probability', 'magnitude'} objects.")
        subs = _bounded_list(data["sub_policies"], "sub_policies", MAX_SUB_POLICIES, "sub-policies", "a policy")
        steps = []
        for i, sub in enumerate(subs):
            _bounded_list(sub, f"sub_policies[{i}]", MAX_OPS_PER_SUB_POLICY, "ops", "a sub-policy")
            row = []
            for j, step in enumerate(sub):
                where = f"sub_policies[{i}][{j}]"
                if not isinstance(step, Mapping):
                    raise ValueError(f"Field '{where}' must be an object with 'op', 'probability', 'magnitude'.")
                missing = [k for k in ("op", "probability", "magnitude") if k not in step]
                if missing:
                    raise ValueError(f"Field '{where}' is missing {', '.join(repr(k) for k in missing)}.")
                for key in ("probability", "magnitude"):
                    value = step[key]
                    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**6:
                        raise ValueError(f"Field '{where}.{key}' must be a number in [0, 1], got {_short(value)}.")
                row.append((step["op"], step["probability"], step["magnitude"]))
            steps.append(row)
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ValueError(f"Field 'metadata' must be an object, got {type(metadata).__name__}.")
        return cls(steps, metadata=metadata)

    @classmethod
    def from_json(cls, text_or_path: str) -> "Policy":
        """Read a policy from JSON text or from a ``.json`` file path."""
        return cls.from_dict(read_policy_json(text_or_path))

    # ------------------------------------------------------------------ applying
    def to_imgaug(self):
        """The policy as one imgaug augmenter (expects uint8 RGB images)."""
        return engine_module("imgaug").to_imgaug(self)

    @property
    def is_identity(self) -> bool:
        """True when the policy never changes an image (only identity ops or zero probabilities)."""
        return all(s.op == "identity" or s.probability == 0.0 for sub in self.sub_policies for s in sub)

    @property
    def needs_color(self) -> bool:
        return any(op in COLOR_OPS for op in self.ops)

    def is_noop(self, channels: int = 3) -> bool:
        """True when the policy cannot change any image with ``channels`` channels (1 or 3).

        A step does nothing when its op is ``identity``, its probability is 0, its
        magnitude is one at which the op is the identity (``ops.is_identity_at``), or
        its op acts on colour only and the images are grayscale. A sub-policy whose other
        steps all apply the same self-inverse transform to every image an even number of
        times (``invert`` twice, ``horizontal-flip`` twice at magnitude and probability 1)
        does nothing either. Such a policy is the no-augmentation baseline in disguise.
        """
        return not any(self._acting_steps(channels))

    def effective(self, channels: int = 3) -> "Policy":
        """The same augmentation without the steps that do nothing (see [`is_noop()`][keras_augtune.Policy.is_noop]), for display.

        A sub-policy left empty becomes an ``identity`` step (it is still drawn as often);
        a policy left empty is [`Policy.identity()`][keras_augtune.Policy.identity]. The metadata is kept. The outputs
        follow the same distribution, though not the same random stream for a given seed.
        """
        acting = self._acting_steps(channels)
        if not any(acting):
            return Policy(Policy.identity().sub_policies, metadata=self.metadata)
        return Policy([steps or [("identity", 1.0, 0.0)] for steps in acting], metadata=self.metadata)

    def _acting_steps(self, channels: int) -> list[list[PolicyOp]]:
        """For each sub-policy, the steps that can change an image with ``channels`` channels."""
        result = []
        for sub in self.sub_policies:
            steps = [s for s in sub if s.probability > 0.0 and not is_identity_at(s.op, s.magnitude, channels)]
            transforms = [involution_at(s.op, s.magnitude) if s.probability == 1.0 else None for s in steps]
            if steps and all(transforms):
                # only commuting self-inverse transforms: each one applied an even number of times cancels
                odd = [t for t in dict.fromkeys(transforms) if transforms.count(t) % 2]
                steps = [steps[transforms.index(t)] for t in odd]
            result.append(steps)
        return result

    def augment(self, images: Any, seed: int | None = None, value_range: tuple[float, float] | None = None,
                engine: str = DEFAULT_ENGINE) -> np.ndarray:
        """Augment a batch ``(N,H,W)``, ``(N,H,W,1)`` or ``(N,H,W,3)`` of uint8 or float images.

        Returns an array of the same shape and dtype. ``value_range`` is the range of
        float pixels (default (0, 255) for uint8, (0, 1) for floats). The same
        ``seed`` gives the same output (on the same engine). ``engine``: ``"imgaug"``
        (default) or ``"keras"`` (the ops' Keras twins, `keras_augtune.keras_engine`).
        """
        return engine_module(engine).augment(self, images, seed=seed, value_range=value_range)

    def keras_layer(self, engine: str = "keras", value_range: tuple[float, float] | None = None,
                    seed: int | None = None, **kwargs: Any):
        """This policy as a [`PolicyAugmentation`][keras_augtune.PolicyAugmentation] layer, on the Keras engine by default.

        ``engine="keras"`` runs the ops' Keras twins inside the graph (compiled steps of every
        backend, GPU included); ``engine="imgaug"`` is the imgaug layer. Other arguments go to the layer.
        """
        from keras_augtune.layer import PolicyAugmentation

        return PolicyAugmentation(self, value_range=value_range, seed=seed, engine=engine, **kwargs)

    def tf_map(self, batched: bool | None = None, seed: int | None = None,
               value_range: tuple[float, float] | None = None, num_workers: int = 0, image_key: str = "image"):
        """A ``tf.data`` map function: ``ds.map(policy.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)``.

        Elements may be an image, a tuple ``(image, label, ...)``, a dict of features
        (``{"image": ..., "label": ...}``, as tfds gives) or a tuple ``(features, label)``;
        only the image (the feature named ``image_key``) is augmented. ``batched=None``
        decides from the rank: 4 is a batch; 3 is one image when the last axis is 1, 3
        or 4 (RGBA, refused with a clear error), else a batch of grayscale images; 2 is
        one grayscale image. With a ``seed``, call k uses the derived seed (seed, k):
        bit-exact only when calls run in order (``num_parallel_calls=None``).

        imgaug holds Python's GIL, so in-process calls run one at a time. With
        ``num_workers=N`` the batches are augmented in N worker processes instead
        (same outputs for the same seeds), which uses N cores; map batched elements
        with ``num_parallel_calls >= N`` so that N batches are in flight.
        """
        return engine_module("imgaug").tf_map(self, batched=batched, seed=seed, value_range=value_range, num_workers=num_workers,
                                image_key=image_key)


def read_policy_json(text_or_path: str) -> Any:
    """The parsed JSON of a policy file (or of JSON text), within `MAX_JSON_BYTES`;
    a malformed, too large or too deeply nested document raises a one-line ``ValueError``."""
    if not isinstance(text_or_path, str):
        raise TypeError(f"from_json takes JSON text or a file path, got {type(text_or_path).__name__}.")
    text, source = text_or_path, ""
    if not text.lstrip().startswith(("{", "[")) or os.path.isfile(text):
        source = f" in {text_or_path}"
        try:
            with open(text_or_path, encoding="utf-8-sig") as f:  # -sig: a BOM (Windows editors) is skipped
                text = f.read(MAX_JSON_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"Not JSON text and not a readable file: {text_or_path!r} ({exc}).") from None
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"The policy JSON{source} is larger than {MAX_JSON_BYTES:,} characters, the limit for a "
                         "policy file.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Malformed policy JSON{source}: {exc}.") from None
    except RecursionError:
        raise ValueError(f"The policy JSON{source} is nested too deeply (a policy is a list of lists of ops).") from None


def _short(value: Any) -> str:
    """``repr(value)``, with a huge number written as its number of digits."""
    text = repr(value)
    return f"a {len(text.lstrip('-'))}-digit number" if isinstance(value, int) and len(text) > 20 else text[:80]


def _bounded_list(value: Any, field: str, limit: int, items: str, holder: str) -> list:
    """``value`` when it is a list of at most ``limit`` items, else a one-line ``ValueError``."""
    if not isinstance(value, list):
        raise ValueError(f"Field '{field}' must be a list, got {type(value).__name__}.")
    if len(value) > limit:
        raise ValueError(f"Field '{field}' holds {len(value):,} {items}; {holder} may have at most {limit:,}.")
    return value


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
    """A [`Policy`][keras_augtune.Policy] from a Policy, its dict form, JSON text or a JSON file path."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, dict):
        return Policy.from_dict(policy)
    if isinstance(policy, str):
        return Policy.from_json(policy)
    raise TypeError(f"policy must be a Policy, a policy dict or JSON, got {type(policy).__name__}.")
