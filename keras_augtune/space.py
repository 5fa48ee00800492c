"""The augmentation-policy search space, as Keras Tuner hyperparameters.

A policy of ``num_sub_policies`` sub-policies, each of ``ops_per_sub_policy``
``(op, probability, magnitude)`` steps, becomes these hyperparameters::

    augment/sub_policy_0/op_0/op           Choice over the op names
    augment/sub_policy_0/op_0/magnitude    Float in magnitude_range
    augment/sub_policy_0/op_0/probability  Float in probability_range
    ...                                    (Fixed when probabilities are not searched)

Use it inside a HyperModel's ``build`` (so the oracle sees the space from the
first trial)::

    def build(self, hp):
        policy = declare_policy_space(hp)          # -> keras_augtune.Policy
        ...

or keep a :class:`PolicySpace` to convert between a trial's values and a
:class:`~keras_augtune.policy.Policy` both ways.

The defaults (5 sub-policies x 2 ops) are DeepAugment's shape. DeepAugment did
not search probabilities (every op applied with probability 1);
``PolicySpace.deepaugment()`` reproduces that space, while the default here
also searches each op's probability, as AutoAugment does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import keras_tuner as kt

from keras_augtune.ops import DEEPAUGMENT_OPS, OP_NAMES, resolve_op
from keras_augtune.policy import Policy

__all__ = ["PolicySpace", "declare_policy_space", "DEFAULT_PREFIX"]

#: Name scope of the policy hyperparameters.
DEFAULT_PREFIX = "augment"
_FIELDS = ("op", "magnitude", "probability")


@dataclasses.dataclass(frozen=True)
class PolicySpace:
    """The options of a policy search space.

    Args:
        num_sub_policies: Sub-policies per policy (>= 1; DeepAugment: 5).
        ops_per_sub_policy: Ops per sub-policy (>= 1; DeepAugment: 2).
        ops: Op names to search over (aliases accepted, duplicates dropped);
            ``None`` means every op in ``keras_augtune.ops.OP_NAMES``.
        magnitude_range: ``(low, high)`` within [0, 1]; ``low == high`` fixes it.
        search_probabilities: Search each op's probability. If False, every
            probability is a ``Fixed`` hyperparameter equal to ``fixed_probability``.
        probability_range: ``(low, high)`` within [0, 1] when probabilities are searched.
        fixed_probability: The probability used when they are not searched
            (1.0: every op of the drawn sub-policy is applied, as in DeepAugment).
        magnitude_step, probability_step: Optional grid steps (``None``: continuous).
        prefix: Name scope of the hyperparameters.
    """

    num_sub_policies: int = 5
    ops_per_sub_policy: int = 2
    ops: Sequence[str] | None = None
    magnitude_range: tuple[float, float] = (0.0, 1.0)
    search_probabilities: bool = True
    probability_range: tuple[float, float] = (0.0, 1.0)
    fixed_probability: float = 1.0
    magnitude_step: float | None = None
    probability_step: float | None = None
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self):
        for field in ("num_sub_policies", "ops_per_sub_policy"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be a positive integer, got {value!r}.")
        if self.ops is None:
            ops = tuple(OP_NAMES)
        else:
            if isinstance(self.ops, str):
                raise ValueError(f"`ops` must be a list of op names, got the string {self.ops!r}.")
            ops = tuple(dict.fromkeys(resolve_op(op) for op in self.ops))
            if not ops:
                raise ValueError("`ops` must name at least one op.")
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "magnitude_range", _check_range("magnitude_range", self.magnitude_range))
        object.__setattr__(self, "probability_range", _check_range("probability_range", self.probability_range))
        if not isinstance(self.search_probabilities, bool):
            raise ValueError(f"`search_probabilities` must be True or False, got {self.search_probabilities!r}.")
        object.__setattr__(self, "fixed_probability", _check_unit("fixed_probability", self.fixed_probability))
        for field in ("magnitude_step", "probability_step"):
            step = getattr(self, field)
            if step is not None:
                if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0.0 < step <= 1.0:
                    raise ValueError(f"`{field}` must be None or a number in (0, 1], got {step!r}.")
                object.__setattr__(self, field, float(step))
        if not isinstance(self.prefix, str) or not self.prefix:
            raise ValueError(f"`prefix` must be a non-empty string, got {self.prefix!r}.")

    @classmethod
    def deepaugment(cls, **overrides: Any) -> "PolicySpace":
        """DeepAugment's space: its 20 op types, 5 x 2 ops, magnitudes searched, probabilities fixed at 1."""
        options = {"ops": DEEPAUGMENT_OPS, "search_probabilities": False, "fixed_probability": 1.0}
        options.update(overrides)
        return cls(**options)

    # ------------------------------------------------------------------ names
    def name(self, sub_policy: int, op: int, field: str) -> str:
        """Hyperparameter name, e.g. ``name(0, 1, "magnitude") == "augment/sub_policy_0/op_1/magnitude"``."""
        if field not in _FIELDS:
            raise ValueError(f"`field` must be one of {_FIELDS}, got {field!r}.")
        return f"{self.prefix}/sub_policy_{sub_policy}/op_{op}/{field}"

    @property
    def names(self) -> list[str]:
        """All hyperparameter names of the space, in declaration order."""
        return [self.name(i, j, f) for i, j in self._slots() for f in _FIELDS]

    @staticmethod
    def parse_name(name: str) -> tuple[str, int, int, str] | None:
        """``(prefix, sub_policy, op, field)`` of a name made by :meth:`name`, or None for any other name.

        The inverse of :meth:`name` for every prefix, e.g.
        ``parse_name("augment/sub_policy_2/op_1/magnitude") == ("augment", 2, 1, "magnitude")``.
        """
        parts = name.rsplit("/", 3)
        if len(parts) != 4 or parts[3] not in _FIELDS or not parts[0]:
            return None
        prefix, sub, op, field = parts
        sub_index, op_index = _index_after(sub, "sub_policy_"), _index_after(op, "op_")
        if sub_index is None or op_index is None:
            return None
        return prefix, sub_index, op_index, field

    def _slots(self):
        return [(i, j) for i in range(self.num_sub_policies) for j in range(self.ops_per_sub_policy)]

    # ------------------------------------------------------------------ declaring
    def declare(self, hp: kt.HyperParameters) -> Policy:
        """Declare the space's hyperparameters on ``hp``; returns the Policy of ``hp``'s current values."""
        default_op = "identity" if "identity" in self.ops else self.ops[0]
        values: dict[str, Any] = {}
        for i, j in self._slots():
            op_name = self.name(i, j, "op")
            values[op_name] = hp.Choice(op_name, list(self.ops), default=default_op)
            values[self.name(i, j, "magnitude")] = self._declare_float(
                hp, self.name(i, j, "magnitude"), self.magnitude_range, self.magnitude_step
            )
            probability_name = self.name(i, j, "probability")
            if self.search_probabilities:
                values[probability_name] = self._declare_float(
                    hp, probability_name, self.probability_range, self.probability_step, default_high=True
                )
            else:
                values[probability_name] = hp.Fixed(probability_name, self.fixed_probability)
        return self.to_policy(values)

    @staticmethod
    def _declare_float(hp, name, value_range, step, default_high=False):
        low, high = value_range
        if low == high:
            return hp.Fixed(name, low)
        return hp.Float(name, low, high, step=step, default=high if default_high else low)

    def hyperparameters(self) -> kt.HyperParameters:
        """A new ``keras_tuner.HyperParameters`` holding just this space (e.g. for an oracle's ``hyperparameters=``)."""
        hp = kt.HyperParameters()
        self.declare(hp)
        return hp

    # ------------------------------------------------------------------ conversions
    def to_policy(self, values: Any) -> Policy:
        """The Policy described by a trial's values.

        ``values`` is a dict of hyperparameter values, a ``keras_tuner.HyperParameters``
        or a ``keras_tuner.engine.trial.Trial``. Probabilities missing from ``values``
        (space declared without them) default to ``fixed_probability``.
        """
        values = _values_of(values)
        missing = [
            name for i, j in self._slots() for name in (self.name(i, j, "op"), self.name(i, j, "magnitude"))
            if name not in values
        ]
        if missing:
            shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise ValueError(
                f"The values do not describe this policy space: missing {shown}. "
                "Was the space declared with the same options (prefix, sizes)?"
            )
        sub_policies = []
        for i in range(self.num_sub_policies):
            steps = []
            for j in range(self.ops_per_sub_policy):
                probability = values.get(self.name(i, j, "probability"), self.fixed_probability)
                steps.append((values[self.name(i, j, "op")], probability, values[self.name(i, j, "magnitude")]))
            sub_policies.append(steps)
        return Policy(sub_policies)

    def to_values(self, policy: Policy) -> dict[str, Any]:
        """The hyperparameter values of ``policy`` (a Policy or its list form) in this space.

        Raises ValueError if the policy does not fit: wrong number of sub-policies
        or ops, an op outside ``ops``, a magnitude or probability outside its range,
        or (probabilities not searched) a probability other than ``fixed_probability``.
        """
        if not isinstance(policy, Policy):
            policy = Policy(policy)
        if len(policy.sub_policies) != self.num_sub_policies or any(
            len(sub) != self.ops_per_sub_policy for sub in policy.sub_policies
        ):
            shape = [len(sub) for sub in policy.sub_policies]
            raise ValueError(
                f"This space holds {self.num_sub_policies} sub-policies of {self.ops_per_sub_policy} ops; "
                f"the policy has {len(shape)} sub-policies with {shape} ops."
            )
        values: dict[str, Any] = {}
        for i, sub in enumerate(policy.sub_policies):
            for j, step in enumerate(sub):
                where = f"sub-policy {i}, op {j}"
                if step.op not in self.ops:
                    raise ValueError(f"Op {step.op!r} ({where}) is not in this space's ops: {', '.join(self.ops)}.")
                values[self.name(i, j, "op")] = step.op
                values[self.name(i, j, "magnitude")] = _in_range(
                    f"magnitude of {where}", step.magnitude, self.magnitude_range
                )
                if self.search_probabilities:
                    probability = _in_range(f"probability of {where}", step.probability, self.probability_range)
                elif not math.isclose(step.probability, self.fixed_probability, abs_tol=1e-9):
                    raise ValueError(
                        f"The probability of {where} is {step.probability}, but this space fixes every "
                        f"probability at {self.fixed_probability} (search_probabilities=False)."
                    )
                else:
                    probability = self.fixed_probability
                values[self.name(i, j, "probability")] = probability
        return values


