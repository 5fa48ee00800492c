"""Reliability round 3 (issue 24): Keras Tuner's own state writes made atomic, damaged run files
repaired or named in one line, data that hangs or lies, and workers on other data.

Most cases are unit-level; one tiny real search (2 trials, in-process) is the template that the
resume and report cases copy. Each test names the defect it covers."""

import contextlib
import errno
import json
import os
import shutil
import signal
import warnings

import numpy as np
import pytest

from conftest import make_images
from keras_augtune import cli, runs

ARGS = ["--trials", "2", "--epochs", "1", "--batch-size", "32", "--initial-points", "1", "--sub-policies", "2",
        "--ops-per-sub-policy", "1", "--ops", "identity,rotate,invert,translate-x", "-q", "--no-report",
        "--confirm-top-k", "0"]


@contextlib.contextmanager
def alarm(seconds):
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds``."""
    def timeout(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line_error(capsys, argv, status=1):
    assert cli.main(argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished 2-trial search on a 2-class image folder."""
    root = tmp_path_factory.mktemp("template")
    make_images(root / "imgs")
    assert cli.main(["search", "--data", str(root / "imgs"), "--out", str(root / "run"), *ARGS]) == 0
    return root


@pytest.fixture
def copy(template, tmp_path):
    shutil.copytree(template, tmp_path / "w")
    run_file = tmp_path / "w" / "run" / "run.json"
    run = json.loads(run_file.read_text())
    run["settings"]["data"] = str(tmp_path / "w" / "imgs")
    run["command"] = "keras-augtune search (the original command)"
    run_file.write_text(json.dumps(run))
    return tmp_path / "w"


def nested(depth):
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------- Keras Tuner's own writes (high)
def test_keras_tuner_state_writes_are_atomic(tmp_path, monkeypatch):
    """A full disk while Keras Tuner writes oracle.json leaves the previous file whole."""
    from keras_tuner.src import utils

    from keras_augtune import compat, files

    monkeypatch.setattr(utils, "save_json", utils.save_json)  # undone after the test
    compat.atomic_state_writes()
    assert compat.atomic_state_writes() is False  # idempotent
    path = tmp_path / "oracle.json"
    utils.save_json(str(path), {"end_order": ["00"]})
    assert json.loads(path.read_text()) == {"end_order": ["00"]}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError) as caught:
        utils.save_json(str(path), {"end_order": ["00", "01"], "pad": "x" * 100_000})
    assert files.disk_error(caught.value)
    assert json.loads(path.read_text()) == {"end_order": ["00"]}  # not half a file
    assert os.listdir(tmp_path) == ["oracle.json"]  # no temporary file left


# ---------------------------------------------------------------- data that hangs or lies (medium)
def test_a_fifo_among_the_images_is_skipped_not_opened(tmp_path):
    from keras_augtune.images import DataWarning
    from keras_augtune.loaders import load_image_folder

    make_images(tmp_path / "imgs", per_class=3)
    os.mkfifo(tmp_path / "imgs" / "b" / "zz.png")
    with alarm(20), pytest.warns(DataWarning, match="zz.png: it is a FIFO"):
        x, y, _ = load_image_folder(str(tmp_path / "imgs"))
    assert len(x) == 6


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    for name in ("a", "b"):
        os.makedirs(tmp_path / "imgs" / name)
        image = Image.fromarray(np.tile(np.arange(16, dtype=np.uint8) * 16, (8, 1)))  # 16 wide, 8 high
        exif = image.getexif()
        exif[0x0112] = 6  # shown turned by 90 degrees: 8 wide, 16 high
        image.convert("RGB").save(tmp_path / "imgs" / name / "photo.jpg", exif=exif)
    x, _, _ = load_image_folder(str(tmp_path / "imgs"))
    assert x.shape[1:3] == (16, 8)


def test_image_size_has_an_upper_bound(tmp_path):
    from keras_augtune.loaders import load_data

    parser = cli.build_parser()
    for argv in (["search", "--image-size", "100000"], ["show", "p.json", "--image-size", "30000"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]))
    with alarm(20), pytest.raises(ValueError, match="image_size must be at most 4,096"):
        load_data(str(tmp_path / "d.npz"), image_size=100_000)


