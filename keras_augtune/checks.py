"""Argument checks shared by the public entry points: one-line errors that name the argument."""

from __future__ import annotations

import difflib
from numbers import Integral
from typing import Any

__all__ = ["check_int", "check_count", "check_seed", "check_choice", "integer_kind", "as_number", "json_kind",
           "MAX_SEED", "MAX_EPOCHS", "MAX_IMAGE_SIZE"]

#: Seeds go to scikit-learn's ``random_state`` (and NumPy's generators), which take 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
#: The most epochs a child model may train for: far above any search (a trial of 10,000 epochs
#: of the smallest child on digits would take days); a larger number is a typo.
MAX_EPOCHS = 10_000
#: The largest image side the loaders resize to: beyond this one image is 48 MB as RGB uint8 and
#: a child model would not fit in memory; a larger number is a typo.
MAX_IMAGE_SIZE = 4096


def integer_kind(minimum: int) -> str:
    """How an error message names the integers >= ``minimum``."""
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` when it is an integer (not a bool) >= ``minimum`` (and <= ``maximum``
    when given); otherwise ``ValueError("<name> must be a positive integer, got <value>.")``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be {integer_kind(minimum)}, got {value!r:.40}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {value:,}.")
    return int(value)


def check_count(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an ``int`` in ``[low, high]``: ``TypeError`` when it is not an integer,
    ``ValueError`` when it is out of range."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}.")
    return int(value)


def check_seed(seed: Any, name: str = "seed", minimum: int = 0) -> int | None:
    """``seed`` as an ``int`` from ``minimum`` (default 0) to `MAX_SEED`, or None; anything else
    is a ``TypeError`` naming the range."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not minimum <= seed <= MAX_SEED:
        raise TypeError(f"{name} must be an integer from {minimum} to {MAX_SEED} (2**32 - 1) or None, got {seed!r:.40}.")
    return int(seed)


def check_choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    """``value`` when it is one of ``options``; otherwise a ``ValueError`` listing them, with the
    closest option suggested for a misspelt name."""
    if isinstance(value, str) and value in options:
        return value
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}.{hint}")


def as_number(value: Any, message: str) -> float:
    """``value`` as a ``float`` when it is a number (not a bool, a string or None); otherwise
    ``TypeError(message)``. The caller checks the range (NaN passes)."""
    if isinstance(value, (bool, str)) or value is None:
        raise TypeError(message)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(message) from None


def json_kind(value: Any) -> str:
    """How an error message names the JSON type of ``value``: "an object", "a list", ..."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
