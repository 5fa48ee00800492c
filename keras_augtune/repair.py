"""Damaged files of a Keras Tuner project: named, set aside and repaired, so that a search cut
short (a full disk, a crash) stays readable and resumable.

* `damaged_files()`: the ``oracle.json`` / ``trial_*/trial.json`` files that cannot be read;
* `find_project()`, `reload_oracle()`, `reload_skipping_damaged()`: a search's oracle reloaded
  from disk without them (for reports);
* `repair_damaged_trials()`: a damaged ``oracle.json`` rebuilt from the trials' own
  ``trial.json`` files and ``run.json`` (`rebuild_oracle_state()`), each damaged ``trial.json``
  replaced by a ``FAILED`` record, a damaged ``<tuner id>.json`` rewritten, each unreadable
  execution record set aside (its executions are measured again), and a trial written just
  before the ``oracle.json`` that would have listed it set aside (it is created again).

A file is damaged when it is not JSON, or a field Keras Tuner reads has the wrong type: the
reason names the field. Keras Tuner's own writes are made atomic by
[`keras_augtune.compat.atomic_state_writes()`][keras_augtune.compat.atomic_state_writes], so a full disk or a crash no
longer leaves half a file; what is checked here is what a hostile or hand-edited file can hold.
"""

from __future__ import annotations

import glob
import json
import os
import random

from keras_augtune.checks import json_kind
from keras_augtune.files import atomic_write, set_aside

#: The fields Keras Tuner 1.4's ``Oracle.set_state`` / ``Trial.set_state`` read, and their JSON types.
_NUMBER = (int, float)
_ORACLE_FIELDS = {
    "ongoing_trials": dict, "hyperparameters": dict, "start_order": list, "end_order": list, "run_times": dict,
    "retry_queue": list, "tried_so_far": list, "id_to_hash": dict, "display": dict,
}
_TRIAL_FIELDS = {
    "trial_id": str, "hyperparameters": dict, "metrics": dict, "score": _NUMBER + (type(None),),
    "best_step": _NUMBER + (type(None),), "status": str,
}
#: The oracle's nested fields whose items must be trial ids (text).
_ID_LISTS = ("start_order", "end_order", "retry_queue")


class DamagedFileWarning(UserWarning):
    """A file of a search could not be read and was skipped (see `damaged_files()`)."""


def damaged_files(project_dir: str) -> dict[str, str]:
    """The JSON files of a Keras Tuner project (``oracle.json``, ``trial_*/trial.json``) that
    cannot be read, with the reason (naming the field when one has the wrong type): ``{path: reason}``."""
    damaged = {}
    paths = sorted(glob.glob(os.path.join(project_dir, "trial_*", "trial.json")))
    for path in [os.path.join(project_dir, "oracle.json")] + paths:
        if not os.path.isfile(path):
            continue
        try:
            data = _read_json(path)
            problem = _field_problem(data, _TRIAL_FIELDS if path.endswith("trial.json") else _ORACLE_FIELDS,
                                     os.path.basename(path))
            if problem is None and path.endswith("oracle.json"):
                problem = _oracle_problem(data)
            if problem:
                raise ValueError(problem)
        except (ValueError, RecursionError, UnicodeDecodeError) as exc:
            size = os.path.getsize(path)
            kind = "empty" if size == 0 else "cut short or corrupt" if not isinstance(exc, _FieldError) else "wrong field"
            damaged[path] = f"{size:,} bytes, {kind}: {exc}"
    return damaged


class _FieldError(ValueError):
    """A JSON document whose field has the wrong type."""


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _field_problem(data, fields: dict, what: str) -> None:
    """Raise `_FieldError` naming the first field of ``fields`` missing or of the wrong type."""
    if not isinstance(data, dict):
        raise _FieldError(f"not a Keras Tuner {what} ({json_kind(data)})")
    for name, kind in fields.items():
        if name not in data:
            raise _FieldError(f"field '{name}' is missing")
        value = data[name]
        if not isinstance(value, kind) or isinstance(value, bool) and kind in (_NUMBER, _NUMBER + (type(None),)):
            raise _FieldError(f"field '{name}' must be {_kind_name(kind)}, got {json_kind(value)} {value!r:.40}")
        if kind is not str and isinstance(value, float) and value != value:
            raise _FieldError(f"field '{name}' is NaN")
    return None


