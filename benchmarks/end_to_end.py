"""End-to-end benchmark: does the searched policy beat no augmentation and zero-search baselines?

Protocol (per seed):
  1. split the training images into search-train / validation (stratified, fixed per seed);
     the test images are touched only for the final numbers;
  2. search with AugmentTuner (random-forest oracle) and with random search, same budget;
  3. train the *final* model (wider and longer than the child) from scratch on the
     training images with each augmentation and report test error, mean ± 95 % interval.

Usage:
    python benchmarks/end_to_end.py --data ../shared/data/cifar10-jpeg --seeds 3
    python benchmarks/end_to_end.py --data digits --seeds 3
    python benchmarks/end_to_end.py --data digits --quick      # a smoke-sized run

Searches run once (for --search-seeds seeds, default 1) and every final model is
trained for each of --seeds seeds. Results: benchmarks/out/end_to_end_<name>.{json,md}.
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits' or a folder with train/ and test/ class folders")
    p.add_argument("--seeds", type=int, default=3, help="seeds for the final models (default 3)")
    p.add_argument("--search-seeds", type=int, default=1, help="searches per method (default 1)")
    p.add_argument("--trials", type=int, default=50, help="trial budget per search, baseline included")
    p.add_argument("--child-epochs", type=int, default=15)
    p.add_argument("--search-train-size", type=int, default=1000, help="images the child trains on")
    p.add_argument("--validation-size", type=int, default=500)
    p.add_argument("--final-train-size", type=int, default=2000, help="training images of the final model")
    p.add_argument("--final-epochs", type=int, default=30)
    p.add_argument("--final-width", type=int, default=64, help="width of the final CNN (64: ~376k parameters)")
    p.add_argument("--final-bn-momentum", type=float, default=0.9, help="BatchNorm momentum of the final CNN")
    p.add_argument("--child-width", type=int, default=32, help="width of the child CNN (32: ~95k parameters)")
    p.add_argument("--reward-max-gap", type=float, default=0.10,
                   help="the reward's overfitting threshold (default 0.10; a large value turns the filter off)")
    p.add_argument("--methods", default="bayesian,random", help="search methods to run (default both)")
    p.add_argument("--tag", default="", help="suffix of the output files, to keep variants apart")
    p.add_argument("--configs", default="all", help="comma-separated subset of the final configurations")
    p.add_argument("--quick", action="store_true", help="smoke-sized run")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.trials, args.child_epochs = 1, 3, 2
        args.search_train_size, args.validation_size, args.final_train_size, args.final_epochs = 200, 100, 300, 2
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

    def fn(images, labels):
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        crops = tf.map_fn(lambda im: tf.image.random_crop(im, image_shape), padded)
        crops = tf.ensure_shape(crops, (None, *image_shape))
        if flip:
            crops = tf.image.random_flip_left_right(crops)
        return crops, labels

    return fn


def keras_rand_augment():
    import keras
    import tensorflow as tf

    layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=1, factor=0.3)

    def fn(images, labels):
        out = layer(tf.cast(images, tf.float32))
        return tf.cast(tf.clip_by_value(out, 0, 255), tf.uint8), labels

    return fn


def train_final(x, y, xt, yt, augmentations, seed, args, num_classes):
    """Train the final CNN from scratch with the given tf.data maps; return the test error."""
    import keras
    import tensorflow as tf

    from keras_augtune.models import simple_cnn

    keras.utils.set_random_seed(seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(64)
    for fn in augmentations:
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda im, lab: (tf.cast(im, tf.float32) / 255.0, lab)).prefetch(tf.data.AUTOTUNE)
    model = simple_cnn(x.shape[1:], num_classes, width=args.final_width, bn_momentum=args.final_bn_momentum)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=args.final_epochs, verbose=0)
    _, accuracy = model.evaluate(xt.astype("float32") / 255.0, yt, verbose=0)
    keras.backend.clear_session()
    return 1.0 - float(accuracy), model.count_params()


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
        model, max_trials=args.trials, method=method, child_epochs=args.child_epochs,
        batch_size=64, directory=directory, project_name=f"{method}_seed{seed}", overwrite=True,
        seed=seed + 1, verbose=1, reward_max_gap=args.reward_max_gap,
    )
    start = time.time()
    tuner.search(x, y, validation_data=(xv, yv))
    wall = time.time() - start
    best = tuner.get_best_policies(1)[0]
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    return {"method": method, "seed": seed, "wall_s": wall, "trials": len(tuner.oracle.trials),
            "completed": len(completed), "best_reward": best.metadata["reward"],
            "baseline_reward": tuner.baseline_reward(), "best_policy": best.to_dict(),
            "rewards": [t.score for t in sorted(completed, key=lambda t: t.trial_id)]}


def interval(values):
    """Mean and 95 % half-width (Student t) of a list of numbers."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    from keras_augtune import Policy
    from keras_augtune.data import stratified_split

    name, x_all, y_all, x_test, y_test, is_photo = load(args.data)
    num_classes = int(y_all.max()) + 1
    os.makedirs(args.out, exist_ok=True)
    run_dir = os.path.join(args.out, f"e2e_{name}{args.tag}")
    results = {"data": name, "args": vars(args), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
               f"python {platform.python_version()}, tensorflow {tf.__version__}", "searches": [], "finals": {}}
    print(f"data {name}: {len(y_all)} train / {len(y_test)} test images, {num_classes} classes", flush=True)

    # ---- searches
    best_policies = {}
    for s in range(args.search_seeds):
        keep, val = stratified_split(y_all, args.validation_size, 1000 + s)
        tr = keep[subsample(y_all[keep], args.search_train_size, 2000 + s)]
        for method in [m.strip() for m in args.methods.split(",")]:
            print(f"== search {method} seed {s}: {len(tr)} train / {len(val)} validation images", flush=True)
            r = search(method, x_all[tr], y_all[tr], x_all[val], y_all[val], s, args, run_dir)
            print(f"   {r['completed']} trials in {r['wall_s']:.0f}s; best reward {r['best_reward']:.4f} "
                  f"(baseline {r['baseline_reward']})", flush=True)
            results["searches"].append(r)
            best_policies.setdefault(method, Policy.from_dict(r["best_policy"]))

    # ---- final models
    flip = is_photo
    cf = crop_flip(tuple(x_all.shape[1:]), flip)
    searched, random_best = best_policies["bayesian"], best_policies.get("random")
    configs = {
        "no augmentation": [],
        "crop+flip" if flip else "crop": [cf],
        "searched policy": [searched.tf_map(batched=True)],
        "crop+flip + searched policy" if flip else "crop + searched policy": [cf, searched.tf_map(batched=True)],
        "crop+flip + random-search best" if flip else "crop + random-search best":
            [cf, random_best.tf_map(batched=True)] if random_best else None,
        "crop+flip + RandAugment(N=1, M=0.3)" if flip else "crop + RandAugment(N=1, M=0.3)":
            [cf, Policy.rand_augment(1, 0.3).tf_map(batched=True)],
        "crop+flip + TrivialAugment" if flip else "crop + TrivialAugment": [cf, Policy.trivial_augment().tf_map(batched=True)],
        "crop+flip + keras.layers.RandAugment(1, 0.3)" if flip else "crop + keras.layers.RandAugment(1, 0.3)":
            [cf, keras_rand_augment()],
    }
    configs = {k: v for k, v in configs.items() if v is not None}
    if args.configs != "all":
        wanted = [c.strip() for c in args.configs.split(",")]
        configs = {k: v for k, v in configs.items() if k in wanted}
    for s in range(args.seeds):
        tr = subsample(y_all, args.final_train_size, 3000 + s)
        for label, augs in configs.items():
            start = time.time()
            error, params = train_final(x_all[tr], y_all[tr], x_test, y_test, augs, 4000 + s, args, num_classes)
            results["finals"].setdefault(label, []).append(error)
            results["final_params"] = params
            print(f"   seed {s} {label:45s} test error {error:.4f}  ({time.time() - start:.0f}s)", flush=True)
        _write(results, args, name)
    _write(results, args, name)


def _write(results, args, name):
    path = os.path.join(args.out, f"end_to_end_{name}{args.tag}")
    with open(path + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    finals = results["finals"]
    base = finals.get("no augmentation")
    lines = [f"Data: {results['data']}; machine: {results['machine']}",
             f"Command: python {' '.join(sys.argv)}", "",
             "| final-model augmentation | test error (mean ± 95% CI) | seeds | relative to no augmentation |",
             "|---|---|---|---|"]
    base_mean = interval(base)[0] if base else None
    for label, errors in finals.items():
        mean, half = interval(errors)
        rel = "" if base_mean in (None, 0) else f"{(mean - base_mean) / base_mean:+.1%}"
        lines.append(f"| {label} | {mean:.1%} ± {half:.1%} | {len(errors)} | {rel} |")
    lines += ["", "| search | trials | wall time | best reward | baseline reward |", "|---|---|---|---|---|"]
    for r in results["searches"]:
        lines.append(f"| {r['method']} (seed {r['seed']}) | {r['completed']} | {r['wall_s'] / 60:.1f} min | "
                     f"{r['best_reward']:.4f} | {r['baseline_reward']:.4f} |")
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
