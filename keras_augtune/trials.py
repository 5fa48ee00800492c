"""Keras Tuner trials as this package reads them: status names, their order, a failure's reason.

The oracle, the tuner, the results, the report and the command line all go through
these names, so a status is compared one way (Keras Tuner's ``TrialStatus``
constants, which are plain strings) and trials are ordered one way.
"""

from __future__ import annotations

import re
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
    """``trials`` (objects with a ``trial_id``) sorted by `trial_order_key()`."""
    return sorted(trials, key=lambda t: trial_order_key(t.trial_id))


#: Keras Tuner's own error classes: their text is the reason (keras_augtune wraps a child's
#: exception as ``FailedTrialError("ValueError: ...")``, so the inner type stays visible).
_WRAPPERS = ("FailedTrialError", "FatalError")
#: Longest reason shown (a display line, a report row).
REASON_LIMIT = 300


def failure_reason(message: str | None) -> str:
    """A failed trial's reason, on one line: the exception's type and its meaningful line.

    ``message`` is what Keras Tuner stores (the traceback). The reason is the last
    exception's first line, prefixed by its class name (without the module path; Keras
    Tuner's ``FailedTrialError`` wrapper is dropped); when that line only introduces
    what follows (it ends with ``:``), the next line is added. A message that is not a
    traceback gives its first line.
    """
    lines = [line.rstrip() for line in (message or "").strip().splitlines()]
    if not any(lines):
        return "unknown error"
    heads = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if heads:  # the exception text follows the last traceback's (indented) frames
        body = lines[heads[-1] + 1:]
        while body and (not body[0] or body[0][0].isspace()):
            body.pop(0)
    else:
        body = lines
    body = [line.strip() for line in body if line.strip()]
    if not body:
        return "unknown error"
    name, sep, text = body[0].partition(": ")
    name = name.rsplit(".", 1)[-1] if sep and re.fullmatch(r"[\w.]+", name) else ""
    if not name:
        text = body[0]
    elif name in _WRAPPERS:
        name = ""
    reason = f"{name}: {text}" if name else text
    if reason.endswith(":") and len(body) > 1:
        reason = f"{reason} {body[1]}"
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 3] + "..."
