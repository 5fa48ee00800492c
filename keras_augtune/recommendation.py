"""The recommendation of a search: what to use (a searched policy, a recipe or no augmentation), by how much, in one sentence.

[`Verdict`][keras_augtune.recommendation.Verdict] is the one statement the tuner, the command line,
the report and DeepAugment show. It comes from one of two places:

* **a race** (the default intensifier, [`keras_augtune.intensifier.race`][keras_augtune.intensifier.race]):
  [`Standings`][keras_augtune.recommendation.Standings] reads back, from the execution records,
  every raced configuration's rewards on the race's fresh executions, and the decision is
  [`decide()`][keras_augtune.evaluation.verdict.decide] on the confirmation executions: a searched
  policy only when it beats no augmentation *and* the best recipe beyond the noise (intervals
  corrected for the pick), else the best recipe when it beats no augmentation, else none;
* **otherwise** (the confirmation, or no intensifier): better only when the best policy's paired
  gain interval lies wholly above 0 (`Verdict.of()`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from keras_augtune.evaluation.verdict import CONFIDENCE, Decision, Row, decide, table
from keras_augtune.policy import Policy
from keras_augtune.recipes import baseline_label, recipe_policy

__all__ = ["Verdict", "Standings"]

#: The three things a verdict can recommend.
KINDS = ("searched", "recipe", "baseline")


@dataclasses.dataclass(frozen=True)
class Standings:
    """A race read back from its plan (``executions/race.json``) and the execution records.

    ``rewards``: name -> execution index -> reward on the race's executions; ``kinds``: name ->
    ``"searched"``, ``"recipe"`` or ``"baseline"``; ``trial_ids``: name -> trial id (searched
    policies); ``recipes``: name -> the recipe's policy; ``complete``: the race reached its decision."""

    plan: Mapping[str, Any]
    rewards: dict[str, dict[int, float]]
    kinds: dict[str, str]
    trial_ids: dict[str, str | None]
    recipes: dict[str, Policy]
    complete: bool

    @classmethod
    def read(cls, plan: Mapping[str, Any], records: Mapping[str, Any]) -> "Standings | None":
        """The standings of the race ``plan`` over ``records`` (key -> execution record); None for a
        plan this version cannot read."""
        try:
            executions = set(int(e) for e in list(plan["screening"]) + list(plan["confirmation"]))
            candidates = [(str(c["name"]), str(c["kind"]), str(c["key"]), c.get("trial_id")) for c in plan["candidates"]]
        except (KeyError, TypeError, ValueError):
            return None
        rewards, kinds, trial_ids, recipes = {}, {}, {}, {}
        for name, kind, key, trial_id in candidates:
            record = records.get(key)
            rewards[name] = {e: r for e, r in (record.rewards.items() if record else ()) if e in executions}
            kinds[name], trial_ids[name] = kind, None if trial_id is None else str(trial_id)
            if kind == "recipe" and record is not None:
                recipes[name] = recipe_policy(record.values)
        if list(kinds.values()).count("baseline") != 1:
            return None
        return cls(plan, rewards, kinds, trial_ids, recipes, bool(plan.get("complete")))

    @property
    def baseline_short(self) -> str:
        """The baseline in a column header: ``no augmentation`` or ``base alone``."""
        return "no augmentation" if not self.plan.get("base") else "base alone"

    @property
    def confirmation(self) -> list[int]:
        return [int(e) for e in self.plan.get("confirmation", [])]

    def decision(self, confidence: float = CONFIDENCE) -> Decision | None:
        """The race's decision (None until its confirmation executions are measured)."""
        if not self.complete:
            return None
        try:
            return decide(self.rewards, self.kinds, self.confirmation, confidence, self.plan.get("baseline_label"))
        except ValueError:
            return None

    def rows(self) -> list[Row]:
        """Every raced configuration's row, best mean first: gains over no augmentation and over the
        best recipe on the executions each shares with them (intervals corrected over the rows)."""
        return table(self.rewards, self.kinds)

    def text(self) -> list[str]:
        """The race as a text table."""
        lines = [f"Race ({len(self.confirmation)} confirmation executions, fresh and paired; "
                 f"{CONFIDENCE:.0%} intervals corrected over the rows):",
                 f"{'configuration':<28} {'kind':<8} {'runs':>4} {'reward':>7} {'vs ' + self.baseline_short:>28} "
                 f"{'vs best recipe':>28}"]
        for row in self.rows():
            lines.append(f"{row.name[:28]:<28} {row.kind:<8} {row.executions:>4} {row.mean:>7.4f} "
                         f"{_versus(row.vs_none):>28} {_versus(row.vs_recipe):>28}")
        return lines