def test_out_inside_the_data_folder_is_refused_and_not_created(tmp_path, capsys):
    make_images(tmp_path / "imgs", per_class=2)
    err = one_line_error(capsys, ["search", "--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "imgs" / "results")])
    assert "is inside --data" in err
    assert not (tmp_path / "imgs" / "results").exists()


def test_out_equal_to_data_with_overwrite_is_refused(tmp_path, capsys):
    make_images(tmp_path / "imgs", per_class=2)
    err = one_line_error(capsys, ["search", "--data", str(tmp_path / "imgs"), "--out", str(tmp_path / "imgs"),
                                  "--overwrite"])
    assert "is --data" in err
    assert sorted(os.listdir(tmp_path / "imgs")) == ["a", "b"]


def test_a_search_folder_left_inside_the_data_is_not_a_class(tmp_path):
    from keras_augtune.images import DataWarning
    from keras_augtune.loaders import load_image_folder

    make_images(tmp_path / "imgs", classes=("a", "b", "results"), per_class=2)
    (tmp_path / "imgs" / "results" / "run.json").write_text("{}")
    with pytest.warns(DataWarning, match="output folder"):
        _, _, classes = load_image_folder(str(tmp_path / "imgs"))
    assert classes == ["a", "b"]


# ---------------------------------------------------------------- the notebook never fails a trial (medium)
def test_notebook_cells_beyond_the_csv_field_limit(tmp_path):
    from keras_augtune.files import Notebook

    book = Notebook(tmp_path / "notebook.csv")
    policy = "rotate(0.5, 0.5) | " * 10_000  # a 300 x 7 policy is longer than csv's 131,072 limit
    assert book.write_trial("00", [{"trial": "00", "execution": 0, "epoch": 1, "policy": policy}]) is None
    assert book.write_trial("01", [{"trial": "01", "execution": 0, "epoch": 1, "policy": policy}]) is None
    assert [r["trial"] for r in book.read()] == ["00", "01"]


def test_a_garbage_notebook_is_set_aside_not_raised(tmp_path):
    from keras_augtune.files import Notebook, NotebookWarning

    path = tmp_path / "notebook.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage\n" * 10)
    with pytest.warns(NotebookWarning, match="could not be read"):
        note = Notebook(path).write_trial("03", [{"trial": "03", "execution": 0, "epoch": 1, "reward": 0.5}])
    assert "notebook.csv.damaged" in note
    assert (tmp_path / "notebook.csv.damaged").read_bytes().startswith(b"\xff\xfe")
    assert [r["trial"] for r in Notebook(path).read()] == ["03"]


def test_a_full_disk_while_writing_the_notebook_is_a_note(tmp_path, monkeypatch):
    from keras_augtune import files

    def full(*_, **__):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "notebook.csv"))

    monkeypatch.setattr(files, "write_csv", full)
    with pytest.warns(files.NotebookWarning):
        note = files.Notebook(tmp_path / "notebook.csv").write_trial("00", [{"trial": "00", "epoch": 1}])
    assert "no space left" in note and "result is kept" in note


# ---------------------------------------------------------------- damaged run files
def test_damaged_tuner_file_and_execution_record_are_repaired(tmp_path):
    from keras_augtune.repair import repair_damaged_trials

    project = tmp_path / "tuner"
    (project / "executions").mkdir(parents=True)
    (project / "tuner0.json").write_text("garbage")
    (project / "executions" / "abc.json").write_text(nested(200_000))
    lines = repair_damaged_trials(str(project))
    assert json.loads((project / "tuner0.json").read_text()) == {}
    assert (project / "tuner0.json.damaged").read_text() == "garbage"
    assert not (project / "executions" / "abc.json").exists() and (project / "executions" / "abc.json.damaged").exists()
    assert any("tuner0.json" in line for line in lines) and any("abc.json" in line for line in lines)


@pytest.mark.parametrize("state, field", [({}, "ongoing_trials"), ({"ongoing_trials": 5}, "ongoing_trials")])
def test_a_malformed_oracle_json_names_the_file_and_the_field(tmp_path, state, field):
    from keras_augtune.repair import damaged_files, repair_damaged_trials

    full = {"ongoing_trials": {}, "hyperparameters": {}, "start_order": [], "end_order": [], "run_times": {},
            "retry_queue": [], "tried_so_far": [], "id_to_hash": {}, "display": {}}
    (tmp_path / "oracle.json").write_text(json.dumps(full))
    assert damaged_files(str(tmp_path)) == {}
    (tmp_path / "oracle.json").write_text(json.dumps({**full, **state} if state else {}))
    with pytest.raises(ValueError, match=rf"oracle.json is damaged .*'{field}'"):
        repair_damaged_trials(str(tmp_path))


def test_a_trial_score_that_is_not_a_number_names_the_field(tmp_path):
    from keras_augtune.repair import damaged_files

    (tmp_path / "trial_00").mkdir()
    trial = {"trial_id": "00", "hyperparameters": {}, "metrics": {}, "score": "abc", "best_step": 0, "status": "COMPLETED"}
    (tmp_path / "trial_00" / "trial.json").write_text(json.dumps(trial))
    [(path, reason)] = damaged_files(str(tmp_path)).items()
    assert path.endswith("trial.json") and "field 'score' must be a number or null" in reason


