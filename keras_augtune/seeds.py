"""Seeds: every random stream of a search is derived from the search seed and counters, one way.

A derived seed comes from NumPy's ``SeedSequence`` over the integers that name the
stream (the search seed, a trial, an execution, a call number...), so the same
names always give the same seed and different names give independent streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["derive_seed", "derive_call_seed", "execution_seed"]

#: The stream number of the executions' seeds (kept apart from every other use of the search seed).
_EXECUTION_STREAM = 1


def derive_seed(*parts: Any, bits: int = 31) -> int:
    """A ``bits``-wide seed (31: what imgaug and Keras accept) derived from integer ``parts``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0]) & ((1 << bits) - 1)


def derive_call_seed(seed: int | None, call: int) -> int | None:
    """The seed of call ``call`` of a stateful path (tf.data map, layer): call 0 uses ``seed``."""
    if seed is None:
        return None
    return seed if call == 0 else derive_seed(seed, call)


def execution_seed(search_seed: int, execution: int) -> int:
    """The seed of execution ``execution`` of *every* trial of a search (common random numbers).

    It depends on the search seed and the execution index only, never on the trial: execution
    ``e`` of every trial starts from the same initial weights (for the same architecture), sees
    the training batches in the same order and draws the same augmentation seed stream, so
    two policies' rewards at the same ``e`` differ by the policies, not by the luck of the draw.
    """
    return derive_seed(int(search_seed), _EXECUTION_STREAM, int(execution))
