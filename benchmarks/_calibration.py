"""The calibration harness: simulated searches, races and decisions on a fake child with known true gains.

A fake child trains nothing: its reward for configuration ``c`` on execution ``e`` is
``0.80 + effect(c) + shared(e) + eps(c, e)``, where ``shared(e)`` is a luck every configuration
shares on execution ``e`` (initial weights, batch order: pairing cancels it), and ``eps`` an
independent noise of standard deviation ``sigma`` (Gaussian, or Student-t with 3 degrees of
freedom scaled to the same sd; equal for every configuration, or unequal: each configuration's
scale drawn once in [sigma/2, 2 sigma]). A configuration re-measured on the same execution gets
the same reward (same seed, same training).

One simulated search = 20 trials, one execution each (execution 0): trial 0 the
no-augmentation baseline, then proposals, either random policies of the default
[`PolicySpace`][keras_augtune.PolicySpace] or the real
[`RandomForestOracle`][keras_augtune.RandomForestOracle] driven through Keras Tuner's oracle API.
Then the [`Race`][keras_augtune.intensifier.race.Race] of the ``top_k`` searched policies, the
recipes (TrivialAugment, RandAugment on a small grid) and the baseline on fresh executions
(1, 2, ...), and its [`Decision`][keras_augtune.evaluation.verdict.Decision]. Shared by
``tests/test_calibration.py`` (random proposals, fast) and ``benchmarks/calibration.py``
(the real oracle); it lives in ``benchmarks/`` because it is a fixture of the calibration, not
something a user runs on their data.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tempfile
import zlib
from typing import Any

import numpy as np

from keras_augtune.intensifier.race import Candidate, Race
from keras_augtune.policy import Policy, PolicyOp
from keras_augtune.space import PolicySpace, baseline_values

SIGMA = 0.01
SHARED_SD = 0.02
#: ops a "most harmful" setting spares: a policy that can apply any other op loses 2 sigma
SPARED = ("horizontal-flip", "crop", "translate-x", "translate-y")


@dataclasses.dataclass(frozen=True)
class Setting:
    """A calibration setting: ``effect`` is ``"none"`` (every gain 0), ``"harmful"`` (a policy that
    can apply an op outside ``SPARED`` loses ``gain`` sigma: most do) or ``"planted"`` (a policy that
    can apply ``op`` gains ``gain`` sigma, the recipes included); ``noise`` ``"gauss"`` or ``"t3"``;
    ``unequal``: each configuration's noise scale in [sigma/2, 2 sigma]."""

    name: str
    effect: str = "none"
    gain: float = 0.0
    noise: str = "gauss"
    unequal: bool = False
    op: str = "rotate"

    @property
    def null(self) -> bool:
        """Nothing truly beats no augmentation: any "better" verdict is false."""
        return self.effect != "planted" or self.gain <= 0


SETTINGS = {
    s.name: s for s in (
        Setting("all gains 0"),
        Setting("most harmful (-2 sigma)", effect="harmful", gain=-2.0),
        Setting("all gains 0, heavy-tailed (t3)", noise="t3"),
        Setting("all gains 0, unequal noise", unequal=True),
        Setting("rotate +1 sigma", effect="planted", gain=1.0),
        Setting("rotate +2 sigma", effect="planted", gain=2.0),
        Setting("rotate +4 sigma", effect="planted", gain=4.0),
    )
}


@functools.lru_cache(maxsize=8)
def recipes(grid: tuple[tuple[int, float], ...] = ((2, 0.3), (2, 0.6))) -> tuple[Policy, ...]:
    """TrivialAugment and RandAugment(N, M) on ``grid`` (built once: TrivialAugment has 434 sub-policies)."""
    return (Policy.trivial_augment(),) + tuple(Policy.rand_augment(n, m) for n, m in grid)


def steps_of(policy: Policy) -> tuple[PolicyOp, ...]:
    """Every step of ``policy``, flattened (what the fake child looks at)."""
    return tuple(step for sub in policy.sub_policies for step in sub)


