"""Argument checks shared by the public entry points: one-line errors that name the argument."""

from __future__ import annotations

from numbers import Integral
from typing import Any

__all__ = ["check_int", "check_seed", "integer_kind"]


def integer_kind(minimum: int) -> str:
    """How an error message names the integers >= ``minimum``."""
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` when it is an integer (not a bool) >= ``minimum``; otherwise
    ``ValueError("<name> must be a positive integer, got <value>.")``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be {integer_kind(minimum)}, got {value!r}.")
    return int(value)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as an ``int``, or None; anything else is a ``TypeError``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"{name} must be an integer or None, got {seed!r}.")
    return int(seed)