@pytest.mark.parametrize("reward", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_rewards_in_an_execution_record_are_refused(reward):
    from keras_augtune.records import FORMAT, ExecutionRecord

    data = json.loads('{"version": 1, "values": {}, "search_seed": 1, '
                      f'"executions": {{"0": {{"reward": {reward}}}}}}}')
    data["format"] = FORMAT
    with pytest.raises(ValueError, match="field 'reward' must be a finite number"):
        ExecutionRecord.from_json(data)


def test_a_damaged_sample_images_file_is_a_note(tmp_path):
    from keras_augtune import report
    from keras_augtune.repair import DamagedFileWarning

    (tmp_path / report.SAMPLE_FILE).write_bytes(b"PK\x03\x04 not a zip")
    with pytest.warns(DamagedFileWarning, match="sample_images.npz"):
        images, _ = report._sample_images(str(tmp_path), str(tmp_path), None)
    assert images is None


def test_a_damaged_execution_record_warning_is_a_note_line(capsys):
    with cli._notes():
        warnings.warn("skipped the damaged execution record x.json (ValueError: bad); its executions will be "
                      "measured again", stacklevel=1)
    err = capsys.readouterr().err
    assert err.startswith("keras-augtune: note: skipped the damaged execution record") and "UserWarning" not in err


def test_report_and_resume_with_damaged_files(copy, capsys):
    """Nested execution record: a one-line report error, then set aside by --resume; a garbage
    tuner0.json and notebook.csv on --resume: repaired, the new trial kept; run.json keeps the
    command that started the run."""
    run = copy / "run"
    record = sorted((run / "tuner" / "executions").glob("*.json"))[0]
    record.write_text(nested(200_000))
    err = one_line_error(capsys, ["report", str(run)])
    assert "nested too deeply" in err and record.name in err
    (run / "tuner" / "tuner0.json").write_text("garbage")
    (run / "notebook.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert cli.main(["search", "--resume", "--out", str(run), "--trials", "3", "-q", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "tuner0.json was damaged" in err and record.name in err and "notebook.csv could not be read" in err
    statuses = [json.loads((run / "tuner" / t / "trial.json").read_text())["status"]
                for t in sorted(os.listdir(run / "tuner")) if t.startswith("trial_")]
    assert statuses == ["COMPLETED"] * 3
    from keras_augtune.files import Notebook

    assert len({r["trial"] for r in Notebook(run / "notebook.csv").read()}) == 1  # the new trial's rows
    saved = json.loads((run / "run.json").read_text())
    assert saved["command"] == "keras-augtune search (the original command)" and len(saved["resumed"]) == 1


# ---------------------------------------------------------------- distributed workers on other data
def test_a_worker_on_other_data_is_refused_naming_the_difference():
    import keras_tuner
    from keras_tuner.engine import trial as trial_module

    from keras_augtune import compat, distributed
    from keras_augtune.data import data_fingerprint

    x, y = np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 2
    chief = data_fingerprint(x, y, ["a", "b"])
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=2)
    servicer = distributed.make_servicer(oracle, data_fingerprint=chief)

    class Client:  # the worker's OracleClient, talking to the servicer directly
        def get_trial(self, trial_id):
            request = compat.protos().get_service().GetTrialRequest(trial_id=trial_id)
            return trial_module.Trial.from_proto(servicer.GetTrial(request, None).trial)

    assert distributed.check_worker_data(Client(), data_fingerprint(x, y, ["a", "b"])) is True
    with pytest.raises(ValueError, match=r"not the data the chief searches: here 30 images"):
        distributed.check_worker_data(Client(), data_fingerprint(np.zeros((30, 8, 8, 1), np.uint8), np.arange(30) % 2,
                                                                 ["a", "b"]))


# ---------------------------------------------------------------- one-line errors (low)
def test_resume_after_a_kill_between_run_json_and_oracle_json(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"format": runs.RUN_FORMAT, "project_name": "tuner",
                                              "settings": {"trials": 2, "seed": 1}}))
    settings = cli._settings(cli.build_parser().parse_args(["search", "--resume", "--out", str(out)]), str(out))
    assert settings["seed"] == 1 and settings["trials"] == 2


def test_consecutive_failures_are_one_line(monkeypatch, capsys):
    def stop(args):
        raise RuntimeError("Number of consecutive failures exceeded the limit of 3.\n  File x, line 1\nValueError: bad")

    monkeypatch.setattr(cli, "cmd_search", stop)
    err = one_line_error(capsys, ["search", "--out", "somewhere"])
    assert "the search stopped: Number of consecutive failures" in err and "ValueError: bad" in err and "--resume" in err
    assert len(err.strip().splitlines()) == 1


