"""Modules imported on first use: naming and checking inputs never waits for TensorFlow or imgaug.

``iaa = lazy_module("imgaug.augmenters")`` binds a stand-in that imports the module the
first time one of its attributes is read. The op table, the model names and the policy
files can then be checked (the command line's input checks, ``--help``) in well under a
second, while importing TensorFlow takes seconds.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands in for a module until one of its attributes is read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str) -> Any:
    """A stand-in for the module ``name`` that imports it on first attribute access."""
    return _LazyModule(name)
