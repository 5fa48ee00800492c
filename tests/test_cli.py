"""The keras-augtune command: every command through a subprocess (few: each imports
TensorFlow), the error cases in-process through ``cli.main`` (same code path) plus one
through the installed console script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_augtune import cli

TINY = ["--image-size", "12", "--trials", "2", "--epochs", "1", "--train-set-size", "100",
        "--batch-size", "32", "--initial-points", "1", "--sub-policies", "2", "--ops-per-sub-policy", "1",
        "--ops", "identity,rotate,invert,translate-x", "--confirm-top-k", "1", "--confirm-executions", "2",
        "--recipes", "TrivialAugment"]


def run(*args, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_augtune", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = run("search", "--data", "digits", *TINY, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_search_writes_everything_and_prints_gain(search_dir):
    out, proc = search_dir
    for name in ("best_policies.json", "notebook.csv", "report.html", "run.json", "sample_images.npz",
                 "tuner/oracle.json"):
        assert (out / name).is_file(), name
    assert "Results summary: 2 completed" in proc.stdout
    assert "vs no augmentation" in proc.stdout and "best_policies.json" in proc.stdout
    # the race (its cost, its table) and one verdict naming a searched policy, the recipe or no augmentation
    assert ("Race: 1 searched policies, 1 recipe(s) and no augmentation on up to 2 fresh paired executions: "
            "about 6 trainings beyond the trials.") in proc.stdout
    assert "Race (2 confirmation executions" in proc.stdout and "TrivialAugment" in proc.stdout
    assert proc.stdout.count("Verdict: Use ") == 1
    assert "Traceback" not in proc.stderr
    assert "1 epoch per trial" in proc.stdout and "Op effects" in proc.stdout
    # TensorFlow's start-up lines are hidden (they bypass TF_CPP_MIN_LOG_LEVEL)
    assert "absl::InitializeLog" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr[:2000]
    assert "Trial 0 (1/2)" in proc.stderr + proc.stdout  # the progress line names trials by the tables' ids
    assert not (out / "notebook.csv.lock").exists()
    report = (out / "report.html").read_text()
    assert "settings: <code>" in report and f"{out} &middot;" in report  # as 'report DIR' writes it
    payload = json.loads((out / "best_policies.json").read_text())
    assert payload["format"] == "keras_augtune.policies" and len(payload["policies"]) == 2
    assert payload["verdict"]["text"] in proc.stdout and payload["verdict"]["kind"] in ("searched", "recipe", "baseline")
    assert len(payload["baseline_execution_rewards"]) == 1  # the trials' own: the race's executions are apart
    assert json.loads((out / "run.json").read_text())["settings"]["trials"] == 2
    assert (out / "report.html").stat().st_size > 5_000


def test_resume_continues_to_the_new_total(search_dir, capsys):
    out, _ = search_dir
    assert cli.main(["search", "--out", str(out), "--resume", "--trials", "3", "-q", "--no-report"]) == 0
    trials = sorted(p.name for p in (out / "tuner").glob("trial_*"))
    assert len(trials) == 3
    # settings are kept: changing the data of a resumed run is refused
    assert cli.main(["search", "--out", str(out), "--resume", "--model", "basiccnn"]) == 1
    assert "--model differ" in capsys.readouterr().err


def test_show_and_report_commands(search_dir, tmp_path):
    out, _ = search_dir
    grid = tmp_path / "grid.png"
    proc = run("show", str(out / "best_policies.json"), "--data", "digits", "--image-size", "12",
               "--images", "3", "--augmentations", "2", "--out", str(grid))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert grid.stat().st_size > 2_000 and "Wrote" in proc.stdout
    report = tmp_path / "r.html"
    proc = run("report", str(out), "--out", str(report))
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    assert "data:image/png;base64," in text and "Top policies" in text and "no augmentation" in text


def test_console_script_error_is_one_line_nonzero(tmp_path):
    script = Path(sys.executable).parent / "keras-augtune"
    if not script.exists():
        pytest.skip("the keras-augtune console script is not installed in this environment")
    proc = subprocess.run([str(script), "search", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


# Each input mistake is reported before TensorFlow (or imgaug) is imported, in under 2 s.
_FAST_CASES = [
    (["search", "--data", "{tmp}/nonexistent/", "--out", "{tmp}/o"], "no such file or folder"),
    (["search", "--ops", "rotate,blurr", "--out", "{tmp}/o"], "Unknown augmentation op 'blurr'"),
    (["search", "--model", "simpel", "--out", "{tmp}/o"], "Did you mean 'simple'"),
    (["show", "{tmp}/bad.json"], "Malformed policy JSON"),
    (["show", "{tmp}/unknown_op.json"], "Unknown augmentation op 'rotat'"),
    (["report", "{tmp}/nonexistent"], "no such search folder"),
]


def test_input_mistakes_fail_fast_without_tensorflow(tmp_path):
    import time

    (tmp_path / "bad.json").write_text('{"sub_policies": [[{"op": "rotate"')
    (tmp_path / "unknown_op.json").write_text(
        '{"sub_policies": [[{"op": "rotat", "probability": 1.0, "magnitude": 0.5}]]}')
    script = ("import sys; from keras_augtune.cli import main; code = main(sys.argv[1:]); "
              "sys.exit(90 if 'tensorflow' in sys.modules or 'imgaug' in sys.modules else code)")
    for argv, message in _FAST_CASES:
        argv = [a.format(tmp=tmp_path) for a in argv]
        times = []
        for _ in range(2):  # the faster of two runs: the machine may be shared (a busy CPU is not our code)
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
            times.append(time.perf_counter() - started)
            assert proc.returncode == 1, (argv, proc.returncode, proc.stderr[-2000:])  # 90: TensorFlow was imported
            assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            if times[-1] < 2.0:
                break
        assert min(times) < 2.0, (argv, times)
    assert not (tmp_path / "o").exists()  # nothing created for a refused search


def test_trial_status_names_are_keras_tuners():
    from keras_tuner.engine.trial import TrialStatus

    from keras_augtune import trials

    for name in ("COMPLETED", "FAILED", "INVALID", "RUNNING"):
        assert getattr(trials, name) == getattr(TrialStatus, name)


def _error(capsys, argv, code=1):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_user_errors_are_clear(tmp_path, capsys):
    out = str(tmp_path / "o")
    # empty class folder
    folder = tmp_path / "imgs"
    (folder / "cat").mkdir(parents=True)
    (folder / "dog").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "cat" / "a.png")
    assert "has no image files" in _error(capsys, ["search", "--data", str(folder), "--out", out])
    # unreadable image
    (folder / "dog" / "b.png").write_bytes(b"not a png")
    assert "Cannot read image" in _error(capsys, ["search", "--data", str(folder), "--out", out])
    # unknown model, with a suggestion
    err = _error(capsys, ["search", "--model", "simpel", "--out", out])
    assert "Unknown model 'simpel'" in err and "'simple'" in err
    # a file that is not an .npz
    (tmp_path / "x.txt").write_text("hi")
    assert "not an .npz" in _error(capsys, ["search", "--data", str(tmp_path / "x.txt"), "--out", out])
    # resume with nothing to resume
    assert "no search to continue" in _error(capsys, ["search", "--resume", "--out", out])
    # too large a train set
    assert "larger than" in _error(capsys, ["search", "--train-set-size", "5000", "--out", out])
    # show / report of missing files
    assert "no such policy file" in _error(capsys, ["show", str(tmp_path / "nope.json")])
    assert "no such search folder" in _error(capsys, ["report", str(tmp_path / "nope")])
    assert "No search found" in _error(capsys, ["report", str(tmp_path)])


@pytest.mark.parametrize("argv", [["search", "--trials", "-3"], ["search", "--epochs", "0"],
                                  ["search", "--method", "grid"], ["show"], ["nonsense"], ["--bogus"]])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["show", "--help"], ["report", "--help"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: keras-augtune" in out
    help_text = " ".join(out.split())  # argparse wraps lines
    assert "(default: None)" not in help_text and "(default: False)" not in help_text
    for option in help_text.split(" --")[1:]:
        assert option.count("default") <= 1, option


def test_unknown_option_shows_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["search", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: keras-augtune search" in err and "unrecognized arguments: --bogus" in err
