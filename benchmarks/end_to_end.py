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
    python benchmarks/end_to_end.py --data medmnist:benchmarks/data/medmnist/breastmnist.npz --seeds 10
    python benchmarks/end_to_end.py --data digits --quick      # a smoke-sized run (minutes)
    python benchmarks/end_to_end.py --data ../shared/data/cifar10-jpeg --search-seeds 3 --trials 16 \\
        --child-epochs 6 --base crop-flip --configs none,cf,ta,ra,race,random-race --proxy 12  # the CIFAR payoff suite
    python benchmarks/end_to_end.py --data ../shared/data/cifar10-jpeg --methods none \\
        --configs none,cf,ta --seeds 2 --epochs 40

``--methods none`` skips the searches (then only the configurations without a searched policy
run). Results: <out>/end_to_end_<name><tag>.{json,md}, rewritten after every model and search.

Split across machines (how the reduced-CIFAR-10 table in docs/benchmarks.md was made): the
searches on the CPU machine with ``--seeds 0`` (no final model), the final models where they are
cheap with ``--searches <that run's JSON>`` — the final training is NumPy augmentation in a
``keras.utils.PyDataset``, so it runs on any Keras backend, e.g. on a GPU machine without
TensorFlow::

    KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false python benchmarks/end_to_end.py \
        --data ../shared/data/cifar10-jpeg --methods none --seeds 5 --workers 14 \
        --searches benchmarks/results/end_to_end_cifar10-jpeg_search.json --tag _gpu

``--resume`` keeps what the output JSON already holds; ``--merge`` adds other runs' final models.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import platform
import sys
import time
from typing import NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TA = "TrivialAugment"
#: --configs keys: no augmentation, crop(+flip), + TrivialAugment, + RandAugment (grid-picked),
#: + searched policy, + random search's best, + searched policy at the validation-picked scale,
#: + the multi-fidelity (method="hyperband") search's best (run with --methods ...,hyperband),
#: + what the race after the search recommends (issue 22's searched row: a searched policy, a recipe
#: or nothing beyond the base), + the same for random search with the same race (equal cost).
#: The two race rows are one row each: final seed k uses search seed k mod --search-seeds, so the
#: row estimates what running a search gives, not what one lucky search gave.
CONFIGS = ("none", "cf", "ta", "ra", "searched", "random", "scaled", "hyperband", "race", "random-race")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits', a folder with train/ and test/ class folders, or "
                   "medmnist:<file.npz> (checked and prepared by benchmarks/medmnist_data.py)")
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
    p.add_argument("--base", default=None,
                   help="the base recipe the searches and their races apply under every candidate (AugmentTuner's "
                        "base=, e.g. crop-flip: the final models' base row); default none, as the digits and X-ray "
                        "suites ran")
    p.add_argument("--methods", default="bayesian,random",
                   help="search methods to run (default both; 'none' for no search)")
    p.add_argument("--ra-grid", default="1:0.2,1:0.4,2:0.2,2:0.4",
                   help="RandAugment N:M candidates picked on the validation split (M on the [0, 1] scale; "
                        "a tie goes to the first listed)")
    p.add_argument("--scales", default="1,0.5,1.5,2",
                   help="magnitude scales of the searched policy to pick from (a tie goes to the first listed)")
    p.add_argument("--reuse-searches", action="store_true",
                   help="reload finished searches from <out>/e2e_<name><tag>/ instead of running them again")
    p.add_argument("--searches", default=None,
                   help="take the searches (the first --search-seeds of each method) from an earlier run's "
                        "end_to_end_*.json, e.g. a search-only run (--seeds 0), instead of running them")
    p.add_argument("--resume", action="store_true",
                   help="keep the searches, validation scores and final models already in the output JSON and "
                        "run only what is missing")
    p.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                   help="add the final models of other runs' end_to_end_*.json (same data and seeds) whose labels "
                        "this table lacks; their runs are listed with the table")
    p.add_argument("--workers", type=int, default=1,
                   help="final models trained at once, each in its own process (default 1; e.g. 12 on a GPU "
                        "machine with 16 cores: the NumPy augmentation runs in each worker)")
    p.add_argument("--tag", default="", help="suffix of the output files, to keep variants apart")
    p.add_argument("--configs", default="all",
                   help=f"comma-separated subset of the final configurations: {', '.join(CONFIGS)} (default all)")
    p.add_argument("--confirm-top-k", type=int, default=4,
                   help="searched policies in the race after each search (AugmentTuner's default 4)")
    p.add_argument("--confirm-executions", type=int, default=14,
                   help="the race's confirmation executions (AugmentTuner's default 14)")
    p.add_argument("--proxy", type=int, default=0, metavar="N",
                   help="proxy fidelity: train N of the first search's trial policies (spread over its reward "
                        "ranks) with the final protocol on final seed 0, and report the rank correlation of the "
                        "child's reward with the final model's test accuracy")
    p.add_argument("--quick", action="store_true", help="smoke-sized run")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be a positive integer, got {args.workers}")
    if args.base is not None:  # a misspelt base is refused here, not after the data loaded in every search
        from keras_augtune.bases import Base

        try:
            Base.resolve(args.base)
        except (ValueError, TypeError) as error:
            p.error(f"--base: {error}")
    for path in [args.searches, *args.merge]:
        if path is not None and not os.path.isfile(path):
            p.error(f"no such results file: {path}")
    if args.quick:
        args.seeds, args.trials, args.child_epochs = 2, 3, 2
        args.search_train_size, args.validation_size, args.final_train_size = 200, 100, 300
        args.epochs, args.select_epochs, args.warmup_epochs = 3, 1, 1
        args.ra_grid, args.scales = "1:0.2,2:0.4", "1,2"
        args.final_bn_momentum = 0.5  # 3 epochs are too few steps for BatchNorm statistics at 0.9
        args.confirm_top_k, args.confirm_executions = 1, 2
    if args.select_epochs is None:
        args.select_epochs = args.epochs
    args.ra_grid = [(int(n), float(m)) for n, m in (item.split(":") for item in args.ra_grid.split(","))]
    args.scales = [float(s) for s in args.scales.split(",")]
    args.methods = [] if args.methods.strip() == "none" else [m.strip() for m in args.methods.split(",")]
    return args


