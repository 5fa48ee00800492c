"""The race: the searched policies, the recipes and the baseline measured on fresh paired executions until one is named.

After a search, its best policies, the standard recipes (TrivialAugment, RandAugment, ...) and
the no-augmentation baseline race on execution indices the search never used, the same for
every candidate (so every difference is paired). Two phases, in the spirit of SMAC3's
intensifier (which owns the incumbent and gives challengers more runs only while they keep up)
but with the selection and the estimate kept apart:

1. **Screening** (successive halving): in rounds of ``screen_executions`` executions, the
   searched policies and the recipes are measured and ranked *within their kind* by mean
   reward; each round keeps the best ``ceil(n / eta)`` of each kind, until one searched policy
   (the incumbent) and one recipe are left. The baseline is never dropped (it is not needed to
   rank; it is measured in the confirmation). Recipes race among themselves so that the best of
   them is the bar a searched policy must clear.
2. **Confirmation**: the incumbent, the best recipe and the baseline on ``confirm_executions``
   more executions. The decision ([`decide`][keras_augtune.evaluation.verdict.decide]) uses
   these executions only: the draws that picked the finalists never count in their estimate, so
   the named configuration's gain is not inflated by the pick (the search's +0.9 sigma).

Executions are measured one index at a time across all candidates, so that a stopped race leaves
them evenly measured, and rewards already stored (``done``) are never measured again: a resumed
race replays the same drops and reaches the same decision. A candidate whose training fails is
dropped with its reason; an interrupt, a Keras Tuner ``FatalError`` or a full/read-only disk
stops the race.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any, Callable, Mapping, Sequence

from keras_augtune.checks import check_int
from keras_augtune.evaluation.verdict import CONFIDENCE, KINDS, Decision, decide
from keras_augtune.intensifier.base import Configuration, Context, Intensifier
from keras_augtune.recipes import baseline_label, recipe_values, resolve_recipes
from keras_augtune.records import RACE_FILE
from keras_augtune.trials import EPOCHS, TRAIN_SIZE, without_budget

__all__ = ["Candidate", "Drop", "Race", "RaceResult", "FIRST_EXECUTION", "BASELINE_NAME"]

#: The race's first execution index: its executions are 1000, 1001, ..., never an index a trial
#: used (a trial's own are 0 .. executions_per_trial - 1), so no candidate is scored on the
#: training that selected it, and the trials' own numbers stay the search's.
FIRST_EXECUTION = 1000
#: The race's name for the no-augmentation baseline.
BASELINE_NAME = "no augmentation"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A raced configuration: a unique ``name`` (shown in the results), its ``kind``
    (``"searched"``, ``"recipe"`` or ``"baseline"``) and an opaque ``payload`` handed back to
    ``measure`` (e.g. the tuner's hyperparameter values or a Policy)."""

    name: str
    kind: str
    payload: Any = None


@dataclasses.dataclass(frozen=True)
class Drop:
    """``name`` left the race after ``executions`` of its executions were measured, for ``reason``."""

    name: str
    executions: int
    reason: str


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """What a race measured and decided.

    ``rewards``: name -> execution index -> reward for every candidate (stored ones included);
    ``drops``: who left the race and why, in order; ``screening``/``confirmation``: the
    execution indices of each phase; ``trainings``: how many executions this run measured (not
    counting ``done``); ``incumbent``: the best candidate left (the decision's pick, or the best
    searched policy when the race stopped before it could decide); ``decision``: the verdict on
    the confirmation executions (``None`` when the baseline has none)."""

    rewards: dict[str, dict[int, float]]
    kinds: dict[str, str]
    drops: tuple[Drop, ...]
    screening: tuple[int, ...]
    confirmation: tuple[int, ...]
    trainings: int
    incumbent: str | None
    decision: Decision | None


def _fatal(exc: BaseException) -> bool:
    """An error that must stop the race rather than drop one candidate."""
    from keras_augtune.files import disk_error

    if disk_error(exc):
        return True
    errors = sys.modules.get("keras_tuner.errors")  # not imported: the error cannot be one of its
    return errors is not None and isinstance(exc, errors.FatalError)


