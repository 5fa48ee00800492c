"""The output folder of ``keras-augtune search``: whose it is, one search at a time, the data it
was run on, and what to do when its files are damaged or the disk is full.

* `read_run_file()`: ``run.json``, validated (an object, its settings an object, its
  ``project_name`` a plain folder name inside the run folder);
* `claim_output_folder()`: refuses a folder that holds something else (unless
  ``overwrite``) or a finished search (suggesting ``--resume``/``--overwrite``), and takes an
  exclusive lock on it for the life of the process: a second search on the same folder
  fails at once, naming the process that holds it;
* `data_fingerprint()` / `fingerprint_changes()`: what ``--resume`` checks so that
  new trials are trained on the same data as the old ones;
* `disk_error()`: whether an exception (from Python, TensorFlow or HDF5) means a full or
  read-only disk;
* `damaged_files()`, `reload_skipping_damaged()` and `repair_damaged_trials()`:
  a ``trial.json`` cut short (by a full disk, a crash) is named and set aside instead of
  making the whole search unreadable.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import datetime
import errno
import glob
import hashlib
import json
import os
import socket
import sys
from typing import Any

import numpy as np

#: Written by ``keras-augtune search`` next to the tuner directory: how the run was made.
RUN_FILE = "run.json"
RUN_FORMAT = "keras_augtune.run"
#: The lock file of a search folder (also the mark of a folder keras_augtune created).
LOCK_FILE = ".keras_augtune.lock"
#: At most this many images are hashed for the data fingerprint (evenly spread).
FINGERPRINT_SAMPLE = 64

_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
}


class DamagedFileWarning(UserWarning):
    """A file of a search could not be read and was skipped (see `damaged_files()`)."""


# ----------------------------------------------------------------------------- run.json
def read_run_file(folder: str) -> dict[str, Any] | None:
    """``folder/run.json`` as a dict (``None`` when there is none); a malformed file raises a
    one-line ``ValueError`` naming it and the problem."""
    path = os.path.join(folder, RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            run = json.loads(f.read(1_000_001))
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is damaged or not a keras_augtune run file: {exc}") from None
    if not isinstance(run, dict):
        raise ValueError(f"{path} must be a JSON object (the run's settings), got {_json_kind(run)}.")
    if run.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise ValueError(f"{path} is not a keras_augtune run file (format {run.get('format')!r:.60}).")
    if not isinstance(run.get("settings", {}), dict):
        raise ValueError(f"{path}: field 'settings' must be an object, got {_json_kind(run['settings'])}.")
    check_project_name(run.get("project_name", "tuner"), path)
    return run


def check_project_name(name: Any, where: str) -> str:
    """``name`` when it is a plain folder name (so the project stays inside the run folder)."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "\0" in name
            or any(sep and sep in name for sep in ("/", "\\", os.sep, os.altsep))):
        raise ValueError(f"{where}: field 'project_name' must be a folder name inside the run folder, "
                         f"got {name!r:.80}.")
    return name


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


# ----------------------------------------------------------------------------- the folder
class FolderLock:
    """An exclusive ``flock`` on ``folder/.keras_augtune.lock``, held until `release()` or
    the end of the process (the system releases it even after ``kill -9``)."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
            os.close(fd)
            raise ValueError(f"--out {folder} is in use by another search ({holder or 'a process starting up'}); "
                             "wait for it to finish, or choose another --out.") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {command}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _folder_state(folder: str) -> str:
    """"missing", "empty", "run" (a keras_augtune search), "ours" (keras_augtune's lock file,
    no run yet) or "foreign" (anything else)."""
    if not os.path.isdir(folder):
        return "missing"
    entries = set(os.listdir(folder))
    if not entries - {LOCK_FILE}:
        return "empty"
    try:
        if read_run_file(folder) is not None:
            return "run"
    except ValueError:
        pass  # a run.json that is not ours, or damaged: not a run we may replace silently
    return "ours" if LOCK_FILE in entries and RUN_FILE not in entries else "foreign"


def claim_output_folder(folder: str, resume: bool, overwrite: bool) -> FolderLock:
    """Check that a search may write into ``folder``, create it, and lock it (see the module
    docstring); raises a one-line ``ValueError`` otherwise."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"--out {folder!r} is a file; give a folder.")
    foreign = (f"--out {folder} is not empty and holds no keras_augtune search; nothing is written there "
               "unless you pass --overwrite (which replaces tuner/, run.json, notebook.csv, report.html, "
               "best_policies.json and sample_images.npz, and keeps every other file). Or choose a new folder.")
    if not resume and not overwrite and _folder_state(folder) == "foreign":
        raise ValueError(foreign)  # before creating anything in someone else's folder
    try:
        os.makedirs(folder, exist_ok=True)
        lock = FolderLock(folder)
    except OSError as exc:
        reason = disk_error(exc) or exc.strerror or str(exc)
        raise ValueError(f"--out {folder}: cannot write there: {reason}.") from None
    state = _folder_state(folder)  # again, now that no other search can change it
    if not resume and not overwrite:
        if state == "run":
            lock.release()
            trials = len(glob.glob(os.path.join(folder, "*", "trial_*", "trial.json")))
            raise ValueError(f"--out {folder} already holds a search ({trials} trials): continue it with --resume, "
                             "or start afresh with --overwrite (its results are replaced).")
        if state == "foreign":
            lock.release()
            raise ValueError(foreign)
    return lock


