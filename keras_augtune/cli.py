"""The ``keras-augtune`` command (also ``python -m keras_augtune``).

    keras-augtune search                      # a real search on the built-in digits
    keras-augtune search --data my_images/ --trials 30 --out runs/mine
    keras-augtune show augtune_runs/best_policies.json --data digits
    keras-augtune report augtune_runs

User errors (a missing folder, an unreadable image, an unknown model, a full disk, ...) end
with a one-line message and exit status 1 (2 for malformed command lines), never a traceback;
``--debug`` shows the traceback. The input checks run before TensorFlow is imported (an input
mistake is reported in well under 2 s), and TensorFlow's start-up log lines are hidden unless
``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any, Sequence

from keras_augtune.cli_args import CHANGEABLE_ON_RESUME, DATA_HELP, FIXED_ON_RESUME, PROG, SEARCH_DEFAULTS, build_parser

PROJECT_NAME = "tuner"
POLICIES_FILE = "best_policies.json"
REPORT_FILE = "report.html"
NOTEBOOK_FILE = "notebook.csv"


class UserError(Exception):
    """A problem with the command's input: reported as one line, exit status 1."""


# ----------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # with the command's own usage, not the top-level one
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    command = {"search": cmd_search, "show": cmd_show, "report": cmd_report}[args.command]
    resume = f"{PROG} search --resume --out {args.out}" if args.command == "search" else ""
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted." + (f" Continue with: {resume}" if resume else ""), file=sys.stderr)
        return 130
    except (UserError, ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        if getattr(args, "debug", False) or "consecutive failures" not in str(exc):
            return _disk_error_exit(args, argv, exc, resume)
        # Keras Tuner's stop after max_consecutive_failed_trials: the trials' own messages say why
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        last = f" The last failure: {lines[-1][:300]}." if len(lines) > 1 else ""  # its traceback's last line
        print(f"{PROG} {args.command}: error: the search stopped: {lines[0]}{last} Every finished trial is kept "
              f"(their messages are in trial_*/trial.json); fix the cause, then continue with: {resume}",
              file=sys.stderr, flush=True)
        return 1
    except Exception as exc:
        return _disk_error_exit(args, argv, exc, resume)


def _disk_error_exit(args: argparse.Namespace, argv: Sequence[str] | None, exc: BaseException, resume: str) -> int:
    """One line for a full or read-only disk (re-raises anything else)."""
    from keras_augtune.files import disk_error

    reason = disk_error(exc)
    if reason is None or getattr(args, "debug", False):
        raise exc
    kept = f" Every finished trial is kept: free some space, then continue with: {resume}" if resume else ""
    print(f"{PROG} {args.command}: error: {reason}.{kept}", file=sys.stderr, flush=True)
    if argv is None:
        # The program itself (not a caller of main): after a failed write HDF5 crashes the
        # interpreter's shutdown (exit 139); nothing is left to clean up, so leave at once.
        sys.stdout.flush()
        os._exit(1)
    return 1


#: TensorFlow's start-up lines, written to the process's stderr before its logging is set up
#: (so TF_CPP_MIN_LOG_LEVEL does not silence them), some of them twice.
_TENSORFLOW_NOISE = (
    "All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
    "This TensorFlow binary is optimized", "To enable the following instructions", "cpu_feature_guard",
    "Unable to register cuDNN factory", "Unable to register cuFFT factory", "Unable to register cuBLAS factory",
    "computation_placer", "TF-TRT Warning", "Could not find cuda drivers", "could not find cuda drivers",
)


def _import_tensorflow(verbose: bool) -> None:
    """Import TensorFlow (and Keras) now, dropping its start-up log lines unless ``verbose``.

    They are written by C++ straight to file descriptor 2, so Python's ``sys.stderr`` cannot
    catch them: the descriptor is pointed at a temporary file during the import, and every
    line that is not known start-up noise is written back to stderr afterwards.
    """
    if verbose or "tensorflow" in sys.modules:
        import keras  # noqa: F401

        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
    kept = [line for line in text.splitlines() if line.strip() and not any(n in line for n in _TENSORFLOW_NOISE)]
    if kept:
        print("\n".join(kept), file=sys.stderr, flush=True)


def _plural(count: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ----------------------------------------------------------------------------- data
#: Warnings of the package's own that are notes to the user, not Python warnings: a damaged execution
#: record is warned about by keras_augtune.executions as a plain UserWarning with this text.
_NOTE_TEXTS = ("skipped the damaged execution record",)


@contextlib.contextmanager
def _notes(*categories: type[Warning]):
    """Print the warnings of ``categories`` raised inside (and the package's own plain ones,
    `_NOTE_TEXTS`) as ``keras-augtune: note: ...`` lines, as they come."""
    import warnings

    with warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("always", category)
        for text in _NOTE_TEXTS:
            warnings.filterwarnings("always", message=text)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, categories) or str(message).startswith(_NOTE_TEXTS):
                print(f"{PROG}: note: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _check_data_spec(spec: str) -> None:
    """Refuse a --data that names nothing loadable (before anything is imported or created)."""
    if spec != "digits" and not os.path.exists(spec):
        raise UserError(f"--data {spec!r}: no such file or folder. --data takes {DATA_HELP}.")
    if os.path.isfile(spec) and not spec.endswith(".npz"):
        raise UserError(f"--data {spec!r} is a file but not an .npz archive. --data takes {DATA_HELP}.")


def _load_data(spec: str, image_size: int | None):
    """Images, labels and class names from --data, with the CLI's own messages."""
    from keras_augtune.data import DataWarning
    from keras_augtune.loaders import load_data

    _check_data_spec(spec)
    with _notes(DataWarning):
        return load_data(spec, image_size=image_size)


# ----------------------------------------------------------------------------- search
def _data_spec(spec: str) -> str:
    """--data as stored in run.json: an absolute path (a resume from elsewhere finds the same data)."""
    return spec if spec == "digits" else os.path.abspath(spec)


def _settings(args: argparse.Namespace, out: str) -> dict[str, Any]:
    from keras_augtune.runs import resume_settings

    explicit = {k: getattr(args, k) for k in SEARCH_DEFAULTS if getattr(args, k) is not None}
    if "data" in explicit:
        explicit["data"] = _data_spec(explicit["data"])
    if args.resume:
        return resume_settings(out, explicit, SEARCH_DEFAULTS, FIXED_ON_RESUME, CHANGEABLE_ON_RESUME)
    return {**SEARCH_DEFAULTS, **explicit}


def cmd_search(args: argparse.Namespace) -> int:
    from keras_augtune import runs

    out = args.out
    if args.resume and args.overwrite:
        raise UserError("--resume continues the search in --out and --overwrite replaces it: give one of them.")
    settings = _settings(args, out)
    _check_search_inputs(settings, args.data)
    runs.check_out_outside_data(out, settings["data"])
    lock = runs.claim_output_folder(out, resume=args.resume, overwrite=args.overwrite)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_disk_errors(previous_hook)
    try:
        return _search(args, out, settings)
    finally:
        sys.unraisablehook = previous_hook
        lock.release()


def _check_search_inputs(settings: dict[str, Any], data: str | None) -> None:
    """Check (and normalise) the model name, the ops and --data (``data``: as typed, when given),
    before TensorFlow is imported."""
    from keras_augtune.models import check_model_name

    settings["model"] = check_model_name(settings["model"])
    if settings["ops"] is not None:
        from keras_augtune.ops import resolve_op

        settings["ops"] = [resolve_op(o) for o in settings["ops"]]
    _check_data_spec(settings["data"] if data is None else data)


def _quiet_disk_errors(hook):
    """An unraisable hook that drops the errors a full disk raises while objects are freed (HDF5's
    file handles): the search ends with one line about the disk instead."""
    from keras_augtune.files import disk_error

    def quiet(unraisable):
        if unraisable.exc_value is None or disk_error(unraisable.exc_value) is None:
            hook(unraisable)

    return quiet


def _search(args: argparse.Namespace, out: str, settings: dict[str, Any]) -> int:
    from keras_augtune import runs

    started = time.time()
    say = (lambda *a, **k: None) if args.quiet else (lambda *a, **k: print(*a, **k, flush=True))
    say(f"Loading data: {settings['data']}")
    x, y, names = _load_data(settings["data"], settings["image_size"])

    import numpy as np

    _import_tensorflow(args.verbose)
    from keras_augtune import compat
    from keras_augtune.data import VALIDATION_SPLIT, check_dataset, data_fingerprint, one_per_class, split_sizes
    from keras_augtune.files import NotebookWarning
    from keras_augtune.repair import DamagedFileWarning, repair_damaged_trials
    from keras_augtune.report import SAMPLE_FILE, write_report
    from keras_augtune.trials import COMPLETED, FINISHED
    from keras_augtune.tuner import AugmentTuner

    data = check_dataset(x, y)
    fingerprint = data_fingerprint(data.x, data.y, names or data.class_names)
    run: dict[str, Any] = {}
    if args.resume:
        run = runs.read_run_file(out) or {}
        note = runs.check_resume_data(out, run, fingerprint, settings["data"])
        if note:
            print(f"{PROG}: note: {note}", file=sys.stderr)
        for line in repair_damaged_trials(os.path.join(out, run.get("project_name", PROJECT_NAME))):
            print(f"{PROG}: note: {line}", file=sys.stderr)
    n_train, _ = split_sizes(len(data.y), VALIDATION_SPLIT)
    train_set_size = settings["train_set_size"]
    if train_set_size >= n_train:
        if args.train_set_size is not None and train_set_size > n_train and not args.resume:
            raise UserError(f"--train-set-size {train_set_size} is larger than the {n_train} training images "
                            f"left after the {VALIDATION_SPLIT:.0%} validation split ({len(data.y)} images in all).")
        train_set_size = None  # all of them
    elif train_set_size < data.num_classes:
        raise UserError(f"--train-set-size {train_set_size} is smaller than the {data.num_classes} classes: the "
                        f"training subsample needs at least one image of each class; use at least {data.num_classes}.")
    if settings["race_train_size"] is not None and settings["race_train_size"] > n_train:
        raise UserError(f"--race-train-size {settings['race_train_size']} is larger than the {n_train} training images "
                        f"left after the {VALIDATION_SPLIT:.0%} validation split ({len(data.y)} images in all).")
    notebook = os.path.join(out, NOTEBOOK_FILE)
    if not args.resume:
        for stale in (notebook, os.path.join(out, POLICIES_FILE), os.path.join(out, REPORT_FILE)):
            if os.path.exists(stale):
                os.remove(stale)
    compat.atomic_state_writes()  # oracle.json, tuner0.json, trial.json: never half-written
    tuner = AugmentTuner(
        settings["model"], max_trials=settings["trials"], method=settings["method"],
        num_initial_points=settings["initial_points"], num_sub_policies=settings["sub_policies"],
        ops_per_sub_policy=settings["ops_per_sub_policy"], ops=settings["ops"],
        train_set_size=train_set_size, child_epochs=settings["epochs"], batch_size=settings["batch_size"],
        directory=out, project_name=PROJECT_NAME, overwrite=not args.resume, seed=settings["seed"],
        confirm_top_k=settings["confirm_top_k"], confirm_executions=settings["confirm_executions"],
        intensifier=settings["intensifier"], recipes=settings["recipes"], race_epochs=settings["race_epochs"],
        race_train_size=settings["race_train_size"], base=settings["base"], notebook_path=notebook, verbose=0 if args.quiet else 1,
    )
    done_before = len([t for t in tuner.oracle.trials.values() if t.status in FINISHED])
    command = " ".join([PROG] + sys.argv[1:]) if sys.argv and sys.argv[0].endswith(PROG) else None
    runs.write_run_file(out, PROJECT_NAME, settings, fingerprint, command, run or None, getattr(tuner.oracle, "seed", None))
    np.savez_compressed(os.path.join(out, SAMPLE_FILE), x=data.x[one_per_class(data.y, 8)],
                        value_range=np.asarray(data.value_range, dtype=np.float64))
    remaining = max(settings["trials"] - done_before, 0)
    shape = "x".join(str(s) for s in data.input_shape)
    say(f"Searching: {remaining} of {_plural(settings['trials'], 'trial')} on {len(data.y)} images ({shape}, "
        f"{data.num_classes} classes), model {settings['model']}, {_plural(settings['epochs'], 'epoch')} per trial, "
        f"output in {out}/" + (f" (resuming after {done_before} trials)" if args.resume else ""))
    with _notes(NotebookWarning, DamagedFileWarning):  # the tuner's own progress bar counts the trials
        tuner.search(data.x, data.y, value_range=data.value_range)

    completed = [t for t in tuner.oracle.trials.values() if t.status == COMPLETED]
    if not completed:
        raise UserError("every trial failed; see the messages above (or the trial_*/trial.json files in "
                        f"{os.path.join(out, PROJECT_NAME)}).")
    policies_path = os.path.join(out, POLICIES_FILE)
    tuner.export_policies(policies_path, num_policies=args.top)
    say("")
    say(tuner.summary_text(args.top))
    say("")
    say(tuner.op_effects().table(limit=12))
    say("")
    if not tuner.results().verdict().better:
        say("To tell smaller gains from the noise: more paired executions (--confirm-executions, with --resume), "
            "more trials (--trials), more epochs, or fewer ops (--ops).")
    say(f"Best policies: {policies_path}")
    if not args.no_report:
        # from the folder, as 'keras-augtune report DIR' writes it (with the run's settings)
        with _notes(DamagedFileWarning):
            report_path = write_report(out, os.path.join(out, REPORT_FILE), num_policies=args.top)
        say(f"Report:        {report_path}")
    say(f"Notebook:      {notebook}")
    say(f"Try it:        {PROG} show {policies_path} --data {settings['data']}")
    say(f"Done in {time.time() - started:.0f} s.")
    return 0


# ----------------------------------------------------------------------------- show
def cmd_show(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.policy):
        raise UserError(f"no such policy file: {args.policy}")
    from keras_augtune.policies_file import load_policies
    from keras_augtune.policy import read_policy_json

    policies = load_policies(args.policy)
    if not policies:
        raise UserError(f"{args.policy} holds no policy.")
    if args.rank > len(policies):
        raise UserError(f"--rank {args.rank}: {args.policy} holds only {len(policies)} policies.")
    policy = policies[args.rank - 1]
    base = read_policy_json(args.policy)
    base = base.get("base") if isinstance(base, dict) else None
    if isinstance(base, dict) and base.get("name"):  # the grid shows the policy alone
        print(f"Note: {args.policy}'s search applied every policy after the base {base['name']!r}: use the base, "
              "then this policy (keras_augtune.load_augmentation).")
    if args.out is not None:
        _check_output_file(args.out, "--out")
    x, y, _ = _load_data(args.data, args.image_size)

    import numpy as np

    from keras_augtune.data import check_dataset, one_per_class
    from keras_augtune.plot import plot_policy_examples

    data = check_dataset(x, y)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(data.y))
    picked = one_per_class(data.y, args.images, order)
    out = args.out
    if out is None:
        stem = os.path.splitext(args.policy)[0]
        out = f"{stem}_grid.png" if args.rank == 1 else f"{stem}_rank{args.rank}_grid.png"
    meta = policy.metadata
    if "name" not in meta and _number(meta.get("reward")):
        gain, interval = meta.get("gain"), meta.get("gain_interval")
        shown = ""  # the numbers of a hand-edited file are shown only when they are numbers
        if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(map(_number, interval)):
            shown = f", 95% interval {interval[0]:+.4f} to {interval[1]:+.4f}"
        meta["name"] = f"rank {args.rank}, trial {meta.get('trial_id')}: reward {meta['reward']:.4f}" + (
            f" ({gain:+.4f} vs no augmentation{shown})" if _number(gain) else "")
    plot_policy_examples(policy, data.x[picked], num_augmentations=args.augmentations, seed=args.seed,
                         value_range=data.value_range, path=out)
    print(f"Wrote {out}: {len(picked)} images x {args.augmentations} augmentations")
    return 0


def _number(value: Any) -> bool:
    """Whether a policy file's metadata value is a number (not a bool or text) that can be shown."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- report
def _check_output_file(path: str, flag: str, suffixes: tuple[str, ...] = ()) -> None:
    """Refuse an output file that is a folder, lies under a file, or has a suffix not in ``suffixes``."""
    kinds = " or ".join(suffixes)
    if os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a folder; give a file name" + (f" ending in {kinds}." if kinds else "."))
    if suffixes and not path.lower().endswith(suffixes):
        raise UserError(f"{flag} {path!r}: the report is written as {kinds}; give a file name ending in one of them.")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"{flag} {path!r}: {parent} is a file, not a folder.")


def cmd_report(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.dir):
        raise UserError(f"no such search folder: {args.dir}")
    if args.out is not None:
        _check_output_file(args.out, "--out", (".html", ".htm", ".png"))
    _import_tensorflow(args.verbose)
    from keras_augtune.report import load_search, op_effects, write_report
    from keras_augtune.repair import DamagedFileWarning

    images = value_range = None
    if args.data is not None:
        from keras_augtune.data import check_dataset, one_per_class

        x, y, _ = _load_data(args.data, args.image_size)
        data = check_dataset(x, y)
        images, value_range = data.x[one_per_class(data.y, 8)], data.value_range
    with _notes(DamagedFileWarning):
        results = load_search(args.dir, images=images, value_range=value_range)
    out = args.out or os.path.join(args.dir, REPORT_FILE)
    write_report(results, out, num_policies=args.top)
    done = len(results.completed)
    print(f"Wrote {out}: {_plural(len(results.trials), 'trial')} ({done} completed)")
    print(op_effects(results).table())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
