"""Does the density-matching score rank policies as the training reward does?

For the no-augmentation policy plus ``--policies`` random policies from the default
``PolicySpace`` (5 sub-policies x 2 ops, probabilities searched), on scikit-learn's digits at
32 px (a stratified ``--train-size`` subset, split into child-train / validation as a search
does), compute:

* the **density score** (``keras_augtune.evaluation.density.DensityEvaluator``: the default
  child trained once per fold on clean data, then every policy scored on its augmented
  held-out folds — all four variants: accuracy or negative loss, mean or best of the draws);
* the **training reward**: the default child trained with the policy for ``--epochs`` epochs,
  exactly as a tuner trial does (``AugmentHyperModel(policy_space=...).build(hp)`` + ``fit``
  with validation data), scored by the overfit-filtered top-K reward;

and reports Spearman's rho and Kendall's tau between them with bootstrap 95 % intervals
(policies resampled with replacement), plus the time of each part.

    python benchmarks/density_correlation.py                       # 24 policies + none
    python benchmarks/density_correlation.py --policies 6 --epochs 2 --folds 2   # smoke

Results: <out>/density_correlation<tag>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import setup_paths, trial_hyperparameters  # noqa: E402

setup_paths()
from keras_augtune.evaluation.reward import overfit_filtered_reward  # noqa: E402

VARIANTS = ("accuracy_mean", "accuracy_best", "neg_loss_mean", "neg_loss_best")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", type=int, default=24, help="random policies (the no-augmentation one is added)")
    p.add_argument("--train-size", type=int, default=800, help="digits used (stratified subset)")
    p.add_argument("--validation-size", type=int, default=160, help="of those, held out for the reward")
    p.add_argument("--epochs", type=int, default=8, help="child epochs of a reward trial")
    p.add_argument("--reward-seeds", type=int, default=1, help="training runs averaged per policy's reward")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--density-epochs", type=int, default=8, help="epochs of each fold model")
    p.add_argument("--draws", type=int, default=3, help="augmented draws per held-out image")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    return p.parse_args(argv)


def random_policy_values(space, rng: random.Random) -> dict:
    """One uniformly random point of ``space`` (every hyperparameter sampled independently)."""
    return {hp.name: hp.random_sample(rng.randrange(2 ** 31)) for hp in space.hyperparameters().space}


def training_reward(hypermodel, values, x, y, xv, yv, epochs, seed):
    """One tuner trial by hand: the augmented child for ``values`` built under ``seed`` as the runner
    builds it, fitted with ``model.fit`` (the compiled model's own optimizer, as when these figures
    were first measured), its history scored."""
    import keras

    from keras_augtune.runner import build_seeded

    model = build_seeded(hypermodel.build, trial_hyperparameters(hypermodel, values), seed)
    history = model.fit(x, y, validation_data=(xv, yv), epochs=epochs, batch_size=64, verbose=0).history
    keras.backend.clear_session()
    return overfit_filtered_reward(history), history


def bootstrap_correlations(a, b, reps, seed):
    """Spearman and Kendall with percentile bootstrap 95 % intervals (pairs resampled)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    out = {}
    for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        value = float(fn(a, b).statistic)
        samples = []
        for _ in range(reps):
            idx = rng.integers(0, len(a), len(a))
            if np.ptp(a[idx]) == 0 or np.ptp(b[idx]) == 0:
                continue  # a constant resample has no rank correlation
            samples.append(fn(a[idx], b[idx]).statistic)
        low, high = np.nanpercentile(samples, [2.5, 97.5])
        out[name] = {"value": value, "ci95": [float(low), float(high)], "p_value": float(fn(a, b).pvalue)}
    return out


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from keras_augtune.data import stratified_split, stratified_subsample

    from keras_augtune.loaders import load_digits
    from keras_augtune.evaluation.density import DensityEvaluator
    from keras_augtune.hypermodel import AugmentHyperModel
    from keras_augtune.space import baseline_values
    from keras_augtune.space import PolicySpace

    load_start = os.getloadavg()
    x_all, y_all = load_digits(32)
    chosen = stratified_subsample(y_all, args.train_size, args.seed)
    x, y = x_all[chosen], y_all[chosen]
    kept, val = stratified_split(y, args.validation_size, args.seed)
    space = PolicySpace()
    rng = random.Random(args.seed)
    candidates = [("no augmentation", baseline_values(space))]
    candidates += [(f"random {i}", random_policy_values(space, rng)) for i in range(args.policies)]
    hypermodel = AugmentHyperModel(policy_space=space)
    hypermodel.configure(x.shape[1:], 10, (0.0, 255.0), False)
    results = {"args": vars(args), "command": "python " + " ".join(sys.argv),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                          f"tensorflow {tf.__version__}", "load_start": load_start, "policies": []}

    # ---- density: train the fold models once, then score every policy
    evaluator = DensityEvaluator(folds=args.folds, epochs=args.density_epochs, draws=args.draws, seed=args.seed)
    evaluator.fit(x, y)
    print(f"density fit: {args.folds} folds x {args.density_epochs} epochs in {evaluator.fit_seconds:.1f}s; "
          f"clean accuracy {evaluator.clean_details['accuracy_mean']:.4f}", flush=True)
    results["density_fit_s"] = evaluator.fit_seconds
    for label, values in candidates:
        policy = hypermodel.policy(trial_hyperparameters(hypermodel, values))
        details = evaluator.score_details(policy)
        results["policies"].append({"label": label, "policy": policy.to_dict()["sub_policies"], "density": details})
        print(f"  {label:16s} density acc {details['accuracy_mean']:.4f} (best-of {details['accuracy_best']:.4f}) "
              f"-loss {details['neg_loss_mean']:.3f}  {details['seconds']:.2f}s", flush=True)

    # ---- training reward: one child trained per policy (and per reward seed)
    for row, (label, values) in zip(results["policies"], candidates):
        start = time.perf_counter()
        runs = [training_reward(hypermodel, values, x[kept], y[kept], x[val], y[val], args.epochs,
                                seed=1000 * args.seed + 17 * s + 1) for s in range(args.reward_seeds)]
        row["reward_s"] = time.perf_counter() - start
        row["reward"] = float(np.mean([r.reward for r, _ in runs]))
        row["best_val_accuracy"] = float(np.mean([r.best_val_accuracy for r, _ in runs]))
        row["reward_runs"] = [r.reward for r, _ in runs]
        print(f"  {label:16s} reward {row['reward']:.4f} (best val {row['best_val_accuracy']:.4f}) "
              f"{row['reward_s']:.1f}s", flush=True)

    results["load_end"] = os.getloadavg()
    write(results, args)


