"""A tiny seeded search's every trial (values, score, reward, gain, executions) and verdict, as JSON: a before/after check of a refactor.

Issue 20 moved the tuner's work into the runner, the intensifier, the display and the oracle's
choice without changing behaviour; this script showed it. Run it on two checkouts (e.g. a git
worktree of the old commit) and compare the files byte for byte:

    python benchmarks/seeded_snapshot.py before.json bayesian     # in the old checkout
    python benchmarks/seeded_snapshot.py after.json bayesian      # in the new one
    cmp before.json after.json

The search: digits at 16x16, 6 trials, 2 epochs (3 for hyperband), 300 training images, seed 3,
then the confirmation of the 2 best policies on 2 executions. benchmarks/results/refactor_check/
holds the files for commits c5919e0 (before) and 465bf4c (after), identical for both methods
(and two runs of the old code were identical too: the search is deterministic on this CPU).
"""

import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(out: str, method: str = "bayesian") -> None:
    import keras_augtune

    try:
        from keras_augtune.loaders import load_digits
    except ImportError:  # before the loaders had a module of their own
        from keras_augtune.data import load_digits

    directory = tempfile.mkdtemp()
    try:
        x, y = load_digits(16)
        options = dict(confirm_top_k=2, confirm_executions=2)
        if "intensifier" in keras_augtune.AugmentTuner.__init__.__kwdefaults__:
            options["intensifier"] = "confirmation"  # the race is the default since issue 21
        tuner = keras_augtune.AugmentTuner(
            "simple", max_trials=6, child_epochs=2 if method != "hyperband" else 3, train_set_size=300,
            num_initial_points=3, directory=directory, project_name="p", seed=3, method=method, verbose=1, **options)
        tuner.search(x, y)
        results = tuner.results()
        snapshot = {"trials": [{"id": t.trial_id, "values": t.values, "score": t.score, "reward": t.reward,
                                "gain": t.gain, "interval": t.gain_interval, "execs": t.execution_rewards,
                                "status": t.status} for t in results.trials],
                    "verdict": results.verdict().text}
        with open(out, "w") as f:
            json.dump(snapshot, f, indent=1, default=str)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