# ----------------------------------------------------------------------------- data
def load(data: str):
    from keras_augtune.data import stratified_split
    from keras_augtune.loaders import load_digits, load_image_folder

    if data.startswith("medmnist:"):  # official train + val as the training images; its test split as test
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from medmnist_data import load_for_end_to_end

        return load_for_end_to_end(data.split(":", 1)[1])
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
# Final models use NumPy augmentation in a keras.utils.PyDataset (no tf.data), so the same protocol
# runs on any Keras backend: TensorFlow on this CPU, or JAX/PyTorch on a GPU machine without TensorFlow.
def crop_flip(flip: bool, pad: int = 4):
    """The classic CIFAR recipe on a uint8 batch: 4-px reflect-pad, a random crop back to size,
    then (optionally) a horizontal flip with probability 0.5, one draw per image."""

    def fn(images, rng):
        n, height, width = images.shape[:3]
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        rows = rng.integers(0, 2 * pad + 1, (n, 1)) + np.arange(height)  # one offset per image and axis
        cols = rng.integers(0, 2 * pad + 1, (n, 1)) + np.arange(width)
        crops = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        if flip:
            mirror = rng.random(n) < 0.5
            crops[mirror] = crops[mirror, :, ::-1]
        return crops

    return fn


def policy_step(policy):
    """A batch augmentation step applying ``policy`` (imgaug), seeded from the run's generator."""

    def fn(images, rng):
        return policy.augment(images, seed=int(rng.integers(2**31)))

    return fn


def schedule(args, steps_per_epoch: int, epochs: int):
    """Linear warm-up to ``args.lr`` over ``args.warmup_epochs``, then cosine decay to 0."""
    import keras

    warmup = min(args.warmup_epochs, epochs - 1) * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=max(1, epochs * steps_per_epoch - warmup), alpha=0.0,
        warmup_target=args.lr, warmup_steps=warmup)


