"""How fast does each search method find good augmentation policies, at the budgets users run?

Compares, on the same budgets and paired seeds (seed k: same objective instance, same noise):

* ``forest``      - keras_augtune's RandomForestOracle (defaults). ``forest:key=value:...`` runs
  it with constructor options, e.g. ``forest:num_initial_points=10`` (levers, one at a time);
* ``tpe``         - Optuna's TPE, multivariate (``TPESampler(multivariate=True)``, its default);
* ``tpe-indep``   - Optuna's TPE, independent per parameter (``multivariate=False``);
* ``smac``        - SMAC3's ``HyperparameterOptimizationFacade`` (random forest + log-EI,
  Sobol initial design, local + sorted random search, intensification; noisy: re-evaluating
  a configuration draws fresh noise). It plans with the total budget (its initial design is
  a share of ``n_trials``), so it runs once *per budget*, not once for the largest;
* ``random``      - Keras Tuner's RandomSearchOracle;
* ``skopt``, ``kt-bayes`` - scikit-optimize RF+EI (DeepAugment's controller) and Keras Tuner's
  Gaussian process, on request.

on three problems:

* ``policy``: a synthetic, deterministic "validation accuracy of a policy" over the real
  default policy space (5 sub-policies x 2 ops x op/magnitude/probability = 30
  hyperparameters, 32 ops): some ops help up to an optimal magnitude, some hurt, gains
  saturate when an op is repeated, pairs inside a sub-policy interact, and the observed
  score carries Gaussian noise (sd 0.004, a child model's run-to-run spread). Maximised.
* ``policy-arch``: held-out instances: DeepAugment's space (its 20 ops, 5 x 2, magnitudes,
  probabilities fixed at 1) plus three architecture hyperparameters (log learning rate,
  stepped units, an optimiser choice); the ops' effects, optimal magnitudes and pair
  interactions are drawn at random *per seed*, so every seed is a different objective.
  Maximised, same noise.
* ``ackley``: mixed categorical/continuous Ackley (5 unordered 5-level categorical dimensions
  mapped to {-1, -0.5, 0, 0.5, 1} in a fixed shuffled order, plus 5 continuous dimensions in
  [-1, 1]; after CASMOPOLITAN's Ackley-cC). Minimised; optimum 0. No policy in it: it
  checks that what helps policies does not hurt a generic space.

The tables report the *noise-free* value of the best trial found within the first N trials.
Keras Tuner oracles are driven directly (``create_trial`` / ``update_trial`` / ``end_trial`` in
a temporary directory), Optuna and SMAC3 through their ask/tell interfaces; no model is
trained. Run (``pip install '.[bench]'`` for Optuna and SMAC3)::

    python benchmarks/oracle_efficiency.py --seeds 10 --jobs 2 --out benchmarks/results/oracle_efficiency.md
    python benchmarks/oracle_efficiency.py --quick         # 3 seeds, 50 trials, smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from keras_augtune import compat  # noqa: E402

warnings.filterwarnings("ignore")

METHODS = ("forest", "tpe", "tpe-indep", "smac", "random")
LABELS = {
    "forest": "RandomForestOracle (defaults)",
    "tpe": "Optuna TPE, multivariate",
    "tpe-indep": "Optuna TPE, independent",
    "smac": "SMAC3 HPO facade",
    "random": "Keras Tuner random search",
    "skopt": "scikit-optimize RF+EI",
    "kt-bayes": "Keras Tuner BayesianOptimization",
}
BUDGETS = (16, 25, 50, 100, 200)
BUDGET_AWARE = ("smac",)  # methods whose behaviour depends on the total budget: one run per budget


# ----------------------------------------------------------------------------- problems
class Problem:
    """A search space and an objective.

    ``specs``: ("choice", name, values) / ("float", name, low, high[, "log"]) / ("int", name, low, high, step).
    """

    name = ""
    direction = "max"
    NOISE_SD = 0.0

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.specs: list = []

    def hyperparameters(self):
        import keras_tuner as kt

        hp = kt.HyperParameters()
        for spec in self.specs:
            if spec[0] == "choice":
                hp.Choice(spec[1], list(spec[2]))
            elif spec[0] == "int":
                hp.Int(spec[1], spec[2], spec[3], step=spec[4])
            else:
                hp.Float(spec[1], spec[2], spec[3], sampling="log" if spec[4:] == ("log",) else "linear")
        return hp

    def true_value(self, values: dict) -> float:
        raise NotImplementedError

    def observe(self, values: dict, seed: int, repeat: int = 0) -> float:
        """The noisy score; ``repeat`` > 0 re-evaluates a configuration with fresh noise (as re-training would)."""
        if not self.NOISE_SD:
            return self.true_value(values)
        key = json.dumps([seed, repeat, {k: values[k] for k in sorted(values)}], default=float)
        digest = hashlib.sha256(key.encode()).digest()
        noise = np.random.default_rng(int.from_bytes(digest[:8], "little")).normal(0.0, self.NOISE_SD)
        return self.true_value(values) + float(noise)


def _policy_specs(space):
    """Specs of a PolicySpace's non-fixed hyperparameters (fixed probabilities are left to their value)."""
    specs = []
    for h in space.hyperparameters().space:
        if hasattr(h, "values") and not hasattr(h, "min_value"):
            specs.append(("choice", h.name, tuple(h.values)))
        elif hasattr(h, "min_value"):
            specs.append(("float", h.name, h.min_value, h.max_value))
    return specs


