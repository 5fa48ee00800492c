"""Search results: the baseline, the ranked policies and their gains, summaries, the policies file.

One results model for the tuner, the report, the command line and DeepAugment:
[`SearchResults`][keras_augtune.results.SearchResults] is read from an oracle (a live tuner's, or one reloaded from a
search directory) and holds one [`TrialResult`][keras_augtune.results.TrialResult] per trial, in trial order.

* the **baseline** is the completed trial whose values are exactly the space's
  no-augmentation values ([`keras_augtune.space.baseline_values()`][keras_augtune.space.baseline_values]);
* the **ranking** orders completed trials by the oracle's score (its objective's
  direction), earlier trials first among equals; in a multi-fidelity search (trials with a
  ``tuner/epochs`` budget) only the trials at the **full budget** (the largest) are ranked or
  given a gain, since a trial stopped after fewer epochs is not comparable;
* every execution's reward is kept per configuration ([`keras_augtune.records`][keras_augtune.records]); a
  trial's **reward** is the mean over its executions, and its **gain** is the mean *paired*
  difference to the no-augmentation run of the same architecture on the same execution seeds,
  with a 95 % t-interval from two pairs on ([`keras_augtune.evaluation.verdict`][keras_augtune.evaluation.verdict]);
* the **ranking** puts the policies the confirmation step re-measured
  ([`keras_augtune.intensifier.confirmation`][keras_augtune.intensifier.confirmation]) first, by their mean over all their executions;
* a trial whose policy changes no image is the baseline in disguise: never ranked;
* the **verdict** ([`SearchResults.verdict()`][keras_augtune.results.SearchResults.verdict]) is the one place that says whether the search
  found a policy better than no augmentation: only when the winner's gain interval lies above 0.

The best policies are written to (and read back from) one JSON file,
``best_policies.json`` ([`write_policies()`][keras_augtune.results.SearchResults.write_policies], [`load_policies()`][keras_augtune.load_policies]).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

from keras_augtune.evaluation.verdict import CONFIDENCE, paired_gain
from keras_augtune.evaluation.reward import REWARD, accuracy_keys
from keras_augtune.records import BASE_FILE, RACE_FILE, ExecutionRecord, ExecutionStore, config_key
from keras_augtune.policies_file import write_policies
from keras_augtune.policy import Policy
from keras_augtune.recipes import baseline_label
from keras_augtune.recommendation import Standings, Verdict
from keras_augtune.space import PolicySpace, architecture_values, baseline_values, is_baseline, parse_name, policy_of
from keras_augtune.trials import (
    COMPLETED, EPOCHS, INITIAL_EPOCH, UNSUCCESSFUL, budget_of, failure_reason, in_order, without_budget,
)

__all__ = ["TrialResult", "SearchResults", "describe_policy", "policy_from_values", "baseline_config"]


# ----------------------------------------------------------------------------- one trial
@dataclasses.dataclass
class TrialResult:
    """One trial of a search: its policy, status, reward and gain over no augmentation.

    ``execution_rewards`` holds the reward of each execution (0, 1, ...: the trial's own and the
    confirmation's), when the search kept them; ``None`` for searches written before it did.
    ``gain_interval`` needs two paired executions; ``confirmed_rank`` is set for the policies
    (and the baseline) the confirmation step measured on all its executions.
    """

    trial_id: str
    number: int  #: 1-based position in the search
    status: str
    policy: Policy | None
    reward: float | None  #: mean reward over the executions (the ``reward`` metric, or the score, without records)
    score: float | None  #: what the oracle ranks (the trial's own executions only)
    val_accuracy: float | None
    hyperparameters: dict[str, Any]  #: the non-policy (architecture) values
    message: str | None = None
    is_baseline: bool = False
    #: The policy changes no image of the searched data (the baseline is one): never ranked as an augmentation.
    is_noop: bool = False
    #: mean paired difference to the no-augmentation run of the same architecture (None: none to compare with)
    gain: float | None = None
    execution_rewards: list[float] | None = None
    executions: int | None = None  #: how many executions the reward and gain average
    gain_interval: tuple[float, float] | None = None  #: 95 % t-interval of the paired differences
    confirmed_rank: int | None = None
    values: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)  #: all the trial's values
    #: The epochs a multi-fidelity trial trained up to (``tuner/epochs``); None without a budget.
    budget: int | None = None

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED and _finite(self.score) and self.reward is not None

    @property
    def unsuccessful(self) -> bool:
        """Failed or invalid: ended without a result."""
        return self.status in UNSUCCESSFUL

    @property
    def reason(self) -> str:
        """Why an unsuccessful trial failed (the last line of its message)."""
        return failure_reason(self.message)

    @property
    def confirmed(self) -> bool:
        return self.confirmed_rank is not None

    def to_policy(self) -> Policy:
        """A copy of the trial's policy with the results in ``metadata``: trial id, score, reward
        (mean over ``executions``), ``gain`` and ``gain_interval`` (a list, or None), ``executions``,
        ``execution_rewards``, ``confirmed``, accuracy and architecture values."""
        return Policy(self.policy.sub_policies, metadata={
            "trial_id": self.trial_id, "score": self.score, "reward": self.reward, "gain": self.gain,
            "gain_interval": None if self.gain_interval is None else list(self.gain_interval),
            "executions": self.executions, "execution_rewards": self.execution_rewards,
            "confirmed": self.confirmed, "val_accuracy": self.val_accuracy,
            "hyperparameters": dict(self.hyperparameters),
        })


# ----------------------------------------------------------------------------- a search
@dataclasses.dataclass
class SearchResults:
    """The results of a search, read by [`from_oracle()`][keras_augtune.results.SearchResults.from_oracle] (or [`keras_augtune.report.load_search()`][keras_augtune.report.load_search]).

    ``importances``, ``images``, ``value_range`` and ``run`` are filled for reports:
    the forest's hyperparameter importances, a few searched images for the
    augmentation grids, their pixel range, and the command line's ``run.json``.
    """

    trials: list[TrialResult]
    objective: str = REWARD
    direction: str = "max"
    project_dir: str = ""
    importances: dict[str, float] = dataclasses.field(default_factory=dict)
    images: Any = None
    value_range: tuple[float, float] | None = None
    run: dict[str, Any] | None = None
    space: PolicySpace | None = None  #: the policy space searched, when known
    #: Channels of the searched images (1 or 3; None: unknown, read as 3): what a no-op policy is.
    channels: int | None = None
    #: The confirmation step's plan (``executions/confirmation.json``), None when it did not run.
    confirmation: dict[str, Any] | None = None
    #: The race (``executions/race.json`` and its rewards), None when none ran.
    race: Standings | None = None
    #: The base recipe every configuration was applied after (`keras_augtune.bases.Base.record()`), None without.
    base: dict[str, Any] | None = None

    @classmethod
    def from_oracle(cls, oracle: Any, space: PolicySpace | None = None, project_dir: str = "",
                    channels: int | None = None) -> "SearchResults":
        """Every trial of ``oracle``; ``space`` (default: read back from the oracle's
        hyperparameters) turns trial values into policies and finds the baseline; ``channels``
        (of the searched images) tells which policies change no image."""
        if space is None:
            space = PolicySpace.from_hyperparameters(oracle.hyperparameters)
        return cls.from_trials(oracle.trials.values(), space, oracle.objective, project_dir, channels=channels)

    @classmethod
    def from_trials(cls, trials: Iterable[Any], space: PolicySpace | None, objective: Any = None,
                    project_dir: str = "", with_baseline: bool = True, channels: int | None = None) -> "SearchResults":
        """The results of Keras Tuner ``trials``; ``with_baseline=False`` when ``trials`` is
        only part of the search (a distributed worker sees only the best ones). The execution
        records and the confirmation plan are read from ``project_dir`` when it holds them."""
        records = [_trial_result(t, number, space, channels) for number, t in enumerate(in_order(trials), start=1)]
        if not with_baseline:
            for record in records:
                record.is_baseline = False
        results = cls(records, objective=getattr(objective, "name", REWARD),
                      direction=getattr(objective, "direction", "max"), project_dir=project_dir, space=space,
                      channels=channels)
        executions: dict[str, ExecutionRecord] = {}
        if project_dir:
            store = ExecutionStore(project_dir)
            executions, results.confirmation = store.records(), store.read_plan()
            race, results.base = store.read_plan(RACE_FILE), store.read_plan(BASE_FILE)
            results.race = Standings.read(race, executions) if race is not None else None
        results._measure(executions, space)
        return results

    def _measure(self, executions: dict[str, ExecutionRecord], space: PolicySpace | None) -> None:
        """Rewards over executions, paired gains against the same architecture's no-augmentation
        runs, and the confirmed ranks."""
        for t in self.trials:
            record = executions.get(config_key(t.values)) if t.values else None
            rewards = record.reward_list() if record is not None else []
            if rewards:
                t.execution_rewards, t.executions = rewards, len(rewards)
                t.reward = sum(rewards) / len(rewards)
                t.val_accuracy = _mean_best_val_accuracy(record, len(rewards), t.val_accuracy)
        baseline = self.baseline
        for t in self.trials:
            if t.reward is None or not self._at_full_budget(t):  # a multi-fidelity trial stopped early: no gain
                continue
            if t.is_baseline:
                t.gain = 0.0
                continue
            base_values = baseline_config(space, t.values)
            base = executions.get(config_key(base_values)) if base_values is not None else None
            base_rewards = base.reward_list() if base is not None else []
            if t.execution_rewards and base_rewards:
                measured = paired_gain(t.execution_rewards, base_rewards)
                t.gain, t.gain_interval = measured.gain, measured.interval
            elif (baseline is not None and baseline.hyperparameters == t.hyperparameters
                  and not baseline.execution_rewards):
                # a search without execution records: unpaired (a trial without records beside a
                # measured baseline, e.g. a density-scored one, is not comparable with it)
                t.gain = t.reward - baseline.reward
        if self.race is not None:  # the raced trials first (the baseline raced too): finalists, then by race mean
            race, by_id = self.race, {t.trial_id: t for t in self.completed}
            raced = {race.trial_ids[n]: rewards for n, rewards in race.rewards.items()
                     if race.kinds[n] in ("searched", "baseline") and rewards and race.trial_ids[n] in by_id}
            order = sorted(raced, key=lambda i: (not set(race.confirmation) <= set(raced[i]),
                                                 -sum(raced[i].values()) / len(raced[i])))
            for rank, trial_id in enumerate(order, start=1):
                by_id[trial_id].confirmed_rank = rank
            return
        plan = self.confirmation or {}
        planned = set(plan.get("trial_ids", []))
        needed = plan.get("executions", 0)
        confirmed = [t for t in self.completed if t.trial_id in planned and (t.executions or 0) >= needed]
        sign = -1.0 if self.direction == "max" else 1.0
        for rank, t in enumerate(sorted(confirmed, key=lambda t: sign * float(t.reward)), start=1):
            t.confirmed_rank = rank

    # ------------------------------------------------------------------ queries
    @property
    def completed(self) -> list[TrialResult]:
        return [t for t in self.trials if t.completed]

    @property
    def unsuccessful(self) -> list[TrialResult]:
        return [t for t in self.trials if t.unsuccessful]

    @property
    def full_budget(self) -> int | None:
        """The largest budget (``tuner/epochs``) of a completed trial; None when no trial has a budget."""
        return max((t.budget for t in self.completed if t.budget is not None), default=None)

    def _at_full_budget(self, trial: TrialResult) -> bool:
        return trial.budget == self.full_budget

    @property
    def baseline(self) -> TrialResult | None:
        """The no-augmentation baseline trial (None until it has completed), at the full budget."""
        return next((t for t in self.trials if t.is_baseline and t.completed and self._at_full_budget(t)), None)

    @property
    def baseline_reward(self) -> float | None:
        """The baseline trial's reward: the mean over its executions."""
        baseline = self.baseline
        return None if baseline is None else baseline.reward

    def best(self, n: int | None = None, skip_identity: bool = False, by_score: bool = False) -> list[TrialResult]:
        """The ``n`` best completed trials (all when ``None``), best first.

        The trials the confirmation step measured on all its executions come first, by their
        mean reward (``confirmed_rank``); then the others by the oracle's score (``by_score``:
        by the score alone). A trial whose policy changes no image is the baseline in disguise
        and is never ranked; ``skip_identity`` also leaves out the baseline itself. In a
        multi-fidelity search only the trials at the full budget are ranked.
        """
        ranked = [t for t in self.completed
                  if t.policy is not None and not (t.is_noop and (skip_identity or not t.is_baseline))
                  and self._at_full_budget(t)]
        sign = -1.0 if self.direction == "max" else 1.0
        ranked.sort(key=lambda t: (1, sign * float(t.score)) if by_score or not t.confirmed else (0, t.confirmed_rank))
        return ranked if n is None else ranked[:n]  # stable: earlier trials first among equals

    def best_policies(self, n: int = 1, skip_identity: bool = False) -> list[Policy]:
        """The ``n`` best policies, best first, each with its results in ``metadata``
        (`TrialResult.to_policy()`: reward, paired gain and its interval, executions, ...)."""
        return [t.to_policy() for t in self.best(n, skip_identity=skip_identity)]

    def to_frame(self) -> Any:
        """The trials as a pandas DataFrame, one row each, indexed by trial id: status, rank, policy,
        reward, score, gain and its interval, executions, ... ([`keras_augtune.frames`][keras_augtune.frames]).
        Needs pandas (``pip install 'keras-augtune[pandas]'``); without it, an ImportError saying so."""
        from keras_augtune.frames import results_frame

        return results_frame(self)

    def verdict(self) -> Verdict:
        """What the search recommends ([`Verdict`][keras_augtune.recommendation.Verdict]): the race's
        decision when a race ran, else whether the best policy beat no augmentation."""
        if self.race is not None:
            return Verdict.of_race(self.race, {t.trial_id: t for t in self.completed}, self.baseline, self.base_name)
        winners = self.best(1, skip_identity=True)
        return Verdict.of(winners[0] if winners else None, self.baseline, self.base_name)

    @property
    def base_name(self) -> str | None:
        """The base recipe's name (None without a base): the baseline is ``baseline_label(base_name)``."""
        return None if not self.base else str(self.base.get("name"))

    @property
    def baseline_title(self) -> str:
        """``no-augmentation baseline``, or under a base ``baseline (no augmentation beyond the base (<name>))``."""
        return "no-augmentation baseline" if self.base_name is None else f"baseline ({baseline_label(self.base_name)})"

    def augmentation(self, value_range: Any = None, engine: str = "imgaug", seed: int | None = None) -> Any:
        """The final augmentation as one Keras layer: the base recipe (when the search had one), then the
        verdict's policy ([`augmentation_layer()`][keras_augtune.bases.augmentation_layer])."""
        from keras_augtune.bases import augmentation_layer

        return augmentation_layer(self.verdict().recommended, self.base, value_range, engine, seed)

    # ------------------------------------------------------------------ text
    def confirmation_text(self) -> str | None:
        """One line on the intensifier's extra cost, the race's or the confirmation's (None when none ran)."""
        if self.race is not None:
            plan, state = self.race.plan, "" if self.race.complete else " (not finished: run the search again to complete it)"
            names = [n for n, k in self.race.kinds.items() if k != "baseline"]
            return (f"Race: {', '.join(names)} and {baseline_label(self.base_name)} on up to "
                    f"{len(plan.get('screening', [])) + len(plan.get('confirmation', []))} fresh paired executions: "
                    f"about {plan.get('trainings', 0)} trainings beyond the trials{state}.")
        plan = self.confirmation
        if not plan:
            return None
        policies, baselines = plan.get("policies", 0), plan.get("baselines", 0)
        what = f"the {policies} best {'policy' if policies == 1 else 'policies'}"
        if baselines:
            what += f" and {baselines} no-augmentation run{'s' if baselines > 1 else ''}"
        state = "" if plan.get("complete") else " (not finished: run the search again to complete it)"
        return (f"Confirmation: {what} measured on {plan.get('executions')} paired executions each: "
                f"{plan.get('extra_trainings', 0)} trainings beyond the trials{state}.")

    def summary_text(self, num_trials: int = 10) -> str:
        """The best trials as a text table (reward, paired gain over no augmentation with its
        interval, executions, accuracy, policy), the confirmation's cost and the verdict."""
        baseline = self.baseline
        spread = ""
        if baseline is not None and baseline.execution_rewards and len(baseline.execution_rewards) > 1:
            spread = (f" ({len(baseline.execution_rewards)} executions, {min(baseline.execution_rewards):.4f} "
                      f"to {max(baseline.execution_rewards):.4f})")
        lines = [f"Results summary: {len(self.completed)} completed, {len(self.unsuccessful)} failed trials "
                 f"in {self.project_dir}",
                 f"Objective: {self.objective} ({self.direction}); "
                 f"{self.baseline_title} reward: {format_value(self.baseline_reward) or 'n/a'}{spread}"]
        confirmation = self.confirmation_text()
        if confirmation:
            lines.append(confirmation)
        lines.append(f"{'rank':>4} {'trial':>6} {'reward':>7} {'gain':>8} {f'{CONFIDENCE:.0%} interval':>19} "
                     f"{'runs':>4} {'val_acc':>7}  policy")
        for rank, t in enumerate(self.best(num_trials), start=1):
            arch = f"  {t.hyperparameters}" if t.hyperparameters else ""
            lines.append(f"{rank:>4} {t.trial_id:>6} {format_value(t.reward):>7} {format_value(t.gain, '+.4f'):>8} "
                         f"{format_interval(t.gain_interval):>19} {t.executions or '':>4} "
                         f"{format_value(t.val_accuracy):>7}  {describe_policy(t.policy, limit=140)}{arch}")
        if self.race is not None:
            lines += self.race.text()
        lines.append(f"Verdict: {self.verdict().text}")
        return "\n".join(lines)

    def write_policies(self, path: str, num_policies: int = 5) -> list[Policy]:
        """Write the best policies to ``path`` (see [`write_policies()`][keras_augtune.results.SearchResults.write_policies]) and return them."""
        policies = self.best_policies(num_policies)
        baseline = self.baseline
        write_policies(path, policies, baseline_reward=self.baseline_reward, verdict=self.verdict(),
                       baseline_rewards=None if baseline is None else baseline.execution_rewards, base=self.base)
        return policies


def _mean_best_val_accuracy(record: ExecutionRecord, executions: int, default: float | None) -> float | None:
    """The mean over ``executions`` of each one's best validation accuracy (as the trial metric is)."""
    best = []
    for e in range(executions):
        try:
            best.append(max(record.histories[e][accuracy_keys(record.histories[e])[1]]))
        except (KeyError, ValueError):
            return default
    return sum(best) / len(best)


def baseline_config(space: PolicySpace | None, values: dict[str, Any]) -> dict[str, Any] | None:
    """``values`` with the policy replaced by the no-augmentation baseline's: the run a policy's gain
    is measured against (the same architecture values, and in a multi-fidelity search the same
    epochs trained from scratch, as the baseline trial runs); None when it cannot be expressed."""
    if space is None or not values:
        return None
    try:
        base = {**without_budget(values), **baseline_values(space)}
    except ValueError:
        return None
    budget = budget_of(values)
    return base if budget is None else {**base, EPOCHS: budget, INITIAL_EPOCH: 0}


def _trial_result(trial: Any, number: int, space: PolicySpace | None, channels: int | None) -> TrialResult:
    values = dict(trial.hyperparameters.values)
    metrics = trial.metrics.metrics
    score = None if trial.score is None else float(trial.score)
    reward = float(trial.metrics.get_best_value(REWARD)) if REWARD in metrics else score
    val = trial.metrics.get_best_value("val_accuracy") if "val_accuracy" in metrics else None
    try:
        policy = policy_of(space, values) if space is not None else policy_from_values(values)
    except (TypeError, ValueError):
        policy = None
    baseline = is_baseline(space, values) if space is not None else (policy is not None and policy.is_identity)
    noop = baseline or (policy is not None and policy.is_noop(channels or 3))
    return TrialResult(str(trial.trial_id), number, str(trial.status), policy, reward, score,
                       None if val is None else float(val), architecture_values(values), trial.message,
                       is_baseline=baseline, is_noop=noop, values=values, budget=budget_of(values))


def policy_from_values(values: dict[str, Any]) -> Policy | None:
    """The policy held by trial values named as a [`PolicySpace`][keras_augtune.PolicySpace] names them, whatever the
    space's options (probabilities missing from the values are 1); ``None`` when they hold none."""
    slots: dict[tuple[int, int], dict[str, Any]] = {}
    for name, value in values.items():
        parsed = parse_name(name)
        if parsed is not None:
            _, i, j, field = parsed
            slots.setdefault((i, j), {})[field] = value
    if not slots:
        return None
    subs: dict[int, list] = {}
    for (i, j) in sorted(slots):
        slot = slots[(i, j)]
        subs.setdefault(i, []).append((slot.get("op", "identity"), float(slot.get("probability", 1.0)),
                                        float(slot.get("magnitude", 0.0))))
    try:
        return Policy([subs[i] for i in sorted(subs)])
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- text forms
def describe_policy(policy: Policy | None, limit: int | None = None) -> str:
    """A one-line text form: ``rotate(p=0.80, m=0.50) + invert(p=0.20, m=0.00) | ...``
    (``no augmentation`` for the identity), cut to ``limit`` characters when given."""
    if policy is None:
        return "?"
    if policy.is_identity:
        return "no augmentation"
    text = " | ".join(
        " + ".join(f"{s.op}(p={s.probability:.2f}, m={s.magnitude:.2f})" for s in sub
                   if s.op != "identity" and s.probability > 0) or "identity"
        for sub in policy.sub_policies
    )
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def format_value(value: Any, spec: str = ".4f") -> str:
    """``value`` formatted by ``spec``; an empty string for None (a missing table cell)."""
    return "" if value is None else format(value, spec)


def format_interval(interval: Any, spec: str = "+.4f") -> str:
    """``[low, high]`` formatted by ``spec``; an empty string for None."""
    return "" if interval is None else f"[{format(interval[0], spec)}, {format(interval[1], spec)}]"


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