def test_seeds_out_of_range_are_one_line(capsys):
    from keras_augtune.checks import check_seed

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["search", "--seed", str(2**70)])
    assert "must be at most 4,294,967,295" in capsys.readouterr().err
    for seed in (-1, 2**70):
        with pytest.raises(TypeError, match=r"seed must be an integer from 0 to 4294967295"):
            check_seed(seed)


def test_a_train_set_smaller_than_the_classes_is_named():
    from keras_augtune.data import stratified_subsample

    with pytest.raises(ValueError, match=r"train_set_size=1 is smaller than the 10 classes"):
        stratified_subsample(np.arange(100) % 10, 1, seed=0)


def test_show_with_a_reward_that_is_not_a_number(tmp_path, capsys):
    from keras_augtune import Policy

    policy = Policy([[("rotate", 0.5, 0.5)]]).to_dict()
    policy["metadata"] = {"reward": "abc", "gain": "x", "gain_interval": [1]}
    (tmp_path / "p.json").write_text(json.dumps(policy))
    assert cli.main(["show", str(tmp_path / "p.json"), "--images", "1", "--augmentations", "1",
                     "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").exists()


def test_out_a_dangling_link_is_one_line(tmp_path):
    os.symlink(tmp_path / "gone", tmp_path / "out")
    with pytest.raises(ValueError, match="which does not exist"):
        runs.claim_output_folder(str(tmp_path / "out"), resume=False, overwrite=False)


def test_epochs_have_an_upper_bound(capsys):
    from keras_augtune.checks import MAX_EPOCHS, check_int

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["search", "--epochs", str(10**9)])
    assert "must be at most 10,000" in capsys.readouterr().err
    with pytest.raises(ValueError, match="child_epochs must be at most 10,000"):
        check_int("child_epochs", 10**9, maximum=MAX_EPOCHS)


def test_a_policy_file_with_a_byte_order_mark(tmp_path):
    from keras_augtune.policies_file import load_policies

    from keras_augtune import Policy

    (tmp_path / "p.json").write_bytes(b"\xef\xbb\xbf" + Policy([[("rotate", 0.5, 0.5)]]).to_json().encode())
    assert len(load_policies(str(tmp_path / "p.json"))) == 1


def test_run_json_keeps_the_command_that_started_the_run(tmp_path):
    first = {"command": "keras-augtune search --trials 3", "resumed": []}
    runs.write_run_file(str(tmp_path), "tuner", {}, {}, "keras-augtune search --resume", first)
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["command"] == "keras-augtune search --trials 3"
    assert saved["resumed"] == ["keras-augtune search --resume"]


def test_an_input_output_error_is_a_disk_error():
    """EIO stops the search (the trial runs again on --resume) instead of failing the trial."""
    from keras_augtune.files import disk_error

    assert disk_error(OSError(errno.EIO, os.strerror(errno.EIO), "/x/trial.json")) == (
        "an input/output error on the disk (writing /x/trial.json)")


def test_a_search_killed_before_run_json_says_to_start_it_again(tmp_path):
    """Killed at its first write (only the lock file there): --resume says to start it without
    --resume, and that plain search is allowed in the folder."""
    out = tmp_path / "run"
    out.mkdir()
    (out / runs.LOCK_FILE).write_text("pid 1: keras-augtune search\n")
    with pytest.raises(ValueError, match="stopped before saving anything\\). Start it without --resume"):
        cli._settings(cli.build_parser().parse_args(["search", "--resume", "--out", str(out)]), str(out))
    runs.claim_output_folder(str(out), resume=False, overwrite=False).release()


def test_show_counts_are_bounded_by_the_parser(capsys):
    """--images and --augmentations are checked by the command line's bounded integer type."""
    for flag, value, limit in (("--images", "33", "32"), ("--augmentations", "21", "20")):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["show", "p.json", flag, value])
        assert f"must be at most {limit}, got {value}" in capsys.readouterr().err


def test_a_trial_written_just_before_oracle_json_is_created_again(copy, capsys):
    """kill -9 between a new trial's trial.json and oracle.json (found by the fault sweep): the
    orphan is set aside on --resume and the trial created again."""
    from keras_augtune.repair import repair_damaged_trials

    project = copy / "run" / "tuner"
    orphan = project / "trial_2" / "trial.json"
    orphan.parent.mkdir()
    state = json.loads((project / "trial_1" / "trial.json").read_text())
    orphan.write_text(json.dumps({**state, "trial_id": "2", "status": "RUNNING", "score": None}))
    lines = repair_damaged_trials(str(project))
    assert any("had not created yet" in line for line in lines)
    assert not orphan.exists() and (project / "trial_2" / "trial.json.orphan").exists()
    assert repair_damaged_trials(str(project)) == []  # a known trial is never set aside
