"""Fault-injection sweep (issue 24): fail each write of a tiny seeded search in turn, resume, and
compare with the uninterrupted run.

1. **Count**: the search runs once with no fault (``keras-augtune search`` on digits, the
   smallest settings, ``--seed 1``) while every write is recorded in order: the package's
   `keras_augtune.files.atomic_write` (run.json, the notebook, execution records, the policies, the
   report, and Keras Tuner's ``oracle.json`` / ``tuner0.json`` / ``trial.json`` once
   `compat.atomic_state_writes()` routes them there), ``numpy.savez_compressed``
   (``sample_images.npz``) and ``keras.Model.save_weights`` (trial checkpoints, which
   `keras_augtune.files.save_weights` writes under a temporary name and renames; the log names the
   final file). Its results are the reference.
2. **Inject**: for each chosen write point *k* and each fault, a fresh search runs in its own
   process and the *k*-th write fails: ``ENOSPC`` or ``EIO`` (an ``OSError`` raised by the write;
   a file Keras or numpy writes in place, a checkpoint's temporary file or ``sample_images.npz``,
   is first left cut short), or ``kill -9`` (the process kills itself there, such a file again
   left cut short).
3. **Resume**: ``keras-augtune search --resume`` on the same folder (or, when it answers that
   nothing was saved to resume — a fault at the very first write — the original command again,
   as its message says), then the final results are compared with the reference: every trial's status, hyperparameters and score, the execution
   records' rewards, and ``best_policies.json`` (its policies and numbers).

A case passes when the resume exits 0 and its results are identical. Results go to a JSON file
(one row per case, and the totals) that ``docs/reliability.md`` quotes.

Run from the repository root (each case is two processes of ~10-20 s on 2 cores)::

    python benchmarks/fault_sweep.py                                # every write point x 3 faults
    python benchmarks/fault_sweep.py --points first --out benchmarks/results/fault_sweep.json
                                                                    # the first write of each file
    python benchmarks/fault_sweep.py --points 1 --update benchmarks/results/fault_sweep.json
                                                                    # re-run cases after a fix
    python benchmarks/fault_sweep.py --missing --update benchmarks/results/fault_sweep.json
                                                                    # the (point, fault) cases not run yet

``--update`` replaces those cases in an existing results file (its reference must be the same:
the seeded search gives the same results every time), recomputes the totals and records the
command beside the first one.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

#: The repository root: its keras_augtune is the one swept (also in the child processes).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SEARCH = ["--data", "digits", "--trials", "3", "--epochs", "1", "--train-set-size", "40", "--batch-size", "16",
          "--initial-points", "2", "--sub-policies", "2", "--ops-per-sub-policy", "1", "--confirm-top-k", "1",
          "--confirm-executions", "2", "--intensifier", "confirmation", "--seed", "1", "--image-size", "12", "-q"]
# ``--intensifier confirmation``: the default when the sweep's first 70 cases ran (the race, now the
# default, writes other files: race.json, more execution records), so that --missing completes that sweep.
FAULTS = ("ENOSPC", "EIO", "kill")


# ----------------------------------------------------------------------------- the child process
def _child(out: str, log: str, point: int, fault: str, argv: list[str]) -> int:
    """Run the CLI with every write counted (appended to ``log``) and the ``point``-th failing."""
    import keras
    import numpy as np

    from keras_augtune import cli, files

    count = [0]

    def hit(kind: str, path: str) -> bool:
        count[0] += 1
        name = re.sub(r"\.tmp\d+\.\d+(?=\.weights\.h5$)", "", os.path.relpath(os.fspath(path), out))  # files.save_weights
        with open(log, "a") as f:
            f.write(json.dumps([count[0], kind, name]) + "\n")
        return count[0] == point

    def fail(path: str, partial: bool) -> None:
        if partial:  # a writer that writes in place: half a file is left
            with open(path, "wb") as f:
                f.write(b"\x89HDF\r\n" + b"\0" * 100)
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        code = errno.ENOSPC if fault == "ENOSPC" else errno.EIO
        raise OSError(code, os.strerror(code), path)

    atomic_write = files.atomic_write

    def counted_atomic_write(path, text):
        if hit("atomic_write", path):
            fail(os.fspath(path), partial=False)
        return atomic_write(path, text)

    import keras_augtune.repair  # noqa: F401 (modules that import atomic_write by name: patched below)
    import keras_augtune.report  # noqa: F401

    for name, module in list(sys.modules.items()):
        if name.startswith("keras_augtune") and getattr(module, "atomic_write", None) is atomic_write:
            module.atomic_write = counted_atomic_write
    savez = np.savez_compressed

    def counted_savez(path, *args, **kwargs):
        if hit("savez", path):
            fail(os.fspath(path), partial=True)
        return savez(path, *args, **kwargs)

    np.savez_compressed = counted_savez
    save_weights = keras.Model.save_weights

    def counted_save_weights(self, path, *args, **kwargs):
        if hit("save_weights", path):
            fail(os.fspath(path), partial=True)
        return save_weights(self, path, *args, **kwargs)

    keras.Model.save_weights = counted_save_weights
    return cli.main(argv)


# ----------------------------------------------------------------------------- the parent
def _run(out: str, log: str, point: int, fault: str, argv: list[str], timeout: float) -> tuple[int, str]:
    command = [sys.executable, os.path.abspath(__file__), "--child", out, log, str(point), fault, "--", *argv]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return 124, "timed out"
    return done.returncode, done.stderr


def results_of(out: str) -> dict:
    """What must not change: each trial's status, values and score; the execution records'
    rewards; the best policies (their ops and numbers)."""
    project = os.path.join(out, "tuner")
    trials = {}
    for name in sorted(os.listdir(project)):
        path = os.path.join(project, name, "trial.json")
        if name.startswith("trial_") and os.path.isfile(path):
            with open(path) as f:
                t = json.load(f)
            trials[t["trial_id"]] = [t["status"], t["hyperparameters"]["values"], t["score"]]
    records = {}
    folder = os.path.join(project, "executions")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".json") and name != "confirmation.json":
            with open(os.path.join(folder, name)) as f:
                r = json.load(f)
            records[name] = {e: item["reward"] for e, item in r["executions"].items()}
    policies = None
    path = os.path.join(out, "best_policies.json")
    if os.path.isfile(path):
        with open(path) as f:
            policies = json.load(f)
        for p in policies.get("policies", []) if isinstance(policies, dict) else []:
            p.get("metadata", {}).pop("written", None)
    return {"trials": trials, "executions": records, "policies": policies}


def _differences(a: dict, b: dict) -> list[str]:
    return [key for key in a if a[key] != b.get(key)]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--child":
        out, log, point, fault = args[1:5]
        return _child(out, log, int(point), fault, args[6:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", default="all",
                        help="'all', 'first' (the first write of each file), or write numbers, e.g. 1,5,9")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of " + ", ".join(FAULTS))
    parser.add_argument("--out", default="benchmarks/results/fault_sweep.json")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    parser.add_argument("--update", default=None, metavar="JSON",
                        help="replace these cases in an existing results file (written back there)")
    parser.add_argument("--missing", action="store_true",
                        help="with --update: run exactly the (point, fault) cases that file lacks (of --points x --faults)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="run at most N cases (a subset)")
    opts = parser.parse_args(args)
    if opts.missing and not opts.update:
        parser.error("--missing needs --update JSON (the results file whose missing cases to run)")
    faults = [f for f in opts.faults.split(",") if f]
    started = time.time()
    load = os.getloadavg()
    work = tempfile.mkdtemp(prefix="fault_sweep_")
    try:
        reference_out, reference_log = os.path.join(work, "reference"), os.path.join(work, "reference.log")
        status, err = _run(reference_out, reference_log, 0, "none", ["search", "--out", reference_out, *SEARCH],
                           opts.timeout)
        if status != 0:
            print(err[-3000:], file=sys.stderr)
            return 1
        reference = results_of(reference_out)
        with open(reference_log) as f:
            writes = [json.loads(line) for line in f]
        if opts.points == "all":
            points = [w[0] for w in writes]
        elif opts.points == "first":
            seen, points = set(), []
            for number, kind, path in writes:
                label = (kind, os.path.basename(path) if "trial_" not in path else "trial_*/" + os.path.basename(path))
                if label not in seen:
                    seen.add(label)
                    points.append(number)
        else:
            points = [int(p) for p in opts.points.split(",")]
        earlier, note = None, None
        if opts.update:
            with open(opts.update) as f:
                earlier = json.load(f)
            note = _align(earlier, reference, writes)
            if note is None:
                print("the reference run (its results or its writes) differs from the one in --update's file: "
                      "not merged", file=sys.stderr)
                return 1
        done = {(c["point"], c["fault"]) for c in earlier["cases"]} if opts.missing else set()
        todo = [(p, f) for p in points for f in faults if (p, f) not in done]
        if opts.missing:  # one fault at every point first: a sweep stopped early has covered every write
            todo.sort(key=lambda case: (faults.index(case[1]), case[0]))
        todo = todo[:opts.limit]
        print(f"{len(writes)} write points in the reference run; sweeping {len(todo)} cases "
              f"({len(points)} points x {len(faults)} faults" + (f", less {len(done)} done" if done else "") + ")",
              flush=True)
        cases, totals = [], None
        for point, fault in todo:
            cases.append(_case(work, point, fault, writes[point - 1], reference, opts.timeout))
            print(json.dumps(cases[-1]), flush=True)
            # written after every case: a sweep stopped early keeps the cases it ran
            totals = _save(opts, args, earlier, cases, faults, reference, writes, load, started, note)
        if totals is None:
            totals = _save(opts, args, earlier, cases, faults, reference, writes, load, started, note)
        print(json.dumps(totals))
        return 0 if totals["identical"] == totals["cases"] else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _case(work: str, point: int, fault: str, write: list, reference: dict, timeout: float) -> dict:
    """Fail write ``point`` with ``fault``, resume (or run again), and compare with ``reference``."""
    _, kind, path = write
    out, log = os.path.join(work, f"p{point}_{fault}"), os.path.join(work, f"p{point}_{fault}.log")
    t0 = time.time()
    first, first_err = _run(out, log, point, fault, ["search", "--out", out, *SEARCH], timeout)
    second, second_err = _run(out, os.path.join(work, "resume.log"), 0, "none",
                              ["search", "--resume", "--out", out, *SEARCH], timeout)
    recovery = "resume"
    if second != 0 and "Start it without --resume" in second_err:
        # stopped before its first write: nothing to resume; the message says to start it again
        recovery = "rerun"
        second, second_err = _run(out, os.path.join(work, "resume.log"), 0, "none",
                                  ["search", "--out", out, *SEARCH], timeout)
    same = second == 0 and results_of(out) == reference
    case = {
        "point": point, "kind": kind, "file": path, "fault": fault, "first_exit": first,
        "first_traceback": "Traceback" in first_err, "first_message": _last_line(first_err),
        "recovery": recovery, "resume_exit": second, "resume_traceback": "Traceback" in second_err,
        "identical": same, "seconds": round(time.time() - t0, 1),
    }
    if second == 0 and not same:
        case["differs_in"] = _differences(reference, results_of(out))
    if second != 0:
        case["resume_message"] = _last_line(second_err)
    shutil.rmtree(out, ignore_errors=True)
    return case


def _save(opts, args, earlier, cases, faults, reference, writes, load, started, note) -> dict:
    """Write the results file (merged into ``earlier``, the --update file, when given); the totals."""
    if earlier is not None:
        redone = {(c["point"], c["fault"]) for c in cases}
        cases = sorted([c for c in earlier["cases"] if (c["point"], c["fault"]) not in redone] + cases,
                       key=lambda c: (c["point"], FAULTS.index(c["fault"])))
        faults = earlier["faults"]
    points = sorted({c["point"] for c in cases})  # those with a case run (all, for a sweep stopped early)
    totals = {
        "cases": len(cases), "resumed": sum(c["resume_exit"] == 0 for c in cases),
        "identical": sum(c["identical"] for c in cases),
        "first_run_tracebacks": sum(c["first_traceback"] for c in cases),
        "by_fault": {f: {"cases": sum(c["fault"] == f for c in cases),
                         "identical": sum(c["identical"] for c in cases if c["fault"] == f)} for f in faults},
    }
    command = "python benchmarks/fault_sweep.py " + " ".join(args)
    run = {"command": command, "date": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
           "machine": f"{platform.node()} ({os.cpu_count()} CPUs), load average at start {load[0]:.1f}",
           "seconds": round(time.time() - started), **({"note": note} if note else {})}
    report = {
        "runs": (earlier or {}).get("runs", []) + [run], "reference": json.dumps(reference, sort_keys=True),
        "search": "keras-augtune search " + " ".join(SEARCH),
        "write_points": len(writes), "writes": writes, "points_swept": points, "faults": faults,
        "totals": totals, "cases": cases,
    }
    target = opts.update or opts.out
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    with open(target + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    os.replace(target + ".tmp", target)
    return totals


def _identities(writes: list) -> list:
    """Each write as (kind, file, how many times that file was written before)."""
    seen: dict = {}
    out = []
    for _, kind, path in writes:
        out.append((kind, path, seen.get((kind, path), 0)))
        seen[(kind, path)] = seen.get((kind, path), 0) + 1
    return out


def _holds(new, old) -> bool:
    """Whether ``new`` holds everything ``old`` does (fields added since are allowed)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _holds(new[k], v) for k, v in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(new) == len(old) and all(_holds(a, b) for a, b in zip(new, old))
    return new == old


