"""The file helpers: atomic writes, the notebook CSV (rows replaced per trial, column order)."""

import csv
import json
import os

from keras_augtune.files import Notebook, atomic_write, atomic_write_json


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(path.parent) == ["a.json"]
    assert atomic_write(str(tmp_path / "t.txt"), "x\n") == str(tmp_path / "t.txt")


def test_notebook_replaces_a_trials_rows_and_keeps_the_tail_last(tmp_path):
    notebook = Notebook(tmp_path / "n.csv", tail=("reward", "policy"))
    notebook.write_trial("0", [{"trial": "0", "execution": 0, "epoch": 1, "policy": "p", "reward": 0.5, "loss": 1.0}])
    notebook.write_trial("1", [{"trial": "1", "execution": 0, "epoch": 1, "policy": "q", "reward": 0.6, "loss": 2.0}])
    notebook.write_trial("0", [{"trial": "0", "execution": 0, "epoch": 1, "policy": "p", "reward": 0.7, "loss": 0.5}])
    with open(notebook.path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["trial", "execution", "epoch", "loss", "reward", "policy"]
    assert [(r["trial"], r["reward"]) for r in rows] == [("1", "0.6"), ("0", "0.7")]
    assert sorted(os.listdir(tmp_path)) == ["n.csv"]  # no lock file left behind


def _write_rows(path, worker, count):
    notebook = Notebook(path)
    for i in range(count):
        notebook.write_trial(f"{worker}-{i}", [{"trial": f"{worker}-{i}", "execution": 0, "epoch": 1, "loss": 1.0}])


def test_notebook_lock_is_removed_yet_excludes_concurrent_writers(tmp_path):
    """Processes writing one notebook at once keep every row, though each removes the lock file
    on release (a waiter on a removed lock file re-locks the new one)."""
    import multiprocessing

    path = str(tmp_path / "n.csv")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_rows, args=(path, w, 15)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert all(p.exitcode == 0 for p in workers)
    with open(path, newline="") as f:
        trials = {r["trial"] for r in csv.DictReader(f)}
    assert trials == {f"{w}-{i}" for w in range(3) for i in range(15)}
    assert sorted(os.listdir(tmp_path)) == ["n.csv"]