def _versus(comparison: Any) -> str:
    if comparison is None:
        return "-"
    interval = comparison.interval
    return f"{comparison.gain:+.4f}" + (f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a search recommends, and by how much.

    ``kind``: ``"searched"`` (a searched policy beat the alternatives beyond the noise),
    ``"recipe"`` (nothing searched did, but the recipe ``name`` beat no augmentation) or
    ``"baseline"`` (use no augmentation); ``better`` when it is not no augmentation. ``gain`` and
    ``interval``: the recommendation's (or, when none beat it, the best policy's) gain over no
    augmentation; ``gain_vs_recipe``/``interval_vs_recipe``: over the best recipe. ``text`` says
    it in one or two sentences (shown as is by the command line, ``results_summary()``, the report
    and DeepAugment). ``decision``: the race's, when a race decided.
    """

    better: bool
    text: str
    winner: Any = None  #: the best (or recommended) searched policy's `TrialResult` (None when none completed)
    baseline: Any = None  #: the no-augmentation baseline's `TrialResult`
    kind: str = "baseline"
    name: str | None = None
    gain: float | None = None
    interval: tuple[float, float] | None = None
    gain_vs_recipe: float | None = None
    interval_vs_recipe: tuple[float, float] | None = None
    recipe: Policy | None = None  #: the recommended recipe's policy (kind ``"recipe"``)
    decision: Decision | None = None
    base: str | None = None  #: the base recipe every candidate was applied after (its name), None without

    @property
    def recommended(self) -> Policy:
        """What to use: the winner's policy (with its results in ``metadata``), the recipe's, or
        ``Policy.identity()``."""
        if self.kind == "searched" and self.winner is not None:
            return self.winner.to_policy()
        if self.kind == "recipe" and self.recipe is not None:
            return self.recipe
        return Policy.identity()

    @classmethod
    def of(cls, winner: Any, baseline: Any, base: str | None = None) -> "Verdict":
        """The verdict on ``winner`` (the best augmentation policy's `TrialResult`) against no
        augmentation (beyond the ``base`` recipe), from its paired gain interval (a search without a race)."""
        none = baseline_label(base)
        if winner is None:
            return cls(False, f"No augmentation policy completed: use {none}.", None, baseline, base=base)
        name = f"trial {winner.trial_id}'s policy"
        gain, interval = winner.gain, winner.gain_interval
        if gain is None:
            return cls(False, f"The best policy ({name}) has no no-augmentation run of the same model to compare "
                              f"with, so its gain is unknown: use {none} until one is measured.", winner, baseline,
                       base=base)
        runs = winner.executions or 1
        measured = f"{gain:+.4f}"
        if interval is not None:
            measured += f" ({CONFIDENCE:.0%} interval [{interval[0]:+.4f}, {interval[1]:+.4f}], {runs} paired executions)"
        else:
            measured += (f" on {runs} paired execution{'s' if runs > 1 else ''}, too few for an interval "
                         "(confirm_executions >= 2 measures the noise)")
        if interval is not None and interval[0] > 0.0:
            return cls(True, f"Better than {none}: {name} gains {measured}.", winner, baseline,
                       "searched", f"trial {winner.trial_id}", gain, interval, base=base)
        return cls(False, f"No policy beat {none} beyond the noise: the best, {name}, gains {measured}. "
                          f"Recommendation: {none}.", winner, baseline, "baseline", None, gain, interval, base=base)

    @classmethod
    def of_race(cls, standings: Standings, trials: Mapping[str, Any], baseline: Any, base: str | None = None) -> "Verdict":
        """The verdict of a race (``trials``: trial id -> `TrialResult`, for the searched policies)."""
        decision = standings.decision()
        searched = [n for n, k in standings.kinds.items() if k == "searched" and standings.rewards[n]]
        if decision is None:
            done = len(standings.rewards.get(next(n for n, k in standings.kinds.items() if k == "baseline"), {}))
            return cls(False, f"The race stopped before its decision ({done} of its executions measured for "
                              f"{baseline_label(base)}): run the search again to finish it. Until then: "
                              f"{baseline_label(base)}.", None, baseline, base=base)
        best = max(searched, key=lambda n: sum(standings.rewards[n].values()) / len(standings.rewards[n]),
                   default=None)
        pick = decision.name if decision.kind == "searched" else best
        winner = trials.get(standings.trial_ids.get(pick)) if pick is not None else None
        return cls(decision.better, decision.text, winner, baseline, decision.kind,
                   None if decision.kind == "baseline" else decision.name, decision.gain_vs_none,
                   decision.interval_vs_none, decision.gain_vs_recipe, decision.interval_vs_recipe,
                   standings.recipes.get(decision.name) if decision.kind == "recipe" else None, decision, base)