def _align(earlier: dict, reference: dict, writes: list) -> str | None:
    """Make ``earlier`` (an --update file) comparable with this reference run, or None when it is not.

    Accepted: the same reference results, or results that hold every field and number of the
    earlier ones (a field added to the output since); the same writes, or the same writes in
    another order (the earlier cases are then renumbered: a case is its write's kind, file and
    occurrence, not its number). Returns "" or a note saying what was aligned."""
    old_reference = json.loads(earlier["reference"])
    notes = []
    if old_reference != reference:
        if not _holds(reference, old_reference):
            return None
        notes.append("the reference results hold every number of the earlier ones (and fields added since)")
    if earlier["writes"] != writes:
        old_ids, new_ids = _identities(earlier["writes"]), _identities(writes)
        if sorted(old_ids) != sorted(new_ids):
            return None
        number = {identity: i + 1 for i, identity in enumerate(new_ids)}
        moved = []
        for case in earlier["cases"]:
            point = number[old_ids[case["point"] - 1]]
            if point != case["point"]:
                moved.append(f"{case['point']}->{point}")
                case["point"] = point
        earlier["points_swept"] = sorted({c["point"] for c in earlier["cases"]})
        notes.append("the same writes in another order: earlier cases renumbered by their write "
                     f"({', '.join(sorted(set(moved), key=lambda m: int(m.split('-')[0])))})")
    return "; ".join(notes)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