def _oracle_problem(state: dict) -> None:
    for name in _ID_LISTS:
        if not all(isinstance(t, str) for t in state[name]):
            raise _FieldError(f"field '{name}' must be a list of trial ids")
    if not all(isinstance(t, str) for t in state["ongoing_trials"].values()):
        raise _FieldError("field 'ongoing_trials' must map tuner ids to trial ids")
    return None


def _kind_name(kind) -> str:
    if kind in (_NUMBER, _NUMBER + (type(None),)):
        return "a number" + (" or null" if type(None) in kind else "")
    return json_kind(kind())


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


def find_project(path: str) -> tuple[str, dict | None]:
    """The Keras Tuner project directory in ``path`` (a search folder, a project, or a folder holding
    one project) and the run's ``run.json`` (or None)."""
    from keras_augtune.runs import read_run_file

    if not os.path.isdir(path):
        raise FileNotFoundError(f"No such search directory: {path}")
    run = read_run_file(path)
    if run is not None:
        project = os.path.join(path, run.get("project_name", "tuner"))
        if os.path.isfile(os.path.join(project, "oracle.json")):
            return project, run
    if os.path.isfile(os.path.join(path, "oracle.json")):
        return path, run
    found = sorted(d for d in os.listdir(path) if os.path.isfile(os.path.join(path, d, "oracle.json")))
    if len(found) == 1:
        return os.path.join(path, found[0]), run
    if len(found) > 1:
        raise ValueError(f"{path} holds several searches ({', '.join(found)}); pass one of them.")
    raise FileNotFoundError(
        f"No search found in {path}: expected the output folder of 'keras-augtune search' or a "
        "Keras Tuner project directory (with oracle.json and trial_* folders)."
    )


def reload_oracle(project_dir: str):
    """The oracle of a project on disk (no tuner needed), its damaged files skipped with a warning."""
    import warnings

    from keras_augtune import compat
    from keras_augtune.evaluation.reward import reward_objective
    from keras_augtune.oracle import RandomForestOracle

    oracle = RandomForestOracle(objective=reward_objective(), max_trials=10**6)
    compat.set_project_dir(oracle, os.path.dirname(os.path.abspath(project_dir)), os.path.basename(os.path.abspath(project_dir)))
    damaged = damaged_files(compat.project_dir(oracle))
    for path, reason in damaged.items():  # skipped, so that every readable trial is still shown
        warnings.warn(DamagedFileWarning(f"skipped the damaged file {path} ({reason})"), stacklevel=3)
    try:
        if damaged:
            reload_skipping_damaged(oracle, compat.project_dir(oracle), damaged)
        else:
            oracle.reload()
    except Exception as exc:
        raise ValueError(f"Cannot read the search in {project_dir}: {type(exc).__name__}: {exc}") from None
    return oracle


def repair_damaged_trials(project_dir: str) -> list[str]:
    """Make a search with damaged trial files resumable, keeping every readable trial.

    Each damaged ``trial_<id>/trial.json`` is kept as ``trial.json.damaged`` and replaced by a
    ``FAILED`` record of trial ``<id>`` (its result is lost; the id stays taken, so no later
    trial overwrites its folder); ``oracle.json`` stops counting it as running. A damaged
    ``oracle.json`` is kept as ``oracle.json.damaged`` and rebuilt (`rebuild_oracle_state()`);
    when it cannot be, a ``ValueError`` names it and why. Returns one line per repaired file.
    """
    lines = _repair_tuner_files(project_dir) + _set_aside_execution_records(project_dir)
    damaged = damaged_files(project_dir)
    state_file = os.path.join(project_dir, "oracle.json")
    if state_file in damaged:
        lines.append(_rebuild_oracle_file(project_dir, damaged))
        del damaged[state_file]
    if os.path.isfile(state_file):
        lines += _set_aside_orphans(project_dir, state_file, damaged)
    if not damaged:
        return lines
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    space = keras_tuner.HyperParameters.from_config(state["hyperparameters"])
    for path, reason in damaged.items():
        trial_id = os.path.basename(os.path.dirname(path))[len("trial_"):]
        kept = set_aside(path)
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


