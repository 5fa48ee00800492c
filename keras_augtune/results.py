"""Search results: the baseline, the ranked policies and their gains, summaries, the policies file.

One results model for the tuner, the report, the command line and DeepAugment:
:class:`SearchResults` is read from an oracle (a live tuner's, or one reloaded from a
search directory) and holds one :class:`TrialResult` per trial, in trial order.

* the **baseline** is the completed trial whose values are exactly the space's
  no-augmentation values (:func:`keras_augtune.space.baseline_values`);
* the **ranking** orders completed trials by the oracle's score (its objective's
  direction), earlier trials first among equals; in a multi-fidelity search (trials with a
  ``tuner/epochs`` budget) only the trials at the **full budget** (the largest) are ranked,
  since a trial stopped after fewer epochs is not comparable;
* a trial's **gain** is its reward minus the baseline's (shown for full-budget trials).

The best policies are written to (and read back from) one JSON file,
``best_policies.json`` (:func:`write_policies`, :func:`load_policies`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any, Callable, Iterable, Sequence

from keras_augtune.evaluation.reward import REWARD
from keras_augtune.files import atomic_write_json
from keras_augtune.policy import Policy, read_policy_json
from keras_augtune.space import PolicySpace, architecture_values, is_baseline, parse_name, policy_of
from keras_augtune.trials import COMPLETED, UNSUCCESSFUL, budget_of, failure_reason, in_order

__all__ = ["TrialResult", "SearchResults", "TrialDisplay", "describe_policy", "policy_from_values",
           "write_policies", "load_policies", "POLICIES_FORMAT"]

#: ``format`` field of the policies file written by :func:`write_policies`.
POLICIES_FORMAT = "keras_augtune.policies"
POLICIES_VERSION = 1


# ----------------------------------------------------------------------------- one trial
@dataclasses.dataclass
class TrialResult:
    """One trial of a search: its policy, status, reward and gain over no augmentation.

    ``execution_rewards``, ``executions``, ``gain_interval`` and ``confirmed_rank`` are
    left ``None`` until a confirmation step measures them (repeated, paired executions).
    """

    trial_id: str
    number: int  #: 1-based position in the search
    status: str
    policy: Policy | None
    reward: float | None  #: the trial's ``reward`` metric (its score when it has none)
    score: float | None  #: what the oracle ranks
    val_accuracy: float | None
    hyperparameters: dict[str, Any]  #: the non-policy (architecture) values
    message: str | None = None
    is_baseline: bool = False
    gain: float | None = None  #: reward minus the baseline's reward
    execution_rewards: list[float] | None = None
    executions: int | None = None
    gain_interval: tuple[float, float] | None = None
    confirmed_rank: int | None = None
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

    def to_policy(self) -> Policy:
        """A copy of the trial's policy with the results in ``metadata``."""
        return Policy(self.policy.sub_policies, metadata={
            "trial_id": self.trial_id, "score": self.score, "reward": self.reward, "gain": self.gain,
            "val_accuracy": self.val_accuracy, "hyperparameters": dict(self.hyperparameters),
        })