def correlations(rows, reps, seed):
    """Every density variant against the reward, over all policies and over the random ones alone
    (no augmentation always has the top density score, so it can carry a correlation by itself)."""
    out = {}
    for subset, chosen in (("all", rows), ("random only", [r for r in rows if r["label"] != "no augmentation"])):
        rewards = [r["reward"] for r in chosen]
        out[subset] = {v: bootstrap_correlations([r["density"][v] for r in chosen], rewards, reps, seed)
                       for v in VARIANTS}
    return out


def write(results, args):
    results["correlations"] = correlations(results["policies"], args.bootstrap, args.seed)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"density_correlation{args.tag}")
    with open(path + ".json", "w") as f:
        json.dump(results, f, indent=1)
    rows = results["policies"]
    density_s = sum(r["density"]["seconds"] for r in rows)
    reward_s = sum(r["reward_s"] for r in rows)
    a = results["args"]
    lines = [
        f"Command: `{results['command']}`  ",
        f"Machine: {results['machine']}; load average {results['load_start'][0]:.1f} at the start, "
        f"{results['load_end'][0]:.1f} at the end (shared machine).", "",
        f"{len(rows)} policies (no augmentation + {len(rows) - 1} random), digits 32 px, {a['train_size']} images "
        f"({a['train_size'] - a['validation_size']} child-train / {a['validation_size']} validation for the reward).", "",
        "| policies | density variant | Spearman rho [95% bootstrap CI] | Kendall tau [95% bootstrap CI] |",
        "|---|---|---|---|",
    ]
    for subset, variants in results["correlations"].items():
        for variant, c in variants.items():
            s, k = c["spearman"], c["kendall"]
            lines.append(f"| {subset} | {variant} | {s['value']:+.3f} [{s['ci95'][0]:+.2f}, {s['ci95'][1]:+.2f}] | "
                         f"{k['value']:+.3f} [{k['ci95'][0]:+.2f}, {k['ci95'][1]:+.2f}] |")
    lines += ["", "| part | time |", "|---|---:|",
              f"| density: fit {a['folds']} fold models ({a['density_epochs']} epochs each) | {results['density_fit_s']:.1f} s |",
              f"| density: score {len(rows)} policies ({a['draws']} draws) | {density_s:.1f} s "
              f"({density_s / len(rows):.2f} s per policy) |",
              f"| training reward: {len(rows)} policies x {a['reward_seeds']} run(s) of {a['epochs']} epochs | "
              f"{reward_s:.1f} s ({reward_s / len(rows):.1f} s per policy) |",
              "", "| policy | density accuracy (mean) | density -loss (mean) | reward |", "|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["reward"]):
        lines.append(f"| {r['label']} | {r['density']['accuracy_mean']:.4f} | {r['density']['neg_loss_mean']:.3f} | "
                     f"{r['reward']:.4f} |")
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