def applies(steps, ops) -> bool:
    """Whether a policy's ``steps`` can apply one of ``ops`` (probability and magnitude above 0)."""
    return any(step.op in ops and step.probability > 0 and step.magnitude > 0 for step in steps)


class FakeChild:
    """The rewards of one simulated search (see the module docstring)."""

    def __init__(self, setting: Setting, seed: int, sigma: float = SIGMA, shared_sd: float = SHARED_SD):
        self.setting, self.sigma, self.shared_sd = setting, sigma, shared_sd
        self.rng = np.random.default_rng(seed)
        self.shared: dict[int, float] = {}
        self.noise: dict[tuple[str, int], float] = {}
        self.scales: dict[str, float] = {}
        self.truth: dict[str, float] = {}

    def effect(self, key: str, steps) -> float:
        """The true gain of configuration ``key`` (``steps``: its policy's steps; None: the baseline)."""
        if key not in self.truth:
            s, gain = self.setting, 0.0
            if steps is not None:
                if s.effect == "planted" and applies(steps, (s.op,)):
                    gain = s.gain * self.sigma
                elif s.effect == "harmful" and any(step.op not in SPARED + ("identity",) for step in steps
                                                   if applies((step,), (step.op,))):
                    gain = s.gain * self.sigma
            self.truth[key] = gain
        return self.truth[key]

    def reward(self, key: str, steps, e: int) -> float:
        """Configuration ``key``'s reward on execution ``e`` (the same on every call)."""
        if e not in self.shared:
            self.shared[e] = float(self.rng.normal(0.0, self.shared_sd))
        if (key, e) not in self.noise:
            if key not in self.scales:
                self.scales[key] = 2.0 ** self.rng.uniform(-1, 1) if self.setting.unequal and steps is not None else 1.0
            draw = self.rng.standard_t(3) / math.sqrt(3.0) if self.setting.noise == "t3" else self.rng.normal()
            self.noise[(key, e)] = float(draw) * self.sigma * self.scales[key]
        return 0.80 + self.effect(key, steps) + self.shared[e] + self.noise[(key, e)]


def _random_steps(space: PolicySpace, rng: np.random.Generator) -> tuple[PolicyOp, ...]:
    """A random policy of ``space``, as its steps (no Policy object: the test draws thousands)."""
    size = space.num_sub_policies * space.ops_per_sub_policy
    ops = rng.integers(len(space.ops), size=size)
    magnitudes = rng.uniform(*space.magnitude_range, size=size)
    probabilities = rng.uniform(*space.probability_range, size=size)
    return tuple(PolicyOp(space.ops[o], float(p), float(m)) for o, p, m in zip(ops, probabilities, magnitudes))


def _key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=float)


def search(child: FakeChild, space: PolicySpace, seed: int, trials: int = 20, proposer: str = "random"):
    """The search's trials as ``(key, steps, search reward)`` (trial 0 the baseline, steps None);
    every trial on execution 0. ``proposer``: ``"random"`` or ``"oracle"`` (RandomForestOracle)."""
    base = _key(baseline_values(space))
    out = [(base, None, child.reward(base, None, 0))]
    if proposer == "random":
        rng = np.random.default_rng(seed + 7_919)
        for t in range(1, trials):
            steps = _random_steps(space, rng)
            out.append((f"random {t}", steps, child.reward(f"random {t}", steps, 0)))
        return out
    import keras_tuner as kt

    from keras_augtune import compat
    from keras_augtune.oracle import RandomForestOracle

    oracle = RandomForestOracle(objective=kt.Objective("score", "max"), max_trials=trials, seed=seed + 1,
                                hyperparameters=space.hyperparameters(),
                                initial_values=[baseline_values(space)], canonical_values=space.canonical_values)
    out = []
    with tempfile.TemporaryDirectory() as directory:
        compat.set_project_dir(oracle, directory, "calibration")
        oracle.verbose = 0
        for _ in range(trials):
            trial = oracle.create_trial("calibration")
            if trial.status != "RUNNING":
                break
            values = {k: v for k, v in trial.hyperparameters.values.items()}
            key = _key(values)
            policy = None if key == base else space.to_policy(values)
            if policy is not None and policy.is_noop(3):
                key, policy = base, None  # the tuner never trains a policy that changes nothing
            steps = None if policy is None else steps_of(policy)
            score = child.reward(key, steps, 0)
            oracle.update_trial(trial.trial_id, {"score": score})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            out.append((key, steps, score))
    return out