def batches(x, y, steps, seed, batch_size=64):
    """Shuffled batches of ``x``, augmented on the fly by ``steps`` (functions of (images, rng)),
    scaled to [0, 1]: a ``keras.utils.PyDataset``, reshuffled every epoch, reproducible per seed."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            # Each step draws from a stream of its own (seed, step number), never from the shuffle's:
            # adding a step (even one that changes nothing) leaves the batch order and every other
            # step's draws as they were, so configurations on one seed stay paired.
            self.step_rngs = [np.random.default_rng([seed, number]) for number in range(1, len(steps) + 1)]
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, index):
            chosen = self.order[index * batch_size:(index + 1) * batch_size]
            images = x[chosen]
            for step, rng in zip(steps, self.step_rngs):
                images = step(images, rng)
            return images.astype("float32") / 255.0, y[chosen]

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Batches()


def train_final(x, y, xt, yt, steps, seed, args, num_classes, epochs):
    """Train the final CNN from scratch with the augmentation ``steps``; return (test error, parameters)."""
    import keras

    from keras_augtune.models import simple_cnn

    keras.utils.set_random_seed(seed)
    model = simple_cnn(x.shape[1:], num_classes, width=args.final_width, bn_momentum=args.final_bn_momentum)
    optimizer = keras.optimizers.SGD(schedule(args, math.ceil(len(x) / 64), epochs), momentum=0.9,
                                     nesterov=True, weight_decay=args.weight_decay)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(batches(x, y, steps, seed), epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(xt.astype("float32") / 255.0, yt, batch_size=500, verbose=0)
    params = model.count_params()
    keras.backend.clear_session()
    return 1.0 - float(accuracy), params


class Job(NamedTuple):
    """One model to train: its table label (or validation candidate), the policy on top of
    crop(+flip) (None: crop(+flip) alone), whether crop(+flip) is used, training and evaluation
    indices ("test" evaluates on the test images), the seed and the epochs."""

    label: str
    policy: dict | None
    crop: bool
    train: np.ndarray
    evaluate: np.ndarray | str
    seed: int
    epochs: int


_DATA: dict = {}


def _init_worker(args, arrays, pool=False):
    """Process-pool initializer: the arrays and options every job of this run shares."""
    _DATA.update(arrays, args=args)
    if pool:  # many workers on one machine: OpenCV's own per-process thread pool (imgaug's ops) would
        # oversubscribe the cores (seen: load average up to 233 on 16 cores with 20 workers)
        import cv2

        cv2.setNumThreads(1)


def run_job(job: Job):
    """Train one model (in this process or a pool worker); return (error, parameters, seconds)."""
    from keras_augtune import Policy

    args, x, y = _DATA["args"], _DATA["x"], _DATA["y"]
    steps = []
    if job.crop:
        steps.append(crop_flip(_DATA["flip"]))
    if job.policy is not None:
        steps.append(policy_step(Policy.from_dict(job.policy)))
    if isinstance(job.evaluate, str):
        xe, ye = _DATA["x_test"], _DATA["y_test"]
    else:
        xe, ye = x[job.evaluate], y[job.evaluate]
    start = time.time()
    error, params = train_final(x[job.train], y[job.train], xe, ye, steps, job.seed, args,
                                _DATA["num_classes"], job.epochs)
    return error, params, time.time() - start


class _InProcess:
    """The executor for --workers 1: runs each job when submitted (a finished Future)."""

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # reported by future.result(), as a pool's would be
            future.set_exception(exc)
        return future

    def shutdown(self):
        pass


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
        confirm_top_k=args.confirm_top_k, confirm_executions=args.confirm_executions, base=args.base,
    )
    trainings = []  # every child training the search and its race ran (the search's cost)
    fit = tuner.hypermodel.fit

    def counted(*a, **k):
        trainings.append(1)
        return fit(*a, **k)

    tuner.hypermodel.fit = counted
    start, load_before = time.time(), os.getloadavg()[0]
    tuner.search(x, y, validation_data=(xv, yv))
    wall = time.time() - start
    best = tuner.get_best_policies(1)[0]
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    outcome = tuner.results()
    verdict = outcome.verdict()
    return {"method": method, "seed": seed, "wall_s": wall, "trials": len(tuner.oracle.trials),
            "completed": len(completed), "best_reward": best.metadata["reward"], "reused": args.reuse_searches,
            "baseline_reward": tuner.baseline_reward(), "best_policy": best.to_dict(),
            "rewards": [t.score for t in sorted(completed, key=lambda t: t.trial_id)],
            "trainings": len(trainings), "loads": [load_before, os.getloadavg()[0]],  # 1-min load before, after
            # what the race recommends (None: no augmentation) and why; kind searched / recipe / baseline
            "verdict": {"kind": verdict.kind, "name": verdict.name, "text": verdict.text},
            "recommended": None if verdict.kind == "baseline" else _bare(verdict.recommended.to_dict()),
            # every completed trial's policy and child reward (its own execution): proxy fidelity's input
            "trial_policies": [{"trial_id": t.trial_id, "reward": t.score, "policy": _bare(t.policy.to_dict())}
                               for t in outcome.completed if t.policy is not None and t.score is not None]}


def _bare(policy: dict) -> dict:
    """A policy's JSON without its metadata (results and names): what the augmentation does."""
    return {k: v for k, v in policy.items() if k != "metadata"}


# ----------------------------------------------------------------------------- statistics
def interval(values):
    """Mean and 95 % half-width (Student t) of a list of numbers (half-width NaN for one value)."""
    from keras_augtune.evaluation.verdict import mean_interval

    mean, half = mean_interval(values)
    return mean, float("nan") if half is None else half


def paired(errors, reference):
    """The per-seed differences ``errors - reference`` (both {seed: error}) over the seeds both
    have: mean, half-width, number of pairs."""
    seeds = sorted(set(errors) & set(reference))
    if not seeds:
        return float("nan"), float("nan"), 0
    mean, half = interval([errors[s] - reference[s] for s in seeds])
    return mean, half, len(seeds)


# ----------------------------------------------------------------------------- main
def device_name() -> str:
    """The Keras backend and the device it trains on, e.g. 'jax 0.11.2 on NVIDIA H200'."""
    import keras

    backend = keras.backend.backend()
    module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, "numpy"))
    device = "CPU"
    if backend == "jax":
        device = module.devices()[0].device_kind
    elif backend == "torch" and module.cuda.is_available():
        device = module.cuda.get_device_name()
    elif backend == "tensorflow" and module.config.list_physical_devices("GPU"):
        device = "GPU"
    return f"keras {keras.__version__}, {backend} {module.__version__} on {device}"


