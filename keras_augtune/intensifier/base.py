"""The intensifier interface: what a search hands an intensifier after its trials, and what it measures.

The search's trials rank configurations by a few noisy executions each, so the best trial is
partly the luckiest (the winner's curse). An intensifier spends more executions where they
decide the recommendation; every execution goes through the search's runner
([`keras_augtune.runner`][keras_augtune.runner]) and is kept in the execution records, so an
intensifier stopped halfway resumes where it stopped.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Mapping

from keras_augtune.records import ExecutionStore, config_key

__all__ = ["Configuration", "Context", "Intensifier"]


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One configuration to measure: trial values, the trial they belong to (None for an
    architecture's no-augmentation run that was no trial), and a label for the log."""

    values: dict[str, Any]
    trial_id: str | None
    label: str
    is_baseline: bool = False

    @property
    def key(self) -> str:
        return config_key(self.values)

    @property
    def notebook_key(self) -> str:
        """Its rows' ``trial`` in the notebook: the trial id, else ``no-augmentation-<key>`` or ``recipe-<key>``."""
        if self.trial_id is not None:
            return str(self.trial_id)
        return f"{'no-augmentation' if self.is_baseline else 'recipe'}-{self.key}"


@dataclasses.dataclass
class Context:
    """What a search hands its intensifier.

    Attributes:
        trial_values: every trial's values, by trial id.
        space: the searched [`PolicySpace`][keras_augtune.PolicySpace].
        store: the execution records.
        search_seed: the seed the executions are paired under.
        own_executions: the executions each trial ran by itself (0 when trials train nothing).
        measure: ``measure(config, execution)`` trains, stores and returns one execution's reward.
        log: receives the intensifier's lines.
        base_name: the search's base recipe (`keras_augtune.bases`), which every configuration is applied
            after; None without one.
    """

    trial_values: Mapping[str, Mapping[str, Any]]
    space: Any
    store: ExecutionStore
    search_seed: int
    own_executions: int
    measure: Callable[[Configuration, int], float]
    log: Callable[[str], Any]
    base_name: str | None = None


class Intensifier(abc.ABC):
    """Decides, after the trials, which configurations get more executions (and at which budget)."""

    @abc.abstractmethod
    def intensify(self, results: Any, context: Context) -> int:
        """Measure what the recommendation needs, given the trials' ``results``
        ([`SearchResults`][keras_augtune.results.SearchResults]); returns the trainings run."""

    @property
    def active(self) -> bool:
        """Whether this intensifier measures anything (a confirmation of 0 policies does not)."""
        return True