def _set_aside_orphans(project_dir: str, state_file: str, damaged: dict[str, str]) -> list[str]:
    """Set aside each ``RUNNING`` trial that ``oracle.json`` does not know: Keras Tuner writes a new
    trial's ``trial.json`` and then ``oracle.json``, so a stop in between leaves a trial the saved
    oracle never created. Its ``trial.json`` is kept as ``trial.json.orphan``; the resumed oracle
    creates that trial again (the same one, with a seed), as if the stop came a moment earlier."""
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    known = set(state["ongoing_trials"].values()) | set(state["end_order"]) | set(state["retry_queue"])
    lines = []
    for path in sorted(glob.glob(os.path.join(project_dir, "trial_*", "trial.json"))):
        if path in damaged:
            continue
        trial = _read_json(path)
        if trial.get("status") == "RUNNING" and trial.get("trial_id") not in known:
            os.replace(path, path + ".orphan")
            lines.append(f"{path} is a trial the saved oracle had not created yet (the search stopped between "
                         "the two writes): kept as trial.json.orphan; the trial is created again.")
    return lines


def _repair_tuner_files(project_dir: str) -> list[str]:
    """Rewrite each unreadable ``<tuner id>.json`` of the project as ``{}``: Keras Tuner's
    ``BaseTuner.get_state()`` is ``{}``, so nothing is lost; the original is kept beside it."""
    lines = []
    for path in sorted(glob.glob(os.path.join(project_dir, "*.json"))):
        if os.path.basename(path) == "oracle.json":
            continue
        try:
            if isinstance(_read_json(path), dict):
                continue
            reason = "not a JSON object"
        except (ValueError, UnicodeDecodeError) as exc:
            reason = str(exc)[:120]
        kept = set_aside(path)
        atomic_write(path, "{}")
        lines.append(f"{path} was damaged ({reason}): kept as {os.path.basename(kept)} and rewritten as {{}} "
                     "(Keras Tuner keeps no state there).")
    return lines


