"""Exchangeable-slot features: what a policy does, pooled over its interchangeable slots.

A policy is a bag of ``(op, probability, magnitude)`` steps: sub-policies are
interchangeable and so, for most effects, are the steps inside them. Slot-specific
columns (``augment/sub_policy_3/op_1/op == "rotate"``) make a forest learn "rotate
helps" once per slot; pooled features let every trial inform every slot:

* ``weight[op]``: the op's expected number of applications, the sum over slots of
  the slot's probability where the slot holds the op (its count when probabilities
  are fixed);
* ``magnitude[op]``: the probability-weighted mean magnitude of the op (scaled to
  [0, 1] in the magnitude's range), or the inactive sentinel when the op is absent.

Policy slots are recognised by their names (`keras_augtune.space.parse_name`); every
other hyperparameter (architecture, optimiser, ...) keeps its ordinary encoding only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module

__all__ = ["PolicyGroup", "find_policy_groups", "pooled_features"]

#: Feature value of a pooled magnitude whose op is absent (same sentinel as ``encoding.INACTIVE``).
ABSENT = -1.0


@dataclasses.dataclass(frozen=True)
class _Slot:
    op: int  # column index of the op Choice
    magnitude: int | None  # column index of a searched magnitude, None when fixed
    probability: int | None  # column index of a searched probability, None when fixed
    fixed_probability: float


@dataclasses.dataclass(frozen=True)
class PolicyGroup:
    """The slots of one policy (one name prefix) and its op names."""

    prefix: str
    ops: tuple
    slots: tuple

    @property
    def has_magnitudes(self) -> bool:
        return any(slot.magnitude is not None for slot in self.slots)

    @property
    def feature_names(self) -> list[str]:
        kinds = ("weight", "magnitude") if self.has_magnitudes else ("weight",)
        return [f"{self.prefix}/pooled/{op}/{kind}" for kind in kinds for op in self.ops]


def find_policy_groups(columns: list, space: list) -> list[PolicyGroup]:
    """Policy groups of a search space: slots named as by ``PolicySpace`` whose op is a searched ``Choice``.

    ``columns`` are the encoder's columns (non-fixed hyperparameters, each with ``.hp``),
    ``space`` all hyperparameters (for fixed probabilities). A prefix whose slots use
    different op lists is left unpooled.
    """
    from keras_augtune.space import parse_name  # here: the policy modules import imgaug

    by_name = {column.name: j for j, column in enumerate(columns)}
    fixed = {hp.name: hp.value for hp in space if isinstance(hp, hp_module.Fixed)}
    slots: dict[str, dict[tuple[int, int], dict[str, str]]] = {}
    for hp in space:
        parsed = parse_name(hp.name)
        if parsed is not None:
            prefix, sub, op, field = parsed
            slots.setdefault(prefix, {}).setdefault((sub, op), {})[field] = hp.name
    groups = []
    for prefix, fields_of in slots.items():
        found, ops = [], None
        for key in sorted(fields_of):
            names = fields_of[key]
            j = by_name.get(names.get("op"))
            if j is None or not isinstance(columns[j].hp, hp_module.Choice):
                continue
            values = tuple(columns[j].hp.values)
            if ops is not None and values != ops:
                found = []
                break
            ops = values
            magnitude = by_name.get(names.get("magnitude"))
            probability = by_name.get(names.get("probability"))
            fixed_probability = fixed.get(names.get("probability"), 1.0)
            if magnitude is not None and columns[magnitude].num_values:
                magnitude = None  # a Choice magnitude: left to its own column
            if probability is not None and columns[probability].num_values:
                probability, fixed_probability = None, 1.0
            found.append(_Slot(j, magnitude, probability, float(fixed_probability)))
        if found:
            groups.append(PolicyGroup(prefix, ops, tuple(found)))
    return groups


def pooled_features(group: PolicyGroup, columns: list, codes: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Pooled features of one policy group, shape ``(n, len(group.feature_names))``."""
    n, k = codes.shape[0], len(group.ops)
    weight = np.zeros((n, k))
    weighted_magnitude = np.zeros((n, k))
    magnitude_weight = np.zeros((n, k))
    rows = np.arange(n)
    for slot in group.slots:
        present = active[:, slot.op]
        op = np.where(present, codes[:, slot.op], 0).astype(int)
        if slot.probability is not None:
            p = np.where(active[:, slot.probability], codes[:, slot.probability], 0.0)
        else:
            p = np.full(n, slot.fixed_probability)
        p = np.where(present, p, 0.0)
        np.add.at(weight, (rows, op), p)
        if slot.magnitude is not None:
            column = columns[slot.magnitude]
            has = present & active[:, slot.magnitude]
            m = column.position(np.where(has, codes[:, slot.magnitude], column.low))
            # An op applied with probability 0 still tells its magnitude a little (1e-3 weight).
            w = np.where(has, np.maximum(p, 1e-3), 0.0)
            np.add.at(weighted_magnitude, (rows, op), w * m)
            np.add.at(magnitude_weight, (rows, op), w)
    if not group.has_magnitudes:
        return weight
    with np.errstate(invalid="ignore", divide="ignore"):
        magnitude = np.where(magnitude_weight > 0, weighted_magnitude / magnitude_weight, ABSENT)
    return np.hstack([weight, magnitude])