class _PolicyEffects(Problem):
    """Accuracy of a policy from per-op effects: helps (saturating, best magnitude), hurts, pairs."""

    NOISE_SD = 0.004
    base = 0.70
    helps: dict = {}
    hurts: dict = {}
    pairs: dict = {}
    neutral: dict = {}

    def policy_value(self, values: dict) -> float:
        policy = self.space.to_policy(values)
        exposure: dict[str, float] = {}
        accuracy = self.base
        for sub in policy.sub_policies:
            for step in sub:
                p, m = step.probability, step.magnitude
                if step.op in self.helps:
                    gain, best = self.helps[step.op]
                    exposure[step.op] = exposure.get(step.op, 0.0) + p * (1.0 - ((m - best) / 0.35) ** 2)
                elif step.op in self.hurts:
                    accuracy -= self.hurts[step.op] * p * (0.3 + 0.7 * m)
                else:
                    accuracy += self.neutral.get(step.op, 0.0) * p
            ops = sorted(step.op for step in sub)
            for (a, b), bonus in self.pairs.items():
                if a in ops and b in ops and a != b:
                    pa = max(s.probability for s in sub if s.op == a)
                    pb = max(s.probability for s in sub if s.op == b)
                    accuracy += bonus * pa * pb
        for op, s in exposure.items():
            gain = self.helps[op][0]
            accuracy += gain * (1.0 - math.exp(-1.5 * s)) if s > 0 else gain * s
        return accuracy

    def true_value(self, values: dict) -> float:
        return self.policy_value(values)


class PolicyReward(_PolicyEffects):
    """The fixed synthetic policy objective over the default space (see the module docstring)."""

    name = "policy"
    direction = "max"
    helps = {  # op: (gain, best magnitude)
        "horizontal-flip": (0.025, 0.5), "crop": (0.020, 0.5), "cutout": (0.020, 0.6),
        "translate-x": (0.015, 0.4), "translate-y": (0.012, 0.4), "rotate": (0.012, 0.3),
        "shear-x": (0.008, 0.3), "contrast": (0.006, 0.5), "brightness": (0.006, 0.4), "color": (0.004, 0.5),
    }
    hurts = {
        "invert": 0.030, "vertical-flip": 0.020, "fog": 0.015, "clouds": 0.015, "solarize": 0.012,
        "coarse-salt-pepper": 0.010, "emboss": 0.010, "posterize": 0.008,
    }
    pairs = {  # ops in the same sub-policy
        ("crop", "horizontal-flip"): 0.010, ("rotate", "shear-x"): 0.006, ("translate-x", "translate-y"): 0.006,
        ("brightness", "contrast"): 0.004, ("coarse-dropout", "cutout"): -0.010, ("auto-contrast", "equalize"): -0.006,
    }

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        from keras_augtune.space import PolicySpace

        self.space = PolicySpace()
        self.specs = _policy_specs(self.space)
        rng = np.random.default_rng(20261128)  # the other ops: a small fixed effect each
        self.neutral = {op: float(rng.uniform(-0.003, 0.002)) for op in self.space.ops}


