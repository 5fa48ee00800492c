"""The child's learning-rate schedule: a short linear warm-up, then cosine decay to ~0 by the last step.

A child read at its last epochs after a constant learning rate is a random point of a
noisy walk; one whose rate has decayed to ~0 has settled, so its validation accuracy
measures the augmentation rather than where the walk stopped (NOTES.md: on reduced
CIFAR-10, constant Adam's last-epoch error swung 62.6 % / 71.4 % between two seeds).

[`WarmupCosineDecay`][keras_augtune.schedule.WarmupCosineDecay] is a Keras callback that sets the optimizer's learning rate
before every training step from a ``keras.optimizers.schedules.CosineDecay`` built when
the fit starts, when the number of steps is known (``epochs``, ``initial_epoch`` and the
steps per epoch of *this* ``fit`` call). ``AugmentHyperModel`` adds it to ``fit`` for the
models it compiles itself; a model the user compiled keeps its own optimizer.
"""

from __future__ import annotations

import math

import keras

#: Names accepted for ``AugmentHyperModel(learning_rate_schedule=...)``.
SCHEDULES = ("cosine", "constant")

#: Adam's default (peak) learning rate per schedule. A cosine schedule spends half its steps
#: well below its peak: at 1e-3 the default child (digits, 800 images, 8 epochs) ended
#: under-trained (reward 0.953 vs 0.970 for constant 1e-3); at 3e-3 it reached 0.980 with a
#: smaller spread (benchmarks/reward_noise.py, docs/benchmarks.md).
DEFAULT_LEARNING_RATES = {"cosine": 3e-3, "constant": 1e-3}


def check_schedule(name: str | None) -> str:
    """``"cosine"`` (warm-up + cosine decay to ~0) or ``"constant"`` (``None`` means constant)."""
    if name is None:
        return "constant"
    if not isinstance(name, str) or name.lower() not in SCHEDULES:
        raise ValueError(f"learning_rate_schedule must be one of {', '.join(map(repr, SCHEDULES))} or None, "
                         f"got {name!r}.")
    return name.lower()


class WarmupCosineDecay(keras.callbacks.Callback):
    """Warm the learning rate up linearly, then decay it along a cosine to ~0 at the fit's last step.

    Args:
        peak: the learning rate at the end of the warm-up.
        warmup_fraction: the warm-up's share of the steps; it is also capped at one epoch
            (default 0.1: one epoch of a 10-epoch fit, a third of the first of 3 epochs).

    The schedule spans the epochs this ``fit`` call runs (``initial_epoch`` to ``epochs``),
    so a continued training (Keras Tuner's ``tuner/initial_epoch``) gets its own warm-up
    and ends settled too. When the steps per epoch are unknown (a dataset of unknown
    size), the rate is set once per epoch instead of once per step. The optimizer's
    learning rate must be a plain number (not a ``LearningRateSchedule``).
    """

    def __init__(self, peak: float, warmup_fraction: float = 0.1):
        super().__init__()
        if isinstance(peak, bool) or not isinstance(peak, (int, float)) or not (math.isfinite(peak) and peak > 0):
            raise ValueError(f"peak (the learning rate after the warm-up) must be a positive number, got {peak!r}.")
        if isinstance(warmup_fraction, bool) or not isinstance(warmup_fraction, (int, float)) \
                or not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be a number in [0, 1), got {warmup_fraction!r}.")
        self.peak = float(peak)
        self.warmup_fraction = float(warmup_fraction)
        self._schedule: keras.optimizers.schedules.CosineDecay | None = None
        self._offset = 0  # added to the step index: 1 with a warm-up, so its first step is not at rate 0
        self._steps_per_epoch: int | None = None
        self._first_epoch: int | None = None
        self._epoch = 0
        #: The learning rates set, in order (one per step, or per epoch when steps are unknown).
        self.rates: list[float] = []

    def on_train_begin(self, logs=None):
        self._schedule, self._first_epoch, self.rates = None, None, []
        steps = self.params.get("steps")
        self._steps_per_epoch = int(steps) if steps else None

    def on_epoch_begin(self, epoch, logs=None):
        if self._schedule is None:  # the first epoch of this fit: now the step count is known
            self._first_epoch = int(epoch)
            unit = self._steps_per_epoch or 1
            total = max(1, (int(self.params["epochs"]) - self._first_epoch) * unit)
            warmup = min(unit if self._steps_per_epoch else total, math.ceil(self.warmup_fraction * total))
            self._offset = 1 if warmup else 0
            self._schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=0.0 if warmup else self.peak, decay_steps=total - warmup + self._offset,
                alpha=0.0, warmup_target=self.peak if warmup else None, warmup_steps=warmup,
            )
        self._epoch = int(epoch) - self._first_epoch  # epochs of this fit done so far
        if self._steps_per_epoch is None:
            self._set(self._epoch)

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps_per_epoch is not None:  # Keras counts batches from 0 in each epoch
            self._set(self._epoch * self._steps_per_epoch + int(batch))

    def _set(self, step: int) -> None:
        rate = float(keras.ops.convert_to_numpy(self._schedule(step + self._offset)))
        self.model.optimizer.learning_rate = rate
        self.rates.append(rate)
