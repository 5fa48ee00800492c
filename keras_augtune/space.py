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

or keep a [`PolicySpace`][keras_augtune.PolicySpace] to convert between a trial's values and a
[`Policy`][keras_augtune.policy.Policy] both ways.

The defaults (5 sub-policies x 2 ops) are DeepAugment's shape. DeepAugment did
not search probabilities (every op applied with probability 1);
``PolicySpace.deepaugment()`` reproduces that space, while the default here
also searches each op's probability, as AutoAugment does.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from keras_augtune.checks import check_int
from keras_augtune.recipes import RECIPE, recipe_policy
from keras_augtune.ops import DEEPAUGMENT_OPS, OP_NAMES, check_unit, is_identity_at, ops_for_channels, resolve_op
from keras_augtune.policy import Policy
from keras_augtune.trials import without_budget

if TYPE_CHECKING:  # Keras Tuner (and TensorFlow under it) is imported where a space is declared
    import keras_tuner as kt

__all__ = ["PolicySpace", "declare_policy_space", "baseline_values", "is_baseline", "policy_of", "parse_name",
           "architecture_values", "DEFAULT_PREFIX"]

#: Name scope of the policy hyperparameters.
DEFAULT_PREFIX = "augment"
_FIELDS = ("op", "magnitude", "probability")
_NAME = re.compile(rf"^(?P<prefix>.+)/sub_policy_(?P<i>\d+)/op_(?P<j>\d+)/(?P<field>{'|'.join(_FIELDS)})$")


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
        magnitude_step: Optional grid step of the magnitudes (``None``: continuous).
        probability_step: Optional grid step of the probabilities (``None``: continuous).
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
            check_int(f"`{field}`", getattr(self, field))
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
        object.__setattr__(self, "fixed_probability", check_unit("`fixed_probability`", self.fixed_probability))
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

    @classmethod
    def from_hyperparameters(cls, hp: Any) -> "PolicySpace | None":
        """The space declared on ``hp`` (a ``keras_tuner.HyperParameters`` or a list of its
        hyperparameters, e.g. a reloaded oracle's), or ``None`` when ``hp`` holds no policy.

        The options are read back from the declared hyperparameters of the first slot
        (op choices, magnitude and probability ranges and steps); ``to_policy`` of the
        result gives the trials' policies.
        """
        declared = getattr(hp, "space", hp)
        slots = {}
        for h in declared:
            parsed = parse_name(h.name)
            if parsed is not None:
                slots[parsed] = h
        prefixes = sorted({prefix for prefix, _, _, _ in slots})
        if len(prefixes) != 1:
            return None
        prefix = prefixes[0]
        first = {field: slots.get((prefix, 0, 0, field)) for field in _FIELDS}
        if first["op"] is None or first["magnitude"] is None:
            return None
        options: dict[str, Any] = {
            "prefix": prefix,
            "num_sub_policies": 1 + max(i for _, i, _, _ in slots),
            "ops_per_sub_policy": 1 + max(j for _, _, j, _ in slots),
            "ops": list(getattr(first["op"], "values", None) or [first["op"].value]),
        }
        magnitude = first["magnitude"]
        options["magnitude_range"] = _declared_range(magnitude)
        options["magnitude_step"] = getattr(magnitude, "step", None)
        probability = first["probability"]
        if probability is None or not hasattr(probability, "min_value"):
            options["search_probabilities"] = False
            if probability is not None:
                options["fixed_probability"] = probability.value
        else:
            options["probability_range"] = _declared_range(probability)
            options["probability_step"] = probability.step
        try:
            return cls(**options)
        except (TypeError, ValueError):
            return None

    def for_channels(self, channels: int) -> "PolicySpace":
        """This space for images with ``channels`` channels (1 or 3).

        For grayscale (1) the ops that act on colour only (``ops.COLOR_ONLY_OPS``: hue,
        saturation, ``color``) are left out, since they change nothing there; for RGB the
        space is returned as is. ValueError when every op of the space is colour-only.
        ``PolicySpace().for_channels(1)`` is the default space for grayscale data.
        """
        ops = ops_for_channels(self.ops, channels)
        return self if len(ops) == len(self.ops) else dataclasses.replace(self, ops=tuple(ops))

    # ------------------------------------------------------------------ the baseline
    def canonical_values(self, values: Any, channels: int = 3) -> dict[str, Any]:
        """``values`` with every step that does nothing written as the baseline's step.

        A trial whose policy cannot change an image with ``channels`` channels
        ([`Policy.is_noop()`][keras_augtune.Policy.is_noop]) is the baseline in disguise: its policy hyperparameters
        become [`baseline_values()`][keras_augtune.results.baseline_values]. In any other policy, each step that
        cannot act (probability 0, or a magnitude at which its op is the identity for these
        images) takes the baseline's values for its slot: the augmentation is the same (a
        chosen sub-policy applies an identity step either way), so two policies that differ
        only in steps that never fire get the same canonical values. Every other value (e.g.
        a jointly tuned architecture's) is kept; the result is a new dict. An oracle that
        de-duplicates on these values never trains the same augmentation twice.
        """
        values = dict(_values_of(values))
        policy = self.to_policy(values)
        baseline = baseline_values(self)
        if policy.is_noop(channels):
            values.update(baseline)
            return values
        steps = [step for sub in policy.sub_policies for step in sub]
        for (i, j), step in zip(self._slots(), steps):
            if step.probability == 0.0 or is_identity_at(step.op, step.magnitude, channels):
                for name in (self.name(i, j, field) for field in _FIELDS):
                    if name in values:
                        values[name] = baseline[name]
        return values

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
        import keras_tuner as kt

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
    [`PolicySpace`][keras_augtune.PolicySpace] fields (``fixed_probability``, ``magnitude_step``,
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


def parse_name(name: str) -> tuple[str, int, int, str] | None:
    """Inverse of [`PolicySpace.name()`][keras_augtune.PolicySpace.name]: ``(prefix, sub_policy, op, field)``, or ``None``
    for a hyperparameter that is not a policy slot (e.g. an architecture value)."""
    match = _NAME.match(str(name))
    if match is None:
        return None
    return match["prefix"], int(match["i"]), int(match["j"]), match["field"]


def architecture_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that are not policy slots (a jointly tuned model's own hyperparameters);
    a multi-fidelity trial's budget values (``tuner/epochs``, ...) are not among them."""
    return {name: value for name, value in without_budget(values).items() if parse_name(name) is None and name != RECIPE}


def baseline_values(space: PolicySpace) -> dict[str, Any]:
    """The values of the no-augmentation baseline trial in ``space``.

    Every op is ``identity`` when the space has it; otherwise the first op with the
    probability at the low end of its range when that is 0, else the first op that is
    the identity at the low end of the magnitude range (e.g. any op at magnitude 0).
    """
    has_identity = "identity" in space.ops
    probability = space.probability_range[0] if space.search_probabilities else space.fixed_probability
    magnitude = space.magnitude_range[0]
    if has_identity:
        op = "identity"
    elif probability == 0.0:
        op = space.ops[0]
    else:
        op = next((name for name in space.ops if is_identity_at(name, magnitude)), None)
        if op is None:
            raise ValueError(
                "The no-augmentation baseline cannot be expressed in this policy space: add 'identity' "
                "to ops, let the probability or magnitude range start at 0, or pass baseline_trial=False."
            )
    values: dict[str, Any] = {}
    for i in range(space.num_sub_policies):
        for j in range(space.ops_per_sub_policy):
            values[space.name(i, j, "op")] = op
            values[space.name(i, j, "magnitude")] = magnitude
            values[space.name(i, j, "probability")] = probability
    return values


def is_baseline(space: PolicySpace, values: Any) -> bool:
    """Whether trial ``values`` are the no-augmentation baseline of ``space`` (exactly its
    values; [`PolicySpace.canonical_values()`][keras_augtune.PolicySpace.canonical_values] maps every no-op policy onto them)."""
    try:
        baseline = baseline_values(space)
    except ValueError:
        return False
    return RECIPE not in values and all(values.get(name) == value for name, value in baseline.items())


def policy_of(space: PolicySpace, values: Any) -> Policy:
    """The policy trial ``values`` describe in ``space``; the baseline values give ``Policy.identity()``,
    a recipe's values its policy ([`keras_augtune.recipes`][keras_augtune.recipes])."""
    values = _values_of(values)
    if RECIPE in values:
        return recipe_policy(values)
    if is_baseline(space, values):
        return Policy.identity()
    return space.to_policy(values)


# ----------------------------------------------------------------------------- helpers
def _declared_range(hp: Any) -> tuple[float, float]:
    if hasattr(hp, "min_value"):
        return (float(hp.min_value), float(hp.max_value))
    return (float(hp.value), float(hp.value))


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


def _check_range(what: str, value_range: Any) -> tuple[float, float]:
    try:
        low, high = value_range
    except (TypeError, ValueError):
        raise ValueError(f"`{what}` must be a (low, high) pair, got {value_range!r}.") from None
    low, high = check_unit(f"`{what}[0]`", low), check_unit(f"`{what}[1]`", high)
    if low > high:
        raise ValueError(f"`{what}` must have low <= high, got {value_range!r}.")
    return (low, high)


def _in_range(what: str, value: float, value_range: tuple[float, float]) -> float:
    low, high = value_range
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ValueError(f"The {what} is {value}, outside this space's range [{low}, {high}].")
    return float(min(max(value, low), high))
