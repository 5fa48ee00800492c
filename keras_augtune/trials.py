"""Keras Tuner trials as this package reads them: status names, their order, a failure's reason.

The oracle, the tuner, the results, the report and the command line all go through
these names, so a status is compared one way (Keras Tuner's ``TrialStatus``
constants, which are plain strings) and trials are ordered one way.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterable

__all__ = ["COMPLETED", "FAILED", "INVALID", "RUNNING", "FINISHED", "UNSUCCESSFUL",
           "trial_index", "trial_order_key", "in_order", "failure_reason"]

# Keras Tuner's ``TrialStatus`` values, written out so that reading results needs no TensorFlow
# (tests/test_cli.py checks them against keras_tuner.engine.trial.TrialStatus).
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INVALID = "INVALID"
RUNNING = "RUNNING"
#: A trial in one of these states will not run again.
FINISHED = (COMPLETED, FAILED, INVALID)
#: A trial that ended without a result.
UNSUCCESSFUL = (FAILED, INVALID)


def trial_index(trial_id: Any) -> int:
    """The trial's number: Keras Tuner's ids are zero-padded counters; any other id gets a stable hash."""
    text = str(trial_id)
    return int(text) if text.isdigit() else zlib.crc32(text.encode("utf-8"))


def trial_order_key(trial_id: Any) -> tuple[int, str]:
    """Sort key putting trials in the order they were created (reloaded trials come back in directory order)."""
    return trial_index(trial_id), str(trial_id)


def in_order(trials: Iterable[Any]) -> list[Any]:
    """``trials`` (objects with a ``trial_id``) sorted by :func:`trial_order_key`."""
    return sorted(trials, key=lambda t: trial_order_key(t.trial_id))


def failure_reason(message: str | None) -> str:
    """The last line of a failed trial's message (its traceback), without the error's class path."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    last = lines[-1]
    for prefix in ("keras_tuner.src.errors.FailedTrialError: ", "keras_tuner.errors.FailedTrialError: "):
        last = last[len(prefix):] if last.startswith(prefix) else last
    return last
