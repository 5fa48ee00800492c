"""The live display of a running search: one line as each trial ends, and the lines that are no trial's.

[`TrialDisplay`][keras_augtune.display.TrialDisplay] writes the lines (``print`` by default; the command
line hands them to its progress bar, DeepAugment to its logger: ``tuner.display.write = logger.info``);
[`trial_line()`][keras_augtune.display.trial_line] says what a finished trial's line holds.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator

from keras_augtune import compat
from keras_augtune.evaluation.reward import REWARD
from keras_augtune.policy import Policy
from keras_augtune.results import describe_policy
from keras_augtune.trials import COMPLETED, FINISHED, budget_of, failure_reason

__all__ = ["TrialDisplay", "trial_line"]


class TrialDisplay:
    """The one line shown as each trial of a running search ends, under a progress bar.

    ``write`` receives each line (default: ``print``; DeepAugment hands it to its logger:
    ``tuner.display.write = logger.info``). While a search runs with ``verbose >= 1`` a tqdm
    progress bar on standard error counts the trials, with the elapsed time and the ETA
    (``progress=False``, or ``tuner.display.progress = False``, turns it off); the default
    ``print`` then writes above the bar.
    """

    def __init__(self, write: Callable[[str], Any] | None = None, progress: bool = True):
        self.write: Callable[[str], Any] = write if write is not None else _print
        #: Where the lines that are no trial's go (the intensifier's); default: ``write``.
        self.notes: Callable[[str], Any] | None = None
        #: Show a progress bar (with ETA) while a search runs.
        self.progress = bool(progress)
        self._bar: Any = None
        self._started: dict[str, float] = {}

    @contextlib.contextmanager
    def running(self, total: int | None, show: bool = True) -> Iterator[None]:
        """While the block runs, a progress bar over ``total`` trials (``None``: unknown, no ETA),
        when ``show`` and ``progress``."""
        if not (show and self.progress):
            yield
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="trial", desc="search", file=sys.stderr, dynamic_ncols=True)
        try:
            yield
        finally:
            self._bar.close()
            self._bar = None

    def _out(self, writer: Callable[[str], Any], line: str) -> None:
        if self._bar is not None and writer is _print:  # print above the bar, not through it
            self._bar.write(line)
        else:
            writer(line)

    def note(self, line: str) -> None:
        """Write a line that reports no trial (e.g. an intensifier's training) to ``notes``."""
        self._out(self.notes or self.write, line)

    def started(self, trial_id: str) -> None:
        self._started[trial_id] = time.time()

    def ended(self, trial: Any, describe: Callable[[Any, float], str]) -> None:
        """Write ``describe(trial, seconds)``; a failing description never stops the search."""
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        try:
            line = describe(trial, seconds)
        except Exception as exc:  # a log line must never stop a search
            line = f"Trial {trial.trial_id} {str(trial.status).lower()} (no summary: {type(exc).__name__}: {exc})"
        self._out(self.write, line)
        if self._bar is not None:
            self._bar.update(1)

    @staticmethod
    def line(head: str, reward: float, gain: float | None, best: float, seconds: float, policy: Policy) -> str:
        """A completed trial's line: reward, gain over no augmentation (of the same model), best
        so far, time, policy."""
        shown = "" if gain is None else f" ({gain:+.4f} vs no augmentation)"
        return (f"{head}: reward {reward:.4f}{shown} | best {best:.4f} | {seconds:.1f}s | "
                f"{describe_policy(policy, limit=140)}")

    @staticmethod
    def failed_line(head: str, status: str, message: str | None, seconds: float) -> str:
        return f"{head} {status.lower()}: {failure_reason(message)} | {seconds:.1f}s"


def trial_line(tuner: Any, trial: Any, seconds: float) -> str:
    """The line of ``tuner``'s finished ``trial``: its reward, its policy's gain over the
    no-augmentation run of the same model (under joint architecture tuning, not over another
    architecture's baseline), the best so far, its time and policy."""
    if compat.is_worker():  # a worker's oracle is a gRPC client: it has no `trials`
        head = f"[{tuner.tuner_id}] Trial {trial.trial_id}"
    else:
        done = len([t for t in tuner.oracle.trials.values() if t.status in FINISHED])
        total = getattr(tuner.oracle, "max_trials", None)  # Keras Tuner's Hyperband sets none
        head = f"Trial {trial.trial_id} ({done}/{total})" if total else f"Trial {trial.trial_id} ({done} done)"
    if trial.status != COMPLETED:
        return TrialDisplay.failed_line(head, trial.status, trial.message, seconds)
    if compat.is_worker():  # the metrics went to the chief: read them back from there
        trial = tuner.oracle.get_trial(trial.trial_id)
    results = tuner.results()
    by_score = tuner.density is not None  # trials compare density scores (an intensifier's training rewards differ)
    best = results.best(1, by_score=by_score)
    this = next((t for t in results.trials if t.trial_id == trial.trial_id), None)
    reward = trial.metrics.get_best_value(REWARD)
    best_value = (best[0].score if by_score else best[0].reward) if best else reward
    gain = None if this is None else this.gain
    budget = budget_of(trial.hyperparameters)
    if budget is not None and budget != results.full_budget:  # a short trial: no gain to show
        head, gain = f"{head} [{budget}/{results.full_budget} epochs]", None
    return TrialDisplay.line(head, reward, gain, best_value, seconds,
                             tuner.hypermodel.policy(trial.hyperparameters).effective(tuner._channels or 3))


def _print(line: str) -> None:
    print(line, flush=True)
