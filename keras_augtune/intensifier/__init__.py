"""Intensifiers: after the trials, which configurations get more executions, at which budget, and who the incumbent is.

One concept per module, as SMAC3's ``intensifier/``:

* ``base`` — the [`Intensifier`][keras_augtune.intensifier.base.Intensifier] interface, the
  [`Configuration`][keras_augtune.intensifier.base.Configuration] it measures and the
  [`Context`][keras_augtune.intensifier.base.Context] a search hands it (the runner's ``measure``,
  the execution records, the log);
* ``race`` — the default: the best searched policies, the standard recipes and no augmentation
  race on fresh paired executions (successive halving, then a confirmation), and the verdict
  names one of them ([`Race`][keras_augtune.intensifier.race.Race]);
* ``confirmation`` — re-measure the best trials and their no-augmentation runs on the trials'
  own execution seeds ([`Confirmation`][keras_augtune.intensifier.confirmation.Confirmation]).

A new intensifier is a subclass of ``Intensifier`` in a module of its own here, passed to
``AugmentTuner(intensifier=...)``.
"""

from keras_augtune.intensifier.base import Configuration, Context, Intensifier
from keras_augtune.intensifier.confirmation import Confirmation, plan_confirmation
from keras_augtune.intensifier.race import Candidate, Race, RaceResult

__all__ = ["Intensifier", "Configuration", "Context", "Confirmation", "plan_confirmation", "Race", "Candidate",
           "RaceResult", "INTENSIFIERS", "make_intensifier"]

#: What ``AugmentTuner(intensifier=...)`` accepts by name.
INTENSIFIERS = ("race", "confirmation")


def make_intensifier(intensifier, top_k: int, executions: int, recipes=None, epochs: int | None = None,
                     train_size: int | None = None):
    """``AugmentTuner``'s intensifier: ``"race"`` (`Race` of ``top_k`` searched policies and the
    ``recipes``, ``executions`` confirmation executions, at ``epochs`` on ``train_size`` images), ``"confirmation"``
    (`Confirmation` of ``top_k`` policies to ``executions`` executions), or an `Intensifier`
    given; ``None`` when ``top_k`` is 0 or ``executions`` below 2 (no intensification)."""
    from keras_augtune.checks import check_choice, check_int

    top_k = check_int("confirm_top_k", top_k, minimum=0)
    executions = check_int("confirm_executions", executions, minimum=0)
    if isinstance(intensifier, Intensifier):
        return intensifier
    if check_choice("intensifier (or an Intensifier)", intensifier, INTENSIFIERS) == "confirmation":
        if recipes is None and epochs is None and train_size is None:
            return Confirmation(top_k, executions)
        _refuse(intensifier)
    race = Race(top_k=max(top_k, 1), confirm_executions=max(executions, 2), recipes=recipes, epochs=epochs,
                train_size=train_size)
    return race if top_k >= 1 and executions >= 2 else None


def _refuse(name):
    raise ValueError(f"recipes, race_train_size and race_epochs configure the race: intensifier={name!r} takes none "
                     "of them.")
