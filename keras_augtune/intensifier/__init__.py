"""Intensifiers: after the trials, which configurations get more executions, at which budget, and who the incumbent is.

One concept per module, as SMAC3's ``intensifier/``:

* ``base`` — the [`Intensifier`][keras_augtune.intensifier.base.Intensifier] interface, the
  [`Configuration`][keras_augtune.intensifier.base.Configuration] it measures and the
  [`Context`][keras_augtune.intensifier.base.Context] a search hands it (the runner's ``measure``,
  the execution records, the log);
* ``confirmation`` — re-measure the best trials and their no-augmentation runs on the trials'
  own execution seeds ([`Confirmation`][keras_augtune.intensifier.confirmation.Confirmation]).

A new intensifier is a subclass of ``Intensifier`` in a module of its own here, passed to
``AugmentTuner(intensifier=...)``.
"""

from keras_augtune.intensifier.base import Configuration, Context, Intensifier
from keras_augtune.intensifier.confirmation import Confirmation, plan_confirmation

__all__ = ["Intensifier", "Configuration", "Context", "Confirmation", "plan_confirmation"]
