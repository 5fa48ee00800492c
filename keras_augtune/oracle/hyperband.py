"""RandomForestHyperbandOracle: Hyperband's brackets with the random forest proposing each bracket's new trials.

Multi-fidelity search in the style of BOHB and SMAC3's multi-fidelity facade:

* **Brackets** are Keras Tuner's own (``keras_tuner.oracles.HyperbandOracle``, which
  this class subclasses unchanged for the bracket logic): successive halving over child
  epochs with reduction factor ``factor`` (η = 3). A bracket starts ``n`` new trials at a
  small budget, keeps the best ``1/η`` of them and continues those for ``η`` times more
  epochs (``tuner/epochs``, from ``tuner/initial_epoch``, resuming the weights of trial
  ``tuner/trial_id``), up to ``max_epochs``.
* **New trials** (the first round of every bracket) are proposed by the random forest of
  [`RandomForestOracle`][keras_augtune.RandomForestOracle] instead of drawn at random: the forest is
  fitted on the trials of the *largest budget that has enough results*
  (``num_initial_points`` completed trials), so the model always ranks with the most faithful
  evidence available; before any budget has enough, proposals are random. A share
  ``random_share`` of the model's proposals is drawn at random anyway (SMAC3's interleaved
  random design, 20 % here), which keeps the search exploring where the forest is wrong.
* **Initial trials** (``initial_values``: ``AugmentTuner``'s no-augmentation baseline) run
  first, outside the brackets, at the full budget (``max_epochs`` epochs from scratch), so
  every full-budget trial's gain over the baseline compares equal training lengths.

Everything else is the forest oracle's: the encoding, candidates, acquisition, the constant
liar for running trials (distributed workers), canonical de-duplication (the forest never
proposes a configuration tried at any budget), and the JSON state (the brackets are in it; the
forest is refitted after a reload, so a resumed search continues with the same proposals).
"""

from __future__ import annotations

import collections

from keras_tuner.engine import trial as trial_module
from keras_tuner.oracles import HyperbandOracle

from keras_augtune import compat
from keras_augtune.checks import check_int
from keras_augtune.oracle.random_forest import RandomForestOracle
from keras_augtune.oracle.training_data import TrainingData, is_finite
from keras_augtune.trials import EPOCHS, INITIAL_EPOCH, budget_of, without_budget

__all__ = ["RandomForestHyperbandOracle"]