def simulate(setting: Setting, seed: int, race: Race, top_k: int = 4, proposer: str = "random",
             recipe_grid: tuple[tuple[int, float], ...] = ((2, 0.3), (2, 0.6)), space: PolicySpace | None = None,
             trials: int = 20) -> dict[str, Any]:
    """One search, race and decision; returns what the calibration counts."""
    space = space or PolicySpace()
    child = FakeChild(setting, zlib.crc32(f"{setting.name}/{seed}".encode()))
    trials_ = search(child, space, seed, trials, proposer)
    base_key = trials_[0][0]
    ranked = sorted((t for t in trials_ if t[1] is not None), key=lambda t: -t[2])
    seen, searched = set(), []
    for key, policy, _ in ranked:
        if key not in seen:
            seen.add(key)
            searched.append(Candidate(f"trial {len(searched)}", "searched", (key, policy)))
        if len(searched) == top_k:
            break
    candidates = searched + [Candidate(p.metadata["name"], "recipe", (p.metadata["name"], steps_of(p)))
                             for p in recipes(recipe_grid)] + [Candidate("none", "baseline", (base_key, None))]
    truth = {c.name: child.effect(*c.payload) for c in candidates}
    result = race.run(candidates, lambda c, e: child.reward(*c.payload, e),
                      range(1, race.executions_needed(candidates) + 1), log=None)
    d = result.decision
    best_recipe = max((truth[c.name] for c in candidates if c.kind == "recipe"), default=0.0)
    finalists = [c for c in d.comparisons if c.reference == d.baseline]
    best = max(finalists, key=lambda c: c.gain) if finalists else None
    return {
        "kind": d.kind, "name": d.name, "true_gain": truth[d.name], "gain": d.gain_vs_none,
        "better": d.kind != "baseline", "truly_better": truth[d.name] > 0,
        "searched_over_recipe": d.kind == "searched" and truth[d.name] <= best_recipe,
        "finalist_gain": best.gain if best else 0.0, "finalist_true": truth[best.name] if best else 0.0,
        "pooled": all(c.pooled for c in d.comparisons), "trainings": len(trials_) + result.trainings,
        "race_trainings": result.trainings,
    }


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95 % interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarise(setting: Setting, outcomes: list[dict[str, Any]], sigma: float = SIGMA) -> dict[str, Any]:
    """Rates (with Wilson intervals), the bias of the named configuration's gain, and the cost."""
    n = len(outcomes)
    better = sum(o["better"] for o in outcomes)
    truly = sum(o["truly_better"] for o in outcomes)
    over = sum(o["searched_over_recipe"] for o in outcomes)
    bias = [(o["gain"] - o["true_gain"]) / sigma for o in outcomes]
    finalist = [(o["finalist_gain"] - o["finalist_true"]) / sigma for o in outcomes]
    return {
        "setting": dataclasses.asdict(setting), "null": setting.null, "searches": n,
        "better_rate": better / n, "better_interval": wilson(better, n),
        "power": truly / n, "power_interval": wilson(truly, n),
        "searched_over_recipe_rate": over / n, "searched_over_recipe_interval": wilson(over, n),
        "named_searched": sum(o["kind"] == "searched" for o in outcomes) / n,
        "named_recipe": sum(o["kind"] == "recipe" for o in outcomes) / n,
        "bias_sigma": float(np.mean(bias)), "bias_sigma_se": float(np.std(bias, ddof=1) / math.sqrt(n)) if n > 1 else None,
        "best_finalist_bias_sigma": float(np.mean(finalist)),
        "pooled_share": sum(o["pooled"] for o in outcomes) / n,
        "trainings_mean": float(np.mean([o["trainings"] for o in outcomes])),
        "race_trainings_mean": float(np.mean([o["race_trainings"] for o in outcomes])),
    }