class PolicyArch(_PolicyEffects):
    """Held-out instances over DeepAugment's space plus architecture hyperparameters (drawn per seed)."""

    name = "policy-arch"
    direction = "max"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        from keras_augtune.space import PolicySpace

        self.space = PolicySpace.deepaugment()
        ops = list(self.space.ops)
        rng = np.random.default_rng([20261201, seed])
        order = rng.permutation(len(ops))
        self.helps = {ops[i]: (float(rng.uniform(0.004, 0.03)), float(rng.uniform(0.15, 0.85))) for i in order[:7]}
        self.hurts = {ops[i]: float(rng.uniform(0.005, 0.03)) for i in order[7:13]}
        self.neutral = {ops[i]: float(rng.uniform(-0.003, 0.002)) for i in order[13:]}
        self.pairs = {}
        for _ in range(6):
            a, b = sorted(rng.choice(ops, 2, replace=False))
            self.pairs[(a, b)] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.003, 0.012))
        self.best_log_lr = float(rng.uniform(-3.5, -1.5))
        self.best_units = int(rng.choice([64, 128, 192]))
        self.optimizer_gain = dict(zip(("sgd", "adam", "rmsprop"), rng.permutation([0.0, 0.01, 0.02])))
        self.specs = _policy_specs(self.space) + [
            ("float", "learning_rate", 1e-4, 1e-1, "log"),
            ("int", "units", 32, 256, 32),
            ("choice", "optimizer", ("sgd", "adam", "rmsprop")),
        ]

    def true_value(self, values: dict) -> float:
        accuracy = self.policy_value(values)
        accuracy -= 0.02 * (math.log10(values["learning_rate"]) - self.best_log_lr) ** 2
        accuracy -= 0.02 * abs(values["units"] - self.best_units) / 224
        return accuracy + float(self.optimizer_gain[values["optimizer"]])


class MixedAckley(Problem):
    """Ackley with 5 unordered 5-level categorical and 5 continuous dimensions (minimise, optimum 0)."""

    name = "ackley"
    direction = "min"
    LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        rng = np.random.default_rng(7)
        self.maps = [dict(zip("abcde", rng.permutation(self.LEVELS))) for _ in range(5)]
        self.specs = [("choice", f"c{i}", tuple("abcde")) for i in range(5)]
        self.specs += [("float", f"x{i}", -1.0, 1.0) for i in range(5)]

    def true_value(self, values: dict) -> float:
        z = np.array([self.maps[i][values[f"c{i}"]] for i in range(5)] + [values[f"x{i}"] for i in range(5)])
        return float(
            -20.0 * np.exp(-0.2 * np.sqrt(np.mean(z**2))) - np.exp(np.mean(np.cos(2 * np.pi * z))) + 20.0 + np.e
        )


PROBLEMS = {"policy": PolicyReward, "policy-arch": PolicyArch, "ackley": MixedAckley}


# ----------------------------------------------------------------------------- runners
def parse_method(method: str) -> tuple[str, dict]:
    """``"forest:num_initial_points=6:xi=0.0"`` -> ``("forest", {"num_initial_points": 6, "xi": 0.0})``."""
    name, *options = method.split(":")
    kwargs = {}
    for option in options:
        key, _, text = option.partition("=")
        try:
            kwargs[key] = json.loads(text)
        except json.JSONDecodeError:
            kwargs[key] = text
    return name, kwargs


class _Evaluator:
    """Scores values for one run: counts re-evaluations so a repeated configuration gets fresh noise."""

    def __init__(self, problem, seed):
        self.problem, self.seed, self.counts = problem, seed, {}

    def __call__(self, values):
        key = json.dumps(values, sort_keys=True, default=float)
        repeat = self.counts.get(key, 0)
        self.counts[key] = repeat + 1
        return self.problem.observe(values, self.seed, repeat)


def _make_kt_oracle(method, problem, seed, budget):
    import keras_tuner as kt

    from keras_augtune.oracle import RandomForestOracle

    name, kwargs = parse_method(method)
    common = dict(
        objective=kt.Objective("score", problem.direction), max_trials=budget,
        seed=seed + 1, hyperparameters=problem.hyperparameters(),  # KT treats seed 0 as "random"
    )
    if name == "forest":
        return RandomForestOracle(**common, **kwargs)
    if name == "kt-bayes":
        return kt.oracles.BayesianOptimizationOracle(**common)
    return kt.oracles.RandomSearchOracle(**common)


