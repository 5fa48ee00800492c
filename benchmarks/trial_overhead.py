"""Per-trial overhead of AugmentTuner beyond child training (target: <= 10 %).

Runs a search on digits and splits the wall time from the first trial's start to the
last trial's end into child training (the `model.fit` calls, augmentation included)
and everything else: the oracle's proposal (forest fit + acquisition), model building,
checkpoint and state saving, reward and notebook writing.

    python benchmarks/trial_overhead.py                 # 12 trials, 1,000 images, 5 epochs
    python benchmarks/trial_overhead.py --trials 30 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--train-set-size", type=int, default=1000)
    p.add_argument("--image-size", type=int, default=32)
    args = p.parse_args(argv)

    from keras_augtune import AugmentTuner
    from keras_augtune.data import load_digits

    x, y = load_digits(args.image_size)
    fit_seconds: list[float] = []
    marks: dict[str, float] = {}

    class TimedTuner(AugmentTuner):
        def on_trial_begin(self, trial):
            marks.setdefault("first_begin", time.perf_counter())
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            marks["last_end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as directory:
        tuner = TimedTuner(max_trials=args.trials, child_epochs=args.epochs, train_set_size=args.train_set_size,
                           directory=directory, seed=1, verbose=0)
        original_fit = tuner.hypermodel.fit

        def timed_fit(*a, **k):
            start = time.perf_counter()
            try:
                return original_fit(*a, **k)
            finally:
                fit_seconds.append(time.perf_counter() - start)

        tuner.hypermodel.fit = timed_fit
        start = time.perf_counter()
        tuner.search(x, y)
        total = time.perf_counter() - start
    loop = marks["last_end"] - marks["first_begin"]
    training = sum(fit_seconds)
    overhead = loop - training
    print(f"trials: {args.trials}, child: {args.train_set_size} images x {args.epochs} epochs, {args.image_size}px digits")
    print(f"search() wall time          {total:8.1f} s (includes data checks, pre-flight build, TF start-up)")
    print(f"first trial start -> end    {loop:8.1f} s")
    print(f"child training (model.fit)  {training:8.1f} s  ({training / len(fit_seconds):.2f} s per trial)")
    print(f"per-trial overhead          {overhead:8.1f} s  ({overhead / args.trials:.2f} s per trial)")
    ratio = overhead / training
    print(f"overhead / training         {ratio:8.1%}  -> target <= 10%: {'MET' if ratio <= 0.10 else 'NOT MET'}")


if __name__ == "__main__":
    main()
