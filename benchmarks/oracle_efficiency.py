"""How fast does each search method find good augmentation policies?

Compares, on the same budgets and seeds:

* ``forest``  - keras_augtune's RandomForestOracle (defaults);
* ``skopt``   - scikit-optimize ``Optimizer(base_estimator="RF", acq_func="EI",
  n_initial_points=10)``, DeepAugment's controller (benchmark-only dependency);
* ``kt-bayes``- Keras Tuner's BayesianOptimizationOracle (defaults: Gaussian process,
  3 x dimensions random initial points);
* ``random``  - Keras Tuner's RandomSearchOracle.

on two problems:

* ``policy``: a synthetic, deterministic "validation accuracy of a policy" over the
  real default policy space (5 sub-policies x 2 ops x op/magnitude/probability =
  30 hyperparameters, 32 ops): some ops help up to an optimal magnitude, some hurt,
  gains saturate when an op is repeated, pairs inside a sub-policy interact, and the
  observed score carries Gaussian noise (sd 0.004, a child model's run-to-run spread;
  seeded by run seed and values, so a run is reproducible). Maximised. The table
  reports the noise-free accuracy of the best trial found so far.
* ``ackley``: mixed categorical/continuous Ackley (5 unordered categorical
  dimensions of 5 levels, mapped to {-1, -0.5, 0, 0.5, 1} in a fixed shuffled order,
  plus 5 continuous dimensions in [-1, 1]; after CASMOPOLITAN's Ackley-cC).
  Minimised; optimum 0.

Oracles are driven directly (``create_trial`` / ``update_trial`` / ``end_trial`` in a
temporary directory), so no model is trained. Run::

    python benchmarks/oracle_efficiency.py                 # full: 10 seeds, 200 trials
    python benchmarks/oracle_efficiency.py --quick         # 3 seeds, 50 trials, smoke test
    python benchmarks/oracle_efficiency.py --out benchmarks/results/oracle_efficiency.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
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

warnings.filterwarnings("ignore")

METHODS = ("forest", "skopt", "kt-bayes", "random")
BUDGETS = (25, 50, 100, 200)


# ----------------------------------------------------------------------------- problems
class Problem:
    """A search space (list of ("choice", name, values) / ("float", name, low, high)) and an objective."""

    name = ""
    direction = "max"
    specs: list = []

    def hyperparameters(self):
        import keras_tuner as kt

        hp = kt.HyperParameters()
        for spec in self.specs:
            if spec[0] == "choice":
                hp.Choice(spec[1], list(spec[2]))
            else:
                hp.Float(spec[1], spec[2], spec[3])
        return hp

    def true_value(self, values: dict) -> float:
        raise NotImplementedError

    def observe(self, values: dict, seed: int) -> float:
        return self.true_value(values)


class PolicyReward(Problem):
    """Synthetic validation accuracy of an augmentation policy (see the module docstring)."""

    name = "policy"
    direction = "max"
    NOISE_SD = 0.004
    HELPS = {  # op: (gain, best magnitude)
        "horizontal-flip": (0.025, 0.5), "crop": (0.020, 0.5), "cutout": (0.020, 0.6),
        "translate-x": (0.015, 0.4), "translate-y": (0.012, 0.4), "rotate": (0.012, 0.3),
        "shear-x": (0.008, 0.3), "contrast": (0.006, 0.5), "brightness": (0.006, 0.4), "color": (0.004, 0.5),
    }
    HURTS = {
        "invert": 0.030, "vertical-flip": 0.020, "fog": 0.015, "clouds": 0.015, "solarize": 0.012,
        "coarse-salt-pepper": 0.010, "emboss": 0.010, "posterize": 0.008,
    }
    PAIRS = {  # ops in the same sub-policy
        ("crop", "horizontal-flip"): 0.010, ("rotate", "shear-x"): 0.006, ("translate-x", "translate-y"): 0.006,
        ("brightness", "contrast"): 0.004, ("coarse-dropout", "cutout"): -0.010, ("auto-contrast", "equalize"): -0.006,
    }

    def __init__(self):
        from keras_augtune.space import PolicySpace

        self.space = PolicySpace()
        hp = self.space.hyperparameters()
        self.specs = [
            ("choice", h.name, tuple(h.values)) if hasattr(h, "values") and not hasattr(h, "min_value")
            else ("float", h.name, h.min_value, h.max_value)
            for h in hp.space
        ]
        # Other ops: a small deterministic effect each.
        rng = np.random.default_rng(20261128)
        self.neutral = {op: float(rng.uniform(-0.003, 0.002)) for op in self.space.ops}

    def true_value(self, values: dict) -> float:
        policy = self.space.to_policy(values)
        exposure: dict[str, float] = {}
        accuracy = 0.70
        for sub in policy.sub_policies:
            for step in sub:
                p, m = step.probability, step.magnitude
                if step.op in self.HELPS:
                    gain, best = self.HELPS[step.op]
                    exposure[step.op] = exposure.get(step.op, 0.0) + p * (1.0 - ((m - best) / 0.35) ** 2)
                elif step.op in self.HURTS:
                    accuracy -= self.HURTS[step.op] * p * (0.3 + 0.7 * m)
                else:
                    accuracy += self.neutral[step.op] * p
            ops = sorted(step.op for step in sub)
            for (a, b), bonus in self.PAIRS.items():
                if a in ops and b in ops and a != b:
                    pa = max(s.probability for s in sub if s.op == a)
                    pb = max(s.probability for s in sub if s.op == b)
                    accuracy += bonus * pa * pb
        for op, s in exposure.items():
            gain = self.HELPS[op][0]
            accuracy += gain * (1.0 - math.exp(-1.5 * s)) if s > 0 else gain * s
        return accuracy

    def observe(self, values: dict, seed: int) -> float:
        digest = hashlib.sha256(json.dumps([seed, values], sort_keys=True).encode()).digest()
        noise = np.random.default_rng(int.from_bytes(digest[:8], "little")).normal(0.0, self.NOISE_SD)
        return self.true_value(values) + float(noise)


class MixedAckley(Problem):
    """Ackley with 5 unordered 5-level categorical and 5 continuous dimensions (minimise, optimum 0)."""

    name = "ackley"
    direction = "min"
    LEVELS = (-1.0, -0.5, 0.0, 0.5, 1.0)

    def __init__(self):
        rng = np.random.default_rng(7)
        self.maps = [dict(zip("abcde", rng.permutation(self.LEVELS))) for _ in range(5)]
        self.specs = [("choice", f"c{i}", tuple("abcde")) for i in range(5)]
        self.specs += [("float", f"x{i}", -1.0, 1.0) for i in range(5)]

    def true_value(self, values: dict) -> float:
        z = np.array([self.maps[i][values[f"c{i}"]] for i in range(5)] + [values[f"x{i}"] for i in range(5)])
        return float(
            -20.0 * np.exp(-0.2 * np.sqrt(np.mean(z**2))) - np.exp(np.mean(np.cos(2 * np.pi * z))) + 20.0 + np.e
        )


PROBLEMS = {"policy": PolicyReward, "ackley": MixedAckley}


# ----------------------------------------------------------------------------- runners
def _make_kt_oracle(method, problem, seed, budget):
    import keras_tuner as kt

    from keras_augtune.oracle import RandomForestOracle

    common = dict(
        objective=kt.Objective("score", problem.direction), max_trials=budget,
        seed=seed + 1, hyperparameters=problem.hyperparameters(),  # KT treats seed 0 as "random"
    )
    if method == "forest":
        return RandomForestOracle(**common)
    if method == "kt-bayes":
        return kt.oracles.BayesianOptimizationOracle(**common)
    return kt.oracles.RandomSearchOracle(**common)


def run_kt(method, problem, seed, budget):
    """True values of the trials, in order, and the seconds each proposal took."""
    oracle = _make_kt_oracle(method, problem, seed, budget)
    truths, seconds = [], []
    with tempfile.TemporaryDirectory() as directory:
        oracle._set_project_dir(directory, "bench")
        oracle.verbose = 0
        for _ in range(budget):
            start = time.perf_counter()
            trial = oracle.create_trial("bench")
            seconds.append(time.perf_counter() - start)
            if trial.status != "RUNNING":
                break
            values = trial.hyperparameters.values
            oracle.update_trial(trial.trial_id, {"score": problem.observe(values, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
            truths.append(problem.true_value(values))
    return truths, seconds


def _skopt_dimensions(problem):
    from skopt.space import Categorical, Real

    return [Categorical(list(s[2]), name=s[1]) if s[0] == "choice" else Real(s[2], s[3], name=s[1])
            for s in problem.specs]


def _skopt_optimizer(problem, seed):
    from skopt import Optimizer

    return Optimizer(_skopt_dimensions(problem), base_estimator="RF", acq_func="EI",
                     n_initial_points=10, random_state=seed)


def _to_values(problem, point):
    return {s[1]: (v if s[0] == "choice" else float(v)) for s, v in zip(problem.specs, point)}


def run_skopt(problem, seed, budget):
    optimizer = _skopt_optimizer(problem, seed)
    sign = -1.0 if problem.direction == "max" else 1.0
    truths, seconds = [], []
    for _ in range(budget):
        start = time.perf_counter()
        point = optimizer.ask()
        seconds.append(time.perf_counter() - start)
        values = _to_values(problem, point)
        start = time.perf_counter()
        optimizer.tell(point, sign * problem.observe(values, seed))
        seconds[-1] += time.perf_counter() - start  # skopt fits its forest in tell()
        truths.append(problem.true_value(values))
    return truths, seconds


def run_one(args):
    method, problem_name, seed, budget = args
    problem = PROBLEMS[problem_name]()
    if method == "skopt":
        truths, seconds = run_skopt(problem, seed, budget)
    else:
        truths, seconds = run_kt(method, problem, seed, budget)
    return method, problem_name, seed, truths, seconds


# ----------------------------------------------------------------------------- proposal cost
def proposal_cost(method, completed, repeats, seed=0):
    """Seconds per proposal with ``completed`` finished trials (policy problem).

    Returns medians over ``repeats`` proposals: ``{"wall": ..., "cpu": ..., "create_trial": ...}``.
    ``cpu`` is this process's CPU time, which other programs on a shared machine do not inflate
    (all compared code is single-threaded, so on an idle machine wall time ~ CPU time).
    """
    problem = PolicyReward()
    rng = np.random.default_rng(seed)
    random_points = [
        [s[2][rng.integers(len(s[2]))] if s[0] == "choice" else float(rng.uniform(s[2], s[3])) for s in problem.specs]
        for _ in range(completed + repeats)
    ]
    wall, cpu, whole = [], [], []
    if method == "skopt":
        optimizer = _skopt_optimizer(problem, seed)
        xs = random_points[:completed]
        optimizer.tell(xs, [-problem.observe(_to_values(problem, x), seed) for x in xs])
        for x in random_points[completed:]:
            start, start_cpu = time.perf_counter(), time.process_time()
            optimizer.tell(x, -problem.observe(_to_values(problem, x), seed))  # refit, as in a search step
            optimizer.ask()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        return {"wall": float(np.median(wall)), "cpu": float(np.median(cpu)), "create_trial": None}
    oracle = _make_kt_oracle(method, problem, seed, completed + 2 * repeats + 1)
    with tempfile.TemporaryDirectory() as directory:
        oracle._set_project_dir(directory, "cost")
        oracle.verbose = 0
        oracle.num_initial_points = 10**9  # fill with random trials fast
        for _ in range(completed):
            trial = oracle.create_trial("cost")
            oracle.update_trial(trial.trial_id, {"score": problem.observe(trial.hyperparameters.values, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
        oracle.num_initial_points = 10
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            oracle.populate_space(f"{len(oracle.trials):05d}")
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            start = time.perf_counter()
            trial = oracle.create_trial("cost")
            whole.append(time.perf_counter() - start)
            oracle.update_trial(trial.trial_id, {"score": problem.observe(trial.hyperparameters.values, seed)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    return {"wall": float(np.median(wall)), "cpu": float(np.median(cpu)), "create_trial": float(np.median(whole))}


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per method (default 10)")
    parser.add_argument("--budget", type=int, default=200, help="trials per run (default 200)")
    for slow in ("skopt", "kt-bayes"):
        parser.add_argument(f"--{slow}-seeds", type=int, default=None,
                            help=f"seeds for {slow} (slow; default: same as --seeds)")
        parser.add_argument(f"--{slow}-budget", type=int, default=None,
                            help=f"trials per {slow} run (default: same as --budget)")
    parser.add_argument("--problems", default="policy,ackley")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--quick", action="store_true", help="3 seeds, 50 trials, small timing run")
    parser.add_argument("--no-timing", action="store_true", help="skip the time-per-proposal measurement")
    parser.add_argument("--timing-only", action="store_true", help="only measure the time per proposal")
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument("--raw", default=None,
                        help="append each run's results to this JSON-lines file, and skip runs already in it")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.budget = min(args.seeds, 3), min(args.budget, 50)
    problems = [p for p in args.problems.split(",") if p]
    methods = [m for m in args.methods.split(",") if m]
    seeds_of = {m: args.seeds for m in methods}
    budget_of = {m: args.budget for m in methods}
    for slow in ("skopt", "kt-bayes"):
        key = slow.replace("-", "_")
        seeds_of[slow] = min(getattr(args, f"{key}_seeds") or args.seeds, args.seeds)
        budget_of[slow] = min(getattr(args, f"{key}_budget") or args.budget, args.budget)

    jobs = []
    if not args.timing_only:
        for problem in problems:
            for method in methods:
                jobs += [(method, problem, seed, budget_of[method]) for seed in range(seeds_of[method])]
    started = time.time()
    results = []
    if args.raw and os.path.exists(args.raw):
        with open(args.raw) as f:
            for line in f:
                method, problem, seed, truths, seconds = json.loads(line)
                if (method, problem, seed, len(truths)) in jobs or (method, problem, seed, budget_of.get(method)) in jobs:
                    results.append((method, problem, seed, truths, seconds))
        done = {(r[0], r[1], r[2]) for r in results}
        jobs = [j for j in jobs if (j[0], j[1], j[2]) not in done]
        print(f"{len(results)} runs read from {args.raw}; {len(jobs)} to go", flush=True)

    def record(result):
        results.append(result)
        if args.raw:
            with open(args.raw, "a") as f:
                f.write(json.dumps(list(result)) + "\n")
        print(f"  done {result[0]:9s} {result[1]:7s} seed {result[2]}  ({time.time() - started:.0f}s)", flush=True)

    if args.jobs > 1 and jobs:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for result in pool.imap_unordered(run_one, jobs):
                record(result)
    else:
        for job in jobs:
            record(run_one(job))

    lines = [
        "# Oracle efficiency benchmark",
        "",
        f"Command: `python benchmarks/oracle_efficiency.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores; "
        f"{time.strftime('%Y-%m-%d')}; search wall time {time.time() - started:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.1f} (shared machine: timings are upper bounds).",
        "Seeds and budget per method: "
        + ", ".join(f"{m} {seeds_of[m]} seeds x {budget_of[m]} trials" for m in methods) + ".",
        "",
    ]
    verdicts = []
    budgets = [b for b in BUDGETS if b <= args.budget]
    for problem_name in (problems if not args.timing_only else []):
        direction = PROBLEMS[problem_name].direction
        lines += [
            f"## {problem_name} ({'higher' if direction == 'max' else 'lower'} is better)",
            "",
            "Median (over seeds) of the best true value found within the first N trials.",
            "",
            "| method | seeds | " + " | ".join(f"N={b}" for b in budgets) + " |",
            "|---|---|" + "---|" * len(budgets),
        ]
        medians = {}
        runs = {}
        for method in methods:
            method_runs = [r[3] for r in results if r[0] == method and r[1] == problem_name]
            if not method_runs:
                continue
            runs[method] = method_runs
            row = []
            for b in budgets:
                reached = [best_so_far(t, direction, b) for t in method_runs if len(t) >= b]
                medians[(method, b)] = float(np.median(reached)) if reached else float("nan")
                row.append(f"{medians[(method, b)]:.4f}" if reached else "-")
            lines.append(f"| {method} | {len(method_runs)} | " + " | ".join(row) + " |")
        lines.append("")
        if "forest" in runs and "random" in runs and 100 in budgets:
            target = medians[("random", 100)]
            reach = [first_reach(t, direction, target) for t in runs["forest"]]
            median_reach = np.median([r if r is not None else float("inf") for r in reach])
            met = median_reach <= 35
            verdicts.append((f"{problem_name}: forest reaches random's median 100-trial best "
                             f"({target:.4f}) within 35 trials (median trials needed: {median_reach:g})", met))
        if "forest" in runs and "skopt" in runs:
            shared = [b for b in budgets if b <= budget_of["skopt"]]
            worse = [b for b in shared
                     if (medians[("forest", b)] < medians[("skopt", b)]) == (direction == "max")
                     and medians[("forest", b)] != medians[("skopt", b)]]
            verdicts.append((f"{problem_name}: forest median >= skopt RF+EI median at every budget "
                             f"(compared at N={shared})" + (f"; worse at N={worse}" if worse else ""), not worse))

    if not args.no_timing and ("forest" in methods or "skopt" in methods):
        repeats = 3 if args.quick else 5
        lines += [
            "## Time per proposal (policy space, 30 hyperparameters)",
            "",
            f"Median of {repeats} proposals after N completed (random) trials, as CPU time of the process "
            "and wall time (load average before timing: "
            f"{os.getloadavg()[0]:.1f}). forest: `populate_space`, the oracle's own work (the wall time of the "
            "whole `create_trial`, which adds Keras Tuner's bookkeeping and JSON writes, in brackets); "
            "skopt: `tell` (refits its forest) + `ask`.",
            "",
            "| method | N=50 CPU | N=50 wall | N=300 CPU | N=300 wall |",
            "|---|---|---|---|---|",
        ]
        cost = {}
        for method in [m for m in ("forest", "skopt") if m in methods]:
            cells = []
            for completed in (50, 300):
                measured = proposal_cost(method, completed, repeats)
                cost[(method, completed)] = measured
                cells.append(f"{measured['cpu'] * 1000:.0f} ms")
                cells.append(f"{measured['wall'] * 1000:.0f} ms" + (
                    f" ({measured['create_trial'] * 1000:.0f} ms)" if measured["create_trial"] else ""))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
        if ("forest", 300) in cost:
            measured = cost[("forest", 300)]
            verdicts.append((f"forest proposal <= 100 ms at 300 completed trials (CPU {measured['cpu'] * 1000:.0f} ms, "
                             f"wall {measured['wall'] * 1000:.0f} ms on the shared machine)", measured["cpu"] <= 0.100))

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
