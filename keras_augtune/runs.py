"""The output folder of ``keras-augtune search``: whose it is, one search at a time, and how the
run was made.

* `read_run_file()`: ``run.json``, validated (an object, its settings an object, its
  ``project_name`` a plain folder name inside the run folder);
* `claim_output_folder()`: refuses a folder that holds something else (unless
  ``overwrite``) or a finished search (suggesting ``--resume``/``--overwrite``), a dangling
  link, or the data folder itself (`check_out_outside_data()`), and takes an exclusive lock on
  it for the life of the process: a second search on the same folder fails at once, naming
  the process that holds it;
* `resume_settings()`, `check_resume_data()`, `write_run_file()`: what ``--resume`` keeps (the
  run's settings, its data, the command that started it).

The library helpers a search uses wherever it runs live elsewhere: full or read-only disks in
[`keras_augtune.files`][keras_augtune.files] (`disk_error()`), damaged Keras Tuner files in
[`keras_augtune.repair`][keras_augtune.repair], data fingerprints in [`keras_augtune.data`][keras_augtune.data].

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import socket
import sys
from typing import Any

from keras_augtune.checks import json_kind
from keras_augtune.files import atomic_write_json, disk_error

#: Written by ``keras-augtune search`` next to the tuner directory: how the run was made.
RUN_FILE = "run.json"
RUN_FORMAT = "keras_augtune.run"
#: The lock file of a search folder (also the mark of a folder keras_augtune created).
LOCK_FILE = ".keras_augtune.lock"


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
        raise ValueError(f"{path} must be a JSON object (the run's settings), got {json_kind(run)}.")
    if run.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise ValueError(f"{path} is not a keras_augtune run file (format {run.get('format')!r:.60}).")
    if not isinstance(run.get("settings", {}), dict):
        raise ValueError(f"{path}: field 'settings' must be an object, got {json_kind(run['settings'])}.")
    check_project_name(run.get("project_name", "tuner"), path)
    return run


def check_project_name(name: Any, where: str) -> str:
    """``name`` when it is a plain folder name (so the project stays inside the run folder)."""
    if (not isinstance(name, str) or not name or name in (".", "..") or "\0" in name
            or any(sep and sep in name for sep in ("/", "\\", os.sep, os.altsep))):
        raise ValueError(f"{where}: field 'project_name' must be a folder name inside the run folder, "
                         f"got {name!r:.80}.")
    return name


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
    if os.path.islink(folder) and not os.path.exists(folder):
        raise ValueError(f"--out {folder!r} is a link to {os.readlink(folder)!r}, which does not exist; "
                         "create that folder, remove the link, or choose another --out.")
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


# ----------------------------------------------------------------------------- resuming
def resume_settings(folder: str, explicit: dict[str, Any], defaults: dict[str, Any], fixed: list[str],
                    changeable: tuple[str, ...]) -> dict[str, Any]:
    """The settings a resumed search runs with: the run's own (from ``run.json``), with only the
    ``changeable`` ones taken from ``explicit`` (the options given); a ``fixed`` one given with
    another value is refused. A run.json without ``oracle.json`` beside it (stopped before Keras
    Tuner saved anything) resumes too: its search starts again with its settings."""
    run = read_run_file(folder)
    if run is None:  # also a search stopped before its first write: nothing was saved, start it again
        raise ValueError(f"--resume: no search to continue in {folder} (no {os.path.join(folder, RUN_FILE)}: none "
                         "was started there, or it stopped before saving anything). Start it without --resume, "
                         "or point --out at an earlier search folder.")
    settings = {**defaults, **run.get("settings", {})}
    changed = [k for k in fixed if k in explicit and explicit[k] != settings.get(k)]
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise ValueError(f"--resume keeps the run's settings; {flags} differ from the run in {folder}. "
                         "Drop them, or start a fresh search with another --out.")
    settings.update({k: explicit[k] for k in changeable if k in explicit})
    return settings


def check_resume_data(folder: str, run: dict[str, Any], fingerprint: dict[str, Any], data: str) -> str | None:
    """Refuse to resume on other data than the run's (a one-line ``ValueError`` naming what
    differs); a note when the run predates fingerprints."""
    from keras_augtune.data import fingerprint_changes

    if not isinstance(run.get("data_fingerprint"), dict):
        return (f"{os.path.join(folder, RUN_FILE)} predates data fingerprints: the data cannot be checked against "
                "the one the run started with.")
    changes = fingerprint_changes(run["data_fingerprint"], fingerprint)
    if changes:
        raise ValueError(f"--resume: the data in {data} is not the data this search ran on: now "
                         + "; ".join(changes) + ". Restore that data, or start a new search with another --out.")
    return None


def write_run_file(folder: str, project_name: str, settings: dict[str, Any], fingerprint: dict[str, Any],
                   command: str | None, previous: dict[str, Any] | None = None, oracle_seed: Any = None) -> str:
    """Write ``run.json``; when resuming (``previous``: the run's file), the command that started
    the run is kept and this one added to ``resumed``. ``oracle_seed``: the oracle's seed (Keras
    Tuner draws one when ``--seed`` is 0), from which a damaged ``oracle.json`` is rebuilt."""
    resumed = previous.get("resumed") if previous else None
    resumed = list(resumed) if isinstance(resumed, list) else []
    return atomic_write_json(os.path.join(folder, RUN_FILE), {
        "format": RUN_FORMAT, "version": 1, "project_name": project_name, "settings": settings,
        "command": previous.get("command") if previous is not None else command,
        "resumed": resumed + [command] if previous is not None else [],
        "data_fingerprint": fingerprint, **({"oracle_seed": oracle_seed} if oracle_seed is not None else {}),
    })


def check_out_outside_data(out: str, data: str) -> None:
    """Refuse an --out that is the --data folder or inside it: its folders would be read as classes
    (and --overwrite would write the search into the user's images)."""
    if data == "digits" or not os.path.isdir(data):
        return
    out_real, data_real = os.path.realpath(out), os.path.realpath(data)
    if out_real == data_real or out_real.startswith(data_real.rstrip(os.sep) + os.sep):
        where = "is" if out_real == data_real else "is inside"
        raise ValueError(f"--out {out} {where} --data {data}: the search's folders would be read as classes of "
                         "images. Choose an --out outside the data folder.")
