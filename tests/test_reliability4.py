"""Reliability round 3, what was left (issue 24): a damaged ``oracle.json`` rebuilt on ``--resume``
from the package's own records, checkpoints written atomically, and a distributed worker on other
data refused end to end.

One tiny real search (2 trials, in-process) is the template the resume cases copy."""

import json
import os
import shutil

import pytest

from conftest import make_images
from keras_augtune import cli

ARGS = ["--trials", "2", "--epochs", "1", "--batch-size", "32", "--initial-points", "1", "--sub-policies", "2",
        "--ops-per-sub-policy", "1", "--ops", "identity,rotate,invert,translate-x", "-q", "--no-report",
        "--confirm-top-k", "0"]
RESUME = ["--trials", "3", "-q", "--no-report"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A finished 2-trial search on a 2-class image folder, and the same search resumed to 3 trials."""
    root = tmp_path_factory.mktemp("template")
    make_images(root / "imgs")
    assert cli.main(["search", "--data", str(root / "imgs"), "--out", str(root / "run"), *ARGS]) == 0
    shutil.copytree(root / "run", root / "resumed")
    assert cli.main(["search", "--resume", "--out", str(root / "resumed"), *RESUME]) == 0
    return root


@pytest.fixture
def copy(template, tmp_path):
    shutil.copytree(template / "run", tmp_path / "run")
    return tmp_path / "run"


def trials(run):
    project = run / "tuner"
    return {t[len("trial_"):]: json.loads((project / t / "trial.json").read_text())
            for t in sorted(os.listdir(project)) if t.startswith("trial_")}


# ---------------------------------------------------------------- a damaged oracle.json (high)
def test_the_rebuilt_oracle_state_is_the_saved_one(copy):
    """Every field Keras Tuner reads back is rebuilt from trial.json files and run.json as saved."""
    from keras_augtune.repair import rebuild_oracle_state

    saved = json.loads((copy / "tuner" / "oracle.json").read_text())
    assert json.loads((copy / "run.json").read_text())["oracle_seed"] == saved["seed"]
    state, lost = rebuild_oracle_state(str(copy / "tuner"))
    assert not lost
    for field in ("ongoing_trials", "hyperparameters", "start_order", "end_order", "run_times", "retry_queue",
                  "seed", "seed_state", "id_to_hash", "display"):
        assert state[field] == saved[field], field
    assert sorted(state["tried_so_far"]) == sorted(saved["tried_so_far"])


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\xff garbage",
    "empty object": lambda text: "{}",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_rebuilds_a_damaged_oracle_json(template, copy, capsys, damage):
    """--resume with more trials completes, keeps every completed trial, and proposes the same
    next trial as the resume of the undamaged search."""
    state_file = copy / "tuner" / "oracle.json"
    original = state_file.read_text()
    state_file.write_text(DAMAGE[damage](original))
    before = trials(copy)
    assert cli.main(["search", "--resume", "--out", str(copy), *RESUME]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "oracle.json was damaged" in err and "rebuilt from the 2 trial files and run.json" in err
    assert (copy / "tuner" / "oracle.json.damaged").read_text() == DAMAGE[damage](original)
    after = trials(copy)
    assert [t["status"] for t in after.values()] == ["COMPLETED"] * 3
    for trial_id, trial in before.items():  # every completed trial kept as it was
        assert after[trial_id] == trial
    resumed = trials(template / "resumed")
    assert after["2"]["hyperparameters"]["values"] == resumed["2"]["hyperparameters"]["values"]
    assert after["2"]["score"] == pytest.approx(resumed["2"]["score"])
    state = json.loads(state_file.read_text())
    assert state["end_order"] == ["0", "1", "2"] and state["num_initial_points"] == 1  # the forest's own options


def test_a_running_trial_is_queued_again_and_a_lost_seed_is_said(copy):
    from keras_augtune.repair import repair_damaged_trials

    project = copy / "tuner"
    last = project / "trial_1" / "trial.json"
    last.write_text(json.dumps({**json.loads(last.read_text()), "status": "RUNNING", "score": None}))
    run = json.loads((copy / "run.json").read_text())
    del run["oracle_seed"]  # a run.json written before it kept the seed, with --seed 0
    run["settings"]["seed"] = 0
    (copy / "run.json").write_text(json.dumps(run))
    (project / "oracle.json").write_text("garbage")
    [line] = repair_damaged_trials(str(project))
    assert "the oracle's seed was lost" in line
    state = json.loads((project / "oracle.json").read_text())
    assert state["end_order"] == ["0"] and state["retry_queue"] == ["1"] and 1 <= state["seed"] <= 10000


def test_an_oracle_json_that_cannot_be_rebuilt_stays_a_one_line_error(copy, capsys):
    run = json.loads((copy / "run.json").read_text())
    run["settings"]["method"] = "hyperband"
    (copy / "run.json").write_text(json.dumps(run))
    (copy / "tuner" / "oracle.json").write_text("{")
    assert cli.main(["search", "--resume", "--out", str(copy), *RESUME]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "oracle.json is damaged" in err and "cannot be rebuilt (a Hyperband search's brackets" in err
    assert (copy / "tuner" / "oracle.json").read_text() == "{"  # left as it was


def test_a_rebuilt_state_keeps_the_options_the_oracle_is_built_with():
    """oracle.json rebuilt by repair.py holds no forest option: the oracle keeps its own (not the
    values from before an option existed, which a state saved by an older version gets)."""
    import keras_tuner

    from keras_augtune.oracle import RandomForestOracle

    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = RandomForestOracle(objective=keras_tuner.Objective("score", "max"), max_trials=3, hyperparameters=hp,
                                seed=5, pool_policies=True, maximiser="local_search", random_share=0.5, target="rank")
    state = {name: value for name, value in oracle.get_state().items() if name not in RandomForestOracle._OPTIONS}
    oracle.set_state(json.loads(json.dumps(state)))
    assert (oracle.pool_policies, oracle.maximiser, oracle.random_share, oracle.target) == (
        True, "local_search", 0.5, "rank")


# ---------------------------------------------------------------- checkpoints written atomically
HALF = b"\x89HDF\r\n" + b"\0" * 100  # what an HDF5 write cut short leaves


def _half_then(fault):
    def save_weights(self, target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(HALF)
        fault(target)

    return save_weights


def test_a_fault_mid_checkpoint_leaves_no_half_file(tmp_path, monkeypatch):
    """A full disk while Keras writes a checkpoint: the final name keeps the previous checkpoint
    (or does not exist), and no temporary file is left."""
    import errno

    import keras
    import numpy as np

    from keras_augtune import files

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "checkpoint.weights.h5"
    assert files.save_weights(model, path) == str(path)
    good = path.read_bytes()

    def full(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), target)

    monkeypatch.setattr(keras.Model, "save_weights", _half_then(full))
    with pytest.raises(OSError) as caught:
        files.save_weights(model, path)
    assert files.disk_error(caught.value)
    with pytest.raises(OSError):
        files.save_weights(model, tmp_path / "fold_0.weights.h5")
    monkeypatch.undo()
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["checkpoint.weights.h5"]
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    files.load_weights(other, path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


KILLED = """
import os, signal, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
from keras_augtune import files
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
def half(self, target, *args, **kwargs):
    with open(target, "wb") as f:
        f.write(b"\\x89HDF\\r\\n" + b"\\0" * 100)
    os.kill(os.getpid(), signal.SIGKILL)
keras.Model.save_weights = half
files.save_weights(model, sys.argv[1])
"""


def test_kill_9_mid_checkpoint_leaves_no_half_file_under_its_name(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "checkpoint.weights.h5"
    done = subprocess.run([sys.executable, "-c", KILLED, str(path)], timeout=300, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -9, done.stderr[-2000:]
    assert not path.exists()  # only the temporary file holds the half write
    assert [p.read_bytes() for p in tmp_path.iterdir()] == [HALF]


def test_every_checkpoint_the_package_writes_goes_through_files_save_weights():
    import keras_augtune

    root = os.path.dirname(keras_augtune.__file__)
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py") and name != "files.py":
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    code = f.read()
                assert ".save_weights(" not in code and "model.save(" not in code, f"{name} writes a model file in place"


# ---------------------------------------------------------------- a distributed worker on other data, end to end
def test_a_worker_on_other_data_is_refused_and_the_chief_goes_on(tmp_path):
    """examples/distributed_search.py: a worker started on other data than its chief's is refused in
    one line naming the difference, before it takes a trial; the chief keeps serving, and a worker on
    the chief's data then completes the search."""
    import subprocess
    import sys
    import time

    import numpy as np

    from test_distributed import EXAMPLE, free_port, read

    rng = np.random.default_rng(0)
    for name, n in (("chief", 48), ("other", 32)):
        np.savez(tmp_path / f"{name}.npz", x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 2)
    port = free_port()
    common = ["--ip", "127.0.0.1", "--port", str(port), "--directory", str(tmp_path / "runs"), "--project", "p",
              "--model", "tiny", "--limit", "0", "--max-trials", "1", "--epochs", "1", "--batch-size", "16",
              "--num-initial-points", "1", "--worker-timeout", "60", "--confirm-top-k", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               PYTHONPATH=os.pathsep.join(sys.path))
    logs, procs = {}, {}

    def start(name, data, *args):
        logs[name] = str(tmp_path / f"{name}.log")
        with open(logs[name], "wb") as log:
            procs[name] = subprocess.Popen([sys.executable, EXAMPLE, *common, "--data", str(tmp_path / data), *args],
                                           env=env, stdout=log, stderr=subprocess.STDOUT)

    try:
        start("chief", "chief.npz", "--role", "chief")
        deadline = time.monotonic() + 300
        while "[chief] serving" not in read(logs["chief"]):
            assert procs["chief"].poll() is None and time.monotonic() < deadline, read(logs["chief"])
            time.sleep(0.2)
        start("other", "other.npz", "--role", "worker", "--worker-id", "0")
        assert procs["other"].wait(timeout=300) == 2, read(logs["other"])
        refused = [line for line in read(logs["other"]).splitlines() if line.strip()]
        assert "Traceback" not in read(logs["other"])
        assert refused[-1].startswith("[worker0] error: This worker's data is not the data the chief searches: here ")
        assert "32 images" in refused[-1] and "48" in refused[-1], refused[-1]
        assert not any("starting trial" in line for line in refused)
        assert procs["chief"].poll() is None, read(logs["chief"])  # still serving
        assert not (tmp_path / "runs" / "p" / "trial_0").exists()  # the refused worker took no trial
        start("worker", "chief.npz", "--role", "worker", "--worker-id", "1")
        assert procs["chief"].wait(timeout=300) == 0, read(logs["chief"]) + read(logs["worker"])
        assert procs["worker"].wait(timeout=120) == 0, read(logs["worker"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    trial = json.loads((tmp_path / "runs" / "p" / "trial_0" / "trial.json").read_text())
    assert trial["status"] == "COMPLETED"
    assert sorted(os.listdir(tmp_path / "runs" / "p")).count("trial_1") == 0


# ---------------------------------------------------------------- found by the fault sweep
def test_a_full_disk_at_update_trial_stops_the_search_instead_of_failing_the_trial(tmp_path, monkeypatch):
    """ENOSPC while Keras Tuner writes trial.json in update_trial (after the training, outside
    run_trial; the sweep's write 8): Keras Tuner marked the trial FAILED and went on. The state
    writer's disk error is fatal to Keras Tuner, and still an OSError with its errno."""
    import errno

    import keras_tuner
    from keras_tuner.src import utils

    from keras_augtune import compat, files

    monkeypatch.setattr(utils, "save_json", utils.save_json)  # undone after the test
    compat.atomic_state_writes()

    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(files, "atomic_write", full)
    with pytest.raises(keras_tuner.errors.FatalError) as caught:
        utils.save_json(str(tmp_path / "trial.json"), {})
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert files.disk_error(caught.value) == f"no space left on the device (writing {tmp_path / 'trial.json'})"
    monkeypatch.setattr(files, "atomic_write", lambda path, text: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError):  # anything else is left as it was
        utils.save_json(str(tmp_path / "trial.json"), {})
