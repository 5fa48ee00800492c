"""Keras Tuner trials as this package reads them: status names, their order, a failure's reason.

The oracle, the tuner, the results, the report and the command line all go through
these names, so a status is compared one way (Keras Tuner's ``TrialStatus``
constants, which are plain strings) and trials are ordered one way.
"""

from __future__ import annotations

import re
import zlib
from typing import Any, Iterable, Mapping

__all__ = ["COMPLETED", "FAILED", "INVALID", "RUNNING", "FINISHED", "UNSUCCESSFUL",
           "BUDGET_PREFIX", "EPOCHS", "TRAIN_SIZE", "INITIAL_EPOCH", "RESUME_FROM", "BRACKET", "ROUND", "budget_of", "without_budget", "epoch_budget",
           "trial_index", "trial_order_key", "in_order", "failure_reason", "consecutive_failures_message"]

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

# A multi-fidelity trial's budget, in the values Keras Tuner's ``HyperbandOracle`` (and
# ``keras_augtune.oracle.RandomForestHyperbandOracle``) give it: train up to epoch ``EPOCHS``
# from epoch ``INITIAL_EPOCH``, starting from the weights of trial ``RESUME_FROM`` when set.
#: Every budget value's name starts with this (they are not hyperparameters of the model).
BUDGET_PREFIX = "tuner/"
EPOCHS = "tuner/epochs"
INITIAL_EPOCH = "tuner/initial_epoch"
RESUME_FROM = "tuner/trial_id"
BRACKET = "tuner/bracket"
ROUND = "tuner/round"
#: The race's training images per execution (``race_train_size``): a budget value, as ``EPOCHS``.
TRAIN_SIZE = "tuner/train_size"


def budget_of(values: Any) -> int | None:
    """The epochs a trial trains up to (``tuner/epochs``), or None for a trial without a budget.
    ``values``: a values dict or ``HyperParameters``."""
    epochs = _values(values).get(EPOCHS)
    return None if epochs is None else int(epochs)


def without_budget(values: Any) -> dict:
    """A trial's values (a dict or ``HyperParameters``) without the budget values: what its policy and model are."""
    return {k: v for k, v in _values(values).items() if not str(k).startswith(BUDGET_PREFIX)}


def epoch_budget(values: Any, epochs: int, fit_kwargs: dict) -> tuple[int, int]:
    """(epochs, initial_epoch) of a trial with ``values``: Hyperband's ``tuner/epochs`` and
    ``tuner/initial_epoch`` when the oracle set them (``fit_kwargs`` then gets the initial epoch),
    else the search's ``epochs`` and ``fit_kwargs``'s initial epoch."""
    values = _values(values)
    if EPOCHS not in values:
        return epochs, int(fit_kwargs.get("initial_epoch", 0))
    fit_kwargs["initial_epoch"] = int(values.get(INITIAL_EPOCH, 0))
    return int(values[EPOCHS]), fit_kwargs["initial_epoch"]


def _values(values: Any) -> Mapping:
    return values if isinstance(values, Mapping) else values.values


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


def consecutive_failures_message(oracle: Any) -> str:
    """Why a search stopped early (Keras Tuner's ``max_consecutive_failed_trials``): the reasons of
    ``oracle``'s last failed trials, and what to do."""
    limit = oracle.max_consecutive_failed_trials
    reasons = []
    for trial_id in list(oracle.end_order)[-limit:]:
        trial = oracle.trials[trial_id]
        reasons.append(f"trial {trial_id}: {failure_reason(trial.message)}")
    return (
        f"The search stopped: {limit} trials in a row failed (max_consecutive_failed_trials={limit}), "
        "so every trial is likely to fail the same way. "
        + "; ".join(reasons)
        + ". Fix the cause (the full tracebacks are in each trial's trial.json), or pass a larger "
        "max_consecutive_failed_trials to tolerate more failures. Finished trials are kept: "
        "run the search again with the same directory to continue."
    )
