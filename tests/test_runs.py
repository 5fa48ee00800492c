"""The output folder of ``keras-augtune search`` (issue 13): one search per folder, never writing
into a folder that is not ours, resuming only onto the same data, and full, read-only or
damaged disks answered with one line while every finished trial is kept.

One small real search (2 trials, in-process) is the template the tests copy; the full disk is
a real tmpfs and a real ``keras-augtune`` subprocess (skipped only where mounting is impossible)."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import make_images
from keras_augtune import cli, runs

ARGS = ["--trials", "2", "--epochs", "1", "--batch-size", "32", "--initial-points", "1", "--sub-policies", "2",
        "--ops-per-sub-policy", "1", "--ops", "identity,rotate,invert,translate-x", "-q", "--no-report",
        "--confirm-top-k", "0"]  # the trials only: the race is tested in test_race_search.py and test_cli.py


@contextlib.contextmanager
def cwd(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished 2-trial search on a 2-class image folder, started with a *relative* --data."""
    root = tmp_path_factory.mktemp("template")
    make_images(root / "imgs")
    with cwd(root):
        assert cli.main(["search", "--data", "imgs", "--out", "run", *ARGS]) == 0
    return root


@pytest.fixture
def copy(template, tmp_path):
    """A private copy of the template (data and run), with the run's stored data path moved along."""
    shutil.copytree(template, tmp_path / "w")
    run_file = tmp_path / "w" / "run" / "run.json"
    run = json.loads(run_file.read_text())
    run["settings"]["data"] = str(tmp_path / "w" / "imgs")
    run_file.write_text(json.dumps(run))
    return tmp_path / "w"


def error(capsys, argv):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def trials(run):
    found = {}
    for name in os.listdir(run / "tuner"):
        if name.startswith("trial_"):
            with open(run / "tuner" / name / "trial.json") as f:
                data = json.load(f)
            found[data["trial_id"]] = data
    return found


# ---------------------------------------------------------------- resume only onto the same data
def test_resume_from_another_directory_uses_the_same_data(template, tmp_path, capsys):
    run = json.loads((template / "run" / "run.json").read_text())
    assert run["settings"]["data"] == str(template / "imgs")  # absolute, though given as "imgs"
    assert run["data_fingerprint"]["classes"] == ["a", "b"] and run["data_fingerprint"]["images"] == 40
    elsewhere = tmp_path / "elsewhere"
    make_images(elsewhere / "imgs", classes=("x", "y", "z"), seed=1)  # another "imgs" here
    with cwd(elsewhere):
        shutil.copytree(template / "run", "run")
        assert cli.main(["search", "--resume", "--out", "run", "-q", "--no-report"]) == 0  # the original data
        err = error(capsys, ["search", "--resume", "--out", "run", "--data", "imgs", "-q"])
    assert "--data differ from the run" in err


def test_resume_refuses_data_that_changed(copy, capsys):
    make_images(copy / "imgs", classes=("c",), per_class=20, seed=2)  # a class folder added
    err = error(capsys, ["search", "--resume", "--out", str(copy / "run"), "--trials", "3", "-q"])
    assert "is not the data this search ran on: now 3 classes (was 2: added 'c'); 60 images (was 40)" in err
    shutil.rmtree(copy / "imgs" / "c")
    from PIL import Image

    Image.fromarray(np.zeros((12, 12), np.uint8)).save(copy / "imgs" / "a" / "3.png")  # same counts, new pixels
    err = error(capsys, ["search", "--resume", "--out", str(copy / "run"), "--trials", "3", "-q"])
    assert "now the same counts and shapes, but different image or label content" in err
    assert len(trials(copy / "run")) == 2  # nothing was trained on the changed data


# ---------------------------------------------------------------- one search per folder, never others' files
def test_a_second_search_on_the_same_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "keras_augtune", "search", "--out", str(out), "--image-size", "12",
                              *ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = out / runs.LOCK_FILE
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        err = error(capsys, ["search", "--out", str(out), "--image-size", "12", *ARGS])
        assert time.monotonic() - started < 10
        assert f"--out {out} is in use by another search (pid {first.pid} on " in err
    finally:
        first.kill()
        first.wait(timeout=30)
    runs.claim_output_folder(str(out), resume=False, overwrite=True).release()  # the lock died with its process