# ----------------------------------------------------------------------------- a search
@dataclasses.dataclass
class SearchResults:
    """The results of a search, read by :meth:`from_oracle` (or :func:`keras_augtune.report.load_search`).

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

    @classmethod
    def from_oracle(cls, oracle: Any, space: PolicySpace | None = None, project_dir: str = "") -> "SearchResults":
        """Every trial of ``oracle``; ``space`` (default: read back from the oracle's
        hyperparameters) turns trial values into policies and finds the baseline."""
        if space is None:
            space = PolicySpace.from_hyperparameters(oracle.hyperparameters)
        return cls.from_trials(oracle.trials.values(), space, oracle.objective, project_dir)

    @classmethod
    def from_trials(cls, trials: Iterable[Any], space: PolicySpace | None, objective: Any = None,
                    project_dir: str = "", with_baseline: bool = True) -> "SearchResults":
        """The results of Keras Tuner ``trials``; ``with_baseline=False`` when ``trials`` is
        only part of the search (a distributed worker sees only the best ones)."""
        records = [_trial_result(t, number, space) for number, t in enumerate(in_order(trials), start=1)]
        if not with_baseline:
            for record in records:
                record.is_baseline = False
        results = cls(records, objective=getattr(objective, "name", REWARD),
                      direction=getattr(objective, "direction", "max"), project_dir=project_dir, space=space)
        baseline, full = results.baseline_reward, results.full_budget
        for record in records:
            if baseline is not None and record.reward is not None and record.budget == full:
                record.gain = record.reward - baseline
        return results

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
        baseline = self.baseline
        return None if baseline is None else baseline.reward

    def best(self, n: int | None = None, skip_identity: bool = False) -> list[TrialResult]:
        """The ``n`` best completed trials (all when ``None``), best first (only full-budget trials
        in a multi-fidelity search): the trials a confirmation step re-measured come first, by
        ``confirmed_rank``, then the others by the oracle's score; ``skip_identity`` leaves out the
        trials whose policy never changes an image (the baseline among them)."""
        ranked = [t for t in self.completed if t.policy is not None and not (skip_identity and t.policy.is_identity)
                  and self._at_full_budget(t)]
        sign = -1.0 if self.direction == "max" else 1.0
        # confirmed trials first, by their confirmed rank; stable: earlier trials first among equals
        ranked.sort(key=lambda t: (1, sign * float(t.score)) if t.confirmed_rank is None else (0, t.confirmed_rank))
        return ranked if n is None else ranked[:n]

    def best_policies(self, n: int = 1, skip_identity: bool = False) -> list[Policy]:
        """The ``n`` best policies, best first, each with its results in ``metadata``
        (trial id, score, reward, gain over no augmentation, accuracy, architecture values)."""
        return [t.to_policy() for t in self.best(n, skip_identity=skip_identity)]

    # ------------------------------------------------------------------ text
    def summary_text(self, num_trials: int = 10) -> str:
        """The best trials as a text table: reward, gain over no augmentation, accuracy and policy."""
        baseline = self.baseline_reward
        lines = [f"Results summary: {len(self.completed)} completed, {len(self.unsuccessful)} failed trials "
                 f"in {self.project_dir}",
                 f"Objective: {self.objective} ({self.direction}); "
                 f"no-augmentation baseline reward: {format_value(baseline) or 'n/a'}",
                 f"{'rank':>4} {'trial':>6} {'reward':>7} {'gain':>8} {'val_acc':>7}  policy"]
        for rank, t in enumerate(self.best(num_trials), start=1):
            arch = f"  {t.hyperparameters}" if t.hyperparameters else ""
            lines.append(f"{rank:>4} {t.trial_id:>6} {format_value(t.reward):>7} {format_value(t.gain, '+.4f'):>8} "
                         f"{format_value(t.val_accuracy):>7}  {describe_policy(t.policy, limit=140)}{arch}")
        return "\n".join(lines)

    def write_policies(self, path: str, num_policies: int = 5) -> list[Policy]:
        """Write the best policies to ``path`` (see :func:`write_policies`) and return them."""
        policies = self.best_policies(num_policies)
        write_policies(path, policies, baseline_reward=self.baseline_reward)
        return policies


def _trial_result(trial: Any, number: int, space: PolicySpace | None) -> TrialResult:
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
    return TrialResult(str(trial.trial_id), number, str(trial.status), policy, reward, score,
                       None if val is None else float(val), architecture_values(values), trial.message,
                       is_baseline=baseline, budget=budget_of(values))


def policy_from_values(values: dict[str, Any]) -> Policy | None:
    """The policy held by trial values named as a :class:`PolicySpace` names them, whatever the
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


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- the policies file
def write_policies(path: str, policies: Sequence[Policy], baseline_reward: float | None = None) -> None:
    """Write ``policies`` (best first) to a JSON file that :func:`load_policies` reads."""
    atomic_write_json(path, {"format": POLICIES_FORMAT, "version": POLICIES_VERSION,
                             "baseline_reward": baseline_reward, "policies": [p.to_dict() for p in policies]})


def load_policies(path: str) -> list[Policy]:
    """Read the policies written by :meth:`AugmentTuner.export_policies` (or one policy file)."""
    data = read_policy_json(path)
    if isinstance(data, dict) and data.get("format") == POLICIES_FORMAT:
        version, policies = data.get("version"), data.get("policies")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"{path}: field 'version' must be an integer, got {version!r:.40}.")
        if version > POLICIES_VERSION:
            raise ValueError(f"{path} was written by a newer keras_augtune (version {version:.3g}).")
        if not isinstance(policies, list):
            raise ValueError(f"{path}: field 'policies' must be a list of policies, got {type(policies).__name__}.")
        return [Policy.from_dict(p) for p in policies]
    return [Policy.from_dict(data)]


# ----------------------------------------------------------------------------- live display
class TrialDisplay:
    """The one line shown as each trial of a running search ends.

    ``write`` receives each line (default: ``print``); the command line hands it to its
    progress bar, DeepAugment to its logger: ``tuner.display.write = logger.info``.
    """

    def __init__(self, write: Callable[[str], Any] | None = None):
        self.write: Callable[[str], Any] = write if write is not None else _print
        self._started: dict[str, float] = {}

    def started(self, trial_id: str) -> None:
        self._started[trial_id] = time.time()

    def ended(self, trial: Any, describe: Callable[[Any, float], str]) -> None:
        """Write ``describe(trial, seconds)``; a failing description never stops the search."""
        seconds = time.time() - self._started.pop(trial.trial_id, time.time())
        try:
            line = describe(trial, seconds)
        except Exception as exc:  # a log line must never stop a search
            line = f"Trial {trial.trial_id} {str(trial.status).lower()} (no summary: {type(exc).__name__}: {exc})"
        self.write(line)

    @staticmethod
    def line(head: str, reward: float, baseline: float | None, best: float, seconds: float, policy: Policy) -> str:
        """A completed trial's line: reward, gain over no augmentation, best so far, time, policy."""
        gain = "" if baseline is None else f" ({reward - baseline:+.4f} vs no augmentation)"
        return (f"{head}: reward {reward:.4f}{gain} | best {best:.4f} | {seconds:.1f}s | "
                f"{describe_policy(policy, limit=140)}")

    @staticmethod
    def failed_line(head: str, status: str, message: str | None, seconds: float) -> str:
        return f"{head} {status.lower()}: {failure_reason(message)} | {seconds:.1f}s"


def _print(line: str) -> None:
    print(line, flush=True)
