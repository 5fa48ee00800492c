"""Distributed augmentation-policy search: one chief and N workers (Keras Tuner's chief/worker mode).

The chief holds the random-forest oracle and hands out trials over gRPC; each worker trains
child models. Run every process with the same arguments except ``--role`` (and ``--worker-id``).

One machine, everything at once (the chief and 2 workers as subprocesses; Ctrl-C stops them all):

    python examples/distributed_search.py --launch 2 --directory runs/dist

One machine or several, by hand (start the chief first; workers wait for it):

    # on the chief's host (10.0.0.1):
    python examples/distributed_search.py --role chief  --ip 0.0.0.0  --port 8000 --directory runs/dist
    # on each worker (a distinct --worker-id each):
    python examples/distributed_search.py --role worker --ip 10.0.0.1 --port 8000 --worker-id 0 --directory runs/dist
    python examples/distributed_search.py --role worker --ip 10.0.0.1 --port 8000 --worker-id 1 --directory runs/dist

This is exactly Keras Tuner's mode: ``--role``/``--ip``/``--port``/``--worker-id`` only set
``KERASTUNER_TUNER_ID`` (``chief`` or ``worker<N>``), ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT``; your own script can set them instead. Notes:

* ``--ip`` is where the chief listens (chief) or where to reach it (workers). gRPC is
  unauthenticated and unencrypted: keep the port inside a trusted network.
* A worker that dies mid-trial (killed, out of memory, machine lost) stops sending heartbeats;
  after ``--worker-timeout`` seconds the chief gives its trial to another worker. A worker
  restarted with the same ``--worker-id`` simply asks for work again.
* On one machine every process may share ``--directory`` (the notebook CSV is written under a
  lock). On several machines each keeps its own directory; the chief's holds the trials,
  ``oracle.json`` and the results; the workers' hold the checkpoints of their trials.
  ``--method hyperband`` continues trials from other trials' checkpoints, which any worker
  may have written: its workers must share one ``--directory`` (one machine, or a shared disk).
* The chief exits when every trial has finished; it prints the results summary. Restarting
  the chief with the same directory resumes the search (unfinished trials are re-run).
* Data: ``--data digits`` (offline, scikit-learn), an ``.npz`` with ``x``/``y``, or a folder with
  one sub-folder per class. Every process loads the data itself: keep it where all can read it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--launch", type=int, metavar="N", help="start a chief and N workers on this machine")
    p.add_argument("--role", choices=("chief", "worker"), help="this process's role")
    p.add_argument("--worker-id", default="0", help="a distinct id per worker (default 0)")
    p.add_argument("--ip", default="127.0.0.1", help="chief's address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="chief's port (default 8000)")
    p.add_argument("--directory", default="runs/distributed", help="results directory")
    p.add_argument("--project", default="augtune", help="project name inside the directory")
    p.add_argument("--data", default="digits", help="'digits', a .npz file or an image folder")
    p.add_argument("--image-size", type=int, default=16, help="resize digits to this size (default 16)")
    p.add_argument("--limit", type=int, default=600, help="use the first N images (default 600; 0 = all)")
    p.add_argument("--model", default="simple",
                   help="built-in child model (default simple), or 'tiny' (a 1-conv net for smoke tests)")
    p.add_argument("--max-trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=3, help="child epochs per trial")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-initial-points", type=int, default=4)
    p.add_argument("--method", choices=("bayesian", "random", "hyperband"), default="bayesian",
                   help="search method (default bayesian); hyperband: multi-fidelity, --epochs is the full budget")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--confirm-top-k", type=int, default=4,
                   help="searched policies the chief races against the recipes after the trials (default 4; 0: none)")
    p.add_argument("--confirm-executions", type=int, default=14,
                   help="executions of the race's finalists (default 14)")
    p.add_argument("--worker-timeout", type=float, default=120.0,
                   help="seconds without a heartbeat before a worker's trial is re-queued (default 120)")
    args = p.parse_args(argv)
    if (args.launch is None) == (args.role is None):
        p.error("give either --launch N or --role chief|worker")
    return args


def launch(args, argv) -> int:
    """Start a chief and ``args.launch`` workers as subprocesses; stop them all on exit."""
    base, skip = [], False
    for arg in argv:  # the same arguments, minus --launch N
        if skip:
            skip = False
        elif arg == "--launch":
            skip = True
        elif not arg.startswith("--launch="):
            base.append(arg)
    script = os.path.abspath(__file__)
    procs = [subprocess.Popen([sys.executable, script, *base, "--role", "chief"])]
    try:
        for i in range(args.launch):
            procs.append(subprocess.Popen([sys.executable, script, *base, "--role", "worker", "--worker-id", str(i)]))
        return procs[0].wait()  # the chief exits last, once every trial has finished
    finally:
        for proc in procs[1:]:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


def run(args) -> None:
    os.environ["KERASTUNER_ORACLE_IP"] = args.ip
    os.environ["KERASTUNER_ORACLE_PORT"] = str(args.port)
    os.environ["KERASTUNER_TUNER_ID"] = "chief" if args.role == "chief" else f"worker{args.worker_id}"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from keras_augtune import AugmentTuner
    from keras_augtune.loaders import load_data

    x, y, _ = load_data(args.data, image_size=args.image_size if args.data == "digits" else None)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    me = os.environ["KERASTUNER_TUNER_ID"]

    class Tuner(AugmentTuner):
        def on_trial_begin(self, trial):
            print(f"[{me}] starting trial {trial.trial_id}", flush=True)
            super().on_trial_begin(trial)

    model = args.model
    if model == "tiny":
        import keras

        model = keras.Sequential([
            keras.Input(x.shape[1:] if x.ndim == 4 else (*x.shape[1:], 1)), keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(int(y.max()) + 1, activation="softmax")])
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    tuner = Tuner(
        model, max_trials=args.max_trials, num_initial_points=args.num_initial_points, method=args.method,
        child_epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        directory=args.directory, project_name=args.project, worker_timeout=args.worker_timeout,
        confirm_top_k=args.confirm_top_k, confirm_executions=args.confirm_executions,
    )
    started = time.time()
    tuner.search(x, y)
    print(f"[{me}] done in {time.time() - started:.1f}s", flush=True)
    if args.role == "chief":
        tuner.results_summary(5)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.launch is not None:
        return launch(args, argv)
    try:
        run(args)
    except ValueError as exc:
        from keras_augtune.distributed import WorkerDataError

        if not isinstance(exc, WorkerDataError):
            raise
        # a worker started on other data than the chief's: refused in one line (the chief keeps serving)
        print(f"[{os.environ['KERASTUNER_TUNER_ID']}] error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