class Race(Intensifier):
    """Races candidates on fresh paired executions and names one of them.

    In a search (``AugmentTuner(intensifier=Race(...))``, the default) the candidates are the
    ``top_k`` searched policies by the search's score (under joint architecture tuning, those of
    the best trial's architecture), the ``recipes`` and the no-augmentation baseline, all on the
    best trial's model; their executions are `FIRST_EXECUTION` onwards. ``run`` races any
    candidates with any ``measure``.

    Args:
        top_k: Searched policies entering the race (0: only the recipes race the baseline).
        recipes: The recipes raced ([`resolve_recipes()`][keras_augtune.recipes.resolve_recipes]:
            ``None`` for TrivialAugment and RandAugment(N=2, M=0.3 / 0.6); ``()`` for none).
        epochs: The race's child epochs (a higher fidelity than the trials', up to what the final
            model gets); ``None``: the trials' epochs.
        train_size: The race's training images per execution (a higher fidelity than the trials'
            ``train_set_size``, up to every training image left after the validation split): a
            stratified subsample drawn per execution index, the same for every candidate (paired);
            ``None``: the trials' training images.
        screen_executions: Executions per screening round (>= 1): each round ranks the
            searched policies, and the recipes, by their mean over the rounds so far.
        eta: Each screening round keeps ``ceil(n / eta)`` of each kind (>= 2).
        confirm_executions: Executions of the confirmation (>= 2): the incumbent, the best
            recipe and the baseline; the decision is made on these alone.
        confidence: Of the decision's intervals (simultaneous over the pick).
    """

    def __init__(self, screen_executions: int = 2, eta: int = 2, confirm_executions: int = 14,
                 confidence: float = CONFIDENCE, top_k: int = 4, recipes: Any = None, epochs: int | None = None,
                 train_size: int | None = None):
        self.top_k = check_int("top_k", top_k, minimum=0)
        self.recipes = resolve_recipes(recipes)
        self.epochs = None if epochs is None else check_int("epochs", epochs)
        self.train_size = None if train_size is None else check_int("race_train_size", train_size)
        self.screen_executions = check_int("screen_executions", screen_executions)
        self.eta = check_int("eta", eta, minimum=2)
        self.confirm_executions = check_int("confirm_executions", confirm_executions, minimum=2)
        if not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}.")
        self.confidence = confidence

    # ------------------------------------------------------------------ planning
    def rounds(self, candidates: Sequence[Candidate]) -> int:
        """Screening rounds needed to bring each kind down to one candidate."""
        largest = max([sum(c.kind == kind for c in candidates) for kind in ("searched", "recipe")] + [1])
        rounds = 0
        while largest > 1:
            largest, rounds = math.ceil(largest / self.eta), rounds + 1
        return rounds

    def executions_needed(self, candidates: Sequence[Candidate]) -> int:
        """How many fresh execution indices [`run`][keras_augtune.intensifier.race.Race.run] needs."""
        return self.rounds(candidates) * self.screen_executions + self.confirm_executions

    def trainings(self, candidates: Sequence[Candidate]) -> int:
        """How many trainings a race of ``candidates`` costs when none fails and none is stored."""
        total, alive = 0, {k: sum(c.kind == k for c in candidates) for k in ("searched", "recipe")}
        for _ in range(self.rounds(candidates)):
            total += self.screen_executions * sum(n for n in alive.values() if n > 1)
            alive = {k: math.ceil(n / self.eta) for k, n in alive.items()}
        finalists = sum(min(n, 1) for n in alive.values()) + any(c.kind == "baseline" for c in candidates)
        return total + self.confirm_executions * finalists

    # ------------------------------------------------------------------ in a search
    def candidates(self, results: Any, context: Context) -> list[Candidate]:
        """The search's candidates (payload: a [`Configuration`][keras_augtune.intensifier.Configuration]):
        the baseline, the ``top_k`` searched policies of the best trial's architecture and the
        recipes on that architecture; none when no baseline can be expressed."""
        from keras_augtune.results import baseline_config, describe_policy

        ranked = results.best(None, skip_identity=True, by_score=True)
        reference = dict(context.trial_values[ranked[0].trial_id]) if ranked else (
            dict(context.trial_values[results.baseline.trial_id]) if results.baseline is not None else None)
        if reference is None:
            return []
        budget = {EPOCHS: self.epochs} if self.epochs is not None else {}
        if self.train_size is not None:
            budget[TRAIN_SIZE] = self.train_size
        base = baseline_config(context.space, without_budget(reference))
        if base is None:
            return []
        base = {**base, **budget}
        baseline_trial = None  # the baseline trial's TensorBoard folder and notebook rows, when it is this model's
        if results.baseline is not None and (not ranked or results.baseline.hyperparameters == ranked[0].hyperparameters):
            baseline_trial = results.baseline.trial_id
        label = baseline_label(context.base_name)  # BASELINE_NAME without a base
        out = [Candidate(label, "baseline", Configuration(base, baseline_trial, label, True))]
        same_model = [t for t in ranked if t.hyperparameters == ranked[0].hyperparameters]
        for t in same_model[:self.top_k]:
            values = {**without_budget(context.trial_values[t.trial_id]), **budget}
            out.append(Candidate(f"trial {t.trial_id}", "searched",
                                 Configuration(values, t.trial_id, f"trial {t.trial_id}: {describe_policy(t.policy, limit=60)}")))
        for name, policy in self.recipes.items():
            out.append(Candidate(name, "recipe", Configuration(recipe_values(base, policy), None, name)))
        return out

    def intensify(self, results: Any, context: Context) -> int:
        """Race the search's candidates (`candidates()`) on fresh executions, keeping every reward
        in the execution records and the race's plan in ``executions/race.json``."""
        candidates = self.candidates(results, context)
        if len(candidates) < 2:
            context.log("Race: nothing to race (no baseline, or no policy and no recipe).")
            return 0
        if context.own_executions > FIRST_EXECUTION:
            raise ValueError(f"the race's executions start at {FIRST_EXECUTION}: executions_per_trial must be below it.")
        executions = list(range(FIRST_EXECUTION, FIRST_EXECUTION + self.executions_needed(candidates)))
        done = {}
        for c in candidates:
            record = context.store.read(c.payload.values, context.search_seed)
            done[c.name] = {e: r for e, r in (record.rewards.items() if record else ()) if e in executions}
        screened = self.rounds(candidates) * self.screen_executions

        def write(complete: bool, result: RaceResult | None = None) -> None:
            context.store.write_plan({
                "format": "keras_augtune.race", "version": 1, "complete": complete,
                "screening": executions[:screened], "confirmation": executions[screened:], "epochs": self.epochs,
                "train_size": self.train_size, "base": context.base_name,
                "baseline_label": baseline_label(context.base_name),
                "trainings": self.trainings(candidates),
                "candidates": [{"name": c.name, "kind": c.kind, "key": c.payload.key, "trial_id": c.payload.trial_id,
                                "label": c.payload.label} for c in candidates],
                "drops": [dataclasses.asdict(d) for d in (result.drops if result else ())]}, RACE_FILE)

        write(False)
        context.log(f"Race: {sum(c.kind == 'searched' for c in candidates)} searched policies, "
                    f"{len(self.recipes)} recipe(s) and {baseline_label(context.base_name)} on up to {len(executions)} fresh paired "
                    f"executions: about {self.trainings(candidates)} trainings beyond the trials.")
        result = self.run(candidates, lambda c, e: context.measure(c.payload, e), executions, done, context.log,
                          label=baseline_label(context.base_name))
        write(result.decision is not None, result)
        return result.trainings

    # ------------------------------------------------------------------ the race
    def run(self, candidates: Sequence[Candidate], measure: Callable[[Candidate, int], float],
            executions: Sequence[int], done: Mapping[str, Mapping[int, float]] | None = None,
            log: Callable[[str], Any] | None = print, label: str | None = None) -> RaceResult:
        """Race ``candidates`` (exactly one of kind ``"baseline"``) and decide.

        ``measure(candidate, execution_index)`` trains one fresh execution and returns its reward;
        ``executions`` are the fresh indices (never used by the search, the same for every
        candidate; at least [`executions_needed`][keras_augtune.intensifier.race.Race.executions_needed]);
        ``done`` the rewards already stored (name -> index -> reward), never measured again;
        ``log`` receives one line per drop and phase (``None``: silent); ``label`` is what the verdict
        calls the baseline (default ``"no augmentation"``)."""
        candidates = _check_candidates(candidates)
        executions = [check_int("an execution index", e, minimum=0) for e in executions]
        if len(set(executions)) != len(executions):
            raise ValueError("the race's execution indices must be distinct.")
        needed = self.executions_needed(candidates)
        if len(executions) < needed:
            raise ValueError(f"the race needs {needed} fresh execution indices, got {len(executions)}.")
        say = log or (lambda line: None)
        kinds = {c.name: c.kind for c in candidates}
        rewards = {c.name: {int(e): float(r) for e, r in (done or {}).get(c.name, {}).items()} for c in candidates}
        state = _State(candidates, measure, rewards, say)
        rounds = self.rounds(candidates)
        screening = executions[:rounds * self.screen_executions]
        confirmation = executions[len(screening):needed]
        alive = [c for c in candidates if c.kind != "baseline"]
        for r in range(rounds):
            batch = screening[r * self.screen_executions:(r + 1) * self.screen_executions]
            # a kind already down to one candidate waits for the confirmation
            state.measure_all([c for c in alive if sum(o.kind == c.kind for o in alive) > 1], batch)
            alive = [c for c in alive if c.name not in state.failed]
            seen = screening[:(r + 1) * self.screen_executions]
            alive = self._halve(alive, rewards, seen, state, say)
        finalists = [c for c in candidates if c.kind == "baseline"] + alive
        say(f"Race: confirming {', '.join(c.name for c in finalists)} on {len(confirmation)} fresh paired executions.")
        state.measure_all(finalists, confirmation)
        base = next(c.name for c in candidates if c.kind == "baseline")
        decision = None
        if set(confirmation) <= set(rewards[base]):
            live = {c.name: c.kind for c in finalists if c.name not in state.failed}
            decision = decide({n: rewards[n] for n in live}, live, confirmation, self.confidence, label)
            say(decision.text)
        else:
            say(f"Race: no decision, the baseline {base!r} failed.")
        searched = [c.name for c in alive if c.kind == "searched" and c.name not in state.failed]
        incumbent = decision.name if decision else (searched[0] if searched else None)
        return RaceResult(rewards, kinds, tuple(state.drops), tuple(screening), tuple(confirmation),
                          state.trainings, incumbent, decision)

    def _halve(self, alive, rewards, seen, state, say):
        """The best ``ceil(n / eta)`` of each kind by mean over ``seen`` (ties: the earlier candidate)."""
        keep = []
        for kind in ("searched", "recipe"):
            group = [c for c in alive if c.kind == kind]
            ranked = sorted(group, key=lambda c: -_mean(rewards[c.name], seen))
            kept = ranked[:math.ceil(len(group) / self.eta)]
            for c in ranked[len(kept):]:
                state.drop(c, f"ranked below the best {len(kept)} {kind} on {len(seen)} execution(s) "
                              f"(mean {_mean(rewards[c.name], seen):.4f})")
            keep += kept
        return [c for c in alive if c in keep]  # candidates' order, so that ties replay the same