class RandomForestHyperbandOracle(HyperbandOracle, RandomForestOracle):
    """Keras Tuner oracle: Hyperband over child epochs, new trials proposed by a random forest.

    Use it as any Keras Tuner oracle; the tuner must honour ``tuner/epochs``,
    ``tuner/initial_epoch`` and ``tuner/trial_id`` as for ``keras_tuner.Hyperband``
    ([`AugmentTuner`][keras_augtune.AugmentTuner] does: ``AugmentTuner(method="hyperband")`` builds this oracle).

    Args:
        objective: As in Keras Tuner.
        max_epochs: The full budget: the epochs of a trial that reaches the last round
            of its bracket (and of the initial trials).
        factor: Hyperband's reduction factor η (>= 2): each round keeps the best ``1/η``
            trials and trains them ``η`` times longer.
        hyperband_iterations: How many times to run the whole set of brackets; ``None``
            (default) cycles through them until ``max_trials``.
        max_trials: Total number of trials, continuations included (a trial continued to
            a larger budget is a new trial). ``None`` needs ``hyperband_iterations``.
        random_share: Share of the forest's proposals replaced by random ones (default 0.2, as
            SMAC3's multi-fidelity facade; the forest oracle's option).
        num_initial_points: Completed trials a budget needs before the forest is fitted on
            it (the largest such budget is used); ``None`` means 10.
        acquisition, n_estimators, forest, min_samples_leaf, max_features, max_samples, xi,
        kappa, num_candidates, num_parents, constant_liar, failed_trials, initial_values,
        canonical_values: As in [`RandomForestOracle`][keras_augtune.RandomForestOracle];
            ``canonical_values`` sees a trial's values without its budget values.
        seed, hyperparameters, allow_new_entries, tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: As in ``keras_tuner.Oracle``.
    """

    def __init__(self, objective=None, max_epochs=100, factor=3, hyperband_iterations=None, max_trials=None,
                 random_share=0.2, num_initial_points=10, canonical_values=None, seed=None, **options):
        max_epochs, factor = check_int("`max_epochs`", max_epochs), check_int("`factor`", factor, minimum=2)
        if hyperband_iterations is not None:
            hyperband_iterations = check_int("`hyperband_iterations` (or None)", hyperband_iterations)
        if max_trials is None and hyperband_iterations is None:
            raise ValueError("Give `max_trials` or `hyperband_iterations` (or both): otherwise the search never ends.")
        # The forest oracle's (and Keras Tuner's base Oracle's) set-up, which checks the forest's
        # options and ``canonical_values``; the brackets are set up below.
        RandomForestOracle.__init__(
            self, objective=objective, max_trials=max_trials, num_initial_points=num_initial_points, seed=seed,
            random_share=random_share, canonical_values=canonical_values, **options,
        )
        if self.canonical_values is not None:  # it sees a trial's values without the budget values
            self.canonical_values = _on_policy_values(self.canonical_values)
        # Hyperband's state, as HyperbandOracle.__init__ sets it (its __init__ would re-run the
        # base Oracle's without the forest's options); test_hyperband.py checks it stays in step.
        self.hyperband_iterations = hyperband_iterations or float("inf")
        self.max_epochs = max_epochs
        self.min_epochs = 1
        self.factor = factor
        compat.start_brackets(self)
        self._proposal_id = None

    # ------------------------------------------------------------------ state
    def get_state(self):
        state = super().get_state()  # HyperbandOracle's brackets, then the forest's options
        if state["hyperband_iterations"] == float("inf"):
            state["hyperband_iterations"] = None  # JSON has no infinity
        return state

    def set_state(self, state):
        state = dict(state)
        if state.get("hyperband_iterations") is None:
            state["hyperband_iterations"] = float("inf")
        super().set_state(state)

    # ------------------------------------------------------------------ proposals
    def populate_space(self, trial_id):
        """The next initial trial at the full budget, else Hyperband's next trial (a
        continuation, or a new trial proposed by ``_random_values``)."""
        queued = self._next_initial_values()
        if queued is not None:
            queued.update({EPOCHS: self.max_epochs, INITIAL_EPOCH: 0})
            return {"status": trial_module.TrialStatus.RUNNING, "values": queued}
        self._proposal_id = trial_id
        try:
            return super().populate_space(trial_id)  # HyperbandOracle's bracket logic
        finally:
            self._proposal_id = None

    def _random_values(self):
        """A new trial's values (Hyperband's hook for "a new configuration"): the forest's
        proposal, or a random one; None when the space is exhausted."""
        trial_id = self._proposal_id if self._proposal_id is not None else str(len(self.trials))
        response = RandomForestOracle.populate_space(self, trial_id)
        return response.get("values") if response["status"] == trial_module.TrialStatus.RUNNING else None

    def _training_data(self, trials, rows):
        """The forest's data: the completed trials of the largest budget with at least
        ``num_initial_points`` of them (and the running trials, as constant liars); None
        (a random proposal) before any budget has enough."""
        running_ids = {t.trial_id for t in self.ongoing_trials.values()}
        budget = self.fitted_budget(trials)
        if budget is None:
            return None
        keep = [i for i, t in enumerate(trials) if t.trial_id in running_ids or budget_of(t.hyperparameters) == budget]
        return TrainingData.from_trials([trials[i] for i in keep], rows.take(keep), self.objective.direction,
                                        running_ids)

    def fitted_budget(self, trials=None):
        """The budget (epochs) the forest is fitted on now: the largest one with at least
        ``num_initial_points`` (and 2) completed trials; None before any has that many."""
        trials = self.trials.values() if trials is None else trials
        running_ids = {t.trial_id for t in self.ongoing_trials.values()}
        counts = collections.Counter(
            budget_of(t.hyperparameters) for t in trials
            if t.trial_id not in running_ids and t.status == trial_module.TrialStatus.COMPLETED and is_finite(t.score)
        )
        enough = max(self.num_initial_points, 2)
        return max((b for b, n in counts.items() if b is not None and n >= enough), default=None)

    def check_epochs(self, epochs: int) -> None:
        """The full budget was fixed when this oracle was built: ``search(epochs=...)`` cannot change it."""
        if epochs != self.max_epochs:
            raise ValueError(
                f"method='hyperband' trains each trial for the epochs its bracket gives, up to {self.max_epochs} "
                f"(the child_epochs the search began with); epochs={epochs} cannot change that: pass "
                f"child_epochs={self.max_epochs} and no search(epochs=...)."
            )

    # ------------------------------------------------------------------ insight
    def budgets(self) -> dict[int, int]:
        """How many trials started at each budget (epochs), smallest budget first."""
        counts = collections.Counter(budget_of(t.hyperparameters) for t in self.trials.values())
        return {b: counts[b] for b in sorted(b for b in counts if b is not None)}

    def brackets_per_iteration(self) -> list[dict[str, list[int]]]:
        """Hyperband's plan for one iteration: per bracket, the trials and epochs of each round."""
        return compat.hyperband_plan(self)


def _on_policy_values(canonical_values):
    """``canonical_values`` applied to a trial's values without its budget values."""
    def canonical(values):
        return canonical_values(without_budget(values))

    canonical.__wrapped__ = canonical_values
    return canonical