# ------------------------------------------------------------------------------------- op effects
#: op effects planted in the "planted" op-effects setting, in sigma per sub-policy applying the op
PLANTED_OPS = {"rotate": 2.0, "invert": -2.0}


def effects_search(seed: int, planted: bool, noise: str = "gauss", trials: int = 20, num_bootstrap: int = 200,
                   space: PolicySpace | None = None) -> dict[str, Any]:
    """One search of random policies whose reward is ``0.80 + sum(effect(op) * uses(op)) + eps``
    (every effect 0, or ``PLANTED_OPS`` when ``planted``), and its op effects: how many ops that do
    nothing were labelled "helps"/"hurts", whether each estimate lies inside its interval, and the
    planted ops' labels."""
    from keras_augtune.effects import estimate_op_effects, op_uses
    from keras_augtune.results import SearchResults, TrialResult

    space = space or PolicySpace()
    rng = np.random.default_rng(zlib.crc32(f"effects/{planted}/{noise}/{seed}".encode()))
    truth = {op: (PLANTED_OPS.get(op, 0.0) if planted else 0.0) * SIGMA for op in space.ops}
    ops = list(space.ops)
    rows = [TrialResult("00", 1, "COMPLETED", Policy.identity(), 0.80, 0.80, None, {}, is_baseline=True)]
    for t in range(1, trials):
        steps = _random_steps(space, rng)
        policy = Policy([steps[i:i + space.ops_per_sub_policy]
                         for i in range(0, len(steps), space.ops_per_sub_policy)])
        uses = op_uses(policy, ops)[0]
        draw = rng.standard_t(3) / math.sqrt(3.0) if noise == "t3" else rng.normal()
        reward = 0.80 + float(sum(truth[op] * u for op, u in zip(ops, uses))) + draw * SIGMA
        rows.append(TrialResult(f"{t:02d}", t + 1, "COMPLETED", policy, reward, reward, None, {}))
    effects = estimate_op_effects(SearchResults(rows, space=space), num_bootstrap=num_bootstrap, seed=seed)
    null = [e for e in effects.estimated if truth.get(e.op, 0.0) == 0.0]
    return {
        "null_ops": len(null), "false_labels": sum(e.verdict in ("helps", "hurts") for e in null),
        "inside": sum(e.low <= e.effect <= e.high for e in effects.estimated), "estimated": len(effects.estimated),
        "planted": {op: (effects[op].verdict, effects[op].effect) for op in PLANTED_OPS if op in space.ops}
        if planted else {},
    }


def summarise_effects(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of null ops labelled, of estimates inside their interval, and the planted ops' labels."""
    null = sum(o["null_ops"] for o in outcomes)
    false = sum(o["false_labels"] for o in outcomes)
    estimated = sum(o["estimated"] for o in outcomes)
    out = {"searches": len(outcomes), "null_ops": null, "false_label_rate": false / max(null, 1),
           "false_label_interval": wilson(false, null),
           "inside_rate": sum(o["inside"] for o in outcomes) / max(estimated, 1)}
    for op, effect in PLANTED_OPS.items():
        labels = [o["planted"][op][0] for o in outcomes if op in o["planted"]]
        if labels:
            wanted = "helps" if effect > 0 else "hurts"
            out[f"{op}_{wanted}_rate"] = sum(label == wanted for label in labels) / len(labels)
            out[f"{op}_wrong_rate"] = sum(label == ("hurts" if effect > 0 else "helps") for label in labels) / len(labels)
    return out