def _mean(rewards: Mapping[int, float], seen: Sequence[int]) -> float:
    values = [rewards[e] for e in seen if e in rewards]
    return sum(values) / len(values) if values else -math.inf


class _State:
    """The race's bookkeeping: measures (or reads back) rewards, and records drops and failures."""

    def __init__(self, candidates, measure, rewards, say):
        self.measure, self.rewards, self.say = measure, rewards, say
        self.drops: list[Drop] = []
        self.failed: set[str] = set()
        self.trainings = 0

    def drop(self, candidate: Candidate, reason: str) -> None:
        self.drops.append(Drop(candidate.name, len(self.rewards[candidate.name]), reason))
        self.say(f"Race: {candidate.name} dropped, {reason}.")

    def measure_all(self, candidates: Sequence[Candidate], batch: Sequence[int]) -> None:
        for e in batch:  # execution-major: a stop leaves every candidate measured on the same indices
            for c in candidates:
                if c.name in self.failed or e in self.rewards[c.name]:
                    continue
                try:
                    reward = float(self.measure(c, e))
                except Exception as exc:  # noqa: BLE001 - one failed training drops its candidate only
                    if _fatal(exc):
                        raise
                    self.failed.add(c.name)
                    self.drop(c, f"its execution {e} failed ({type(exc).__name__}: {exc})")
                    continue
                if not math.isfinite(reward):
                    self.failed.add(c.name)
                    self.drop(c, f"its execution {e} gave a non-finite reward ({reward})")
                    continue
                self.rewards[c.name][e] = reward
                self.trainings += 1


def _check_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    from keras_augtune.checks import check_choice

    candidates = list(candidates)
    for c in candidates:
        if not isinstance(c, Candidate):
            raise TypeError(f"race candidates must be Candidate objects, got {type(c).__name__}.")
        check_choice(f"the kind of candidate {c.name!r}", c.kind, KINDS)
    names = [c.name for c in candidates]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"race candidates need distinct names, {', '.join(map(repr, repeated))} repeats.")
    if sum(c.kind == "baseline" for c in candidates) != 1:
        raise ValueError("a race needs exactly one candidate of kind 'baseline' (no augmentation).")
    return candidates
