"""Soak test (issue 6, item 5): a long random-policy run, with memory measured along the way.

Two phases in one process:

1. **tf.data augmentation**: ``--batches`` batches (default 3,000 of 32 images, 16x16
   grayscale digits) through ``ds.map(policy.tf_map(), num_parallel_calls=AUTOTUNE)``,
   a fresh random 5x2 policy (all ops) every ``--batches-per-policy`` batches, as a
   search creates one policy per trial.
2. **Oracle**: ``--trials`` tiny trials (default 300) through :class:`RandomForestOracle`
   on the default 5x2 policy space (30 hyperparameters), driven directly
   (``create_trial`` / ``update_trial`` / ``end_trial``, state saved to disk after each
   trial as in a real search) with a cheap synthetic objective; one trial in 20 fails.

Memory is the resident set size (``VmRSS`` from ``/proc/self/status``), read at start
(after imports), after a warm-up (the first 10 % of each phase, which fills caches
and the allocator's pools), and at the end; RSS is also sampled throughout. The run
PASSES when the growth from the end of the warm-up to the end is at most ``--bound-mib``
(default 64 MiB) in each phase. Exit status 0 on PASS, 1 on FAIL.

Run from the repository root (a few minutes on 2 cores)::

    .venv/bin/python benchmarks/soak.py [--batches 3000] [--trials 300] [--markdown benchmarks/results/soak.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class Meter:
    def __init__(self):
        self.samples: list[tuple[str, float, float]] = []  # (phase, seconds, MiB)
        self.t0 = time.monotonic()

    def sample(self, phase: str) -> float:
        value = rss_mib()
        self.samples.append((phase, time.monotonic() - self.t0, value))
        return value


def random_policy(rng, ops):
    from keras_augtune import Policy

    return Policy([[(str(rng.choice(ops)), float(rng.uniform(0.1, 1.0)), float(rng.uniform(0, 1)))
                    for _ in range(2)] for _ in range(5)])


def augmentation_phase(args, meter: Meter) -> dict:
    import numpy as np
    import tensorflow as tf

    from keras_augtune import OP_NAMES
    from keras_augtune.loaders import load_digits

    x, _ = load_digits(args.image_size)
    rng = np.random.default_rng(args.seed)
    warmup = max(1, args.batches // 10)
    done, images, policies, start = 0, 0, 0, time.monotonic()
    marks = {}
    while done < args.batches:
        policy = random_policy(rng, list(OP_NAMES))
        policies += 1
        n = min(args.batches_per_policy, args.batches - done)
        ds = (tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=policies).repeat()
              .batch(args.batch_size).take(n)
              .map(policy.tf_map(seed=policies), num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
        for batch in ds:
            assert batch.shape[0] == args.batch_size
            done += 1
            images += int(batch.shape[0])
            if done == warmup:
                marks["warm"] = meter.sample("augment")
            elif done % max(1, args.batches // 20) == 0:
                meter.sample("augment")
        del ds
    seconds = time.monotonic() - start
    marks["end"] = meter.sample("augment")
    return {"batches": done, "images": images, "policies": policies, "seconds": seconds,
            "rate": images / seconds, **marks}


def oracle_phase(args, meter: Meter) -> dict:
    import keras_tuner
    import numpy as np

    from keras_augtune import PolicySpace, RandomForestOracle, compat
    from keras_augtune.space import baseline_values

    space = PolicySpace()
    directory = tempfile.mkdtemp(prefix="augtune_soak_")
    try:
        oracle = RandomForestOracle(objective=keras_tuner.Objective("reward", "max"), max_trials=args.trials,
                                    num_initial_points=10, seed=args.seed, initial_values=[baseline_values(space)],
                                    max_consecutive_failed_trials=args.trials)
        compat.set_project_dir(oracle, directory, "soak")
        oracle.verbose = 0
        oracle.update_space(space.hyperparameters())
        rng = np.random.default_rng(args.seed)
        warmup = max(1, args.trials // 10)
        marks, failed, start = {}, 0, time.monotonic()
        propose_seconds = []
        for i in range(args.trials):
            t = time.monotonic()
            trial = oracle.create_trial("soak")
            propose_seconds.append(time.monotonic() - t)
            if trial.status != "RUNNING":
                break
            values = trial.hyperparameters.values
            if i % 20 == 19:  # a failing trial now and then
                trial.status, trial.message = "FAILED", "synthetic failure"
                failed += 1
            else:  # cheap objective: likes a few ops, moderate magnitudes
                score = sum((values[k] in ("rotate", "translate-x", "horizontal-flip")) * 0.05
                            - 0.02 * abs(values[k.rsplit("/", 1)[0] + "/magnitude"] - 0.3)
                            for k in values if k.endswith("/op")) + float(rng.normal(0, 0.01))
                oracle.update_trial(trial.trial_id, {"reward": score})
                trial.status = "COMPLETED"
            oracle.end_trial(trial)
            if i + 1 == warmup:
                marks["warm"] = meter.sample("oracle")
            elif (i + 1) % max(1, args.trials // 20) == 0:
                meter.sample("oracle")
        seconds = time.monotonic() - start
        marks["end"] = meter.sample("oracle")
        best = oracle.get_best_trials(1)[0].score
        on_disk = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(directory) for f in files)
        return {"trials": len(oracle.trials), "failed": failed, "seconds": seconds,
                "propose_mean": float(np.mean(propose_seconds)), "propose_last": float(np.mean(propose_seconds[-20:])),
                "best": best, "disk_mib": on_disk / 2**20, **marks}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches-per-policy", type=int, default=50)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--trials", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bound-mib", type=float, default=64.0, help="allowed growth after warm-up, per phase")
    p.add_argument("--markdown", help="also write the results as Markdown to this path")
    args = p.parse_args(argv)

    meter = Meter()
    import tensorflow  # noqa: F401  (imports first: the start figure includes them)
    import keras_augtune  # noqa: F401
    start_rss = meter.sample("start")
    aug = augmentation_phase(args, meter)
    orc = oracle_phase(args, meter)
    growth_aug = aug["end"] - aug["warm"]
    growth_orc = orc["end"] - orc["warm"]
    ok = growth_aug <= args.bound_mib and growth_orc <= args.bound_mib
    lines = [
        "# Soak test (`benchmarks/soak.py`)",
        "",
        f"Command: `.venv/bin/python benchmarks/soak.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip(),
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}; shared with other jobs, so times are indicative (±2x).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| phase | work | time | RSS start | RSS after warm-up | RSS end | growth after warm-up | bound |",
        "|---|---|---|---|---|---|---|---|",
        f"| imports | tensorflow, keras_augtune | | {start_rss:.0f} MiB | | | | |",
        f"| tf.data augmentation | {aug['batches']:,} batches x {args.batch_size} ({aug['images']:,} images "
        f"{args.image_size}x{args.image_size}), {aug['policies']} random 5x2 policies | {aug['seconds']:.0f} s "
        f"({aug['rate']:,.0f} img/s) | {start_rss:.0f} MiB | {aug['warm']:.0f} MiB | {aug['end']:.0f} MiB | "
        f"{growth_aug:+.1f} MiB | {args.bound_mib:.0f} MiB |",
        f"| oracle | {orc['trials']} trials ({orc['failed']} failed), 30 hyperparameters, state saved each trial "
        f"| {orc['seconds']:.0f} s (proposal {orc['propose_mean'] * 1000:.0f} ms mean, "
        f"{orc['propose_last'] * 1000:.0f} ms last 20) | {aug['end']:.0f} MiB | {orc['warm']:.0f} MiB | "
        f"{orc['end']:.0f} MiB | {growth_orc:+.1f} MiB | {args.bound_mib:.0f} MiB |",
        "",
        f"Result: **{'PASS' if ok else 'FAIL'}** (growth after warm-up within {args.bound_mib:.0f} MiB in each phase). "
        f"Oracle directory on disk at the end: {orc['disk_mib']:.1f} MiB.",
        "",
        "RSS samples (phase, seconds, MiB): "
        + ", ".join(f"{ph[0]}{s:.0f}s:{m:.0f}" for ph, s, m in meter.samples),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
