"""End-to-end benchmark: does the searched policy make the *final* model better than the
zero-search defaults?

Protocol (issue 11):
  1. split the training images into search-train / validation (stratified, fixed per search
     seed); the test images are touched only for the final numbers;
  2. search with AugmentTuner (random-forest oracle) and with random search, same trial budget;
  3. choose, on the validation split, RandAugment's (N, M) from a small grid and the magnitude
     scale of the searched policy (``Policy.scaled``): one model per candidate, trained with the
     final protocol on images outside the validation split, scored on the validation split;
  4. train the final model from scratch with every configuration on the *same* seeds (same
     training subset, same initialisation: paired), the literature's way: SGD with Nesterov
     momentum 0.9, learning rate 0.05, weight decay 5e-4, batch 64, 2 linear warm-up epochs
     then cosine decay to 0, ``--epochs`` epochs (default 60: on 2,000 reduced-CIFAR images
     that is where crop+flip clearly beats no augmentation, see docs/benchmarks.md), read at
     the last epoch; report mean test error ± 95 % t-interval and the paired difference
     against crop+flip + TrivialAugment.

Configurations: no augmentation; crop+flip; crop+flip + TrivialAugment; crop+flip +
RandAugment (grid-picked); crop+flip + searched policy; crop+flip + random search's best
(same budget); crop+flip + searched policy at the validation-picked scale; with ``--methods
...,hyperband``, crop+flip + the multi-fidelity search's best. On digits "flip"
is left out (a flipped digit is another digit) and the labels say "crop".

Usage:
    python benchmarks/end_to_end.py --data ../shared/data/cifar10-jpeg --seeds 5
    python benchmarks/end_to_end.py --data digits --seeds 5
    python benchmarks/end_to_end.py --data digits --quick      # a smoke-sized run (minutes)
    python benchmarks/end_to_end.py --data ../shared/data/cifar10-jpeg --methods none \\
        --configs none,cf,ta --seeds 2 --epochs 40

``--methods none`` skips the searches (then only the configurations without a searched policy
run). Results: <out>/end_to_end_<name><tag>.{json,md}, rewritten after every model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TA = "TrivialAugment"
#: --configs keys: no augmentation, crop(+flip), + TrivialAugment, + RandAugment (grid-picked),
#: + searched policy, + random search's best, + searched policy at the validation-picked scale,
#: + the multi-fidelity (method="hyperband") search's best (run with --methods ...,hyperband)
CONFIGS = ("none", "cf", "ta", "ra", "searched", "random", "scaled", "hyperband")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits' or a folder with train/ and test/ class folders")
    p.add_argument("--seeds", type=int, default=5, help="paired seeds of the final models (default 5)")
    p.add_argument("--search-seeds", type=int, default=1, help="searches per method (default 1)")
    p.add_argument("--trials", type=int, default=50, help="trial budget per search, baseline included")
    p.add_argument("--hyperband-trials", type=int, default=None,
                   help="trial budget of the method='hyperband' search (default --trials); its trials are "
                        "shorter (successive halving), so equal cost takes ~3x as many")
    p.add_argument("--child-epochs", type=int, default=15)
    p.add_argument("--search-train-size", type=int, default=1000, help="images the child trains on")
    p.add_argument("--validation-size", type=int, default=500)
    p.add_argument("--final-train-size", type=int, default=2000, help="training images of the final model")
    p.add_argument("--epochs", "--final-epochs", dest="epochs", type=int, default=60,
                   help="epochs of the final protocol (default 60)")
    p.add_argument("--select-epochs", type=int, default=None,
                   help="epochs of the validation models that pick RandAugment's (N, M) and the scale "
                        "(default: --epochs)")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=2)
    p.add_argument("--final-width", type=int, default=64, help="width of the final CNN (64: ~375k parameters)")
    p.add_argument("--final-bn-momentum", type=float, default=0.9, help="BatchNorm momentum of the final CNN")
    p.add_argument("--child-width", type=int, default=32, help="width of the child CNN (32: ~95k parameters)")
    p.add_argument("--reward-max-gap", type=float, default=0.10,
                   help="the reward's overfitting threshold (default 0.10; a large value turns the filter off)")
    p.add_argument("--methods", default="bayesian,random",
                   help="search methods to run (default both; 'none' for no search)")
    p.add_argument("--ra-grid", default="1:0.2,1:0.4,2:0.2,2:0.4",
                   help="RandAugment N:M candidates picked on the validation split (M on the [0, 1] scale; "
                        "a tie goes to the first listed)")
    p.add_argument("--scales", default="1,0.5,1.5,2",
                   help="magnitude scales of the searched policy to pick from (a tie goes to the first listed)")
    p.add_argument("--reuse-searches", action="store_true",
                   help="reload finished searches from <out>/e2e_<name><tag>/ instead of running them again")
    p.add_argument("--tag", default="", help="suffix of the output files, to keep variants apart")
    p.add_argument("--configs", default="all",
                   help=f"comma-separated subset of the final configurations: {', '.join(CONFIGS)} (default all)")
    p.add_argument("--quick", action="store_true", help="smoke-sized run")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.trials, args.child_epochs = 2, 3, 2
        args.search_train_size, args.validation_size, args.final_train_size = 200, 100, 300
        args.epochs, args.select_epochs, args.warmup_epochs = 3, 1, 1
        args.ra_grid, args.scales = "1:0.2,2:0.4", "1,2"
        args.final_bn_momentum = 0.5  # 3 epochs are too few steps for BatchNorm statistics at 0.9
    if args.select_epochs is None:
        args.select_epochs = args.epochs
    args.ra_grid = [(int(n), float(m)) for n, m in (item.split(":") for item in args.ra_grid.split(","))]
    args.scales = [float(s) for s in args.scales.split(",")]
    args.methods = [] if args.methods.strip() == "none" else [m.strip() for m in args.methods.split(",")]
    return args


# ----------------------------------------------------------------------------- data
def load(data: str):
    from keras_augtune.data import load_digits, load_image_folder, stratified_split

    if data == "digits":
        x, y = load_digits(32)
        rest, test = stratified_split(y, 500, 12345, what="test")
        return "digits", x[rest], y[rest], x[test], y[test], False
    x, y, classes = load_image_folder(os.path.join(data, "train"))
    xt, yt, classes_t = load_image_folder(os.path.join(data, "test"))
    if classes != classes_t:
        raise SystemExit(f"train and test class folders differ: {classes} vs {classes_t}")
    return os.path.basename(os.path.normpath(data)), x, y, xt, yt, True


def subsample(y, size, seed):
    from keras_augtune.data import stratified_subsample

    return stratified_subsample(y, min(size, len(y)), seed)


# ----------------------------------------------------------------------------- final training
def crop_flip(image_shape, flip: bool, pad: int = 4):
    """The classic CIFAR recipe as tf ops on a uint8 batch: pad-and-crop, then (optionally) flip."""
    import tensorflow as tf

    height, width = image_shape[0], image_shape[1]

    def fn(images, labels):
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        # one uniform offset in [0, 2 * pad] per image and axis (as tf.image.random_crop per image),
        # cropped for the whole batch at once with gathers (a per-image map_fn cost more than training)
        n = tf.shape(images)[0]
        top = tf.random.uniform([n, 1], 0, 2 * pad + 1, dtype=tf.int32)
        left = tf.random.uniform([n, 1], 0, 2 * pad + 1, dtype=tf.int32)
        rows = tf.gather(padded, top + tf.range(height)[None], axis=1, batch_dims=1)
        crops = tf.gather(rows, left + tf.range(width)[None], axis=2, batch_dims=1)
        crops = tf.ensure_shape(crops, (None, *image_shape))
        if flip:
            crops = tf.image.random_flip_left_right(crops)
        return crops, labels

    return fn


def schedule(args, steps_per_epoch: int, epochs: int):
    """Linear warm-up to ``args.lr`` over ``args.warmup_epochs``, then cosine decay to 0."""
    import keras

    warmup = min(args.warmup_epochs, epochs - 1) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, epochs * steps_per_epoch - warmup), alpha=0.0,
        warmup_target=args.lr, warmup_steps=warmup)


def train_final(x, y, xt, yt, augmentations, seed, args, num_classes, epochs):
    """Train the final CNN from scratch with the given tf.data maps; return (test error, parameters)."""
    import keras
    import tensorflow as tf

    from keras_augtune.models import simple_cnn

    keras.utils.set_random_seed(seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(64)
    for fn in augmentations:
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im, lab: (tf.cast(im, tf.float32) / 255.0, lab)).prefetch(tf.data.AUTOTUNE)
    model = simple_cnn(x.shape[1:], num_classes, width=args.final_width, bn_momentum=args.final_bn_momentum)
    optimizer = keras.optimizers.SGD(schedule(args, math.ceil(len(x) / 64), epochs), momentum=0.9,
                                     nesterov=True, weight_decay=args.weight_decay)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(xt.astype("float32") / 255.0, yt, verbose=0)
    params = model.count_params()
    keras.backend.clear_session()
    return 1.0 - float(accuracy), params


# ----------------------------------------------------------------------------- search
def search(method, x, y, xv, yv, seed, args, directory):
    import keras

    from keras_augtune import AugmentTuner
    from keras_augtune.models import simple_cnn

    model = "simple"  # the built-in child is simple_cnn at width 32; other widths as a keras.Model
    if args.child_width != 32:
        model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Rescaling(1 / 255.0),
                                  simple_cnn(x.shape[1:], int(y.max()) + 1, width=args.child_width)])
    tuner = AugmentTuner(
        model, max_trials=args.hyperband_trials if method == "hyperband" and args.hyperband_trials else args.trials,
        method=method, child_epochs=args.child_epochs,
        batch_size=64, directory=directory, project_name=f"{method}_seed{seed}", overwrite=not args.reuse_searches,
        seed=seed + 1, verbose=1, reward_max_gap=args.reward_max_gap,
    )
    start = time.time()
    tuner.search(x, y, validation_data=(xv, yv))
    wall = time.time() - start
    best = tuner.get_best_policies(1)[0]
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    return {"method": method, "seed": seed, "wall_s": wall, "trials": len(tuner.oracle.trials),
            "completed": len(completed), "best_reward": best.metadata["reward"], "reused": args.reuse_searches,
            "baseline_reward": tuner.baseline_reward(), "best_policy": best.to_dict(),
            "rewards": [t.score for t in sorted(completed, key=lambda t: t.trial_id)]}


# ----------------------------------------------------------------------------- statistics
def interval(values):
    """Mean and 95 % half-width (Student t) of a list of numbers (half-width NaN for one value)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def paired(errors, reference):
    """The per-seed differences ``errors - reference`` over the seeds both have: mean, half-width, n."""
    n = min(len(errors), len(reference))
    if n == 0:
        return float("nan"), float("nan"), 0
    mean, half = interval(np.asarray(errors[:n]) - np.asarray(reference[:n]))
    return mean, half, n


