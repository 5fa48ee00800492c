"""Seeds: every random stream of a search is derived from the search seed and counters, one way.

A derived seed comes from NumPy's ``SeedSequence`` over the integers that name the
stream (the search seed, a trial, an execution, a call number...), so the same
names always give the same seed and different names give independent streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["derive_seed", "derive_call_seed", "execution_seed", "subset_seed", "base_seed"]

#: The stream number of the executions' seeds (kept apart from every other use of the search seed).
_EXECUTION_STREAM = 1
#: The stream of the race's training subsets (``race_train_size``), one per execution.
_SUBSET_STREAM = 2
#: The stream of the base recipe's augmentation seed within an execution (``base=``).
_BASE_STREAM = 3


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


def subset_seed(search_seed: int, execution: int) -> int:
    """The seed of execution ``execution``'s training subset when the race trains on more images than
    the trials (``race_train_size``): the same for every configuration, so the race stays paired."""
    return derive_seed(int(search_seed), _SUBSET_STREAM, int(execution))


def base_seed(seed: int) -> int:
    """The augmentation seed of the base recipe's layer in a model built under ``seed`` (the
    candidate's policy layer gets ``seed`` itself): the two layers never draw the same randomness."""
    return derive_seed(int(seed), _BASE_STREAM)