def main(argv=None):
    args = parse_args(argv)
    from keras_augtune import Policy
    from keras_augtune.data import stratified_split

    name, x_all, y_all, x_test, y_test, is_photo = load(args.data)
    num_classes = int(y_all.max()) + 1
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"end_to_end_{name}{args.tag}")
    run_dir = os.path.join(args.out, f"e2e_{name}{args.tag}")
    command = sys.argv if argv is None else ["benchmarks/end_to_end.py", *argv]  # main(argv): from a test
    run = {"command": "python " + " ".join(command), "workers": args.workers,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
           "loads": [os.getloadavg()[0]]}
    results = {"data": name, "args": vars(args), "runs": [], "searches": [], "selection": {}, "finals": {},
               "final_seeds": {}, "final_seconds": {}}
    if args.resume and os.path.exists(path + ".json"):
        with open(path + ".json") as f:
            results.update(json.load(f))
        results["args"] = vars(args)
        print(f"resuming {path}.json: {sum(map(len, results['finals'].values()))} final models kept", flush=True)
    results["runs"].append(run)
    done = {label: dict(zip(seeds, errors)) for label, seeds, errors in
            ((k, results["final_seeds"][k], v) for k, v in results["finals"].items())}
    for other in args.merge:  # final models trained by other runs (e.g. on another machine)
        extra = _read_results(other, ("finals", "final_seeds", "final_seconds", "runs"))
        added = [text for text in extra["finals"] if text not in done]
        for text in added:
            done[text] = dict(zip(extra["final_seeds"][text], extra["finals"][text]))
            results["final_seconds"][text] = extra["final_seconds"][text]
        seen = {(r["command"], r["machine"]) for r in results["runs"]}  # merging twice lists a run once
        results["runs"] += [dict(r, merged_from=other, merged=added) for r in extra["runs"]
                            if (r["command"], r["machine"]) not in seen]
        print(f"merged from {other}: {', '.join(added) or 'nothing'} "
              f"(kept this table's {', '.join(t for t in extra['finals'] if t not in added) or 'nothing'})", flush=True)
    print(f"data {name}: {len(y_all)} train / {len(y_test)} test images, {num_classes} classes", flush=True)

    # ---- searches: run here, taken from an earlier run's JSON (--searches), or kept (--resume)
    if args.searches:  # its first --search-seeds searches of each method
        searches = _read_results(args.searches, ("searches",))["searches"]
        results["searches"] = [r for r in searches if r["seed"] < args.search_seeds]
    else:
        for s in range(args.search_seeds if args.methods else 0):
            keep, val = stratified_split(y_all, args.validation_size, 1000 + s)
            tr = keep[subsample(y_all[keep], args.search_train_size, 2000 + s)]
            for method in args.methods:
                if any(r["method"] == method and r["seed"] == s for r in results["searches"]):
                    continue  # --resume: finished in an earlier run
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
                run["loads"].append(os.getloadavg()[0])
                _write(results, args, path)  # a search-only run (--seeds 0) keeps every finished search
    best_policies: dict = {}  # method -> [(search seed, best policy)] in search-seed order
    for r in sorted(results["searches"], key=lambda r: r["seed"]):
        best_policies.setdefault(r["method"], []).append((r["seed"], Policy.from_dict(r["best_policy"])))

    base = "crop+flip" if is_photo else "crop"  # on digits no flip: a flipped digit is another digit
    label = {key: f"{base} + {text}" for key, text in (
        ("ta", TA), ("ra", "RandAugment"), ("searched", "searched policy"),
        ("random", "random-search best"), ("scaled", "searched policy, scale picked on validation"),
        ("hyperband", "hyperband-search best"), ("race", "race's pick"),
        ("random-race", "random search's race pick"))}
    label["none"], label["cf"] = "no augmentation", base
    wanted = set(CONFIGS) if args.configs == "all" else {c.strip() for c in args.configs.split(",")}
    if wanted - set(CONFIGS):
        raise SystemExit(f"--configs takes keys from {', '.join(CONFIGS)}; got {', '.join(sorted(wanted - set(CONFIGS)))}")

    # ---- what to train: {label: policy or None}, and the validation candidates behind the picks
    configs = {}
    for key, policy in (("none", None), ("cf", None), ("ta", Policy.trivial_augment())):
        if key in wanted:
            configs[label[key]] = policy
    method_of = {"searched": "bayesian", "random": "random", "hyperband": "hyperband"}
    for key, method in method_of.items():
        found = best_policies.get(method, [])
        for seed, policy in found if key in wanted else ():
            configs[label[key] + (f" (search {seed})" if len(found) > 1 else "")] = policy
    rotating = {}  # label -> [the race's recommendation (bare policy dict, None: nothing beyond the base) per search]
    for key, method in (("race", "bayesian"), ("random-race", "random")):
        found = [r for r in sorted(results["searches"], key=lambda r: r["seed"]) if r["method"] == method]
        if key in wanted and found:
            if any("recommended" not in r for r in found):
                raise SystemExit(f"the {method} searches in this file predate the race: run them again")
            rotating[label[key]] = [r["recommended"] for r in found]
    candidates = {}  # kind -> {candidate: policy}; each pick's winner becomes one more configuration
    if "ra" in wanted:
        candidates["RandAugment"] = {f"N={n}, M={m:g}": Policy.rand_augment(n, m) for n, m in args.ra_grid}
    if "scaled" in wanted and "bayesian" in best_policies:
        searched = best_policies["bayesian"][0][1]  # the first search's policy
        candidates["scale"] = {f"{s:g}": searched.scaled(s) for s in args.scales}

    def picked_label(kind, chosen):
        if kind == "RandAugment":
            return f"{base} + RandAugment({chosen})"
        return f"{base} + searched policy × {chosen} (scale picked on validation)"

    keep, val = stratified_split(y_all, args.validation_size, 1000)
    sel = keep[subsample(y_all[keep], args.final_train_size, 5000)]
    final_train = {k: subsample(y_all, args.final_train_size, 3000 + k) for k in range(args.seeds)}

    def final_jobs(text, policy):
        return [Job(text, None if policy is None else policy.to_dict(), text != label["none"], final_train[k],
                    "test", 4000 + k, args.epochs) for k in range(args.seeds) if k not in done.get(text, {})]

    # A race row's model on seed k is the very configuration of another row when the race picked
    # nothing beyond the base or a recipe that row trains: it is that row's model (same seed, same
    # streams), taken from it instead of trained twice. results["aliases"] says which.
    results["aliases"] = aliases = {}
    same_as = {label["cf"]: None, label["ta"]: _bare(Policy.trivial_augment().to_dict())}
    same_as = {text: p for text, p in same_as.items() if text in configs}

    def rotating_jobs(text):
        jobs = []
        for k in range(args.seeds):
            policy = rotating[text][k % len(rotating[text])]
            twin = next((other for other, p in same_as.items() if p == policy), None)
            if twin is not None:
                aliases.setdefault(text, {})[str(k)] = twin
            elif k not in done.get(text, {}):
                jobs.append(Job(text, policy, True, final_train[k], "test", 4000 + k, args.epochs))
        return jobs

    proxy = results.setdefault("proxy", {"seed": 0, "policies": {}}) if args.proxy else None
    if proxy is not None:  # policies of the first search spread over its reward ranks
        first = next((r for r in sorted(results["searches"], key=lambda r: r["seed"]) if r["method"] == "bayesian"), None)
        if first is None:
            raise SystemExit("--proxy needs a bayesian search (its trials' policies and rewards)")
        ranked, seen = [], set()
        for t in sorted(first["trial_policies"], key=lambda t: t["reward"]):
            key = json.dumps(t["policy"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                ranked.append(t)
        step = max(1, len(ranked) - 1) / max(1, args.proxy - 1)
        chosen = sorted({round(i * step) for i in range(min(args.proxy, len(ranked)))})
        for t in (ranked[i] for i in chosen):
            proxy["policies"].setdefault(t["trial_id"], {"reward": t["reward"], "policy": t["policy"], "test_error": None})

    def choose(kind):
        """All of ``kind``'s candidates scored: pick the lowest validation error (a tie goes to the
        first listed); its configuration joins the table. Returns its final models to train."""
        pick = results["selection"][kind]
        pick["picked"] = min(candidates[kind], key=pick["validation_error"].get)
        text = picked_label(kind, pick["picked"])
        configs[text] = candidates[kind][pick["picked"]]
        return final_jobs(text, configs[text])

    queue = []
    for kind, options in candidates.items():
        if len(options) == 1:
            configs[picked_label(kind, next(iter(options)))] = next(iter(options.values()))
            continue
        kept = (results["selection"].get(kind) or {}).get("validation_error", {})  # --resume: scored earlier
        results["selection"][kind] = {"validation_error": {k: v for k, v in kept.items() if k in options},
                                      "picked": None, "train_images": len(sel), "validation_images": len(val),
                                      "epochs": args.select_epochs}
        missing = [key for key in options if key not in results["selection"][kind]["validation_error"]]
        queue += [Job(f"{kind}:{key}", options[key].to_dict(), True, sel, val, 6000, args.select_epochs)
                  for key in missing]
        if not missing:
            choose(kind)  # its final models join the seed-major queue below
    for k in range(args.seeds):  # seed-major, so that a partial table is paired
        queue += [job for text, policy in configs.items() for job in final_jobs(text, policy) if job.seed == 4000 + k]
        queue += [job for text in rotating for job in rotating_jobs(text) if job.seed == 4000 + k]
    if proxy is not None:
        queue += [Job(f"proxy:{trial_id}", entry["policy"], True, final_train[0], "test", 4000, args.epochs)
                  for trial_id, entry in proxy["policies"].items() if entry["test_error"] is None]
    results["reference"] = label["ta"]
    results["labels"] = {"searched": label["searched"], "random": label["random"], "race": label["race"],
                         "random-race": label["random-race"], "none": label["none"], "base": label["cf"],
                         "ta": label["ta"], "ra_prefix": f"{base} + RandAugment("}
    results.setdefault("policies", {})

    def record_policies():
        results["policies"].update({text: p.to_dict() for text, p in configs.items() if p is not None and text != label["ta"]})

    record_policies()

    # ---- train: picks first, then every configuration on the same seeds (paired)
    arrays = {"x": x_all, "y": y_all, "x_test": x_test, "y_test": y_test, "flip": is_photo, "num_classes": num_classes}
    if args.workers > 1:
        import multiprocessing

        executor = concurrent.futures.ProcessPoolExecutor(
            args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(args, arrays, True))
        run["device"] = executor.submit(device_name).result()
    else:
        _init_worker(args, arrays)
        executor = _InProcess()
        run["device"] = device_name()
    print(f"training on {run['device']} with {args.workers} worker(s): {len(queue)} models", flush=True)
    running = {}
    while queue or running:
        while queue and len(running) < max(1, args.workers):
            job = queue.pop(0)
            running[executor.submit(run_job, job)] = job
        finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
            job = running.pop(future)
            try:
                error, params, seconds = future.result()
            except Exception as exc:  # one failed model must not cost the table
                results.setdefault("failed_models", []).append(
                    {"label": job.label, "seed": job.seed, "error": f"{type(exc).__name__}: {exc}"})
                print(f"   FAILED {job.label} seed {job.seed}: {type(exc).__name__}: {exc}", flush=True)
                continue
            kind, _, key = job.label.partition(":")
            if kind == "proxy":  # a proxy-fidelity model (final protocol, final seed 0)
                proxy["policies"][key]["test_error"] = error
                proxy["policies"][key]["seconds"] = seconds
                print(f"   proxy {key}: child reward {proxy['policies'][key]['reward']:.4f}, test error {error:.4f}",
                      flush=True)
            elif isinstance(job.evaluate, str):  # a final model
                k = job.seed - 4000
                done.setdefault(job.label, {})[k] = error
                results["final_seconds"].setdefault(job.label, {})[str(k)] = seconds
                results["final_params"], results["final_train_images"] = params, len(job.train)
                print(f"   seed {k} {job.label:60s} test error {error:.4f}  ({seconds:.0f}s)", flush=True)
            else:  # a validation candidate
                pick = results["selection"][kind]
                pick["validation_error"][key] = error
                print(f"   validation {kind} {key}: error {error:.4f} ({seconds:.0f}s)", flush=True)
                if len(pick["validation_error"]) == len(candidates[kind]):
                    queue += choose(kind)
                    record_policies()
            run["loads"].append(os.getloadavg()[0])
            _write(results, args, path, done)
    executor.shutdown()
    print("\n".join(_write(results, args, path, done)), flush=True)


def _read_results(path, keys):
    """An earlier run's end_to_end_*.json, refused in one line when it is not one (or lacks ``keys``)."""
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot read {path}: {error}") from None
    missing = [key for key in keys if not isinstance(results, dict) or key not in results]
    if missing:
        raise SystemExit(f"{path} is not an end_to_end results file written by this script "
                         f"(no {', '.join(missing)})")
    return results


def _write(results, args, path, done=None):
    """Write <path>.json (everything) and <path>.md (the tables); ``done`` is {label: {seed: error}}."""
    if done is not None:
        for text, twins in results.get("aliases", {}).items():  # a race row's models that are another row's
            for k, twin in twins.items():
                if int(k) in done.get(twin, {}):
                    done.setdefault(text, {})[int(k)] = done[twin][int(k)]
        results["finals"] = {text: [errs[k] for k in sorted(errs)] for text, errs in done.items()}
        results["final_seeds"] = {text: sorted(errs) for text, errs in done.items()}
    finals = {text: dict(zip(results["final_seeds"][text], errors)) for text, errors in results["finals"].items()}
    payoff = _payoff(finals, results) if "labels" in results else []
    fidelity = _proxy_fidelity(results) + _costs(results)
    with open(path + ".json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    base = finals.get("no augmentation")
    reference = finals.get(results.get("reference"))
    lines = []
    for run in results["runs"]:
        loads = run["loads"]
        merged = f" (a run of {run['merged_from']}, from which this table took: {', '.join(run['merged']) or 'nothing'})" \
            if "merged_from" in run else ""
        lines.append(f"Run: `{run['command']}` — {run['machine']}; {run.get('device', 'no model trained')}; "
                     f"{run['workers']} worker(s); load average {min(loads):.1f}–{max(loads):.1f}{merged}")
    lines += [f"Data: {results['data']}.",
              f"Final protocol: simple_cnn width {args.final_width}, {results.get('final_train_images', '?')} "
              f"training images, SGD-Nesterov {args.lr} (momentum 0.9, weight decay {args.weight_decay}), "
              f"{args.warmup_epochs} warm-up epochs + cosine to 0, {args.epochs} epochs, batch 64, last epoch.", "",
              "| final-model augmentation | test error (mean ± 95% CI) | seeds | per seed | vs no augmentation | "
              f"paired difference vs {results.get('reference')} (mean ± 95% CI) |",
              "|---|---|---|---|---|---|"]
    base_mean = interval(list(base.values()))[0] if base else None
    for text, errors in finals.items():
        mean, half = interval(list(errors.values()))
        rel = "" if not base_mean else f"{(mean - base_mean) / base_mean:+.1%}"
        diff = ""
        if reference and text != results.get("reference"):
            d_mean, d_half, n = paired(errors, reference)
            diff = f"{d_mean * 100:+.2f} ± {d_half * 100:.2f} points ({n} pairs)"
        per_seed = ", ".join(f"{e:.1%}" for e in errors.values())
        lines.append(f"| {text} | {mean:.1%} ± {half:.1%} | {len(errors)} | {per_seed} | {rel} | {diff} |")
    lines += _pooled(finals, results["labels"], results.get("reference")) if "labels" in results else []
    lines += payoff + fidelity
    for kind, sel in results["selection"].items():
        shown = ", ".join(f"{k}: {v:.1%}" for k, v in sel["validation_error"].items())
        lines.append(f"\nValidation pick of {kind} ({sel['train_images']} train / {sel['validation_images']} "
                     f"validation images, {sel['epochs']} epochs, one seed): {shown} → **{sel['picked']}**")
    if results["searches"] or results.get("failed_searches"):
        lines += ["", "| search | trials | trainings (trials + race) | wall time | best reward | baseline reward | "
                  "the race's verdict |", "|---|---|---|---|---|---|---|"]
    for r in results["searches"]:
        wall = "reloaded (run earlier)" if r.get("reused") else f"{r['wall_s'] / 60:.1f} min"
        verdict = r["verdict"]["text"] if "verdict" in r else "–"
        lines.append(f"| {r['method']} (seed {r['seed']}) | {r['completed']} | {r.get('trainings', '–')} | {wall} | "
                     f"{r['best_reward']:.4f} | {r['baseline_reward']:.4f} | {verdict} |")
    for failed in results.get("failed_searches", []):
        lines.append(f"| {failed['method']} (seed {failed['seed']}) | FAILED: {failed['error']} | | | |")
    for failed in results.get("failed_models", []):
        lines.append(f"\nFAILED model: {failed['label']} (seed {failed['seed']}): {failed['error']}")
    seconds = [t for ts in results["final_seconds"].values() for t in ts.values()]
    if seconds:
        lines.append(f"\nFinal models: {len(seconds)}, {np.mean(seconds):.0f} s each on average "
                     f"({sum(seconds) / 60:.0f} min of training in all).")
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


#: issue 22's targets, in error points: the race's pick against the best of {none, base, + TA, + RA}
#: (upper end of the corrected paired interval at most this), and against + TA (upper end below 0)
NEVER_WORSE_POINTS = 0.3


def pick_versus_recipes(finals, pick: str, others: list[str], same: str | None = None) -> dict | None:
    """The row ``pick`` against each of ``others`` (final test errors, label -> seed -> error), paired
    over the final seeds, as one family of simultaneous 95 % intervals in error points (keras_augtune's
    own `contrasts`: Dunnett on the pooled two-way fit when the rows' noise is comparable, else
    Bonferroni on each pair), and issue 22's never-worse target against the best recipe row.
    ``same``: a recipe row whose models *are* the pick's on every seed (the race picked that row's
    recipe): the best row when its mean is lowest, and then the target is met, as no interval is
    needed to be never worse than oneself. None while fewer than 2 seeds are shared."""
    from keras_augtune.evaluation.verdict import contrasts

    errors = {text: {k: 100.0 * e for k, e in finals[text].items()} for text in [pick, *others]}  # in points
    comparisons = contrasts(errors, pick, others)  # gain = other − pick: positive when the pick is better
    rows = {c.name: {"difference": -c.gain, "interval": [-c.interval[1], -c.interval[0]] if c.interval else None,
                     "seeds": c.executions, "pooled": c.pooled} for c in comparisons}
    if any(r["interval"] is None for r in rows.values()):  # fewer than 2 seeds shared so far
        return None
    means = {text: float(np.mean(list(errors[text].values()))) for text in others}
    if same is not None:
        means[same] = float(np.mean(list(errors[pick].values())))
    best = min(means, key=means.get)
    return {
        "rows": rows, "best_recipe_row": best, "family": len(others),
        "smallest_resolved_points": max((r["interval"][1] - r["interval"][0]) / 2 for r in rows.values()),
        "never_worse_target_points": NEVER_WORSE_POINTS,
        "never_worse_met": best == same or rows[best]["interval"][1] <= NEVER_WORSE_POINTS,
    }


def _payoff(finals, results) -> list[str]:
    """The race's pick against every recipe row (`pick_versus_recipes`), whether it beats + TA,
    and what each search's race picked. Sets ``results["payoff"]``."""
    labels = results["labels"]
    race = labels.get("race")
    others = [labels[k] for k in ("none", "base", "ta") if labels.get(k) in finals]
    others += [t for t in finals if t.startswith(labels.get("ra_prefix", "\0"))]
    if race not in finals or len(finals[race]) < 2 or not others:
        return []
    twins = set(results.get("aliases", {}).get(race, {}).values())  # the rows the race's seeds are models of
    whole = len(twins) == 1 and len(results["aliases"][race]) == len(finals[race])  # every seed one row's model
    summary = pick_versus_recipes(finals, race, others, same=twins.pop() if whole else None)
    if summary is None:
        return []
    rows, best = summary["rows"], summary["best_recipe_row"]
    ta = rows.get(labels.get("ta"))
    summary = {
        "race_row": race, **summary,
        "better_than_ta_met": None if ta is None else ta["interval"][1] < 0,
        "picks": [{"search": r["seed"], "kind": r["verdict"]["kind"], "name": r["verdict"]["name"]}
                  for r in sorted(results["searches"], key=lambda r: r["seed"]) if r["method"] == "bayesian" and "verdict" in r],
    }
    results["payoff"] = summary
    lines = ["", f"The race's pick ({race}) against each recipe row, paired over the final seeds; 95 % intervals "
             f"simultaneous over these {len(others)} comparisons (negative: the race's pick has the lower error):", "",
             "| comparison | difference (points) | 95 % interval (corrected) | seeds |", "|---|---:|---:|---:|"]
    for text, row in rows.items():
        shown = "–" if row["interval"] is None else f"[{row['interval'][0]:+.2f}, {row['interval'][1]:+.2f}]"
        lines.append(f"| race's pick − {text} | {row['difference']:+.2f} | {shown} | {row['seeds']} |")
    lines.append(f"\nBest recipe row: {best}. Smallest difference this table resolves: ±"
                 f"{summary['smallest_resolved_points']:.2f} points. Picks of the races: "
                 + ", ".join(f"search {p['search']}: {p['name'] or 'nothing beyond the base'} ({p['kind']})"
                             for p in summary["picks"]) + ".")
    return lines


def _costs(results) -> list[str]:
    """What a search with its race cost against one final model (the base row's mean training time).
    Sets ``results["costs"]``."""
    searches = [r for r in results["searches"] if r["method"] == "bayesian" and not r.get("reused") and "trainings" in r]
    base = results.get("final_seconds", {}).get(results.get("labels", {}).get("base"), {})
    if not searches or not base:
        return []
    search_minutes = float(np.mean([r["wall_s"] for r in searches])) / 60.0
    final_minutes = float(np.mean(list(base.values()))) / 60.0
    results["costs"] = {"search_minutes": search_minutes, "searches": len(searches),
                        "trainings": float(np.mean([r["trainings"] for r in searches])),
                        "final_model_minutes": final_minutes, "ratio": search_minutes / final_minutes}
    return [f"\nCost: a search with its race took {search_minutes:.1f} min on average ({len(searches)} searches, "
            f"{results['costs']['trainings']:.0f} child trainings each) = {results['costs']['ratio']:.1f} × one final "
            f"model of the base row ({final_minutes:.1f} min)."]


def _proxy_fidelity(results) -> list[str]:
    """Spearman's rank correlation between the child's reward of the proxy policies and their final
    model's test accuracy, with a 95 % interval (Fisher's z with Fieller's variance 1.06 / (n − 3)).
    Sets ``results["proxy"]["spearman"]``."""
    proxy = results.get("proxy") or {}
    fitted = [(p["reward"], 1.0 - p["test_error"]) for p in proxy.get("policies", {}).values() if p["test_error"] is not None]
    if len(fitted) < 4:
        return []
    from scipy import stats

    rewards, accuracies = zip(*fitted)
    rho = float(stats.spearmanr(rewards, accuracies).statistic)
    half = 1.959964 * math.sqrt(1.06 / (len(fitted) - 3))
    z = math.atanh(max(-0.999999, min(0.999999, rho)))
    proxy["spearman"] = {"rho": rho, "interval": [math.tanh(z - half), math.tanh(z + half)], "policies": len(fitted)}
    errors = [100.0 * (1.0 - a) for a in accuracies]
    return [f"\nProxy fidelity: {len(fitted)} of the first search's policies, each trained with the final protocol "
            f"(final seed 0): Spearman ρ between the child's reward and the final test accuracy "
            f"{rho:+.2f} [{proxy['spearman']['interval'][0]:+.2f}, {proxy['spearman']['interval'][1]:+.2f}]; "
            f"their test errors span {min(errors):.1f}–{max(errors):.1f} %."]


def _pooled(finals, labels, reference_label):
    """The searched policy against random search's best, paired over search seeds and final seeds;
    with several search seeds also the mean over searches against the reference, paired over final
    seeds: the expected result of running a search, not of one lucky search."""
    def per_search(name):  # {search seed: {final seed: error}}; one search has no "(search s)" suffix
        return {text[len(name):].removeprefix(" (search ").removesuffix(")") or "0": errors for text, errors in finals.items()
                if text == name or text.startswith(name + " (search ")}

    searched, random = per_search(labels["searched"]), per_search(labels["random"])
    lines = []
    pairs = [searched[s][k] - random[s][k] for s in searched if s in random for k in searched[s] if k in random[s]]
    if pairs:
        mean, half = interval(pairs)
        lines.append(f"\nSearched policy − random-search best, paired over {len(set(searched) & set(random))} "
                     f"search(es) × final seeds ({len(pairs)} pairs): {mean * 100:+.2f} ± {half * 100:.2f} points.")
    reference = finals.get(reference_label)
    seeds = [k for k in reference or {} if len(searched) > 1 and all(k in errors for errors in searched.values())]
    if seeds:
        mean_over = {k: float(np.mean([errors[k] for errors in searched.values()])) for k in seeds}
        d_mean, d_half, n = paired(mean_over, reference)
        m, h = interval(list(mean_over.values()))
        lines.append(f"Searched policy, mean over the {len(searched)} searches: {m:.1%} ± {h:.1%}; "
                     f"paired difference vs {reference_label}: {d_mean * 100:+.2f} ± {d_half * 100:.2f} points "
                     f"({n} final seeds).")
    return lines


if __name__ == "__main__":
    main()
