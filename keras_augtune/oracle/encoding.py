"""How a Keras Tuner search space becomes arrays: unit samples, value codes and forest features.

Every non-fixed hyperparameter is a ``Column`` with three representations:

* a *unit* value in [0, 1], in which candidates are sampled and mutated;
* a *code*, a float that identifies the value (choice index, number, 0/1);
* *features*, what the forest sees ((log-)scaled position, one-hot, 0/1).

``SpaceEncoder`` vectorises them over a whole space, conditions
(``conditional_scope``) included: ``values -> codes`` (``SpaceEncoder.encode_values``),
``units -> codes`` (``SpaceEncoder.decode``), ``codes -> values``
(``SpaceEncoder.values``) and ``codes -> features`` (``SpaceEncoder.features``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module

from keras_augtune import compat
from keras_augtune.oracle.pooling import find_policy_groups, pooled_features

__all__ = ["Column", "SpaceEncoder", "INACTIVE"]

#: Feature value of an inactive (or not yet existing) hyperparameter.
INACTIVE = -1.0
# Dedup key of an inactive hyperparameter (never a real code).
_INACTIVE_CODE = -np.inf
# Above this many grid points a stepped numeric hyperparameter is snapped by arithmetic.
_MAX_GRID = 100_000


class Column:
    """How one non-fixed hyperparameter maps to a unit value, a code and features.

    * unit ``u`` in [0, 1]: what candidates are sampled and mutated in;
    * code: a float identifying the value (choice index, numeric value, 0/1);
    * features: what the forest sees ((log-)scaled position, one-hot, 0/1).
    """

    def __init__(self, hp: Any):
        self.hp = hp
        self.name = hp.name
        self.one_hot = False
        self.num_values = 0  # > 0 for discrete-by-index types (Choice, Boolean)
        self.grid = None  # sorted values of stepped numerics
        self.grid_edges = None
        if isinstance(hp, hp_module.Choice):
            self.kind = "choice"
            self.num_values = len(hp.values)
            self.index_of = {value: float(i) for i, value in enumerate(hp.values)}
            self.one_hot = not hp.ordered
        elif isinstance(hp, hp_module.Boolean):
            self.kind = "boolean"
            self.num_values = 2
        elif isinstance(hp, (hp_module.Int, hp_module.Float)):
            self.kind = "int" if isinstance(hp, hp_module.Int) else "float"
            self.low = float(hp.min_value)
            self.high = float(hp.max_value)
            self.sampling = hp.sampling or "linear"
            if hp.step is not None and compat.grid_size(hp) <= _MAX_GRID:
                grid = np.array(compat.grid_values(hp), dtype=float)
                grid = np.unique(grid[(grid >= self.low - 1e-12) & (grid <= self.high + 1e-12)])
                if grid.size:
                    self.grid = grid
                    positions = self.position(grid)
                    order = np.argsort(positions)
                    self.grid = grid[order]
                    self.grid_edges = (positions[order][1:] + positions[order][:-1]) / 2.0
        else:  # pragma: no cover - KT has no other non-fixed type
            raise TypeError(f"RandomForestOracle cannot encode hyperparameter {hp!r}.")
        self.width = self.num_values if self.one_hot else 1

    # numeric helpers ---------------------------------------------------------
    def position(self, values: np.ndarray) -> np.ndarray:
        """(Log-)scaled position of numeric values in [0, 1]."""
        low, high = self.low, self.high
        if high == low:
            return np.full(np.shape(values), 0.5)
        values = np.clip(np.asarray(values, dtype=float), low, high)
        if self.sampling == "log":
            return np.log(values / low) / math.log(high / low)
        if self.sampling == "reverse_log":
            return 1.0 - np.log((high + low - values) / low) / math.log(high / low)
        return (values - low) / (high - low)

    def _from_position(self, units: np.ndarray) -> np.ndarray:
        low, high = self.low, self.high
        if self.sampling == "log":
            return low * np.power(high / low, units)
        if self.sampling == "reverse_log":
            return high + low - low * np.power(high / low, 1.0 - units)
        return low + units * (high - low)

    # unit -> code -------------------------------------------------------------
    def decode(self, units: np.ndarray) -> np.ndarray:
        """Codes of the values that the unit values ``units`` stand for."""
        if self.num_values:
            return np.minimum(np.floor(units * self.num_values), self.num_values - 1).astype(float)
        if self.grid is not None:
            return self.grid[np.searchsorted(self.grid_edges, units)]
        values = np.clip(self._from_position(units), self.low, self.high)
        if self.hp.step is not None:  # huge stepped range: snap arithmetically (linear steps)
            step = float(self.hp.step)
            values = np.clip(self.low + np.round((values - self.low) / step) * step, self.low, self.high)
        if self.kind == "int":
            values = np.clip(np.round(values), math.ceil(self.low), math.floor(self.high))
        return values

    def units(self, codes: np.ndarray) -> np.ndarray:
        """Unit values that decode back to ``codes`` (the inverse of ``decode``)."""
        if self.num_values:
            return (codes + 0.5) / self.num_values
        return self.position(codes)

    # value <-> code -----------------------------------------------------------
    def code_of(self, value: Any) -> float | None:
        """The code of a trial's value, or None if it is not a value of this hyperparameter."""
        try:
            if self.kind == "choice":
                return self.index_of.get(value)
            if self.kind == "boolean":
                return 1.0 if bool(value) else 0.0
            value = float(value)
        except (ValueError, TypeError):
            return None
        return value if math.isfinite(value) else None

    def value_of(self, code: float) -> Any:
        """The Python value a code stands for (types as Keras Tuner returns them)."""
        if self.kind == "choice":
            return self.hp.values[int(code)]
        if self.kind == "boolean":
            return bool(code >= 0.5)
        if self.kind == "int":
            return int(round(code))
        return float(code)

    def contains(self, codes: np.ndarray, allowed: list) -> np.ndarray:
        """Whether each code's value is one of ``allowed`` (a ``Parent`` condition)."""
        if self.kind == "choice":
            indices = [i for i, v in enumerate(self.hp.values) if v in allowed]
            return np.isin(codes, indices)
        if self.kind == "boolean":
            return np.isin(codes.astype(bool), [bool(a) for a in allowed if isinstance(a, (bool, int))])
        numbers = [float(a) for a in allowed if isinstance(a, (int, float)) and not isinstance(a, bool)]
        return np.isin(codes, numbers)

    def features(self, codes: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Forest features, shape ``(n, width)``; inactive rows are :data:`INACTIVE`."""
        n = codes.shape[0]
        if self.one_hot:
            out = np.zeros((n, self.width))
            rows = np.flatnonzero(active)
            out[rows, codes[rows].astype(int)] = 1.0
        elif self.num_values:
            out = ((codes + 0.5) / self.num_values)[:, None] if self.kind == "choice" else codes[:, None].copy()
        else:
            out = self.position(np.where(active, codes, self.low))[:, None]
        out[~active] = INACTIVE
        return out


class SpaceEncoder:
    """Vectorised encoding of a Keras Tuner search space (``HyperParameters.space``)."""

    def __init__(self, space: list, pool_policies: bool = False, slot_features: bool = True):
        self.space = list(space)
        self.columns: list[Column] = []
        self.slot: dict[int, int] = {}  # position in space -> column index (non-fixed only)
        for position, hp in enumerate(self.space):
            if not isinstance(hp, hp_module.Fixed):
                self.slot[position] = len(self.columns)
                self.columns.append(Column(hp))
        self.num_values = np.array([c.num_values for c in self.columns])
        #: Policy slots pooled into exchangeable features (``pooling``), when asked for.
        self.policy_groups = find_policy_groups(self.columns, self.space) if pool_policies else []
        # Columns whose own features are left out: the pooled slots, when slot features are not wanted.
        self.unfeatured = set()
        if not slot_features:
            for group in self.policy_groups:
                for slot in group.slots:
                    self.unfeatured.update(j for j in (slot.op, slot.magnitude, slot.probability) if j is not None)
        self.feature_names = [
            c.name for j, c in enumerate(self.columns) if j not in self.unfeatured for _ in range(c.width)
        ]
        self.feature_names += [name for group in self.policy_groups for name in group.feature_names]
        self.num_features = len(self.feature_names)

    @property
    def dims(self) -> int:
        """Number of non-fixed hyperparameters (columns of the code and unit arrays)."""
        return len(self.columns)

    def decode(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit rows -> (codes, active), both ``(n, dims)``; conditions are applied in space order."""
        n = units.shape[0]
        codes = np.empty((n, self.dims))
        active = np.zeros((n, self.dims), dtype=bool)
        for j, column in enumerate(self.columns):
            codes[:, j] = column.decode(units[:, j])
        self._apply_conditions(codes, active)
        return codes, active

    def _apply_conditions(self, codes: np.ndarray, active: np.ndarray) -> None:
        n = codes.shape[0]
        by_name: dict[str, list] = {}  # name -> [(column or Fixed hp, column index or None, active mask)]
        for position, hp in enumerate(self.space):
            mask = np.ones(n, dtype=bool)
            for condition in hp.conditions:
                mask &= self._condition_mask(condition, by_name, codes, n)
            j = self.slot.get(position)
            if j is not None:
                active[:, j] = mask
            by_name.setdefault(hp.name, []).append((hp, j, mask))

    def _condition_mask(self, condition, by_name, codes, n) -> np.ndarray:
        if not (hasattr(condition, "name") and hasattr(condition, "values")):
            raise TypeError(f"RandomForestOracle supports Parent conditions only, got {condition!r}.")
        result = np.zeros(n, dtype=bool)
        for hp, j, mask in by_name.get(condition.name, []):
            if j is None:  # a Fixed parent
                holds = np.full(n, hp.value in condition.values)
            else:
                holds = self.columns[j].contains(codes[:, j], condition.values)
            result |= mask & holds
        return result

    def encode_values(self, values_list: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Trials' value dicts -> (codes, active); missing or unknown values count as inactive."""
        n = len(values_list)
        codes = np.zeros((n, self.dims))
        active = np.zeros((n, self.dims), dtype=bool)
        for j, column in enumerate(self.columns):
            name = column.name
            for i, values in enumerate(values_list):
                if name in values:
                    code = column.code_of(values[name])
                    if code is not None:
                        codes[i, j] = code
                        active[i, j] = True
        # A value only counts if its own conditions hold in that trial.
        if n:
            implied = np.zeros_like(active)
            self._apply_conditions(np.where(active, codes, 0.0), implied)
            active &= implied
        return codes, active

    def features(self, codes: np.ndarray, active: np.ndarray) -> np.ndarray:
        """Forest features of code rows, shape ``(n, num_features)``."""
        if not self.num_features:
            return np.zeros((codes.shape[0], 0))
        parts = [c.features(codes[:, j], active[:, j]) for j, c in enumerate(self.columns) if j not in self.unfeatured]
        parts += [pooled_features(group, self.columns, codes, active) for group in self.policy_groups]
        return np.hstack(parts)

    def keys(self, codes: np.ndarray, active: np.ndarray) -> list[bytes]:
        """Hashable identity of each row (active values only)."""
        marked = np.ascontiguousarray(np.where(active, codes, _INACTIVE_CODE))
        return [row.tobytes() for row in marked]

    def units_of(self, codes: np.ndarray, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Unit rows that decode to the given codes; inactive entries get random units."""
        units = rng.random(codes.shape)
        for j, column in enumerate(self.columns):
            rows = np.flatnonzero(active[:, j])
            if rows.size:
                units[rows, j] = column.units(codes[rows, j])
        return units

    def values(self, codes_row: np.ndarray, active_row: np.ndarray) -> dict:
        """The Keras Tuner values dict of one row (active hyperparameters only, Fixed included)."""
        values: dict[str, Any] = {}
        hps = hp_module.HyperParameters()
        for position, hp in enumerate(self.space):
            j = self.slot.get(position)
            if j is None:
                hps.merge([hp])
                if hps.is_active(hp):
                    values[hp.name] = hp.value
                    hps.values[hp.name] = hp.value
            elif active_row[j]:
                values[hp.name] = self.columns[j].value_of(codes_row[j])
                hps.values[hp.name] = values[hp.name]
        return values
