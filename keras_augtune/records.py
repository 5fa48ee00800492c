"""Execution records: every training's reward and history, kept per configuration in the project dir.

A *configuration* is one set of trial values (policy and architecture); execution ``e`` of it is
the training under [`keras_augtune.seeds.execution_seed()`][keras_augtune.seeds.execution_seed] ``(search seed, e)``. Each
configuration has one JSON file, ``<project dir>/executions/<key>.json``, rewritten atomically
(`keras_augtune.files.atomic_write_json()`) after every execution, so a search killed at any
point keeps each finished execution, and a resumed one neither loses nor repeats it::

    {"format": "keras_augtune.executions", "version": 1, "values": {...}, "trial_id": "03",
     "search_seed": 1234, "executions": {"0": {"reward": 0.91, "history": {"val_accuracy": [...]}}}}

``confirmation.json`` and ``race.json`` in the same folder record the intensifiers' plans (``race.json``:
[`keras_augtune.intensifier.race`][keras_augtune.intensifier.race]); the confirmation step's plan
([`keras_augtune.intensifier.confirmation`][keras_augtune.intensifier.confirmation]).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import warnings
from typing import Any, Mapping

from keras_augtune.files import atomic_write_json

__all__ = ["ExecutionRecord", "ExecutionStore", "config_key", "plain_values", "EXECUTIONS_DIR"]

EXECUTIONS_DIR = "executions"
FORMAT = "keras_augtune.executions"  # the on-disk format name, kept from before the module was renamed
VERSION = 1
PLAN_FILE = "confirmation.json"
#: The race's record: its candidates and execution indices (the rewards are the records').
RACE_FILE = "race.json"
#: The search's base recipe (`keras_augtune.bases`), when it has one.
BASE_FILE = "base.json"


def plain_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with NumPy scalars as Python ones (what a JSON round trip gives back)."""
    return {str(k): (v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v)
            for k, v in values.items()}


def config_key(values: Mapping[str, Any]) -> str:
    """The file key of a configuration: a hash of its values (names sorted)."""
    text = json.dumps(plain_values(values), sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass
class ExecutionRecord:
    """The executions of one configuration measured so far."""

    values: dict[str, Any]
    search_seed: int
    trial_id: str | None = None
    rewards: dict[int, float] = dataclasses.field(default_factory=dict)
    histories: dict[int, dict[str, list[float]]] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        return config_key(self.values)

    def reward_list(self) -> list[float]:
        """The rewards of executions 0, 1, ... up to the first one missing (pairs are by index)."""
        out = []
        while len(out) in self.rewards:
            out.append(self.rewards[len(out)])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "values": self.values, "trial_id": self.trial_id,
                "search_seed": self.search_seed,
                "executions": {str(e): {"reward": self.rewards[e], "history": self.histories.get(e, {})}
                               for e in sorted(self.rewards)}}

    @classmethod
    def from_json(cls, data: Any) -> "ExecutionRecord":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an execution record")
        if not isinstance(data.get("version"), int) or data["version"] > VERSION:
            raise ValueError(f"written by a newer keras_augtune (version {data.get('version')!r:.20})")
        record = cls(dict(data["values"]), int(data["search_seed"]), data.get("trial_id"))
        for e, item in dict(data["executions"]).items():
            reward = item["reward"]
            # a reward is a finite number: NaN or Infinity (JSON's extensions) would turn every mean and
            # interval into nan ("gains +nan"); a nested value is not a number either
            if isinstance(reward, (bool, str)) or not math.isfinite(float(reward)):
                raise ValueError(f"execution {e}: field 'reward' must be a finite number, got {reward!r:.40}")
            record.rewards[int(e)] = float(reward)
            record.histories[int(e)] = {k: [float(v) for v in vs] for k, vs in dict(item.get("history", {})).items()}
        return record


class ExecutionStore:
    """The execution records of a project directory (see the module docstring)."""

    def __init__(self, project_dir: str):
        self.folder = os.path.join(os.fspath(project_dir), EXECUTIONS_DIR)

    def path(self, values: Mapping[str, Any]) -> str:
        return os.path.join(self.folder, f"{config_key(values)}.json")

    def read(self, values: Mapping[str, Any], search_seed: int | None = None) -> ExecutionRecord | None:
        """The record of ``values`` (``None`` when there is none, it is damaged, or it was measured
        under another search seed than ``search_seed``: then its executions are not paired)."""
        record = self._load(self.path(values))
        if record is None or record.values != plain_values(values):
            return None
        if search_seed is not None and record.search_seed != int(search_seed):
            return None
        return record

    def add(self, values: Mapping[str, Any], search_seed: int, execution: int, reward: float,
            history: Mapping[str, Any], trial_id: str | None = None) -> ExecutionRecord:
        """Record one finished execution (atomically) and return the configuration's record."""
        record = self.read(values, search_seed) or ExecutionRecord(plain_values(values), int(search_seed), trial_id)
        if trial_id is not None:
            record.trial_id = str(trial_id)
        record.rewards[int(execution)] = float(reward)
        record.histories[int(execution)] = {str(k): [float(v) for v in vs] for k, vs in history.items()}
        atomic_write_json(self.path(values), record.to_json())
        return record

    def records(self) -> dict[str, ExecutionRecord]:
        """Every readable record, by key (damaged files are skipped with a warning)."""
        out = {}
        for path in sorted(glob.glob(os.path.join(self.folder, "*.json"))):
            if os.path.basename(path) not in (PLAN_FILE, RACE_FILE, BASE_FILE):
                record = self._load(path)
                if record is not None:
                    out[record.key] = record
        return out

    # ------------------------------------------------------------------ the intensifiers' plans
    def read_plan(self, name: str = PLAN_FILE) -> dict[str, Any] | None:
        """The plan ``name`` (the confirmation's, or `RACE_FILE`), or None when there is none readable."""
        path = os.path.join(self.folder, name)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                plan = json.load(f)
            return plan if isinstance(plan, dict) else None
        except (OSError, ValueError):
            return None

    def write_plan(self, plan: Mapping[str, Any], name: str = PLAN_FILE) -> None:
        atomic_write_json(os.path.join(self.folder, name), dict(plan))

    @staticmethod
    def _load(path: str) -> ExecutionRecord | None:
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                return ExecutionRecord.from_json(json.load(f))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            warnings.warn(f"skipped the damaged execution record {path} ({type(exc).__name__}: {exc}); "
                          "its executions will be measured again", stacklevel=3)
            return None