# ----------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from keras_augtune import Policy
    from keras_augtune.data import stratified_split

    name, x_all, y_all, x_test, y_test, is_photo = load(args.data)
    num_classes = int(y_all.max()) + 1
    os.makedirs(args.out, exist_ok=True)
    run_dir = os.path.join(args.out, f"e2e_{name}{args.tag}")
    results = {"data": name, "args": vars(args), "command": "python " + " ".join(sys.argv),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
                          f"tensorflow {tf.__version__}",
               "loads": [os.getloadavg()[0]], "searches": [], "selection": {}, "finals": {}, "final_seconds": {}}
    print(f"data {name}: {len(y_all)} train / {len(y_test)} test images, {num_classes} classes", flush=True)

    # ---- searches
    best_policies = {}
    for s in range(args.search_seeds if args.methods else 0):
        keep, val = stratified_split(y_all, args.validation_size, 1000 + s)
        tr = keep[subsample(y_all[keep], args.search_train_size, 2000 + s)]
        for method in args.methods:
            print(f"== search {method} seed {s}: {len(tr)} train / {len(val)} validation images", flush=True)
            try:
                r = search(method, x_all[tr], y_all[tr], x_all[val], y_all[val], s, args, run_dir)
            except Exception as error:  # one failed search must not cost the other methods' table
                import traceback

                traceback.print_exc()
                results["failed_searches"] = results.get("failed_searches", []) + [
                    {"method": method, "seed": s, "error": f"{type(error).__name__}: {error}"}]
                continue
            print(f"   {r['completed']} trials in {r['wall_s']:.0f}s; best reward {r['best_reward']:.4f} "
                  f"(baseline {r['baseline_reward']})", flush=True)
            results["searches"].append(r)
            best_policies.setdefault(method, Policy.from_dict(r["best_policy"]))
            results["loads"].append(os.getloadavg()[0])
            _write(results, args, name)  # a search-only run (--seeds 0) keeps every finished search

    flip = is_photo
    cf = crop_flip(tuple(x_all.shape[1:]), flip)
    base = "crop+flip" if flip else "crop"
    label = {key: f"{base} + {text}" for key, text in (
        ("ta", TA), ("ra", "RandAugment"), ("searched", "searched policy"),
        ("random", "random-search best"), ("scaled", "searched policy, scale picked on validation"),
        ("hyperband", "hyperband-search best"))}
    label["none"], label["cf"] = "no augmentation", base
    wanted = set(CONFIGS) if args.configs == "all" else {c.strip() for c in args.configs.split(",")}
    if wanted - set(CONFIGS):
        raise SystemExit(f"--configs takes keys from {', '.join(CONFIGS)}; got {', '.join(sorted(wanted - set(CONFIGS)))}")

    def want(key):
        return key in wanted

    # ---- validation-split choices: RandAugment's (N, M) and the searched policy's scale
    keep, val = stratified_split(y_all, args.validation_size, 1000)
    sel = keep[subsample(y_all[keep], args.final_train_size, 5000)]

    def validation_error(policy):
        return train_final(x_all[sel], y_all[sel], x_all[val], y_all[val], [cf, policy.tf_map(batched=True)],
                           6000, args, num_classes, args.select_epochs)[0]

    def pick(kind, candidates):
        errors = {}
        for key, policy in candidates.items():
            start = time.time()
            errors[key] = validation_error(policy)
            print(f"   validation {kind} {key}: error {errors[key]:.4f} ({time.time() - start:.0f}s)", flush=True)
        best = min(errors, key=errors.get)
        results["selection"][kind] = {"validation_error": errors, "picked": best,
                                      "train_images": len(sel), "validation_images": len(val),
                                      "epochs": args.select_epochs}
        results["loads"].append(os.getloadavg()[0])
        return best

    policies = {"none": None, "cf": None, "ta": Policy.trivial_augment()}
    if want("ra"):
        grid = {f"N={n}, M={m:g}": Policy.rand_augment(n, m) for n, m in args.ra_grid}
        chosen = pick("RandAugment", grid) if len(grid) > 1 else next(iter(grid))
        policies["ra"] = grid[chosen]
        label["ra"] = f"{base} + RandAugment({chosen})"
    if "bayesian" in best_policies:
        searched = best_policies["bayesian"]
        policies["searched"] = searched
        if want("scaled"):
            scales = {f"{s:g}": searched.scaled(s) for s in args.scales}
            chosen = pick("scale", scales) if len(scales) > 1 else next(iter(scales))
            policies["scaled"] = scales[chosen]
            label["scaled"] = f"{base} + searched policy × {chosen} (scale picked on validation)"
    if "random" in best_policies:
        policies["random"] = best_policies["random"]
    if "hyperband" in best_policies:
        policies["hyperband"] = best_policies["hyperband"]

    configs = {label[k]: ([] if k == "none" else [cf] if p is None else [cf, p.tf_map(batched=True)])
               for k, p in policies.items() if want(k)}
    results["reference"] = label["ta"]
    results["policies"] = {label[k]: p.to_dict() for k, p in policies.items()
                           if p is not None and k not in ("ta",) and label[k] in configs}

    # ---- final models: every configuration on the same seeds (paired)
    for s in range(args.seeds):
        tr = subsample(y_all, args.final_train_size, 3000 + s)
        for text, augs in configs.items():
            start = time.time()
            error, params = train_final(x_all[tr], y_all[tr], x_test, y_test, augs, 4000 + s, args, num_classes,
                                        args.epochs)
            results["finals"].setdefault(text, []).append(error)
            results["final_seconds"].setdefault(text, []).append(time.time() - start)
            results["final_params"] = params
            results["final_train_images"] = len(tr)
            print(f"   seed {s} {text:60s} test error {error:.4f}  ({time.time() - start:.0f}s)", flush=True)
            results["loads"].append(os.getloadavg()[0])
            _write(results, args, name)
    print("\n".join(_write(results, args, name)), flush=True)


