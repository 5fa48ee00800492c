"""Keras Tuner's chief/worker mode with lost-worker recovery.

Keras Tuner distributes a search over processes (on one machine or several) with
three environment variables: ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``
and ``KERASTUNER_TUNER_ID`` (an id containing ``"chief"`` serves the oracle over
gRPC; every other id is a worker). Plain Keras Tuner 1.4 has no notion of a dead
worker: a worker killed mid-trial leaves its trial ``RUNNING`` in the chief's
oracle forever, and the chief, which exits only when no trial is running and no
worker is registered, then waits forever (it also polls only every 20 s).

[`AugmentTuner`][keras_augtune.AugmentTuner] replaces the chief's server loop with `serve()`, which
adds a bounded recovery:

* workers send a heartbeat (a ``GetTrial`` call) every ``heartbeat_interval``
  seconds while they run a trial;
* a running trial not heard from for ``worker_timeout`` seconds is taken from its
  worker and queued again: the next worker that asks for a trial re-runs it with
  the same hyperparameters (the lost run does not count as a retry);
* a trial whose worker is lost ``max_worker_losses`` times (a trial that kills
  every worker, e.g. out of memory) is recorded ``FAILED`` instead;
* while other workers still run trials that may come back, a worker with nothing
  to do is told ``IDLE`` (it waits and asks again) instead of ``STOPPED``;
* a late result from a worker declared lost is accepted once; duplicates are ignored;
* the chief exits once every trial has finished and every worker has been stopped
  or declared lost, polling every ``poll_interval`` seconds;
* a request about a trial the chief does not know (a stale worker of another run) is
  answered ``NOT_FOUND`` and the chief keeps serving; no failed request can leave
  the oracle's lock held (Keras Tuner's ``@synchronized`` does not release it on an
  exception, which hung the chief for good);
* a chief whose port is already in use fails at once (gRPC's default
  ``SO_REUSEPORT`` let a second chief share the port silently).

A worker restarted with the same ``KERASTUNER_TUNER_ID`` before the timeout is
handed its unfinished trial again (Keras Tuner's own behaviour).

Every process must train on the same data, or the rewards the chief compares are not
comparable. The chief serves its data fingerprint ([`keras_augtune.data.data_fingerprint()`][keras_augtune.data.data_fingerprint],
``serve(..., data_fingerprint=...)``) and a worker checks its own against it with
`check_worker_data()` before its first trial: a worker on other data is refused with a
one-line error naming what differs.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from concurrent import futures
from typing import Any, Callable

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_augtune import compat

TrialStatus = trial_module.TrialStatus

#: The ``GetTrial`` id a worker asks for to learn the chief's data fingerprint (no trial has it:
#: Keras Tuner's ids are digits or hex). The answer's ``trial_id`` is this id, ":" and the JSON.
DATA_FINGERPRINT_REQUEST = "keras_augtune:data_fingerprint"

#: Defaults (seconds).
WORKER_TIMEOUT = 120.0
POLL_INTERVAL = 0.5


def check_worker_timeout(worker_timeout: Any) -> float:
    """``worker_timeout`` as a float when it is a positive number of seconds; a one-line ``ValueError`` otherwise."""
    if isinstance(worker_timeout, bool) or not isinstance(worker_timeout, (int, float)) or not worker_timeout > 0:
        raise ValueError(f"worker_timeout must be a positive number of seconds, got {worker_timeout!r}.")
    return float(worker_timeout)


def heartbeat_interval(worker_timeout: float) -> float:
    """How often a worker signals that it is alive: a quarter of the timeout, at most 10 s."""
    return max(0.2, min(10.0, worker_timeout / 4.0))


@keras_tuner.synchronized
def _reap(oracle, servicer: Any, now: float) -> list[str]:
    """Take back the running trials whose worker has been silent too long (under the oracle's lock)."""
    lines = []
    for tuner_id, trial in list(oracle.ongoing_trials.items()):
        seen = servicer.last_seen.setdefault(trial.trial_id, now)
        if now - seen <= servicer.worker_timeout:
            continue
        oracle.ongoing_trials.pop(tuner_id, None)
        oracle.tuner_ids.discard(tuner_id)
        servicer.last_seen.pop(trial.trial_id, None)
        losses = servicer.losses[trial.trial_id] = servicer.losses.get(trial.trial_id, 0) + 1
        why = f"worker {tuner_id!r} silent for {now - seen:.0f}s (worker_timeout={servicer.worker_timeout:g}s)"
        if losses >= servicer.max_worker_losses:
            trial.status = TrialStatus.FAILED
            trial.message = f"Trial {trial.trial_id} lost its worker {losses} times; last: {why}."
            oracle.end_order.append(trial.trial_id)
            lines.append(f"[chief] trial {trial.trial_id} FAILED: lost its worker {losses} times ({why})")
        else:
            trial.message = f"re-queued: {why}"
            if trial.trial_id not in compat.retry_queue(oracle):
                compat.retry_queue(oracle).append(trial.trial_id)
            lines.append(f"[chief] trial {trial.trial_id} re-queued: {why}")
        compat.save_trial(oracle, trial)
        oracle.save()
    return lines


@keras_tuner.synchronized
def _nothing_to_hand_out(oracle, tuner_id: str) -> bool:
    """True when no new trial may start but other workers' trials are still running (and may come back)."""
    if tuner_id in oracle.ongoing_trials or compat.retry_queue(oracle):
        return False
    full = oracle.max_trials is not None and len(oracle.trials) >= oracle.max_trials
    return full and any(t != tuner_id for t in oracle.ongoing_trials)


@keras_tuner.synchronized
def _finished(oracle) -> bool:
    return not oracle.ongoing_trials and not oracle.tuner_ids


class UnknownTrialError(KeyError):
    """A worker's request names a trial this chief does not know (answered ``NOT_FOUND``)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _release_if_held(oracle) -> None:
    """Release the oracle's ``@synchronized`` lock if this thread still holds it.

    Keras Tuner's ``synchronized`` releases its lock only when the method returns: an
    exception inside ``create_trial``/``update_trial``/``end_trial`` leaves it held and
    every later request (and the chief's own loop) waits forever.
    """
    compat.release_lock_if_held(oracle)


def _rpc(method):
    """Wrap a servicer method: a failure never leaves the oracle locked, and an unknown
    trial id is answered with gRPC's ``NOT_FOUND`` (the chief keeps serving)."""

    @functools.wraps(method)
    def wrapped(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:
            _release_if_held(self.oracle)
            if isinstance(exc, UnknownTrialError) and context is not None:
                import grpc

                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise

    return wrapped


def _check_known(oracle, trial_id: str, request: str) -> None:
    if trial_id not in oracle.trials:
        known = sorted(oracle.trials, key=lambda t: (len(t), t))
        span = f"{known[0]}..{known[-1]}" if known else "none yet"
        raise UnknownTrialError(
            f"{request}: unknown trial id {trial_id!r} (this chief's trials: {span}); "
            "is this worker from another search? Restart it against this chief."
        )


def _servicer_class():
    protos = compat.protos()
    base = compat.oracle_servicer_class()

    class Servicer(base):
        def __init__(self, oracle, worker_timeout, max_worker_losses, data_fingerprint=None):
            super().__init__(oracle)
            self.data_fingerprint = data_fingerprint
            self.worker_timeout = float(worker_timeout)
            self.max_worker_losses = int(max_worker_losses)
            self.last_seen: dict[str, float] = {}
            self.losses: dict[str, int] = {}
            self.fatal: str | None = None

        def beat(self, trial_id):
            self.last_seen[trial_id] = time.monotonic()

        @_rpc
        def CreateTrial(self, request, context):
            oracle = self.oracle
            if self.fatal is not None:
                status = TrialStatus.STOPPED
            elif _nothing_to_hand_out(oracle, request.tuner_id):
                status = TrialStatus.IDLE
            else:
                trial = oracle.create_trial(request.tuner_id)
                if trial.status == TrialStatus.STOPPED:
                    self.stop_triggered = True
                elif trial.status == TrialStatus.RUNNING:
                    self.beat(trial.trial_id)
                return protos.get_service().CreateTrialResponse(trial=trial.to_proto())
            if status == TrialStatus.STOPPED:
                oracle.tuner_ids.discard(request.tuner_id)
                self.stop_triggered = True
            trial = trial_module.Trial(oracle.get_space(), trial_id=status.lower(), status=status)
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

        @_rpc
        def GetTrial(self, request, context):
            if request.trial_id == DATA_FINGERPRINT_REQUEST:  # a worker checking its data (check_worker_data)
                answer = f"{DATA_FINGERPRINT_REQUEST}:{json.dumps(self.data_fingerprint)}"
                trial = trial_module.Trial(self.oracle.get_space(), trial_id=answer, status=TrialStatus.IDLE)
                return protos.get_service().GetTrialResponse(trial=trial.to_proto())
            _check_known(self.oracle, request.trial_id, "GetTrial")
            if any(t.trial_id == request.trial_id for t in self.oracle.ongoing_trials.values()):
                self.beat(request.trial_id)  # a worker's heartbeat
            return super().GetTrial(request, context)

        def _already_ended(self, trial_id) -> bool:
            return trial_id in self.oracle.end_order

        @_rpc
        def UpdateTrial(self, request, context):
            _check_known(self.oracle, request.trial_id, "UpdateTrial")
            if self._already_ended(request.trial_id):  # a late duplicate from a worker declared lost
                trial = self.oracle.get_trial(request.trial_id)
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

        @_rpc
        def EndTrial(self, request, context):
            trial = trial_module.Trial.from_proto(request.trial)
            oracle = self.oracle
            _check_known(oracle, trial.trial_id, "EndTrial")
            if self._already_ended(trial.trial_id):
                print(f"[chief] ignoring a second result for trial {trial.trial_id}", flush=True)
                return protos.get_service().EndTrialResponse()
            if trial.trial_id in compat.retry_queue(oracle):  # its worker was declared lost, but it finished after all
                compat.retry_queue(oracle).remove(trial.trial_id)
            try:
                oracle.end_trial(trial)
            except RuntimeError as exc:  # max_consecutive_failed_trials reached: stop every worker
                self.fatal = str(exc)
                _finish_after_error(oracle, trial.trial_id)
            self.last_seen.pop(trial.trial_id, None)
            return protos.get_service().EndTrialResponse()

        GetSpace = _rpc(base.GetSpace)
        UpdateSpace = _rpc(base.UpdateSpace)
        GetBestTrials = _rpc(base.GetBestTrials)

    return Servicer


@keras_tuner.synchronized
def _finish_after_error(oracle, trial_id):
    # Oracle.end_trial raised after recording the trial: save it and free its worker.
    compat.save_trial(oracle, oracle.trials[trial_id])
    oracle.save()
    for tuner_id, trial in list(oracle.ongoing_trials.items()):
        if trial.trial_id == trial_id:
            oracle.ongoing_trials.pop(tuner_id)


def make_servicer(oracle, worker_timeout: float = WORKER_TIMEOUT, max_worker_losses: int = 2,
                  data_fingerprint: dict | None = None):
    """The chief's gRPC servicer (exposed for tests)."""
    return _servicer_class()(oracle, worker_timeout, max_worker_losses, data_fingerprint)


def serve(oracle, worker_timeout: float = WORKER_TIMEOUT, max_worker_losses: int = 2,
          poll_interval: float = POLL_INTERVAL, log: Callable[[str], Any] = print,
          data_fingerprint: dict | None = None) -> None:
    """Serve ``oracle`` to the workers until the search is over (the chief's side of ``search``);
    ``data_fingerprint``: the chief's data, which each worker checks with `check_worker_data()`."""
    import grpc

    protos = compat.protos()

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    servicer = make_servicer(oracle, worker_timeout, max_worker_losses, data_fingerprint)
    # gRPC sets SO_REUSEPORT by default: a second chief on a busy port would bind too and
    # share the workers' requests with the first. Exclusive, so it fails at once instead.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpc >= 1.5x raises "Failed to bind" instead of returning 0
        bound = 0
    if bound == 0:
        raise RuntimeError(
            f"The chief cannot listen on {address}: the port is already in use (another chief still "
            "running?) or the address is not this machine's. Stop the other process or choose another "
            "KERASTUNER_ORACLE_PORT."
        )
    server.start()
    log(f"[chief] serving the oracle on {address} (worker_timeout={worker_timeout:g}s)")
    try:
        while True:
            time.sleep(poll_interval)
            for line in _reap(oracle, servicer, time.monotonic()):
                log(line)
            if servicer.stop_triggered and _finished(oracle):
                break
    finally:
        server.stop(grace=1.0)
    if servicer.fatal is not None:
        raise RuntimeError(servicer.fatal)


class Heartbeat:
    """A worker's background thread: ``oracle.get_trial(trial_id)`` every ``interval`` seconds."""

    def __init__(self, oracle, trial_id: str, interval: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(oracle, trial_id, interval),
                                        name=f"heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def _run(self, oracle, trial_id, interval):
        stub = getattr(oracle, "stub", None)
        while not self._stop.wait(interval):
            try:
                if stub is not None:  # an OracleClient: a short timeout, not its one-hour default
                    stub.GetTrial(compat.protos().get_service().GetTrialRequest(trial_id=trial_id), timeout=2 * interval)
                else:
                    oracle.get_trial(trial_id)
            except Exception:  # the chief is gone or busy: the next beat retries
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


def sleep_when_idle(client, poll_interval: float = POLL_INTERVAL) -> None:
    """Make a worker's ``OracleClient.create_trial`` wait a little after an ``IDLE`` answer
    (Keras Tuner's search loop asks again at once)."""
    create = client.create_trial

    def create_trial(tuner_id):
        trial = create(tuner_id)
        if trial.status == TrialStatus.IDLE:
            time.sleep(poll_interval)
        return trial

    client.create_trial = create_trial


class WorkerDataError(ValueError):
    """A worker's data is not the data its chief searches (`check_worker_data()`)."""


def check_worker_data(client, fingerprint: dict) -> bool:
    """Refuse to work for a chief that searches other data: ask the chief (``client``, the
    worker's oracle) for its data fingerprint and compare it with this worker's ``fingerprint``
    (`keras_augtune.data.data_fingerprint()`). Raises a one-line ``ValueError`` naming what
    differs (a `WorkerDataError`); returns False when the chief keeps no fingerprint (an older
    chief), True when they match."""
    from keras_augtune.data import fingerprint_changes

    try:
        answer = client.get_trial(DATA_FINGERPRINT_REQUEST).trial_id
    except Exception:  # a chief without the check answers NOT_FOUND: nothing to compare
        return False
    prefix = DATA_FINGERPRINT_REQUEST + ":"
    chief = json.loads(answer[len(prefix):]) if answer.startswith(prefix) else None
    if not isinstance(chief, dict):
        return False
    changes = fingerprint_changes(chief, fingerprint)
    if changes:
        raise WorkerDataError("This worker's data is not the data the chief searches: here "
                         + "; ".join(changes) + ". Start every worker on the chief's data.")
    return True
