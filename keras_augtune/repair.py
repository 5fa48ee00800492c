"""Damaged files of a Keras Tuner project: named, set aside and repaired, so that a search cut
short (a full disk, a crash) stays readable and resumable.

* `damaged_files()`: the ``oracle.json`` / ``trial_*/trial.json`` files that cannot be read;
* `reload_skipping_damaged()`: an oracle reloaded without them (for reports);
* `repair_damaged_trials()`: each damaged ``trial.json`` replaced by a ``FAILED`` record.
"""

from __future__ import annotations

import glob
import json
import os

from keras_augtune.checks import json_kind


class DamagedFileWarning(UserWarning):
    """A file of a search could not be read and was skipped (see `damaged_files()`)."""


def damaged_files(project_dir: str) -> dict[str, str]:
    """The JSON files of a Keras Tuner project (``oracle.json``, ``trial_*/trial.json``) that
    cannot be read, with the reason: ``{path: reason}``."""
    damaged = {}
    paths = sorted(glob.glob(os.path.join(project_dir, "trial_*", "trial.json")))
    for path in [os.path.join(project_dir, "oracle.json")] + paths:
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if not isinstance(data, dict) or (path.endswith("trial.json") and "trial_id" not in data):
                raise ValueError(f"not a Keras Tuner {os.path.basename(path)} ({json_kind(data)})")
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            size = os.path.getsize(path)
            damaged[path] = f"{size:,} bytes, {'empty' if size == 0 else 'cut short or corrupt'}: {exc}"
    return damaged


def reload_skipping_damaged(oracle, project_dir: str, damaged: dict[str, str]) -> None:
    """``oracle.reload()`` without the ``damaged`` files: every readable trial is loaded; without
    a readable ``oracle.json`` the oracle keeps its fresh state (enough to list the trials)."""
    from keras_tuner.engine import trial as trial_module

    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        if path not in damaged:
            trial = trial_module.Trial.load(path)
            oracle.trials[trial.trial_id] = trial
    state_file = os.path.join(project_dir, "oracle.json")
    if state_file in damaged or not os.path.isfile(state_file):
        return
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    state["ongoing_trials"] = {k: v for k, v in state.get("ongoing_trials", {}).items() if v in oracle.trials}
    oracle.set_state(state)
    oracle.ongoing_trials = {}


def repair_damaged_trials(project_dir: str) -> list[str]:
    """Make a search with damaged trial files resumable, keeping every readable trial.

    Each damaged ``trial_<id>/trial.json`` is kept as ``trial.json.damaged`` and replaced by a
    ``FAILED`` record of trial ``<id>`` (its result is lost; the id stays taken, so no later
    trial overwrites its folder); ``oracle.json`` stops counting it as running. A damaged
    ``oracle.json`` cannot be rebuilt: that raises a ``ValueError`` naming it. Returns one
    line per repaired file.
    """
    damaged = damaged_files(project_dir)
    state_file = os.path.join(project_dir, "oracle.json")
    if state_file in damaged:
        raise ValueError(f"{state_file} is damaged ({damaged[state_file]}): this search cannot be resumed, "
                         "but 'keras-augtune report' still shows its trials. Start a new search with another "
                         "--out (or --overwrite).")
    if not damaged:
        return []
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    from keras_augtune.files import atomic_write

    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    space = keras_tuner.HyperParameters.from_config(state["hyperparameters"])
    lines = []
    for path, reason in damaged.items():
        trial_id = os.path.basename(os.path.dirname(path))[len("trial_"):]
        kept = path + ".damaged"
        n = 1
        while os.path.exists(kept):
            kept, n = f"{path}.damaged.{n}", n + 1
        os.replace(path, kept)
        trial = trial_module.Trial(space.copy(), trial_id=trial_id, status=trial_module.TrialStatus.FAILED)
        trial.hyperparameters.values = {}
        trial.message = (f"trial.json was damaged ({reason}); the original is kept as {os.path.basename(kept)}. "
                         "The trial's result is lost.")
        atomic_write(path, json.dumps(trial.get_state()) + "\n")
        state["ongoing_trials"] = {k: v for k, v in state.get("ongoing_trials", {}).items() if v != trial_id}
        state["retry_queue"] = [t for t in state.get("retry_queue", []) if t != trial_id]
        if trial_id not in state.get("end_order", []):
            state.setdefault("end_order", []).append(trial_id)
        lines.append(f"{path} was damaged ({reason}): kept as {os.path.basename(kept)}, trial {trial_id} "
                     "recorded as FAILED (its result is lost); every other trial is kept.")
    atomic_write(state_file, json.dumps(state) + "\n")
    return lines
