"""Reward noise of one child training: unpaired vs paired, constant Adam vs warm-up + cosine (issue 10).

For every (schedule, seed, policy) the child is trained directly, as one execution of a
trial: ``keras.utils.set_random_seed(seed)``, ``AugmentHyperModel.build`` with the
policy's values, the ``PolicyAugmentation`` layer's seed set to ``seed``, ``fit``, and the
project's reward (``overfit_filtered_reward``, K = 3, max gap 0.10). Executions with the
same seed share the initial weights, the batch order and the augmentation seed stream,
so ``policy - baseline`` on one seed is a *paired* difference.

Reported per schedule and policy: the mean and standard deviation (over seeds) of the
reward, and for each augmentation policy the mean and standard deviation of the paired
gain over the no-augmentation baseline, with the standard deviation an unpaired gain
would have (``sqrt(sd_policy^2 + sd_baseline^2)``) beside it.

Schedules: ``constant`` (Adam at a constant rate, the old child) and ``cosine`` (warm-up +
cosine decay to ~0, ``keras_augtune.schedule.WarmupCosineDecay``), each optionally with its
(peak) learning rate: ``cosine@0.003`` (default 0.001).

Usage:
    python benchmarks/reward_noise.py --data digits --seeds 4
    python benchmarks/reward_noise.py --data digits --seeds 4 --schedules cosine@0.003 --resume
    python benchmarks/reward_noise.py --data ../shared/data/cifar10-jpeg --seeds 3 \\
        --train-size 1000 --validation-size 1000 --epochs 6

Results: benchmarks/results/reward_noise_<data>.json and .md (rewritten after each run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> 2 sub-policies x 2 ops (one space shape for all, the baseline included)
POLICIES = {
    "no augmentation": None,
    "rotate+translate": [[("rotate", 0.8, 0.5), ("translate-x", 0.5, 0.5)],
                         [("shear", 0.8, 0.5), ("translate-y", 0.5, 0.5)]],
    "crop+cutout": [[("crop", 1.0, 0.5), ("identity", 1.0, 0.0)],
                    [("crop", 1.0, 0.5), ("cutout", 1.0, 0.5)]],
    "invert+noise (harsh)": [[("invert", 0.5, 1.0), ("additive-gaussian-noise", 0.8, 0.8)],
                             [("solarize", 0.5, 0.6), ("gaussian-blur", 0.8, 0.8)]],
    "crop+flip": [[("crop", 1.0, 0.5), ("horizontal-flip", 1.0, 0.5)],
                  [("crop", 1.0, 0.5), ("horizontal-flip", 1.0, 0.5)]],
}
DEFAULT_POLICIES = {"digits": "no augmentation,rotate+translate,crop+cutout,invert+noise (harsh)",
                    "other": "no augmentation,crop+flip,rotate+translate,invert+noise (harsh)"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits' or a folder with train/ and test/ class folders")
    p.add_argument("--seeds", type=int, default=5, help="execution seeds 0..N-1 (default 5)")
    p.add_argument("--epochs", type=int, default=8, help="child epochs (default 8, the CLI's)")
    p.add_argument("--train-size", type=int, default=800, help="training images (default 800, the CLI's)")
    p.add_argument("--validation-size", type=float, default=0.2,
                   help="digits: fraction held out (default 0.2, the tuner's); a folder: images of test/")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--schedules", default="constant,cosine",
                   help="learning-rate schedules compared, each NAME or NAME@RATE (default constant,cosine)")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in the results file and add the missing ones")
    p.add_argument("--policies", default=None, help=f"comma-separated subset of: {', '.join(POLICIES)}")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    return p.parse_args(argv)


def load(args):
    """(name, x_train, y_train, x_val, y_val): fixed splits, the same for every run."""
    from keras_augtune.data import stratified_split, stratified_subsample
    from keras_augtune.loaders import load_digits, load_image_folder

    if args.data == "digits":
        x, y = load_digits(32)
        train, val = stratified_split(y, args.validation_size, 0)  # as the tuner's split with seed 0
        keep = train[stratified_subsample(y[train], min(args.train_size, len(train)), 0)]
        return "digits", x[keep], y[keep], x[val], y[val]
    x, y, classes = load_image_folder(os.path.join(args.data, "train"))
    xv, yv, classes_v = load_image_folder(os.path.join(args.data, "test"))
    if classes != classes_v:
        raise SystemExit(f"train and test class folders differ: {classes} vs {classes_v}")
    keep = stratified_subsample(y, min(args.train_size, len(y)), 0)
    held = stratified_subsample(yv, min(int(args.validation_size) if args.validation_size > 1 else 1000, len(yv)), 0)
    return os.path.basename(os.path.normpath(args.data)), x[keep], y[keep], xv[held], yv[held]


def reward_function():
    from keras_augtune.evaluation.reward import overfit_filtered_reward

    return overfit_filtered_reward


def parse_schedule(spec: str) -> tuple[str, float]:
    name, _, rate = spec.partition("@")
    return name, float(rate) if rate else 1e-3


def train_once(policy_subs, schedule, seed, data, args):
    import keras
    import keras_tuner as kt

    from keras_augtune.hypermodel import AugmentHyperModel
    from keras_augtune.layer import PolicyAugmentation
    from keras_augtune.policy import Policy
    from keras_augtune.space import PolicySpace, baseline_values

    _, x, y, xv, yv = data
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2)
    name, rate = parse_schedule(schedule)
    hypermodel = AugmentHyperModel("simple", policy_space=space, learning_rate_schedule=name, learning_rate=rate)
    hypermodel.configure(x.shape[1:], int(y.max()) + 1)
    hp = kt.HyperParameters()
    space.declare(hp)
    hp.values.update(baseline_values(space) if policy_subs is None else space.to_values(Policy(policy_subs)))
    keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    for layer in model.layers:
        if isinstance(layer, PolicyAugmentation):
            layer.seed = seed
    start = time.time()
    history = hypermodel.fit(hp, model, x, y, validation_data=(xv, yv), epochs=args.epochs,
                             batch_size=args.batch_size, verbose=0).history
    seconds = time.time() - start
    score = reward_function()(history)
    keras.backend.clear_session()
    return {"reward": score.reward, "final_val_accuracy": score.final_val_accuracy,
            "best_val_accuracy": score.best_val_accuracy, "epochs_kept": score.epochs_kept,
            "val_accuracy": [float(v) for v in history["val_accuracy"]], "seconds": seconds}


def summarise(runs, policies, schedules, seeds):
    """Per schedule and policy: reward mean/sd over seeds; paired gain mean/sd/95 % interval."""
    from scipy import stats

    table = {}
    for schedule in schedules:
        base = {r["seed"]: r["reward"] for r in runs if r["schedule"] == schedule and r["policy"] == "no augmentation"}
        for name in policies:
            rewards = {r["seed"]: r["reward"] for r in runs if r["schedule"] == schedule and r["policy"] == name}
            values = np.array(list(rewards.values()))
            row = {"n": len(values), "mean": float(values.mean()) if len(values) else None,
                   "sd": float(values.std(ddof=1)) if len(values) > 1 else None}
            paired = [rewards[s] - base[s] for s in rewards if s in base]
            if name != "no augmentation" and len(paired) > 1:
                gains = np.array(paired)
                half = stats.t.ppf(0.975, len(gains) - 1) * gains.std(ddof=1) / np.sqrt(len(gains))
                base_sd = np.std([base[s] for s in rewards if s in base], ddof=1)
                row.update(gain_mean=float(gains.mean()), gain_sd_paired=float(gains.std(ddof=1)),
                           gain_sd_unpaired=float(np.sqrt(values.std(ddof=1) ** 2 + base_sd ** 2)),
                           gain_interval=[float(gains.mean() - half), float(gains.mean() + half)],
                           gains=[float(g) for g in gains])
            table[f"{schedule} | {name}"] = row
    return table


def markdown(result) -> str:
    a = result["settings"]
    lines = [f"# Reward noise: {result['data']}", "",
             *[f"`{c}`  " for c in result["commands"]], "",
             f"{a['train_size']} training images, {result['validation_images']} validation images, "
             f"{a['epochs']} child epochs, batch {a['batch_size']}, child `simple`, seeds "
             f"0..{a['seeds'] - 1}; {result['runs_done']} trainings in {result['minutes']:.1f} min; "
             f"load average {result['load_before']} before, {result['load_after']} after "
             f"({result['cpus']} CPUs, shared with other jobs).", "",
             "| schedule | policy | reward mean | reward sd (unpaired) | paired gain mean | paired gain sd "
             "| unpaired gain sd | paired gain 95 % interval |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    for key, row in result["table"].items():
        schedule, name = key.split(" | ")
        interval = row.get("gain_interval")
        lines.append(f"| {schedule} | {name} | {fmt(row['mean'])} | {fmt(row['sd'])} | {fmt(row.get('gain_mean'))} "
                     f"| {fmt(row.get('gain_sd_paired'))} | {fmt(row.get('gain_sd_unpaired'))} | "
                     + (f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "–") + " |")
    return "\n".join(lines) + "\n"


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None):
    args = parse_args(argv)
    data = load(args)
    name = data[0]
    policies = (args.policies or DEFAULT_POLICIES["digits" if name == "digits" else "other"]).split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise SystemExit(f"unknown policies {unknown}; known: {', '.join(POLICIES)}")
    if "no augmentation" not in policies:
        policies.insert(0, "no augmentation")
    schedules = args.schedules.split(",")
    for schedule in schedules:
        parse_schedule(schedule)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"reward_noise_{name}.json")
    command = " ".join(["python"] + sys.argv)
    result = {"data": name, "settings": vars(args), "policies": {p: POLICIES[p] for p in policies},
              "validation_images": int(len(data[4])), "commands": [command],
              "cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_average(), "runs": [],
              "minutes_before": 0.0}
    if args.resume and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        result["runs"], result["minutes_before"] = old["runs"], old["minutes"]
        result["commands"] = old.get("commands", []) + [command]
        result["load_before"] = f"{old['load_before']} (first run), {result['load_before']} (this run)"
        schedules = list(dict.fromkeys([r["schedule"] for r in old["runs"]] + schedules))
        policies = list(dict.fromkeys([r["policy"] for r in old["runs"]] + policies))
        result["policies"] = {p: POLICIES[p] for p in policies}
    done = {(r["schedule"], r["seed"], r["policy"]) for r in result["runs"]}
    start = time.time()
    for seed in range(args.seeds):
        for schedule in schedules:
            for policy in policies:
                if (schedule, seed, policy) in done:
                    continue
                run = train_once(POLICIES[policy], schedule, seed, data, args)
                run.update(policy=policy, schedule=schedule, seed=seed, load=load_average())
                result["runs"].append(run)
                print(f"seed {seed} {schedule:8s} {policy:22s} reward {run['reward']:.4f} "
                      f"({run['seconds']:.0f} s, load {run['load']})", flush=True)
                result.update(runs_done=len(result["runs"]),
                              minutes=result["minutes_before"] + (time.time() - start) / 60,
                              load_after=load_average(),
                              table=summarise(result["runs"], policies, schedules, range(args.seeds)))
                with open(path, "w") as f:
                    json.dump(result, f, indent=1)
                with open(os.path.join(args.out, f"reward_noise_{name}.md"), "w") as f:
                    f.write(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
