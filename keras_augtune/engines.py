"""The augmentation engines by name: which module runs a `Policy` ("imgaug" or "keras").

A `Policy` is a value; an engine executes it. ``"imgaug"`` (`keras_augtune.execution`, the
default) runs imgaug on the CPU, one image at a time; ``"keras"`` (`keras_augtune.keras_engine`)
runs the Keras twins of the ops (`keras_augtune.keras_twins`) with ``keras.ops`` inside the graph,
on any backend and device. Both read the same policy JSON. The policy module reaches an engine
only through `engine_module()`, at call time: neither engine is imported with the policy, and the
engines import the policy module for its types only, so there is no import circle.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from keras_augtune.checks import check_choice

#: The engines, and the module that runs a policy on each.
ENGINES: dict[str, str] = {
    "imgaug": "keras_augtune.execution",
    "keras": "keras_augtune.keras_engine",
}

#: The engine used when none is named.
DEFAULT_ENGINE = "imgaug"


def check_engine(engine: Any) -> str:
    """``engine`` when it names an engine, else a one-line ``ValueError`` with the closest name."""
    return check_choice("engine", engine, tuple(ENGINES))


def engine_module(engine: Any) -> ModuleType:
    """The module running policies on ``engine`` (imported on first use)."""
    return importlib.import_module(ENGINES[check_engine(engine)])
