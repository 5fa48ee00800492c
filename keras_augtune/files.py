"""Files a search writes: one atomic write, one cross-process lock, the per-epoch notebook CSV,
a model's weights file written atomically and read back, and telling a full or read-only disk
from other errors.

Every file the package writes (exported policies, ``run.json``, the notebook, the
HTML report, a policy's JSON) goes through `atomic_write()`: the text lands in a
temporary file beside the target, is flushed to disk, then renamed over the target,
so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

_DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    # not the trial's fault either: the search stops, and the trial runs again on --resume
    errno.EIO: "an input/output error on the disk",
}


def atomic_write(path: str | os.PathLike, text: str) -> str:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename); returns the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"  # unique per process and thread (the chief's server)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_json(path: str | os.PathLike, payload: Any) -> str:
    """Write ``payload`` as indented JSON (and a final newline) with `atomic_write()`."""
    return atomic_write(path, json.dumps(payload, indent=2) + "\n")


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]], fields: list[str] | None = None) -> str:
    """Write ``rows`` as CSV with `atomic_write()`; columns ``fields`` (default: every key, in
    order of first appearance); a missing cell is empty."""
    if fields is None:
        fields = []
        for row in rows:
            fields.extend(k for k in row if k not in fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, buffer.getvalue())


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if needed) across processes.

    The file is removed on release, so no lock file is left behind: a process that was
    waiting on the removed file notices (``path`` no longer names the file it locked) and
    locks the new one instead. POSIX only (``fcntl``); elsewhere there is no cross-process
    lock and this does nothing.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock
        yield
        return
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # its holder removed it while we waited: lock the file now at ``path``
    try:
        yield
    finally:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        os.close(fd)  # closing drops the flock


class NotebookWarning(UserWarning):
    """The notebook could not be read or written; the trial's result is kept (see `Notebook`)."""


@contextmanager
def _csv_field_limit(limit: int = 2**31 - 1) -> Iterator[None]:
    """Lift the ``csv`` module's per-field limit (131,072 characters) while reading: a policy of
    300 sub-policies x 7 ops is written as one longer cell."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, limit))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def set_aside(path: str) -> str:
    """Rename ``path`` to ``path.damaged`` (``.damaged.1``, ... when taken); returns the new name."""
    kept, n = f"{path}.damaged", 1
    while os.path.exists(kept):
        kept, n = f"{path}.damaged.{n}", n + 1
    os.replace(path, kept)
    return kept


class Notebook:
    """The per-epoch CSV of a search: one row per (trial, execution, epoch).

    `write_trial()` replaces a trial's rows (a re-run trial never appears twice)
    under a lock file, so processes sharing the notebook (distributed workers on one
    machine) never drop each other's rows. ``tail`` columns are kept last.

    The notebook is a record, not the search's state: `write_trial()` never raises. A notebook
    that cannot be read (damaged, not UTF-8) is kept as ``notebook.csv.damaged`` and a new one
    started; a write that fails (a full disk) leaves the old notebook. Either way the problem is
    returned as a note (and warned as a `NotebookWarning`), and the trial keeps its result.
    """

    KEY_COLUMNS = ("trial", "execution", "epoch")

    def __init__(self, path: str | os.PathLike, tail: tuple[str, ...] = ()):
        self.path = os.fspath(path)
        self.tail = tuple(tail)

    def read(self) -> list[dict[str, str]]:
        """Every row (as text), in file order; none when the notebook does not exist yet."""
        if not os.path.exists(self.path):
            return []
        with _csv_field_limit(), open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def write_trial(self, trial_id: str, rows: list[dict[str, Any]], executions: Any = None) -> str | None:
        """Rewrite the notebook atomically with this trial's ``rows`` (replacing earlier ones; only
        those of the ``executions`` given, e.g. a confirmation's, when they are). Never raises:
        returns a one-line note when the notebook was damaged or could not be written, else None."""
        note = None
        try:
            with file_lock(self.path + ".lock"):
                try:
                    old = self.read()
                except (csv.Error, UnicodeDecodeError, ValueError) as exc:
                    kept = set_aside(self.path)
                    note = (f"{self.path} could not be read ({type(exc).__name__}: {str(exc)[:120]}): kept as "
                            f"{os.path.basename(kept)}, a new notebook starts with trial {trial_id}.")
                    old = []
                replaced = None if executions is None else {str(e) for e in executions}
                existing = [r for r in old if r.get("trial") != trial_id
                            or (replaced is not None and str(r.get("execution")) not in replaced)]
                all_rows = existing + rows
                fields = list(self.KEY_COLUMNS)
                for row in all_rows:
                    fields.extend(k for k in row if k is not None and k not in fields)
                tail = [k for k in self.tail if k in fields]
                write_csv(self.path, all_rows, [k for k in fields if k not in tail] + tail)
        except Exception as exc:  # a notebook problem never costs a trained trial
            reason = disk_error(exc) or f"{type(exc).__name__}: {str(exc)[:120]}"
            note = f"{self.path} was not updated with trial {trial_id}'s rows ({reason}); the trial's result is kept."
        if note:
            warnings.warn(NotebookWarning(note), stacklevel=2)
        return note


def save_weights(model: Any, path: str | os.PathLike) -> str:
    """``model.save_weights(path)``, atomically: Keras writes the HDF5 file in place, so a full disk
    or a crash mid-write left half a checkpoint under its name. Here it is written to a temporary
    name in the same folder (ending in ``.weights.h5``, as Keras requires), flushed to disk, then
    renamed over ``path``; the temporary file is removed when the write fails. Returns the path."""
    path = os.fspath(path)
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    tmp = f"{path[: len(path) - len(suffix)]}.tmp{os.getpid()}.{threading.get_ident()}{suffix}"
    try:
        model.save_weights(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_weights(model: Any, path: str | os.PathLike) -> None:
    """``model.load_weights(path)`` for a checkpoint the search saved from a trained model, into
    a fresh one (a continued Hyperband trial, a cached fold model): the model starts with a fresh
    optimizer, so Keras's warning that it skips the saved optimizer state is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(os.fspath(path))


# ----------------------------------------------------------------------------- full or read-only disks
def disk_error(exc: BaseException) -> str | None:
    """A short reason when ``exc`` (or an exception it chains) comes from a full, read-only or
    failing disk: an ``OSError`` with ``ENOSPC``/``EDQUOT``/``EROFS``/``EIO``, or TensorFlow's and HDF5's own
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