def declare_policy_space(
    hp: kt.HyperParameters,
    num_sub_policies: int = 5,
    ops_per_sub_policy: int = 2,
    ops: Sequence[str] | None = None,
    magnitude_range: tuple[float, float] = (0.0, 1.0),
    search_probabilities: bool = True,
    probability_range: tuple[float, float] = (0.0, 1.0),
    **options: Any,
) -> Policy:
    """Declare a policy search space on ``hp`` and return the Policy of its current values.

    Shorthand for ``PolicySpace(...).declare(hp)``; ``options`` are the other
    :class:`PolicySpace` fields (``fixed_probability``, ``magnitude_step``,
    ``probability_step``, ``prefix``).
    """
    space = PolicySpace(
        num_sub_policies=num_sub_policies,
        ops_per_sub_policy=ops_per_sub_policy,
        ops=ops,
        magnitude_range=magnitude_range,
        search_probabilities=search_probabilities,
        probability_range=probability_range,
        **options,
    )
    return space.declare(hp)


# ----------------------------------------------------------------------------- helpers
def _index_after(text: str, head: str) -> int | None:
    """The non-negative integer that follows ``head`` in ``text`` (``"op_3"``, ``"op_"`` -> 3), else None."""
    if not text.startswith(head):
        return None
    digits = text[len(head):]
    return int(digits) if digits.isdigit() and str(int(digits)) == digits else None


def _values_of(values: Any) -> Mapping[str, Any]:
    if isinstance(values, Mapping):
        return values
    if hasattr(values, "hyperparameters") and hasattr(values.hyperparameters, "values"):  # a Trial
        return values.hyperparameters.values
    if hasattr(values, "values") and isinstance(values.values, Mapping):  # HyperParameters
        return values.values
    raise TypeError(
        "Expected a dict of hyperparameter values, a keras_tuner.HyperParameters or a Trial, "
        f"got {type(values).__name__}."
    )


def _check_unit(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"`{what}` must be a number in [0, 1], got {value!r}.")
    return float(value)


def _check_range(what: str, value_range: Any) -> tuple[float, float]:
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise ValueError(f"`{what}` must be a (low, high) pair, got {value_range!r}.") from None
    low, high = _check_unit(f"{what}[0]", low), _check_unit(f"{what}[1]", high)
    if low > high:
        raise ValueError(f"`{what}` must have low <= high, got {value_range!r}.")
    return (low, high)


def _in_range(what: str, value: float, value_range: tuple[float, float]) -> float:
    low, high = value_range
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ValueError(f"The {what} is {value}, outside this space's range [{low}, {high}].")
    return float(min(max(value, low), high))