def _write(results, args, name):
    path = os.path.join(args.out, f"end_to_end_{name}{args.tag}")
    with open(path + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    finals = results["finals"]
    base = finals.get("no augmentation")
    reference = finals.get(results.get("reference"))
    loads = results["loads"]
    lines = [f"Data: {results['data']}; machine: {results['machine']}; load average "
             f"{min(loads):.1f}–{max(loads):.1f} (shared machine)",
             f"Command: `{results['command']}`",
             f"Final protocol: simple_cnn width {args.final_width}, {results.get('final_train_images', '?')} "
             f"training images, SGD-Nesterov {args.lr} (momentum 0.9, weight decay {args.weight_decay}), "
             f"{args.warmup_epochs} warm-up epochs + cosine to 0, {args.epochs} epochs, batch 64, last epoch.", "",
             "| final-model augmentation | test error (mean ± 95% CI) | seeds | per seed | vs no augmentation | "
             f"paired difference vs {results.get('reference')} (mean ± 95% CI) |",
             "|---|---|---|---|---|---|"]
    base_mean = interval(base)[0] if base else None
    for text, errors in finals.items():
        mean, half = interval(errors)
        rel = "" if not base_mean else f"{(mean - base_mean) / base_mean:+.1%}"
        diff = ""
        if reference and text != results.get("reference"):
            d_mean, d_half, n = paired(errors, reference)
            diff = f"{d_mean * 100:+.2f} ± {d_half * 100:.2f} points ({n} pairs)"
        per_seed = ", ".join(f"{e:.1%}" for e in errors)
        lines.append(f"| {text} | {mean:.1%} ± {half:.1%} | {len(errors)} | {per_seed} | {rel} | {diff} |")
    for kind, sel in results["selection"].items():
        shown = ", ".join(f"{k}: {v:.1%}" for k, v in sel["validation_error"].items())
        lines.append(f"\nValidation pick of {kind} ({sel['train_images']} train / {sel['validation_images']} "
                     f"validation images, {sel['epochs']} epochs, one seed): {shown} → **{sel['picked']}**")
    if results["searches"] or results.get("failed_searches"):
        lines += ["", "| search | trials | wall time | best reward | baseline reward |", "|---|---|---|---|---|"]
    for r in results["searches"]:
        wall = "reloaded (run earlier)" if r.get("reused") else f"{r['wall_s'] / 60:.1f} min"
        lines.append(f"| {r['method']} (seed {r['seed']}) | {r['completed']} | {wall} | "
                     f"{r['best_reward']:.4f} | {r['baseline_reward']:.4f} |")
    for failed in results.get("failed_searches", []):
        lines.append(f"| {failed['method']} (seed {failed['seed']}) | FAILED: {failed['error']} | | | |")
    seconds = [t for ts in results["final_seconds"].values() for t in ts]
    if seconds:
        lines.append(f"\nFinal models: {len(seconds)}, {np.mean(seconds):.0f} s each on average "
                     f"({sum(seconds) / 60:.0f} min in all).")
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
