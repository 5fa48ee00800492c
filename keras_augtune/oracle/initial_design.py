"""The initial design: the points tried before the surrogate is fitted.

``"random"``: independent uniform samples (what Keras Tuner's random search does).
``"space_filling"``: a Latin hypercube over the unit space (every hyperparameter's
range is cut into as many strata as there are design points, each stratum used
once), in which the op slots of each policy (``pooling.find_policy_groups``) take
the ops in turn from shuffled rounds over the op list, so the first trials cover
every op as early as the slots allow (32 ops over 10 slots: all of them within 4
trials) instead of leaving some untried by chance.

The design is a fixed function of the space, its size and a seed: a resumed search
rebuilds it identically and takes its first row not yet tried.
"""

from __future__ import annotations

import numpy as np

from keras_augtune.oracle.encoding import SpaceEncoder

__all__ = ["INITIAL_DESIGNS", "space_filling_design"]

INITIAL_DESIGNS = ("random", "space_filling")


def space_filling_design(encoder: SpaceEncoder, size: int, rng: np.random.Generator) -> np.ndarray:
    """Unit rows ``(size, dims)`` of a Latin hypercube with balanced op coverage in policy slots."""
    size = max(int(size), 1)
    strata = np.argsort(rng.random((size, encoder.dims)), axis=0)  # a permutation of 0..size-1 per column
    units = (strata + rng.random((size, encoder.dims))) / size
    for group in encoder.policy_groups:
        k = len(group.ops)
        slots = [slot.op for slot in group.slots]
        rounds = -(-size * len(slots) // k)  # ceil
        sequence = np.concatenate([rng.permutation(k) for _ in range(rounds)])[: size * len(slots)]
        units[:, slots] = (sequence.reshape(size, len(slots)) + 0.5) / k
    return units
