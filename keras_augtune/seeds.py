"""Seeds: every random stream of a search is derived from the search seed and counters, one way.

A derived seed comes from NumPy's ``SeedSequence`` over the integers that name the
stream (the search seed, a trial, an execution, a call number...), so the same
names always give the same seed and different names give independent streams.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["derive_seed", "derive_call_seed", "trial_seed"]


def derive_seed(*parts: Any, bits: int = 31) -> int:
    """A ``bits``-wide seed (31: what imgaug and Keras accept) derived from integer ``parts``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0]) & ((1 << bits) - 1)


def derive_call_seed(seed: int | None, call: int) -> int | None:
    """The seed of call ``call`` of a stateful path (tf.data map, layer): call 0 uses ``seed``."""
    if seed is None:
        return None
    return seed if call == 0 else derive_seed(seed, call)


def trial_seed(seed: int | None, trial_id: str, execution: int) -> int:
    """The seed of execution ``execution`` of trial ``trial_id`` (fresh entropy when ``seed`` is None)."""
    parts = [0 if seed is None else int(seed), int(hashlib.sha1(str(trial_id).encode()).hexdigest()[:8], 16), execution]
    if seed is None:
        parts.append(int(np.random.SeedSequence().entropy % (2**32)))
    return derive_seed(*parts)