def damaged_execution_records(project_dir: str) -> dict[str, str]:
    """The execution records (``executions/*.json``) that cannot even be parsed (e.g. nested too
    deeply for Python's JSON reader), with the reason."""
    damaged = {}
    for path in sorted(glob.glob(os.path.join(project_dir, "executions", "*.json"))):
        try:
            _read_json(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            damaged[path] = str(exc)[:120]
    return damaged


def _set_aside_execution_records(project_dir: str) -> list[str]:
    lines = []
    for path, reason in damaged_execution_records(project_dir).items():
        kept = set_aside(path)
        lines.append(f"{path} could not be read ({reason}): kept as {os.path.basename(kept)}; its executions "
                     "are measured again.")
    return lines


def rebuild_oracle_state(project_dir: str, damaged: dict[str, str] | None = None) -> tuple[dict, bool]:
    """Keras Tuner's ``oracle.json`` state rebuilt from the package's own records: each trial's
    ``trial.json`` (its id, values, status and space) and ``run.json`` beside the project (the
    oracle's seed). Returns ``(state, seed_lost)``; ``seed_lost`` when neither ``run.json`` nor
    the run's ``--seed`` gives the oracle's seed (then a new one is drawn, and later proposals
    differ from the run's). Trials end in the order of their ids (exact for one process; a
    distributed search's order of ends is not kept anywhere else), a ``RUNNING`` trial is queued
    to run again (as Keras Tuner's own reload does), and the forest's options are left out (the
    oracle keeps those it is built with). Raises a ``ValueError`` saying why when the state
    cannot be rebuilt: no ``run.json`` and no trial, or a Hyperband search (its brackets are
    kept nowhere else). ``damaged``: the trial files to leave out (default `damaged_files()`)."""
    import keras_tuner

    from keras_augtune import compat
    from keras_augtune.runs import read_run_file

    damaged = damaged_files(project_dir) if damaged is None else damaged
    try:
        run = read_run_file(os.path.dirname(os.path.abspath(project_dir))) or {}
    except ValueError:
        run = {}
    settings = run.get("settings") if isinstance(run.get("settings"), dict) else {}
    trials, ids = {}, set()
    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        ids.add(os.path.basename(os.path.dirname(path))[len("trial_"):])
        if path not in damaged:
            trial = _read_json(path)
            trials[trial["trial_id"]] = trial
    if not run and not trials:
        raise ValueError("no run.json beside it and no readable trial_*/trial.json to rebuild it from")
    if settings.get("method") == "hyperband" or any(
            name.startswith("tuner/") for t in trials.values() for name in t["hyperparameters"].get("values", {})):
        raise ValueError("a Hyperband search's brackets are kept only in oracle.json")
    order = sorted(ids | set(trials), key=lambda t: (int(t) if t.isdigit() else float("inf"), t))
    space = keras_tuner.HyperParameters()
    hashes = {}
    for trial_id in [t for t in order if t in trials]:
        try:
            hps = keras_tuner.HyperParameters.from_config(trials[trial_id]["hyperparameters"])
        except Exception as exc:  # a hand-edited space: named
            raise ValueError(f"trial {trial_id}'s field 'hyperparameters' cannot be read ({type(exc).__name__})") from None
        space.merge(hps.space, overwrite=False)  # the space grows as trials declare more
        hashes[trial_id] = compat.values_hash(hps.values)
    ended = [t for t in order if t in trials and trials[t]["status"] != "RUNNING"]
    seed, lost = _known_seed(run.get("oracle_seed")), False
    if seed is None:
        seed = _known_seed(settings.get("seed"))  # Keras Tuner keeps a non-zero seed as the oracle's
    if seed is None:
        seed, lost = random.randint(1, 10000), True  # as Keras Tuner draws one
    return {
        "ongoing_trials": {}, "hyperparameters": space.get_config(), "start_order": order, "end_order": ended,
        "run_times": {t: 1 for t in ended}, "retry_queue": [t for t in order if t in trials and t not in ended],
        "seed": seed, "seed_state": seed, "tried_so_far": sorted(set(hashes.values())), "id_to_hash": hashes,
        "display": {"search_start": None, "trial_start": {}, "trial_number": {}},
    }, lost


def _known_seed(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32 else None


def _rebuild_oracle_file(project_dir: str, damaged: dict[str, str]) -> str:
    """Set the damaged ``oracle.json`` aside and write the rebuilt state; one line saying so."""
    state_file = os.path.join(project_dir, "oracle.json")
    try:
        state, lost = rebuild_oracle_state(project_dir, damaged)
    except ValueError as exc:
        raise ValueError(f"{state_file} is damaged ({damaged[state_file]}) and cannot be rebuilt ({exc}): this "
                         "search cannot be resumed, but 'keras-augtune report' still shows its trials. Start a new "
                         "search with another --out (or --overwrite).") from None
    kept = set_aside(state_file)
    atomic_write(state_file, json.dumps(state) + "\n")
    return (f"{state_file} was damaged ({damaged[state_file]}): kept as {os.path.basename(kept)} and rebuilt from "
            f"the {len(state['start_order'])} trial files" + ("" if lost else " and run.json") + "; every finished "
            "trial is kept" + ("; the oracle's seed was lost, so the next trials differ from an uninterrupted run."
                               if lost else "."))
