"""Throughput of the ways to apply a keras_augtune Policy (issue 2, item 6).

Measures images/second for one fixed 5-sub-policy, 2-op policy on 32x32 uint8
images in batches of 128:

* ``imgaug raw``: ``policy.to_imgaug().augment_images(batch)``, one Python thread;
* ``policy.augment``: the NumPy path (validation + the same imgaug call);
* ``tf.data map``: ``ds.map(policy.tf_map(), num_parallel_calls=AUTOTUNE)`` over
  batched elements (each map call augments a whole batch of 128);
* ``tf.data map, 1 thread``: the same with
  ``tf.data.Options().threading.private_threadpool_size = 1``;
* ``keras.layers.RandAugment``: Keras's own layer (value_range (0, 255), its
  defaults num_ops=2, factor=0.5) in a ``tf.data`` map with AUTOTUNE, on float32;
* the ``PolicyAugmentation`` layer: called eagerly on a float32 batch, and inside
  ``model.fit`` of a tiny CNN, next to the same model fitted without the layer.

Each measurement runs in two child processes: one pinned to a single CPU with
``os.sched_setaffinity`` (what ``taskset -c 0`` does, applied before TensorFlow
starts so every thread inherits it), and one allowed on all CPUs. Within a child
all methods are measured in interleaved rounds after a warm-up, so ratios come
from the same run and the same machine load; the table reports the median of the
rounds.

Run from the repository root::

    .venv/bin/python benchmarks/throughput.py --data ../shared/data/cifar10-jpeg

Without ``--data`` (or if the folder is missing) random uint8 images are used;
the output says which. ``--markdown PATH`` also writes the table as Markdown.

``--engines`` measures the two engines instead (issue 25): images/second of the imgaug engine in
one process and in worker processes (one per CPU), and of the Keras engine on the CPU (its layer
call in a ``tf.function``) and on the GPU when one is visible ("not measured" otherwise), at batch
256, for 32x32 and 224x224 images, for the 5x2 policy below, TrivialAugment and RandAugment::

    .venv/bin/python benchmarks/throughput.py --engines

writes ``benchmarks/results/throughput_engines.json`` and ``.md`` (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH = 128
SIZE = 32

#: The fixed benchmark policy: 5 sub-policies x 2 ops, geometric and colour ops mixed.
POLICY_SPEC = [
    [("rotate", 0.7, 0.5), ("color", 0.5, 0.6)],
    [("shear-x", 0.6, 0.4), ("equalize", 0.5, 1.0)],
    [("translate-y", 0.6, 0.5), ("contrast", 0.7, 0.5)],
    [("horizontal-flip", 1.0, 0.5), ("solarize", 0.4, 0.4)],
    [("cutout", 0.8, 0.5), ("brightness", 0.6, 0.5)],
]

METHODS = [
    ("raw", "imgaug raw: to_imgaug().augment_images"),
    ("augment", "policy.augment (NumPy path)"),
    ("tfdata", "tf.data map, AUTOTUNE (batched elements)"),
    ("tfdata_1thread", "tf.data map, private_threadpool_size=1"),
    ("randaugment", "keras.layers.RandAugment in tf.data map, AUTOTUNE"),
    ("layer_eager", "PolicyAugmentation layer, eager call (float32)"),
    ("fit_layer", "model.fit, tiny CNN with PolicyAugmentation"),
    ("fit_plain", "model.fit, same CNN without augmentation"),
]


# ---------------------------------------------------------------------- data
def load_images(data: str | None, count: int) -> tuple["np.ndarray", str]:
    import numpy as np

    if data:
        root = Path(data) / "train"
        if not root.is_dir():
            root = Path(data)
        files = sorted(root.glob("*/*.jpg")) + sorted(root.glob("*/*.png"))
        if files:
            from PIL import Image

            rng = np.random.default_rng(0)
            picked = rng.choice(len(files), size=min(count, len(files)), replace=False)
            arrays = []
            for i in picked:
                with Image.open(files[i]) as im:
                    arrays.append(np.asarray(im.convert("RGB").resize((SIZE, SIZE))))
            x = np.stack(arrays).astype(np.uint8)
            while len(x) < count:
                x = np.concatenate([x, x])[:count]
            return x, f"{len(picked)} JPEGs from {data}"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, SIZE, SIZE, 3), dtype=np.uint8), "random uint8 noise"


# ---------------------------------------------------------------------- child: measure
def measure(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import numpy as np
    import tensorflow as tf
    import keras

    from keras_augtune import Policy, PolicyAugmentation

    policy = Policy(POLICY_SPEC)
    n_batches = max(2, args.images // BATCH)
    x, source = load_images(args.data, n_batches * BATCH)
    batches = x.reshape(n_batches, BATCH, SIZE, SIZE, 3)
    labels = np.random.default_rng(1).integers(0, 10, size=(n_batches, BATCH))
    methods = args.methods.split(",")

    def timed(fn, n_imgs):
        def run():
            t = time.perf_counter()
            fn()
            return n_imgs / (time.perf_counter() - t)
        return run

    runners = {}

    if "raw" in methods:
        raw_aug = policy.to_imgaug()
        raw_aug.seed_(0)

        def raw():
            for b in batches:
                raw_aug.augment_images(b)
        runners["raw"] = timed(raw, n_batches * BATCH)

    if "augment" in methods:
        def numpy_path():
            for b in batches:
                policy.augment(b)
        runners["augment"] = timed(numpy_path, n_batches * BATCH)

    def pipeline(map_fn, one_thread=False, cast=False):
        # A finite dataset and a fresh iterator per round: nothing runs ahead in the
        # background while other methods are timed (a repeated, prefetched pipeline would).
        ds = tf.data.Dataset.from_tensor_slices(batches)
        if cast:
            ds = ds.map(lambda b: tf.cast(b, tf.float32))
        ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        if one_thread:
            options = tf.data.Options()
            options.threading.private_threadpool_size = 1
            ds = ds.with_options(options)

        def run():
            for _ in ds:
                pass
        return timed(run, n_batches * BATCH)

    if "tfdata" in methods:
        runners["tfdata"] = pipeline(policy.tf_map(batched=True))
    if "tfdata_1thread" in methods:
        runners["tfdata_1thread"] = pipeline(policy.tf_map(batched=True), one_thread=True)
    if "randaugment" in methods:
        rand_augment = keras.layers.RandAugment(value_range=(0, 255))
        runners["randaugment"] = pipeline(lambda b: rand_augment(b, training=True), cast=True)

    if "layer_eager" in methods:
        layer = PolicyAugmentation(policy, value_range=(0, 255))
        float_batches = [tf.constant(b.astype(np.float32)) for b in batches]
        layer(float_batches[0], training=True)

        def eager():
            for b in float_batches:
                layer(b, training=True)
        runners["layer_eager"] = timed(eager, n_batches * BATCH)

    for name, with_layer in (("fit_layer", True), ("fit_plain", False)):
        if name not in methods:
            continue
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((SIZE, SIZE, 3))]
            + ([PolicyAugmentation(policy, value_range=(0, 255))] if with_layer else [])
            + [
                keras.layers.Rescaling(1 / 255.0),
                keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        ds = tf.data.Dataset.from_tensor_slices((batches.astype(np.float32), labels)).prefetch(tf.data.AUTOTUNE)
        class EpochTimer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.t)

        model.fit(ds.take(2), epochs=1, verbose=0)  # warm-up: traces the train step

        def fit_run(model=model, ds=ds, timer=EpochTimer()):
            model.fit(ds, epochs=1, verbose=0, callbacks=[timer])
            return n_batches * BATCH / timer.times[-1]
        runners[name] = fit_run

    # warm-up round, then interleaved timed rounds
    for name in methods:
        runners[name]()
    rounds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name in methods:
            rounds[name].append(runners[name]())
    return {
        "source": source,
        "cpus": sorted(os.sched_getaffinity(0)),
        "images_per_round": n_batches * BATCH,
        "rounds": rounds,
        "median": {k: statistics.median(v) for k, v in rounds.items()},
    }


# ---------------------------------------------------------------------- engines (issue 25)
ENGINE_BATCH = 256
ENGINE_SIZES = (32, 224)
ENGINE_POLICIES = ("5x2 policy", "TrivialAugment", "RandAugment")
_WORKER_CACHE: dict = {}


def engine_policy(name: str):
    from keras_augtune import Policy

    return {"5x2 policy": lambda: Policy(POLICY_SPEC), "TrivialAugment": Policy.trivial_augment,
            "RandAugment": Policy.rand_augment}[name]()


def _augment_in_worker(name: str, batch, seed: int):
    policy = _WORKER_CACHE.setdefault(name, engine_policy(name))  # one compiled policy per worker
    return policy.augment(batch, seed=seed)


def measure_engines(repeats: int) -> dict:
    """images/s per (policy, size, method): median of ``repeats`` rounds after a warm-up round."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import tensorflow as tf

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from engine_equivalence import sample_images

    workers = len(os.sched_getaffinity(0))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    gpu = bool(tf.config.list_physical_devices("GPU"))
    results = []
    for size in ENGINE_SIZES:
        n_batches = 8 if size <= 64 else 2
        batches = sample_images(ENGINE_BATCH * n_batches, size=size).reshape(n_batches, ENGINE_BATCH, size, size, 3)
        for name in ENGINE_POLICIES:
            policy = engine_policy(name)
            layer = policy.keras_layer(value_range=(0, 255), seed=0)
            with tf.device("/CPU:0"):
                float_batches = [tf.constant(b.astype("float32")) for b in batches]
            call = tf.function(lambda b: layer(b, training=True))

            def keras_cpu():
                with tf.device("/CPU:0"):
                    for b in float_batches:
                        call(b).numpy()

            runners = {
                "imgaug, 1 process": lambda: [policy.augment(b, seed=i) for i, b in enumerate(batches)],
                f"imgaug, {workers} worker processes": lambda: list(pool.map(
                    _augment_in_worker, [name] * n_batches, list(batches), range(n_batches))),
                "keras engine, CPU": keras_cpu,
            }
            rates: dict[str, list[float]] = {method: [] for method in runners}
            for round_ in range(repeats + 1):  # round 0 warms up (traces, compiles, starts the workers)
                for method, run in runners.items():
                    started = time.perf_counter()
                    run()
                    if round_:
                        rates[method].append(ENGINE_BATCH * n_batches / (time.perf_counter() - started))
            row = {"policy": name, "size": size, "batch": ENGINE_BATCH, "images_per_round": ENGINE_BATCH * n_batches,
                   "rounds": rates, "median": {m: statistics.median(v) for m, v in rates.items()},
                   "keras engine, GPU": "measured separately" if gpu else "not measured (no GPU here)"}
            print(json.dumps({k: row[k] for k in ("policy", "size", "median")}), file=sys.stderr, flush=True)
            results.append(row)
    pool.shutdown()
    return {"rows": results, "workers": workers, "gpu_visible": gpu}