def test_a_folder_that_is_not_a_search_is_never_written(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "tuner").mkdir(parents=True)
    (out / "tuner" / "thesis.tex").write_text("years of work")
    (out / "notebook.csv").write_text("my,data\n")
    err = error(capsys, ["search", "--out", str(out), "--image-size", "12", *ARGS])
    assert "is not empty and holds no keras_augtune search" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == ["notebook.csv", "tuner"]  # not even a lock file was left
    assert (out / "tuner" / "thesis.tex").read_text() == "years of work"
    runs.claim_output_folder(str(out), resume=False, overwrite=True).release()  # --overwrite: the user's choice


def test_a_finished_search_suggests_resume_or_overwrite(copy, capsys):
    before = sorted(os.listdir(copy / "run" / "tuner"))
    err = error(capsys, ["search", "--out", str(copy / "run"), *ARGS])
    assert "already holds a search (2 trials): continue it with --resume, or start afresh with --overwrite" in err
    assert sorted(os.listdir(copy / "run" / "tuner")) == before
    assert "give one of them" in error(capsys, ["search", "--out", str(copy / "run"), "--resume", "--overwrite"])


# ---------------------------------------------------------------- damaged files, full and read-only disks
def test_a_trial_file_cut_short_is_named_and_every_other_trial_kept(copy, capsys):
    run = copy / "run"
    before = trials(run)
    damaged = run / "tuner" / "trial_1" / "trial.json"
    cut = damaged.read_bytes()[:700]
    damaged.write_bytes(cut)  # what a full disk leaves of a non-atomic write
    assert cli.main(["report", str(run), "--out", str(copy / "r.html")]) == 0
    captured = capsys.readouterr()
    assert f"note: skipped the damaged file {damaged} (700 bytes, cut short or corrupt" in captured.err
    assert "1 trial (1 completed)" in captured.out
    assert cli.main(["search", "--resume", "--out", str(run), "--trials", "3", "-q", "--no-report"]) == 0
    assert f"{damaged} was damaged (700 bytes, cut short or corrupt" in capsys.readouterr().err
    after = trials(run)
    assert after["0"]["status"] == "COMPLETED" and after["0"]["score"] == before["0"]["score"]
    assert after["1"]["status"] == "FAILED" and "trial.json was damaged" in after["1"]["message"]
    assert after["2"]["status"] == "COMPLETED"
    assert (damaged.parent / "trial.json.damaged").read_bytes() == cut  # kept as it was


@contextlib.contextmanager
def tmpfs(path, size, read_only=False):
    """A real small file system (root only); the test is skipped where mounting is impossible."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def test_a_read_only_out_is_one_line(copy, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        err = error(capsys, ["search", "--out", str(ro / "run"), *ARGS])
    assert f"--out {ro / 'run'}: cannot write there: the file system is read-only" in err
    with tmpfs(tmp_path / "disk", "4m") as disk:
        shutil.copytree(copy / "run", disk / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, timeout=30)
        err = error(capsys, ["search", "--resume", "--out", str(disk / "run"), "--trials", "3"])
    assert "cannot write there: the file system is read-only" in err


def test_a_disk_that_fills_mid_search_is_one_line_and_resumable(template, tmp_path, capsys):
    checkpoint = os.path.getsize(template / "run" / "tuner" / "trial_0" / "checkpoint.weights.h5")
    size = f"{(checkpoint * 3 // 2 + 96 * 1024) // 4096 * 4}k"  # trial 0 fits, trial 1's checkpoint does not
    with tmpfs(tmp_path / "disk", size) as disk:
        out = disk / "run"
        proc = subprocess.run([sys.executable, "-m", "keras_augtune", "search", "--data", str(template / "imgs"),
                               "--out", str(out), *ARGS], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert proc.returncode == 1, proc.stderr[-3000:]  # not 139 (a segfault at exit)
        assert "keras-augtune search: error: no space left on the device (writing " in proc.stderr
        assert f"Every finished trial is kept: free some space, then continue with: keras-augtune search " \
               f"--resume --out {out}" in proc.stderr
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
        assert trials(out)["0"]["status"] == "COMPLETED"
        score = trials(out)["0"]["score"]
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True, timeout=30)
        assert cli.main(["search", "--resume", "--out", str(out), "-q", "--no-report"]) == 0
        after = trials(out)
        assert {k: t["status"] for k, t in after.items()} == {"0": "COMPLETED", "1": "COMPLETED"}
        assert after["0"]["score"] == score
