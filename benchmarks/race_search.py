"""A default search with its race, on real data: what the verdict recommends, next to TrivialAugment and RandAugment (issue 21).

Runs ``AugmentTuner`` with its default intensifier (the race: the 4 best searched policies,
TrivialAugment, RandAugment(N=2, M=0.3 / 0.6) and no augmentation on fresh paired executions,
14 confirmation executions) and writes the race's table (every raced configuration's child
reward, its gain over no augmentation and over the best recipe, intervals corrected over the
rows), the verdict, the trainings it cost and the wall time.

Usage:
    python benchmarks/race_search.py --data digits
    python benchmarks/race_search.py --data ../shared/data/cifar10-jpeg --images 1500 --epochs 8
    python benchmarks/race_search.py --data ../shared/data/cifar10-jpeg --images 1500 --epochs 8 --base crop-flip

``--base NAME`` (``crop-flip``, ``crop``, ``flip``: ``keras_augtune.recipes.BASE_RECIPES``) applies every
candidate after that base (``AugmentTuner(base=...)``): the baseline is then the base alone, and the
results file is ``race_search_<data>_<base>.json``.

Results: benchmarks/results/race_search_<data>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import load_average, machine, setup_paths  # noqa: E402

setup_paths()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits', a folder with train/<class>/ images, or "
                   "medmnist:<file.npz> (its training images; benchmarks/medmnist_data.py)")
    p.add_argument("--images", type=int, default=1200, help="images searched (stratified; a third validates)")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=8, help="child epochs (trials and race)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--base", default=None, metavar="NAME",
                   help="a base recipe every candidate follows (crop-flip, crop, flip); default none")
    p.add_argument("--race-epochs", type=int, default=None, help="the race's epochs (AugmentTuner(race_epochs=))")
    p.add_argument("--race-train-size", type=int, default=None,
                   help="the race's training images (AugmentTuner(race_train_size=))")
    p.add_argument("--recipes", default=None, help="comma-separated recipe names (default: AugmentTuner's)")
    p.add_argument("--confirm-top-k", type=int, default=4)
    p.add_argument("--confirm-executions", type=int, default=14)
    p.add_argument("--tag", default="", help="suffix of the results files")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    return p.parse_args(argv)


def load(args):
    from keras_augtune.data import stratified_subsample
    from keras_augtune.loaders import load_digits, load_image_folder

    if args.data == "digits":
        x, y = load_digits(32)
        name = "digits"
    elif args.data.startswith("medmnist:"):
        from medmnist_data import load_for_end_to_end

        name, x, y, _, _, _ = load_for_end_to_end(args.data.split(":", 1)[1])
    else:
        x, y, _ = load_image_folder(os.path.join(args.data, "train"))
        name = os.path.basename(os.path.normpath(args.data))
    keep = stratified_subsample(y, min(args.images, len(y)), args.seed)
    return name, x[keep], y[keep]


def main(argv=None):
    args = parse_args(argv)
    from keras_augtune import AugmentTuner
    from keras_augtune.recipes import baseline_label

    name, x, y = load(args)
    load_before, started = load_average(), time.time()
    with tempfile.TemporaryDirectory() as directory:
        tuner = AugmentTuner("simple", max_trials=args.trials, child_epochs=args.epochs, validation_split=1 / 3,
                             directory=directory, project_name="race", seed=args.seed, verbose=1, base=args.base,
                             race_epochs=args.race_epochs, race_train_size=args.race_train_size,
                             recipes=None if args.recipes is None else args.recipes.split(","),
                             confirm_top_k=args.confirm_top_k, confirm_executions=args.confirm_executions)
        trainings = []
        fit = tuner.hypermodel.fit

        def counted(*a, **k):
            trainings.append(1)
            return fit(*a, **k)

        tuner.hypermodel.fit = counted
        tuner.search(x, y)
        results = tuner.results()
        verdict, race = results.verdict(), results.race

        def comparison(c):
            return None if c is None else {"gain": c.gain, "interval": list(c.interval) if c.interval else None,
                                           "executions": c.executions}

        rows = [{"name": r.name, "kind": r.kind, "executions": r.executions, "mean_reward": r.mean,
                 "vs_none": comparison(r.vs_none), "vs_recipe": comparison(r.vs_recipe)} for r in race.rows()]
        policies = {n: str(tuner.hypermodel.policy(tuner.oracle.trials[t].hyperparameters))
                    for n, t in race.trial_ids.items() if t is not None and t in tuner.oracle.trials}
    result = {
        "command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]), "data": name,
        "settings": vars(args), "images": int(len(y)), "trials": args.trials, "base": args.base,
        "baseline": baseline_label(args.base),
        "trainings": {"all": len(trainings), "trials": args.trials, "race": len(trainings) - args.trials},
        "minutes": (time.time() - started) / 60, "load_before": load_before, "load_after": load_average(),
        "verdict": {"kind": verdict.kind, "name": verdict.name, "text": verdict.text, "gain": verdict.gain,
                    "interval": list(verdict.interval) if verdict.interval else None,
                    "gain_vs_recipe": verdict.gain_vs_recipe,
                    "interval_vs_recipe": list(verdict.interval_vs_recipe) if verdict.interval_vs_recipe else None},
        "race": rows, "searched_policies": policies, "machine": machine(),
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"race_search_{name}" + (f"_{args.base}" if args.base else "") + args.tag + ".json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    with open(path[:-5] + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))


def _fmt(c):
    if c is None:
        return "–"
    interval = c["interval"]
    return f"{c['gain']:+.4f}" + (f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "")


def _fidelity(settings) -> str:
    """The race's own training budget, when it differs from the trials'."""
    epochs, size = settings.get("race_epochs"), settings.get("race_train_size")
    if epochs is None and size is None:
        return ""
    images = size or "the trials' number of"
    return f" The race trains {epochs or settings['epochs']} epochs on {images} images (`race_epochs`, `race_train_size`)."


def markdown(result) -> str:
    """The race's table and verdict as Markdown (what docs/benchmarks.md shows)."""
    lines = [f"`{result['command']}` — {result['images']} {result['data']} images (a third for validation), "
             f"{result['trials']} trials + {result['trainings']['race']} race trainings in "
             f"{result['minutes']:.0f} min, load average {result['load_before'][0]:.1f} before, "
             f"{result['load_after'][0]:.1f} after."
             + (f" Every configuration follows the base recipe {result['base']}." if result.get("base") else "")
             + _fidelity(result.get("settings", {})), "",
             f"| configuration | kind | executions | child reward | vs {result.get('baseline', 'no augmentation')} "
             "| vs best recipe |",
             "|---|---|---:|---:|---:|---:|"]
    for row in result["race"]:
        lines.append(f"| {row['name']} | {row['kind']} | {row['executions']} | {row['mean_reward']:.4f} | "
                     f"{_fmt(row['vs_none'])} | {_fmt(row['vs_recipe'])} |")
    lines += ["", f"Verdict: {result['verdict']['text']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