# ----------------------------------------------------------------------------- the data
def data_fingerprint(x: np.ndarray, y: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """What ``--resume`` compares: image count, shape and type, classes and their counts, and a
    SHA-256 of the labels and of an evenly spread sample of the images."""
    x, y = np.asarray(x), np.asarray(y)
    sample = np.unique(np.linspace(0, len(x) - 1, num=min(len(x), FINGERPRINT_SAMPLE)).astype(np.int64))
    digest = hashlib.sha256()
    digest.update(f"{x.shape}{x.dtype}".encode())
    digest.update(np.ascontiguousarray(y).tobytes())
    digest.update(np.ascontiguousarray(x[sample]).tobytes())
    counts = np.bincount(y, minlength=len(class_names)) if y.ndim == 1 else np.asarray(y).sum(axis=0)
    return {
        "images": int(len(x)), "image_shape": [int(s) for s in x.shape[1:]], "dtype": str(x.dtype),
        "classes": [str(c) for c in class_names], "class_counts": [int(c) for c in counts],
        "sample_sha256": digest.hexdigest(),
    }


def fingerprint_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words (empty when the data is the same)."""
    changes = []
    old_classes, new_classes = list(before.get("classes", [])), list(now["classes"])
    if old_classes != new_classes:
        added = [c for c in new_classes if c not in old_classes]
        removed = [c for c in old_classes if c not in new_classes]
        detail = "; ".join(part for part in (
            f"added {', '.join(map(repr, added[:5]))}" if added else "",
            f"removed {', '.join(map(repr, removed[:5]))}" if removed else "") if part) or "renumbered"
        changes.append(f"{len(new_classes)} classes (was {len(old_classes)}: {detail})")
    if before.get("images") != now["images"]:
        changes.append(f"{now['images']:,} images (was {before.get('images')})")
    elif old_classes == new_classes and before.get("class_counts") != now["class_counts"]:
        changes.append("the images per class differ")
    if before.get("image_shape") != now["image_shape"] or before.get("dtype") != now["dtype"]:
        shape = "x".join(map(str, now["image_shape"]))
        old = "x".join(map(str, before.get("image_shape") or []))
        changes.append(f"images of {shape} {now['dtype']} (was {old} {before.get('dtype')})")
    if not changes and before.get("sample_sha256") != now["sample_sha256"]:
        changes.append("the same counts and shapes, but different image or label content")
    return changes


# ----------------------------------------------------------------------------- full or read-only disks
def disk_error(exc: BaseException) -> str | None:
    """A short reason when ``exc`` (or an exception it chains) comes from a full or read-only
    disk: an ``OSError`` with ``ENOSPC``/``EDQUOT``/``EROFS``, or TensorFlow's and HDF5's own
    errors that carry the system's message. ``None`` otherwise."""
    seen, stack = set(), [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        for code, reason in _DISK_ERRORS.items():
            if (isinstance(error, OSError) and error.errno == code) or os.strerror(code) in str(error):
                path = _path_in(error)
                return reason + (f" (writing {path})" if path else "")
        stack.extend((error.__cause__, error.__context__))
    return None


def _path_in(error: BaseException) -> str | None:
    if isinstance(error, OSError) and error.filename:
        return str(error.filename)
    text = str(error)
    for marker in ("filename = '", "file '"):  # HDF5: "filename = '/x/checkpoint.weights.h5'"
        if marker in text:
            return text.split(marker, 1)[1].split("'", 1)[0]
    head = text.split(";", 1)[0].strip()  # TensorFlow: "/x/trial.json; No space left on device"
    return head if head.startswith(os.sep) and " " not in head else None


# ----------------------------------------------------------------------------- damaged files
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
                raise ValueError(f"not a Keras Tuner {os.path.basename(path)} ({_json_kind(data)})")
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