def run_kt(method, problem, seed, budget):
    """True values of the trials, in order, and the CPU seconds each proposal took."""
    oracle = _make_kt_oracle(method, problem, seed, budget)
    evaluate = _Evaluator(problem, seed)
    truths, seconds = [], []
    with tempfile.TemporaryDirectory() as directory:
        compat.set_project_dir(oracle, directory, "bench")
        oracle.verbose = 0
        for _ in range(budget):
            start = time.process_time()
            trial = oracle.create_trial("bench")
            seconds.append(time.process_time() - start)
            if trial.status != "RUNNING":
                break
            values = trial.hyperparameters.values
            oracle.update_trial(trial.trial_id, {"score": evaluate(values)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            truths.append(problem.true_value(values))
    return truths, seconds


def run_optuna(problem, seed, budget, multivariate):
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    distributions = {}
    for spec in problem.specs:
        if spec[0] == "choice":
            distributions[spec[1]] = CategoricalDistribution(list(spec[2]))
        elif spec[0] == "int":
            distributions[spec[1]] = IntDistribution(spec[2], spec[3], step=spec[4])
        else:
            distributions[spec[1]] = FloatDistribution(spec[2], spec[3], log=spec[4:] == ("log",))
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=multivariate)
    study = optuna.create_study(direction="maximize" if problem.direction == "max" else "minimize", sampler=sampler)
    evaluate = _Evaluator(problem, seed)
    truths, seconds = [], []
    for _ in range(budget):
        start = time.process_time()
        trial = study.ask(distributions)
        seconds.append(time.process_time() - start)
        values = dict(trial.params)
        score = evaluate(values)
        start = time.process_time()
        study.tell(trial, score)
        seconds[-1] += time.process_time() - start
        truths.append(problem.true_value(values))
    return truths, seconds


def run_smac(problem, seed, budget):
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    space = ConfigurationSpace(seed=seed)
    for spec in problem.specs:
        if spec[0] == "choice":
            space.add(Categorical(spec[1], list(spec[2])))
        elif spec[0] == "int":  # a stepped Int: SMAC has no step, so search the step index
            space.add(Integer(spec[1] + "#index", (0, (spec[3] - spec[2]) // spec[4])))
        else:
            space.add(Float(spec[1], (spec[2], spec[3]), log=spec[4:] == ("log",)))
    steps = {s[1]: (s[2], s[4]) for s in problem.specs if s[0] == "int"}
    sign = -1.0 if problem.direction == "max" else 1.0
    evaluate = _Evaluator(problem, seed)
    truths, seconds = [], []
    with tempfile.TemporaryDirectory() as directory:
        scenario = Scenario(space, deterministic=False, n_trials=budget, seed=seed, output_directory=directory)
        smac = HyperparameterOptimizationFacade(
            scenario, lambda config, seed=0: 0.0, overwrite=True, logging_level=logging.ERROR
        )
        for _ in range(budget):
            start = time.process_time()
            info = smac.ask()
            seconds.append(time.process_time() - start)
            values = dict(info.config)
            for name, (low, step) in steps.items():
                values[name] = low + step * int(values.pop(name + "#index"))
            values = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in values.items()}
            score = evaluate(values)
            start = time.process_time()
            smac.tell(info, TrialValue(cost=sign * score))
            seconds[-1] += time.process_time() - start
            truths.append(problem.true_value(values))
    return truths, seconds


def _skopt_dimensions(problem):
    from skopt.space import Categorical, Integer, Real

    dimensions = []
    for s in problem.specs:
        if s[0] == "choice":
            dimensions.append(Categorical(list(s[2]), name=s[1]))
        elif s[0] == "int":
            dimensions.append(Integer(s[2], s[3], name=s[1]))
        else:
            dimensions.append(Real(s[2], s[3], prior="log-uniform" if s[4:] == ("log",) else "uniform", name=s[1]))
    return dimensions


def run_skopt(problem, seed, budget):
    from skopt import Optimizer

    optimizer = Optimizer(_skopt_dimensions(problem), base_estimator="RF", acq_func="EI",
                          n_initial_points=10, random_state=seed)
    sign = -1.0 if problem.direction == "max" else 1.0
    evaluate = _Evaluator(problem, seed)
    truths, seconds = [], []
    for _ in range(budget):
        start = time.process_time()
        point = optimizer.ask()
        values = {s[1]: (v if s[0] == "choice" else int(v) if s[0] == "int" else float(v))
                  for s, v in zip(problem.specs, point)}
        optimizer.tell(point, sign * evaluate(values))  # skopt fits its forest in tell()
        seconds.append(time.process_time() - start)
        truths.append(problem.true_value(values))
    return truths, seconds


def run_one(job):
    method, problem_name, seed, budget = job
    problem = PROBLEMS[problem_name](seed)
    name, _ = parse_method(method)
    if name in ("tpe", "tpe-indep"):
        truths, seconds = run_optuna(problem, seed, budget, multivariate=name == "tpe")
    elif name == "smac":
        truths, seconds = run_smac(problem, seed, budget)
    elif name == "skopt":
        truths, seconds = run_skopt(problem, seed, budget)
    else:
        truths, seconds = run_kt(method, problem, seed, budget)
    return {"method": method, "problem": problem_name, "seed": seed, "budget": budget,
            "truths": truths, "cpu_seconds": seconds}


# ----------------------------------------------------------------------------- proposal cost
def proposal_cost(method, completed, repeats, seed=0):
    """CPU seconds of one forest proposal after ``completed`` (random) trials on the policy problem.

    Returns the median over ``repeats`` proposals of ``populate_space`` (the oracle's own work),
    as the process's CPU time (which other programs on a shared machine do not inflate) and wall time.
    """
    problem = PolicyReward()
    oracle = _make_kt_oracle(method, problem, seed, completed + 2 * repeats + 1)
    wall, cpu = [], []
    with tempfile.TemporaryDirectory() as directory:
        compat.set_project_dir(oracle, directory, "cost")
        oracle.verbose = 0
        acquisition = oracle.acquisition
        oracle.acquisition = "random"  # fill with random trials fast
        initial = list(oracle.initial_values)
        for _ in range(completed):
            trial = oracle.create_trial("cost")
            oracle.update_trial(trial.trial_id, {"score": problem.observe(trial.hyperparameters.values, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        oracle.acquisition, oracle.initial_values = acquisition, initial
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            oracle.populate_space(f"{len(oracle.trials):05d}")
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            trial = oracle.create_trial("cost")
            oracle.update_trial(trial.trial_id, {"score": problem.observe(trial.hyperparameters.values, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return {"wall": float(np.median(wall)), "cpu": float(np.median(cpu))}


# ----------------------------------------------------------------------------- surrogate quality
SURROGATE_FEATURES = {  # label: (pool_policies, slot_features)
    "slot columns only": (False, True),
    "slots + pooled": (True, True),
    "pooled only": (True, False),
}


def surrogate_quality(problem_name, sizes=(10, 25, 50, 100), repeats=8, test_points=400):
    """Spearman correlation between the forest's mean and the true value on held-out random points.

    For each training size n: n random trials (noisy scores) and ``test_points`` held-out random
    points of a problem instance; the default forest (32 extra-trees, min_samples_leaf=3,
    max_features=0.5) is fitted on each feature set. Mean over ``repeats`` instances/draws.
    """
    from scipy import stats

    from keras_augtune.oracle.encoding import SpaceEncoder
    from keras_augtune.oracle.forest import Forest

    out = {}
    for n in sizes:
        scores = {label: [] for label in SURROGATE_FEATURES}
        for rep in range(repeats):
            problem = PROBLEMS[problem_name](1000 + rep)
            hp = problem.hyperparameters()
            base = SpaceEncoder(hp.space)
            codes, active = base.decode(np.random.default_rng([1000, rep]).random((n + test_points, base.dims)))
            values = [base.values(codes[i], active[i]) for i in range(n + test_points)]
            sign = -1.0 if problem.direction == "max" else 1.0
            observed = np.array([sign * problem.observe(v, rep) for v in values[:n]])
            truth = np.array([sign * problem.true_value(v) for v in values[n:]])
            for label, (pool, slots) in SURROGATE_FEATURES.items():
                features = SpaceEncoder(hp.space, pool, slots).features(codes, active)
                forest = Forest("extra_trees", 32, 3, 0.5, seed=rep).fit(features[:n], observed)
                scores[label].append(stats.spearmanr(forest.predict(features[n:])[0], truth).statistic)
        out[n] = {label: float(np.mean(v)) for label, v in scores.items()}
    return out


# ----------------------------------------------------------------------------- report
def best_so_far(truths, direction, budget):
    values = truths[:budget]
    if not values:
        return float("nan")
    return max(values) if direction == "max" else min(values)


def first_reach(truths, direction, target):
    for i, value in enumerate(truths):
        if (value >= target) if direction == "max" else (value <= target):
            return i + 1
    return None


def best_at(results, method, problem, budget, direction):
    """{seed: best true value within ``budget`` trials} for one method."""
    out = {}
    aware = parse_method(method)[0] in BUDGET_AWARE
    for r in results:
        if r["method"] != method or r["problem"] != problem:
            continue
        if aware and r["budget"] != budget:
            continue
        if not aware and r["budget"] < budget:
            continue
        if len(r["truths"]) >= budget or (r["truths"] and len(r["truths"]) < r["budget"]):  # stopped early: exhausted
            out[r["seed"]] = best_so_far(r["truths"], direction, budget)
    return out


def better(a, b, direction):
    return a > b if direction == "max" else a < b


def table(results, problem, methods, budgets, reference="forest"):
    """Markdown lines: medians [25th-75th percentile], and the reference's paired wins/ties/losses."""
    direction = PROBLEMS[problem].direction
    lines = [
        "| method | seeds | " + " | ".join(f"N = {b}" for b in budgets) + " |",
        "|---|---:|" + "---:|" * len(budgets),
    ]
    medians = {}
    for method in methods:
        cells, seeds = [], set()
        for b in budgets:
            best = best_at(results, method, problem, b, direction)
            seeds |= set(best)
            if not best:
                cells.append("–")
                continue
            values = np.array(list(best.values()))
            medians[(method, b)] = float(np.median(values))
            q1, q3 = np.percentile(values, [25, 75])
            cells.append(f"{np.median(values):.4f} [{q1:.4f}–{q3:.4f}]")
        if seeds:
            lines.append(f"| {label(method)} | {len(seeds)} | " + " | ".join(cells) + " |")
    lines += ["", f"Paired by seed: seeds where `{reference}` is better / tied / worse than each other method.", "",
              "| vs | " + " | ".join(f"N = {b}" for b in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for method in methods:
        if method == reference:
            continue
        cells = []
        for b in budgets:
            ours = best_at(results, reference, problem, b, direction)
            theirs = best_at(results, method, problem, b, direction)
            shared = sorted(set(ours) & set(theirs))
            if not shared:
                cells.append("–")
                continue
            wins = sum(better(ours[s], theirs[s], direction) for s in shared)
            losses = sum(better(theirs[s], ours[s], direction) for s in shared)
            cells.append(f"{wins} / {len(shared) - wins - losses} / {losses}")
        lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    return lines, medians


def compact_table(results, problems, methods, budgets, reference):
    """Markdown lines: one row per method, one column per (problem, budget): median and paired wins-losses.

    The wins-losses are the row's, against ``reference`` on the same seeds (ties not counted); the
    reference's own row shows its median only. Used for the lever-by-lever table.
    """
    columns = [(p, b) for p in problems for b in budgets]
    lines = ["| method | " + " | ".join(f"{p} N = {b}" for p, b in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for method in methods:
        cells = []
        for problem, b in columns:
            direction = PROBLEMS[problem].direction
            ours = best_at(results, method, problem, b, direction)
            if not ours:
                cells.append("–")
                continue
            cell = f"{np.median(list(ours.values())):.4f}"
            if method != reference:
                theirs = best_at(results, reference, problem, b, direction)
                shared = [s for s in ours if s in theirs]
                wins = sum(better(ours[s], theirs[s], direction) for s in shared)
                losses = sum(better(theirs[s], ours[s], direction) for s in shared)
                cell += f" ({wins}–{losses})"
            cells.append(cell)
        lines.append(f"| {label(method)} | " + " | ".join(cells) + " |")
    return lines


def label(method):
    name, kwargs = parse_method(method)
    if not kwargs:
        return LABELS.get(name, name)
    return f"{LABELS.get(name, name).replace(' (defaults)', '')} ({', '.join(f'{k}={v}' for k, v in kwargs.items())})"


def cpu_per_proposal(results, method, problem, start, stop):
    """Median CPU seconds per proposal over trials [start, stop) of the method's longest runs."""
    values = []
    for r in results:
        if r["method"] == method and r["problem"] == problem:
            values += r["cpu_seconds"][start:stop]
    return float(np.median(values)) if values else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per method (default 10)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed, first-seed + 1, ... (default 0; tune on others than you report)")
    parser.add_argument("--budget", type=int, default=200, help="largest budget (default 200)")
    parser.add_argument("--smac-seeds", type=int, default=None, help="seeds for SMAC3 (slow; default: --seeds)")
    parser.add_argument("--smac-budget", type=int, default=None, help="largest budget for SMAC3 (default: --budget)")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated; forest options as forest:key=value:key=value")
    parser.add_argument("--reference", default=None, help="method the paired wins are counted for (default: first)")
    parser.add_argument("--compact", action="store_true",
                        help="also print one compact table: every method's median per problem and budget, with its "
                             "paired wins-losses against the reference (the lever-by-lever comparison)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 50 trials, small timing run")
    parser.add_argument("--no-timing", action="store_true", help="skip the forest's time-per-proposal measurement")
    parser.add_argument("--timing-only", action="store_true", help="only measure the forest's time per proposal")
    parser.add_argument("--surrogate", action="store_true",
                        help="also measure the forest's predictive rank correlation per feature set (policy problems)")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("--raw", default=None,
                        help="append each run's results to this JSON-lines file, and skip runs already in it")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.budget = min(args.seeds, 3), min(args.budget, 50)
    problems = [p for p in args.problems.split(",") if p]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {unknown}; choose from {sorted(PROBLEMS)}")
    methods = [m for m in args.methods.split(",") if m]
    reference = args.reference or methods[0]
    budgets = [b for b in BUDGETS if b <= args.budget]

    jobs = []
    for problem in problems if not args.timing_only else []:
        for method in methods:
            name = parse_method(method)[0]
            seeds = min(args.smac_seeds or args.seeds, args.seeds) if name == "smac" else args.seeds
            top = min(args.smac_budget or args.budget, args.budget) if name == "smac" else args.budget
            for seed in range(args.first_seed, args.first_seed + seeds):
                if name in BUDGET_AWARE:
                    jobs += [(method, problem, seed, b) for b in budgets if b <= top]
                else:
                    jobs.append((method, problem, seed, top))
    started = time.time()
    loads = [os.getloadavg()[0]]
    results = []
    if args.raw and os.path.exists(args.raw):
        # A run of a method that does not plan with its budget also answers every smaller budget.
        wanted = {j[:3]: j[3] for j in jobs if parse_method(j[0])[0] not in BUDGET_AWARE}
        with open(args.raw) as f:
            for line in f:
                record = json.loads(line)
                key = (record["method"], record["problem"], record["seed"])
                if (*key, record["budget"]) in jobs or record["budget"] >= wanted.get(key, math.inf):
                    results.append(record)
        done = {(r["method"], r["problem"], r["seed"], r["budget"]) for r in results}
        longest = {}
        for r in results:
            key = (r["method"], r["problem"], r["seed"])
            longest[key] = max(r["budget"], longest.get(key, 0))
        jobs = [j for j in jobs if j not in done and longest.get(j[:3], 0) < wanted.get(j[:3], math.inf)]
        print(f"{len(results)} runs read from {args.raw}; {len(jobs)} to go", flush=True)

    def record(result):
        results.append(result)
        loads.append(os.getloadavg()[0])
        if args.raw:
            with open(args.raw, "a") as f:
                f.write(json.dumps(result) + "\n")
        print(f"  done {result['method']} {result['problem']} seed {result['seed']} N={result['budget']} "
              f"({time.time() - started:.0f}s, load {loads[-1]:.1f})", flush=True)

    # Slow, budget-aware runs first so that the pool's two workers finish together.
    jobs.sort(key=lambda j: (parse_method(j[0])[0] not in BUDGET_AWARE, -j[3]))
    if args.jobs > 1 and jobs:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for result in pool.imap_unordered(run_one, jobs):
                record(result)
    else:
        for job in jobs:
            record(run_one(job))

    command = "python benchmarks/oracle_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Oracle efficiency benchmark",
        "",
        f"Command: `{command.strip()}`",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
        f"{time.strftime('%Y-%m-%d')}; search wall time {time.time() - started:.0f} s; load average (1 min) "
        f"during the runs: min {min(loads):.1f}, median {np.median(loads):.1f}, max {max(loads):.1f} "
        "(shared machine: times are upper bounds; the search results do not depend on the load).",
        "",
        "Median over seeds of the best noise-free value found within the first N trials, "
        "[25th–75th percentile] in brackets.",
        "",
    ]
    verdicts = []
    for problem in problems if not args.timing_only else []:
        direction = PROBLEMS[problem].direction
        lines += [f"## {problem} ({'higher' if direction == 'max' else 'lower'} is better)", ""]
        body, medians = table(results, problem, methods, budgets, reference)
        lines += body + [""]
        if "random" in methods and 100 in budgets:
            target = medians.get(("random", 100))
            reach = [first_reach(r["truths"], direction, target) for r in results
                     if r["method"] == reference and r["problem"] == problem]
            if reach and target is not None:
                needed = float(np.median([n if n is not None else math.inf for n in reach]))
                verdicts.append((f"{problem}: `{reference}` reaches random search's median 100-trial best "
                                 f"({target:.4f}) within 30 trials (median trials needed: {needed:g})", needed <= 30))
        others = [m for m in methods if m != reference]
        for b in budgets:
            ours = medians.get((reference, b))
            if ours is None:
                continue
            if b <= 25:
                rivals = [m for m in others if parse_method(m)[0] in ("tpe", "tpe-indep", "random")]
            else:
                rivals = [m for m in others if parse_method(m)[0] in ("tpe", "tpe-indep", "random", "smac", "skopt",
                                                                        "kt-bayes")]
            behind = [m for m in rivals if (m, b) in medians and better(medians[(m, b)], ours, direction)]
            compared = [m for m in rivals if (m, b) in medians]
            if compared:
                verdicts.append((f"{problem}, N = {b}: `{reference}` median >= {', '.join(compared)}"
                                 + (f" (behind {', '.join(behind)})" if behind else ""), not behind))
        lines += ["CPU time per proposal (median over trials 100–200 of the runs; the process's own CPU time):", ""]
        lines += ["| method | CPU per proposal |", "|---|---:|"]
        for method in methods:
            cpu = cpu_per_proposal(results, method, problem, 100, 200)
            if not math.isnan(cpu):
                lines.append(f"| {label(method)} | {cpu * 1000:.0f} ms |")
        lines.append("")

    if not args.no_timing and any(parse_method(m)[0] == "forest" for m in methods):
        forest = next(m for m in methods if parse_method(m)[0] == "forest")
        repeats = 3 if args.quick else 7
        lines += [
            f"## Time per proposal of `{forest}` (policy space, 30 hyperparameters)",
            "",
            f"Median of {repeats} `populate_space` calls after N completed random trials "
            f"(load average before timing: {os.getloadavg()[0]:.1f}).",
            "",
            "| completed trials | CPU | wall |",
            "|---:|---:|---:|",
        ]
        for completed in (50, 300):
            measured = proposal_cost(forest, completed, repeats)
            lines.append(f"| {completed} | {measured['cpu'] * 1000:.0f} ms | {measured['wall'] * 1000:.0f} ms |")
            if completed == 300:
                verdicts.append((f"`{forest}` proposal <= 100 ms CPU at 300 completed trials "
                                 f"({measured['cpu'] * 1000:.0f} ms CPU, {measured['wall'] * 1000:.0f} ms wall)",
                                 measured["cpu"] <= 0.100))
        lines.append("")

    if args.surrogate:
        lines += [
            "## Surrogate quality: slot columns vs pooled (exchangeable-slot) features",
            "",
            "Spearman correlation between the default forest's predicted mean and the true value on 400 "
            "held-out random points, after n random trials (mean of 8 problem instances / draws).",
            "",
        ]
        for problem in [p for p in problems if p.startswith("policy")]:
            quality = surrogate_quality(problem)
            lines += [f"| {problem}: features | " + " | ".join(f"n = {n}" for n in quality) + " |",
                      "|---|" + "---:|" * len(quality)]
            for features in SURROGATE_FEATURES:
                lines.append(f"| {features} | " + " | ".join(f"{quality[n][features]:.2f}" for n in quality) + " |")
            lines.append("")

    if args.compact and not args.timing_only:
        lines += [f"## All problems: median (paired wins–losses against `{reference}`)", ""]
        lines += compact_table(results, problems, methods, budgets, reference) + [""]

    lines += ["## Targets", ""]
    lines += [f"- {'MET' if met else 'NOT MET'}: {text}" for text, met in verdicts]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
