"""Per-trial overhead of AugmentTuner beyond child training (target: <= 10 % of a 3-epoch trial
on 1,000 CIFAR images).

Runs a search and splits the wall time from the first trial's start to the last trial's end
into child training (the ``model.fit`` calls, augmentation included) and everything else,
itemised: Keras's ``clear_session()``, Python's ``gc.collect()``, building the child, saving
its checkpoint, the oracle's proposal, the trial's begin/end hooks (trial and oracle state
saved, the trial's line), the notebook rows and the rest (reward, Keras Tuner's bookkeeping).
The process's resident memory (RSS) is read after every trial, so a change to the clean-up
can be checked to keep memory bounded.

    python benchmarks/trial_overhead.py --data ../shared/data/cifar10-jpeg/train --trials 12 --epochs 3
    python benchmarks/trial_overhead.py --no-freeze ...             # full collections every trial (before)
    python benchmarks/trial_overhead.py                             # digits at 32 px, 12 trials, 5 epochs

``--json PATH`` writes the figures (and the per-trial RSS) for ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from soak import rss_mib  # noqa: E402  (benchmarks/soak.py, beside this script)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help="'digits' (default) or a folder of class sub-folders")
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-set-size", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=32, help="digits' size (a folder's images keep theirs)")
    p.add_argument("--method", default="bayesian", choices=("bayesian", "random", "hyperband"))
    p.add_argument("--no-freeze", action="store_true",
                   help="freeze no objects (keras_augtune.heap): Keras Tuner's full collections every "
                        "trial, as before issue 11")
    p.add_argument("--json", help="write the figures to this JSON file")
    args = p.parse_args(argv)

    import keras

    from keras_augtune import AugmentTuner, heap
    from keras_augtune import compat
    from keras_augtune import runner as runner_module
    from keras_augtune.loaders import load_data

    x, y, _ = load_data(args.data, image_size=args.image_size if args.data == "digits" else None)
    seconds: dict[str, float] = collections.defaultdict(float)
    counts: collections.Counter = collections.Counter()
    marks: dict[str, float] = {}
    memory: list[float] = []

    inside: list[str] = []  # the timed calls running now (a collection inside clear_session is its own)

    def timed(name, function):
        def wrapper(*a, **k):
            if "first_begin" not in marks:  # before the trials (pre-flight, the freeze): not per-trial work
                return function(*a, **k)
            key = "gc_collect_in_clear_session" if name == "gc_collect" and "clear_session" in inside else name
            inside.append(name)
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent = time.perf_counter() - start
                inside.pop()
                seconds[key] += spent
                counts[key] += 1
                if key == "gc_collect" and "trial_begin" in inside:  # also within the trial begin's time
                    seconds["gc_collect_in_trial_begin"] += spent
        return wrapper

    # Every call of these, wherever it comes from (Keras Tuner, keras_augtune), is timed.
    keras.backend.clear_session = timed("clear_session", keras.backend.clear_session)
    gc.collect = timed("gc_collect", gc.collect)
    runner_module.Notebook.write_trial = timed("notebook", runner_module.Notebook.write_trial)
    compat.build_model = timed("build", compat.build_model)  # the runner's every build (Keras Tuner's _try_build)
    if args.no_freeze:
        heap.freeze = heap.thaw = heap.settle = lambda: None

    class TimedTuner(AugmentTuner):
        def on_trial_begin(self, trial):
            marks.setdefault("first_begin", time.perf_counter())
            timed("trial_begin", super().on_trial_begin)(trial)

        def on_trial_end(self, trial):
            timed("trial_end", super().on_trial_end)(trial)  # trial & oracle state saved, the trial's line
            marks["last_end"] = time.perf_counter()
            memory.append(rss_mib())

    with tempfile.TemporaryDirectory() as directory:
        tuner = TimedTuner(max_trials=args.trials, child_epochs=args.epochs, train_set_size=args.train_set_size,
                           method=args.method, directory=directory, seed=1, verbose=0,
                           confirm_top_k=0)  # the trials alone: no confirmation trainings after them
        tuner.hypermodel.fit = timed("fit", tuner.hypermodel.fit)
        tuner.oracle.create_trial = timed("proposal", tuner.oracle.create_trial)
        save_weights = keras.Model.save_weights
        keras.Model.save_weights = timed("checkpoint", save_weights)
        start = time.perf_counter()
        try:
            tuner.search(x, y)
        finally:
            keras.Model.save_weights = save_weights
        total = time.perf_counter() - start
    loop = marks["last_end"] - marks["first_begin"]
    training = seconds["fit"]
    overhead = loop - training
    parts = ("clear_session", "gc_collect", "build", "checkpoint", "proposal", "trial_begin", "trial_end", "notebook")
    # a collection when a trial begins (keras_augtune.heap.settle) is counted with gc.collect, not twice
    rest = overhead - sum(seconds[k] for k in parts) + seconds["gc_collect_in_trial_begin"]
    # clear_session() runs gc.collect() itself: that time is within clear_session's (and also shown apart)
    n = args.trials
    figures = {
        "data": args.data, "trials": n, "epochs": args.epochs, "train_set_size": args.train_set_size,
        "method": args.method, "freeze": not args.no_freeze,
        "search_seconds": total, "loop_seconds": loop, "training_per_trial": training / max(counts["fit"], 1),
        "overhead_per_trial": overhead / n, "overhead_ratio": overhead / training,
        "clear_session_per_trial": seconds["clear_session"] / n, "clear_session_calls": counts["clear_session"],
        "gc_collect_per_trial": seconds["gc_collect"] / n, "gc_collect_calls": counts["gc_collect"],
        "gc_in_clear_session_per_trial": seconds["gc_collect_in_clear_session"] / n,
        "build_per_trial": seconds["build"] / n, "checkpoint_per_trial": seconds["checkpoint"] / n,
        "proposal_per_trial": seconds["proposal"] / n, "trial_end_per_trial": seconds["trial_end"] / n,
        "trial_begin_per_trial": seconds["trial_begin"] / n, "notebook_per_trial": seconds["notebook"] / n,
        "rest_per_trial": rest / n, "rss_mb": [round(m, 1) for m in memory],
        "load_average": os.getloadavg(),
    }
    print(f"trials: {n}, child: {args.train_set_size} images x {args.epochs} epochs, data {args.data}, "
          f"objects frozen: {figures['freeze']}, load average {figures['load_average'][0]:.1f}")
    print(f"search() wall time          {total:8.1f} s (includes data checks, pre-flight build, TF start-up)")
    print(f"first trial start -> end    {loop:8.1f} s")
    print(f"child training (model.fit)  {training:8.1f} s  ({figures['training_per_trial']:.2f} s per trial)")
    print(f"per-trial overhead          {overhead:8.1f} s  ({figures['overhead_per_trial']:.2f} s per trial)")
    print(f"  clear_session             {figures['clear_session_per_trial']:8.2f} s per trial "
          f"({counts['clear_session']} calls; {figures['gc_in_clear_session_per_trial']:.2f} s of it its gc.collect)")
    print(f"  other gc.collect calls    {figures['gc_collect_per_trial']:8.2f} s per trial ({counts['gc_collect']} calls: "
          "Keras Tuner's before each build, keras_augtune.heap's when a trial begins)")
    print(f"  build the child           {figures['build_per_trial']:8.2f} s per trial")
    print(f"  checkpoint (save_weights) {figures['checkpoint_per_trial']:8.2f} s per trial")
    print(f"  oracle proposal           {figures['proposal_per_trial']:8.2f} s per trial")
    begin_end = figures["trial_begin_per_trial"] + figures["trial_end_per_trial"] - seconds["gc_collect_in_trial_begin"] / n
    print(f"  trial begin and end       {begin_end:8.2f} s per trial (trial and oracle state saved, the trial's line; "
          "its collection counted above)")
    print(f"  notebook rows             {figures['notebook_per_trial']:8.2f} s per trial")
    print(f"  the rest                  {figures['rest_per_trial']:8.2f} s per trial (reward, Keras Tuner's bookkeeping)")
    print(f"RSS after each trial (MiB)  first {memory[0]:.0f}, last {memory[-1]:.0f}, max {max(memory):.0f}")
    ratio = figures["overhead_ratio"]
    print(f"overhead / training         {ratio:8.1%}  -> target <= 10%: {'MET' if ratio <= 0.10 else 'NOT MET'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