def engines_main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    started = time.perf_counter()
    measured = measure_engines(args.repeats)
    load_after = os.getloadavg()
    measured.update(command="python benchmarks/throughput.py --engines" + (f" --repeats {args.repeats}"
                                                                           if args.repeats != 7 else ""),
                    machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                    load_average_before=[round(v, 2) for v in load_before],
                    load_average_after=[round(v, 2) for v in load_after],
                    seconds=round(time.perf_counter() - started), images="crops of scikit-learn's two sample photos")
    out = Path(__file__).resolve().parent / "results" / "throughput_engines"
    out.with_suffix(".json").write_text(json.dumps(measured, indent=1) + "\n", encoding="utf-8")
    methods = list(measured["rows"][0]["median"])
    lines = [f"| policy | size | {' | '.join(methods)} | keras engine, GPU | keras / imgaug 1 process |",
             "|---|---|" + "---:|" * (len(methods) + 2)]
    for row in measured["rows"]:
        med = row["median"]
        ratio = med["keras engine, CPU"] / med["imgaug, 1 process"]
        lines.append(f"| {row['policy']} | {row['size']}x{row['size']} | "
                     + " | ".join(f"{med[m]:,.0f}" for m in methods)
                     + f" | {row['keras engine, GPU']} | {ratio:.2f}x ({'met' if ratio >= 1 else 'not met'}) |")
    lines += ["", f"images/s, batch {ENGINE_BATCH}, median of {args.repeats} rounds; {measured['machine']}; "
              f"load average (1/5/15 min) before {measured['load_average_before']}, after "
              f"{measured['load_average_after']}; took {measured['seconds']} s. Command: `{measured['command']}`."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


# ---------------------------------------------------------------------- parent: orchestrate
def run_child(args: argparse.Namespace, cpus: set[int], methods: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--methods", ",".join(methods),
           "--images", str(args.images), "--repeats", str(args.repeats)]
    if args.data:
        cmd += ["--data", args.data]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"benchmark child on CPUs {sorted(cpus)} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="image folder (e.g. ../shared/data/cifar10-jpeg)")
    parser.add_argument("--images", type=int, default=4096, help="images per timed round (default 4096)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is reported")
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown to this path")
    parser.add_argument("--engines", action="store_true", help="measure the imgaug and Keras engines (issue 25)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--methods", default=",".join(m for m, _ in METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args)))
        return
    if args.engines:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        return engines_main(args)

    all_cpus = sorted(os.sched_getaffinity(0))
    load_before = loadavg()
    started = time.perf_counter()
    one = run_child(args, {all_cpus[0]}, ["raw", "augment", "tfdata", "randaugment"])
    every = run_child(args, set(all_cpus), [m for m, _ in METHODS])
    elapsed = time.perf_counter() - started
    load_after = loadavg()

    labels = dict(METHODS)
    med1, med2 = one["median"], every["median"]
    lines = [
        f"Policy (5 sub-policies x 2 ops, (op, probability, magnitude)): {json.dumps(POLICY_SPEC)}",
        f"Images: {every['source']}; {SIZE}x{SIZE} uint8 RGB, batch {BATCH}; "
        f"{every['images_per_round']} images per round, median of {args.repeats} interleaved rounds "
        f"after a warm-up round.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'n/a'}), "
        f"Python {platform.python_version()}; load average (1/5/15 min) before {load_before}, "
        f"after {load_after}; took {elapsed:.0f} s.",
        "",
        f"| method | 1 core (pinned to CPU {one['cpus'][0]}) img/s | {len(all_cpus)} cores img/s |",
        "|---|---:|---:|",
    ]
    for key, label in METHODS:
        a = f"{med1[key]:,.0f}" if key in med1 else "-"
        b = f"{med2[key]:,.0f}" if key in med2 else "-"
        lines.append(f"| {label} | {a} | {b} |")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    r1 = med1["tfdata"] / med1["raw"]
    r2 = med2["tfdata"] / med2["raw"]
    r2x1 = med2["tfdata"] / med1["raw"]
    r3 = med2["tfdata"] / med2["randaugment"]
    r3_1 = med1["tfdata"] / med1["randaugment"]
    lines += [
        "",
        "Targets (ratios of medians measured in this run):",
        f"- tf.data >= 0.9x raw imgaug, one core: {r1:.2f}x -> {verdict(r1 >= 0.9)}",
        f"- tf.data on {len(all_cpus)} cores faster than raw imgaug: {r2:.2f}x the raw call in the same "
        f"process ({r2x1:.2f}x the pinned single-core raw call) -> {verdict(r2 > 1.0)}",
        f"- tf.data >= 4x keras.layers.RandAugment: {r3:.1f}x on {len(all_cpus)} cores, {r3_1:.1f}x on one core "
        f"-> {verdict(r3 >= 4.0 and r3_1 >= 4.0)}",
    ]
    if "fit_layer" in med2 and "fit_plain" in med2:
        extra = 1 / med2["fit_layer"] - 1 / med2["fit_plain"]
        lines.append(
            f"- model.fit with the layer: {med2['fit_layer']:,.0f} img/s vs {med2['fit_plain']:,.0f} without; "
            f"the layer adds {1e6 * extra:.0f} us per image (equivalent to {1 / extra:,.0f} img/s of augmentation "
            "running in series with training)." if extra > 0 else
            f"- model.fit with the layer: {med2['fit_layer']:,.0f} img/s vs {med2['fit_plain']:,.0f} without."
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        raw_rounds = {"1 core": one["rounds"], f"{len(all_cpus)} cores": every["rounds"]}
        Path(args.markdown).write_text(
            text + "\n\nAll rounds (img/s):\n\n```json\n" + json.dumps(raw_rounds, indent=1) + "\n```\n",
            encoding="utf-8")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's keras_augtune
    main()
