"""Distributed search on Keras Tuner's chief/worker mode: a chief and two worker subprocesses on
127.0.0.1 (examples/distributed_search.py), one worker killed mid-trial; plus the chief's
recovery rules checked in-process."""

import csv
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import keras_tuner
import pytest

from keras_augtune import RandomForestOracle, distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "distributed_search.py")
MAX_TRIALS = 6


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def test_chief_and_two_workers_survive_a_killed_worker(tmp_path):
    port = free_port()
    directory = str(tmp_path / "runs")
    common = ["--ip", "127.0.0.1", "--port", str(port), "--directory", directory, "--project", "p",
              "--model", "tiny", "--image-size", "12", "--limit", "200", "--max-trials", str(MAX_TRIALS),
              "--epochs", "2", "--batch-size", "32", "--num-initial-points", "3", "--worker-timeout", "4",
              "--confirm-top-k", "1", "--confirm-executions", "2"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    logs = {name: str(tmp_path / f"{name}.log") for name in ("chief", "worker0", "worker1")}
    procs = {}

    def start(name, *args):
        with open(logs[name], "wb") as log:
            procs[name] = subprocess.Popen([sys.executable, EXAMPLE, *common, *args], env=env,
                                           stdout=log, stderr=subprocess.STDOUT)

    killed_trial = None
    try:
        start("chief", "--role", "chief")
        start("worker0", "--role", "worker", "--worker-id", "0")
        start("worker1", "--role", "worker", "--worker-id", "1")
        # Kill worker 1 as soon as it starts its second trial (a trial takes seconds: it is mid-trial).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and killed_trial is None:
            started = [line.rsplit(" ", 1)[-1] for line in read(logs["worker1"]).splitlines()
                       if line.startswith("[worker1] starting trial")]
            if len(started) >= 2:
                killed_trial = started[-1]
                procs["worker1"].send_signal(signal.SIGKILL)
            assert procs["chief"].poll() is None and procs["worker1"].poll() is None, read(logs["chief"])
            time.sleep(0.1)
        assert killed_trial is not None, read(logs["worker1"])
        assert procs["worker1"].wait(timeout=30) == -signal.SIGKILL
        assert procs["chief"].wait(timeout=300) == 0, read(logs["chief"]) + read(logs["worker0"])
        assert procs["worker0"].wait(timeout=60) == 0, read(logs["worker0"])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)

    chief = read(logs["chief"])
    assert f"[chief] trial {killed_trial} re-queued: worker 'worker1' silent" in chief
    worker0 = read(logs["worker0"])
    assert f"[worker0] starting trial {killed_trial}" in worker0  # the survivor re-ran it
    project = os.path.join(directory, "p")
    trials = {}
    for path in glob.glob(os.path.join(project, "trial_*", "trial.json")):
        with open(path) as f:
            data = json.load(f)
        trials[data["trial_id"]] = data
    # every trial completed, exactly once, with distinct policies
    assert sorted(trials) == [str(i) for i in range(MAX_TRIALS)]
    assert all(t["status"] == "COMPLETED" for t in trials.values()), {k: t["status"] for k, t in trials.items()}
    with open(os.path.join(project, "oracle.json")) as f:
        end_order = json.load(f)["end_order"]
    assert sorted(end_order) == sorted(trials)
    values = [json.dumps(t["hyperparameters"]["values"], sort_keys=True) for t in trials.values()]
    assert len(set(values)) == MAX_TRIALS
    # both workers trained trials; the shared notebook has each trial's epochs exactly once
    assert "[worker1] starting trial" in read(logs["worker1"]) and worker0.count("starting trial") >= 2
    with open(os.path.join(project, "notebook.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [(r["trial"], r["epoch"]) for r in rows if r["execution"] == "0"]  # the trials' own (not the race's)
    assert len(keys) == len(set(keys)) == MAX_TRIALS * 2
    assert "Results summary: 6 completed, 0 failed" in chief
    assert "Race: 1 searched policies, 3 recipe(s) and no augmentation" in chief  # the chief races the results


# ---------------------------------------------------------------- the chief's rules, in-process
@pytest.fixture
def oracle(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    o = RandomForestOracle(objective=keras_tuner.Objective("score", "max"), max_trials=2,
                           hyperparameters=hp, seed=3)
    o._set_project_dir(str(tmp_path), "p")
    return o


def ask(servicer, tuner_id):
    response = servicer.CreateTrial(SimpleNamespace(tuner_id=tuner_id), None)
    return keras_tuner.engine.trial.Trial.from_proto(response.trial)


def end(servicer, trial_id, value):
    trial = servicer.oracle.get_trial(trial_id)
    servicer.oracle.update_trial(trial_id, {"score": value})
    trial.status = "COMPLETED"
    servicer.EndTrial(SimpleNamespace(trial=trial.to_proto()), None)


def test_silent_worker_trial_is_requeued_and_finished_once(oracle):
    servicer = distributed.make_servicer(oracle, worker_timeout=5)
    first = ask(servicer, "w1")
    second = ask(servicer, "w2")
    assert (first.status, second.status) == ("RUNNING", "RUNNING") and first.trial_id != second.trial_id
    end(servicer, second.trial_id, 0.5)
    # max_trials reached but w1's trial may come back: w2 is told to wait, not to stop
    assert ask(servicer, "w2").status == "IDLE"
    now = servicer.last_seen[first.trial_id]
    assert distributed._reap(oracle, servicer, now + 4) == []  # heard from recently enough
    servicer.GetTrial(SimpleNamespace(trial_id=first.trial_id), None)  # a heartbeat
    lines = distributed._reap(oracle, servicer, servicer.last_seen[first.trial_id] + 6)
    assert lines == [f"[chief] trial {first.trial_id} re-queued: worker 'w1' silent for 6s (worker_timeout=5s)"]
    assert "w1" not in oracle.tuner_ids and not oracle.ongoing_trials
    again = ask(servicer, "w2")
    assert again.trial_id == first.trial_id and again.hyperparameters.values == first.hyperparameters.values
    end(servicer, again.trial_id, 0.7)
    # the lost worker was only slow: its late result is ignored, not counted twice
    end(servicer, first.trial_id, 0.1)
    assert oracle.end_order.count(first.trial_id) == 1 and oracle.trials[first.trial_id].score == 0.7
    assert ask(servicer, "w2").status == "STOPPED" and distributed._finished(oracle)


def test_trial_that_loses_its_worker_twice_fails(oracle):
    servicer = distributed.make_servicer(oracle, worker_timeout=1, max_worker_losses=2)
    trial = ask(servicer, "w1")
    distributed._reap(oracle, servicer, servicer.last_seen[trial.trial_id] + 2)
    assert ask(servicer, "w2").trial_id == trial.trial_id
    lines = distributed._reap(oracle, servicer, servicer.last_seen[trial.trial_id] + 2)
    assert "FAILED: lost its worker 2 times" in lines[0]
    assert oracle.trials[trial.trial_id].status == "FAILED" and not oracle._retry_queue


def test_consecutive_failures_on_the_chief_stop_every_worker(oracle):
    oracle.max_consecutive_failed_trials = 1
    servicer = distributed.make_servicer(oracle)
    trial = ask(servicer, "w1")
    other = ask(servicer, "w2")
    failed = oracle.get_trial(trial.trial_id)
    failed.status, failed.message = "FAILED", "RuntimeError: boom"
    servicer.EndTrial(SimpleNamespace(trial=failed.to_proto()), None)  # the oracle raises inside: no crash
    assert "consecutive failures" in servicer.fatal
    assert ask(servicer, "w1").status == "STOPPED"
    assert other.trial_id in {t.trial_id for t in oracle.ongoing_trials.values()}


# ---------------------------------------------------------------- a real chief: stale requests, busy port
CHIEF = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras_tuner
from keras_augtune import RandomForestOracle, distributed
hp = keras_tuner.HyperParameters()
hp.Float("x", 0.0, 1.0)
oracle = RandomForestOracle(objective=keras_tuner.Objective("score", "max"), max_trials=3, hyperparameters=hp, seed=3)
oracle._set_project_dir(sys.argv[1], "p")
distributed.serve(oracle, worker_timeout=60, log=lambda line: print(line, flush=True))
"""


def test_chief_rejects_unknown_trial_ids_and_a_second_chief_on_its_port(tmp_path):
    import grpc
    from keras_tuner.src import protos

    port = free_port()
    script = tmp_path / "chief.py"
    script.write_text(CHIEF)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(KERASTUNER_TUNER_ID="chief", KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port),
               PYTHONUNBUFFERED="1")
    log = tmp_path / "chief.log"
    with open(log, "wb") as out:
        chief = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "[chief] serving" not in read(log):
            assert chief.poll() is None and time.monotonic() < deadline, read(log)
            time.sleep(0.1)
        service = protos.get_service()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = protos.get_service_grpc().OracleStub(channel)
            Trial = keras_tuner.engine.trial.Trial
            first = Trial.from_proto(stub.CreateTrial(service.CreateTrialRequest(tuner_id="worker0"), timeout=20).trial)
            stale = Trial(keras_tuner.HyperParameters(), trial_id="17", status="COMPLETED")
            # a stale worker's results: refused with NOT_FOUND, and the chief keeps answering
            for call, request in [
                (stub.EndTrial, service.EndTrialRequest(trial=stale.to_proto())),
                (stub.UpdateTrial, service.UpdateTrialRequest(trial_id="17", metrics={"score": 0.5})),
                (stub.GetTrial, service.GetTrialRequest(trial_id="17")),
            ]:
                with pytest.raises(grpc.RpcError) as info:
                    call(request, timeout=10)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value
                assert "unknown trial id '17'" in info.value.details()
            stub.UpdateTrial(service.UpdateTrialRequest(trial_id=first.trial_id, metrics={"score": 0.25}), timeout=10)
            second = Trial.from_proto(stub.CreateTrial(service.CreateTrialRequest(tuner_id="worker1"), timeout=10).trial)
            assert second.status == first.status == "RUNNING"
            assert second.trial_id != first.trial_id

        # a second chief on the same port fails at once, instead of sharing it
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}: the port is already in use"):
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
                mp.setenv("KERASTUNER_ORACLE_PORT", str(port))
                hp = keras_tuner.HyperParameters()
                hp.Float("x", 0.0, 1.0)
                other = RandomForestOracle(objective=keras_tuner.Objective("score", "max"), max_trials=3,
                                           hyperparameters=hp)
                other._set_project_dir(str(tmp_path / "other"), "p")
                _serve_in_thread(other, timeout=20)
        assert time.monotonic() - started < 20
        assert chief.poll() is None, read(log)
    finally:
        chief.kill()
        chief.wait(timeout=30)


def _serve_in_thread(oracle, timeout):
    """distributed.serve in a daemon thread: its exception, or a failure if it is still serving after ``timeout``."""
    import threading

    outcome = {}

    def target():
        try:
            distributed.serve(oracle, worker_timeout=60, log=lambda line: None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if "error" in outcome:
        raise outcome["error"]
    pytest.fail(f"the second chief was still serving after {timeout}s (it shares the port)")


def test_a_failing_request_never_leaves_the_oracle_locked(oracle):
    import threading

    servicer = distributed.make_servicer(oracle)
    populate = oracle.populate_space
    oracle.populate_space = lambda trial_id: 1 / 0  # a bug inside create_trial, under the oracle's lock
    with pytest.raises(ZeroDivisionError):
        ask(servicer, "w1")
    oracle.populate_space = populate
    answers = []
    thread = threading.Thread(target=lambda: answers.append(ask(servicer, "w1")), daemon=True)
    thread.start()
    thread.join(10)
    assert answers and answers[0].status == "RUNNING", "the oracle's lock was left held: the chief hangs"
