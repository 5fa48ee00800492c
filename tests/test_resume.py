"""Resume after a crash: a search process killed with SIGKILL in the middle of a trial and
started again on the same directory keeps every finished trial, re-runs the interrupted one,
stops at max_trials, leaves a clean notebook, and proposes exactly what an uninterrupted run
with the same seed proposes."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

MAX_TRIALS = 4
KILL_AT = "2"  # trial 2 is already proposed by the random forest (num_initial_points=2)
EPOCHS = 2

CHILD = textwrap.dedent(f"""
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import keras
    from keras_augtune import AugmentTuner, PolicySpace
    from keras_augtune.loaders import load_digits

    directory = sys.argv[1]
    stall_at = os.environ.get("STALL_AT")
    current = {{}}

    class StallMidTrial(keras.callbacks.Callback):
        # After the first epoch of trial STALL_AT: tell the parent, then wait to be killed.
        def on_epoch_end(self, epoch, logs=None):
            if stall_at is not None and current.get("id") == stall_at:
                open(os.path.join(directory, "stalled"), "w").close()
                time.sleep(120)

    class Tuner(AugmentTuner):
        def on_trial_begin(self, trial):
            current["id"] = trial.trial_id
            super().on_trial_begin(trial)

    model = keras.Sequential([
        keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=["identity", "rotate", "invert", "translate-x"])
    x, y = load_digits(12)
    tuner = Tuner(model, max_trials={MAX_TRIALS}, num_initial_points=2, child_epochs={EPOCHS}, batch_size=32,
                  policy_space=space, directory=directory, project_name="p", seed=7, verbose=1,
                  confirm_top_k=0)  # trials only (test_confirmation.py stops and resumes a confirmation)
    tuner.search(x[:200], y[:200], callbacks=[StallMidTrial()])
    print("SEARCH DONE", len(tuner.oracle.trials), flush=True)
""")


def start(script, directory, stall_at=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("STALL_AT", None)
    if stall_at is not None:
        env["STALL_AT"] = stall_at
    log = open(os.path.join(os.path.dirname(directory), os.path.basename(directory) + ".log"), "ab")
    return subprocess.Popen([sys.executable, str(script), directory], env=env, stdout=log, stderr=subprocess.STDOUT)


def output(directory):
    with open(os.path.join(os.path.dirname(directory), os.path.basename(directory) + ".log"), errors="replace") as f:
        return f.read()


def trials_on_disk(directory):
    trials = {}
    for path in glob.glob(os.path.join(directory, "p", "trial_*", "trial.json")):
        with open(path) as f:
            data = json.load(f)
        trials[data["trial_id"]] = data
    return trials


def notebook(directory):
    with open(os.path.join(directory, "p", "notebook.csv"), newline="") as f:
        return list(csv.DictReader(f))


def wait_for(path, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def stop(*procs):
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_sigkill_mid_trial_then_resume(tmp_path):
    script = tmp_path / "search.py"
    script.write_text(CHILD)
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    os.makedirs(resumed)
    ref = first = second = None
    try:
        # The uninterrupted reference run and the run to be killed, side by side.
        ref = start(script, reference)
        first = start(script, resumed, stall_at=KILL_AT)
        assert wait_for(os.path.join(resumed, "stalled"), first, timeout=240), output(resumed)
        # Mid-trial: trials 0 and 1 are finished and in the notebook, trial 2 is running.
        before = trials_on_disk(resumed)
        assert {k: v["status"] for k, v in before.items()} == {"0": "COMPLETED", "1": "COMPLETED", "2": "RUNNING"}
        assert {r["trial"] for r in notebook(resumed)} == {"0", "1"}
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL

        second = start(script, resumed)  # same command, same directory
        assert second.wait(timeout=240) == 0, output(resumed)
        assert ref.wait(timeout=240) == 0, output(reference)
    finally:
        stop(ref, first, second)

    log = output(resumed)
    assert "Reloading Tuner" in log and f"SEARCH DONE {MAX_TRIALS}" in log
    after, expected = trials_on_disk(resumed), trials_on_disk(reference)
    # max_trials honoured, every trial finished once; trial 2 re-run (not counted as a failed retry)
    assert sorted(after) == [str(i) for i in range(MAX_TRIALS)]
    assert all(t["status"] == "COMPLETED" for t in after.values())
    # finished trials kept as they were
    for trial_id in ("0", "1"):
        assert after[trial_id]["score"] == before[trial_id]["score"]
    # the same seed gives the same proposals (and, training being seeded, the same rewards)
    for trial_id in sorted(expected):
        assert after[trial_id]["hyperparameters"]["values"] == expected[trial_id]["hyperparameters"]["values"]
        assert after[trial_id]["score"] == pytest.approx(expected[trial_id]["score"], abs=1e-6)
    assert len({json.dumps(t["hyperparameters"]["values"], sort_keys=True) for t in after.values()}) == MAX_TRIALS
    # notebook: one row per trial and epoch, no duplicate from the killed attempt, same as uninterrupted
    rows = notebook(resumed)
    keys = [(r["trial"], r["execution"], r["epoch"]) for r in rows]
    assert len(keys) == len(set(keys)) == MAX_TRIALS * EPOCHS
    assert all(r["reward"] and r["policy"] for r in rows)
    ref_rows = notebook(reference)
    assert sorted((r["trial"], r["epoch"], r["reward"]) for r in rows) == sorted(
        (r["trial"], r["epoch"], r["reward"]) for r in ref_rows)
    assert not glob.glob(os.path.join(resumed, "p", "*.tmp*"))

    # Starting the finished search once more runs nothing.
    again = subprocess.run([sys.executable, str(script), resumed], capture_output=True, text=True, timeout=240,
                           env={k: v for k, v in os.environ.items() if k != "STALL_AT"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"SEARCH DONE {MAX_TRIALS}" in again.stdout and "Trial " not in again.stdout
    assert notebook(resumed) == rows
