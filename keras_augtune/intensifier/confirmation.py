"""The confirmation intensifier: re-measure the best policies and the baseline before naming a winner.

The search ranks trials by a few noisy trainings each, so its best trial is partly the luckiest
one (the winner's curse). As SMAC's intensifier does for noisy objectives, the confirmation step
takes the ``top_k`` policies by the search's score (no-op policies skipped) and the
no-augmentation runs they are compared with (the baseline trial, and under joint architecture
tuning the no-augmentation run of each winner's architecture values), and brings each one to
``executions`` paired executions (execution ``e`` under the same seed for all of them). The
results then rank these policies by their mean over all executions and give each a paired gain
with a t-interval (`keras_augtune.results`).

It is an extra cost on top of ``max_trials``: ``extra_trainings`` in the plan, shown in the log
and the summary. Every execution is stored as it finishes ([`keras_augtune.records`][keras_augtune.records]), so
a confirmation killed halfway resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping, Sequence

from keras_tuner.errors import FatalError

from keras_augtune.files import disk_error
from keras_augtune.checks import check_int
from keras_augtune.intensifier.base import Configuration, Context, Intensifier
from keras_augtune.records import ExecutionStore, config_key
from keras_augtune.results import SearchResults, baseline_config, describe_policy
from keras_augtune.space import PolicySpace

__all__ = ["plan_confirmation", "Confirmation"]


def plan_confirmation(results: SearchResults, trial_values: Mapping[str, Mapping[str, Any]],
                      space: PolicySpace, top_k: int) -> list[Configuration]:
    """The configurations to confirm: the baseline trial, the ``top_k`` augmentation policies by the
    search's score, and the no-augmentation run of each of their architectures (once each)."""
    planned: dict[str, Configuration] = {}

    def add(config: Configuration) -> None:
        planned.setdefault(config.key, config)

    baseline = results.baseline
    if baseline is not None:
        add(Configuration(dict(trial_values[baseline.trial_id]), baseline.trial_id, "no augmentation", True))
    for t in results.best(top_k, skip_identity=True, by_score=True):
        values = dict(trial_values[t.trial_id])
        add(Configuration(values, t.trial_id, f"trial {t.trial_id}: {describe_policy(t.policy, limit=60)}"))
        base = baseline_config(space, values)
        if base is not None and config_key(base) not in planned:
            trial = next((r for r in results.completed if r.values and config_key(r.values) == config_key(base)), None)
            arch = json.dumps(t.hyperparameters, separators=(",", ":"))
            add(Configuration(base, None if trial is None else trial.trial_id, f"no augmentation, {arch}", True))
    return list(planned.values())


class Confirmation(Intensifier):
    """Bring the ``top_k`` best policies (by the search's score) and the no-augmentation runs they
    are compared with to ``executions`` paired executions each (their own trial's included).
    ``top_k=0`` or ``executions < 2`` measure nothing."""

    def __init__(self, top_k: int = 3, executions: int = 3):
        self.top_k = check_int("confirm_top_k", top_k, minimum=0)
        self.executions = check_int("confirm_executions", executions, minimum=0)

    @property
    def active(self) -> bool:
        return self.top_k >= 1 and self.executions >= 2

    def intensify(self, results: SearchResults, context: Context) -> int:
        """Plan the confirmation from ``results`` and measure what is missing."""
        if not self.active:
            return 0
        configurations = plan_confirmation(results, context.trial_values, context.space, self.top_k)
        if not configurations:
            return 0
        executions = max(self.executions, context.own_executions)
        return _Run(context.store, context.search_seed, executions, context.own_executions,
                    context.log).run(configurations, context.measure)


class _Run:
    """One confirmation: every planned configuration brought to ``executions`` paired executions.

    Args:
        store: where the executions are kept (and the plan is written).
        search_seed: the seed the executions are paired under.
        executions: the executions each configuration reaches (its own trial's included).
        own_executions: the executions a trial ran by itself (``executions_per_trial``), to count
            the extra cost.
        log: receives the header and one line per training.
    """

    def __init__(self, store: ExecutionStore, search_seed: int, executions: int, own_executions: int,
                 log: Callable[[str], Any]):
        self.store, self.search_seed = store, int(search_seed)
        self.executions, self.own_executions = int(executions), int(own_executions)
        self.log = log

    def missing(self, config: Configuration) -> list[int]:
        """The executions of ``config`` not measured yet."""
        record = self.store.read(config.values, self.search_seed)
        done = set() if record is None else set(record.rewards)
        return [e for e in range(self.executions) if e not in done]

    def run(self, configurations: Sequence[Configuration], measure: Callable[[Configuration, int], float]) -> int:
        """Measure the missing executions, execution by execution across the configurations (a
        stop leaves them evenly measured); ``measure(config, e)`` trains and stores one and
        returns its reward. A configuration whose training fails is dropped (with its reason).
        Returns the number of trainings run."""
        todo = {c.key: self.missing(c) for c in configurations}
        total = sum(len(v) for v in todo.values())
        extra = sum(max(self.executions - (self.own_executions if c.trial_id is not None else 0), 0)
                    for c in configurations)
        self._write_plan(configurations, extra, complete=False)
        policies = len([c for c in configurations if not c.is_baseline])
        if total:
            self.log(f"Confirmation: {policies} best {'policy' if policies == 1 else 'policies'} and "
                     f"{len(configurations) - policies} no-augmentation run(s), {self.executions} paired executions "
                     f"each: {total} more training(s) (an extra cost beyond max_trials; set by confirm_top_k and "
                     "confirm_executions).")
        done, failed = 0, set()
        for execution in range(self.executions):
            for config in configurations:
                if execution not in todo[config.key] or config.key in failed:
                    continue
                started = time.time()
                try:
                    reward = measure(config, execution)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    if disk_error(exc) or isinstance(exc, FatalError):
                        raise
                    failed.add(config.key)
                    self.log(f"Confirmation of {config.label} failed at execution {execution + 1}: "
                             f"{type(exc).__name__}: {exc}")
                    continue
                done += 1
                self.log(f"Confirmation {done}/{total}: {config.label}, execution {execution + 1}/{self.executions}: "
                         f"reward {reward:.4f} | {time.time() - started:.1f}s")
        self._write_plan(configurations, extra, complete=not failed)
        return done

    def _write_plan(self, configurations: Sequence[Configuration], extra: int, complete: bool) -> None:
        self.store.write_plan({
            "executions": self.executions,
            "trial_ids": [c.trial_id for c in configurations if c.trial_id is not None],
            "policies": len([c for c in configurations if not c.is_baseline]),
            "baselines": len([c for c in configurations if c.is_baseline]),
            "configurations": [{"key": c.key, "trial_id": c.trial_id, "label": c.label} for c in configurations],
            "extra_trainings": extra, "complete": complete,
        })
