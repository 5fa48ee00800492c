"""`DeepAugment`: the predecessor's API, running on keras_augtune.

    deepaug = DeepAugment(images, labels, config={"model": "basiccnn", "child_epochs": 10})
    top_policies = deepaug.optimize(20)

Every config key of DeepAugment 1.1.2 is honoured; the defaults are sized for a
CPU (DeepAugment's own defaults, 50 child epochs x 3 samples, take hours per trial
there). Unknown keys are rejected with the closest names. Its outputs keep its
formats: the top-policies table (`top_policies_table()`, written as
``top20_policies.csv``) and the per-epoch notebook (`deepaugment_notebook()`).
What differs from DeepAugment, and why, is in ``docs/how-to/deepaugment.md``.
"""

from __future__ import annotations

import difflib
import json
import logging as logging_module
import os
import string
from typing import Any, Mapping, Sequence

import numpy as np

from keras_augtune.checks import check_int
from keras_augtune.data import VALIDATION_SPLIT, split_sizes
from keras_augtune.loaders import load_digits
from keras_augtune.files import Notebook, write_csv
from keras_augtune.policy import Policy
from keras_augtune.results import SearchResults, policy_from_values
from keras_augtune.space import PolicySpace, baseline_values
from keras_augtune.trials import trial_index
from keras_augtune.intensifier.race import FIRST_EXECUTION
from keras_augtune.tuner import AugmentTuner

#: DeepAugment's config keys with this package's (CPU-sized) defaults; DeepAugment's in comments.
DEFAULT_CONFIG: dict[str, Any] = {
    "model": "simple",                # DeepAugment: "basiccnn"
    "method": "bayesian_optimization",
    "train_set_size": 1000,           # DeepAugment: 2000
    "opt_samples": 1,                 # DeepAugment: 3 (executions per trial)
    "opt_last_n_epochs": 3,           # the reward's K
    "opt_initial_points": 10,
    "child_epochs": 10,               # DeepAugment: 50
    "child_first_train_epochs": 0,
    "child_batch_size": 64,
    "pre_aug_weights_path": "pre_aug_weights.weights.h5",
    "logging": None,                  # a logging.Logger for per-trial lines
    "notebook_path": None,            # DeepAugment's notebook; default: <directory>/notebook.csv
    # keras_augtune extras
    "directory": "deepaugment_runs",
    "seed": None,
    "validation_split": VALIDATION_SPLIT,
    "confirm_top_k": 4,               # the race (keras_augtune.intensifier.race): policies raced
    "confirm_executions": 14,         # ... and its confirmation executions
    "recipes": None,                  # ... against these recipes (None: TrivialAugment, RandAugment)
    "base_augmentation": None,        # a base recipe every policy follows ("crop-flip", a Policy, a Keras layer)
}

METHODS = {"bayesian_optimization": "bayesian", "bayesian": "bayesian", "random_search": "random", "random": "random"}
KERAS_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist")
TOP_POLICIES = 20
#: The top-policies file, beside the notebook (DeepAugment named it top<rows>_policies.csv).
TOP_POLICIES_FILE = "top20_policies.csv"


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` over the defaults; unknown keys raise with the closest names."""
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}.")
    unknown = [k for k in config if k not in DEFAULT_CONFIG]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(DEFAULT_CONFIG), n=2, cutoff=0.5)
            hints.append(f"{key!r}" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
        raise ValueError(f"Unknown config key(s): {', '.join(hints)}. Known keys: {', '.join(DEFAULT_CONFIG)}.")
    merged = {**DEFAULT_CONFIG, **config}
    if merged["method"] not in METHODS:
        raise ValueError(f"config['method'] must be 'bayesian_optimization' or 'random_search', got {merged['method']!r}.")
    for key, minimum in (("train_set_size", 1), ("opt_samples", 1), ("opt_last_n_epochs", 1), ("child_epochs", 1),
                         ("child_batch_size", 1), ("opt_initial_points", 0), ("child_first_train_epochs", 0),
                         ("confirm_top_k", 0), ("confirm_executions", 0)):
        if not (key == "train_set_size" and merged[key] is None):
            check_int(f"config[{key!r}]", merged[key], minimum)
    if merged["logging"] is not None and not hasattr(merged["logging"], "info"):
        raise TypeError("config['logging'] must be a logging.Logger (or None).")
    return merged


def load_named_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``"digits"`` (offline, scikit-learn) or a ``keras.datasets`` name (downloads once)."""
    if name == "digits":
        return load_digits(32)
    if name not in KERAS_DATASETS:
        close = difflib.get_close_matches(name, ("digits",) + KERAS_DATASETS, n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} Use 'digits', one of {', '.join(KERAS_DATASETS)}, or arrays.")
    import keras

    try:
        (x, y), _ = getattr(keras.datasets, name).load_data()
    except Exception as exc:  # no network, blocked download, corrupt cache
        raise RuntimeError(
            f"Could not load keras.datasets.{name}: it is downloaded on first use and this machine "
            f"seems offline ({type(exc).__name__}: {exc}). Pass your images and labels as arrays, "
            "or use the built-in offline 'digits'."
        ) from None
    return x, np.asarray(y).reshape(-1)


class DeepAugment:
    """DeepAugment's interface on top of [`AugmentTuner`][keras_augtune.AugmentTuner].

    Args:
        images: an image array (N, H, W[, C]), ``"digits"`` or a keras dataset name.
        labels: the labels (ids or one-hot) when ``images`` is an array.
        config: DeepAugment's config dict (see `DEFAULT_CONFIG`).
    """

    def __init__(self, images: Any = "digits", labels: Any = None, config: Mapping[str, Any] | None = None):
        self.config = check_config(config)
        if isinstance(images, str):
            if labels is not None:
                raise ValueError("Pass labels only with an image array, not with a dataset name.")
            images, labels = load_named_dataset(images)
        if labels is None:
            raise ValueError("labels are required when images is an array.")
        self.images, self.labels = images, labels
        c = self.config
        self.logger: logging_module.Logger | None = c["logging"]
        directory = c["directory"]
        weights = c["pre_aug_weights_path"]
        if weights and not weights.endswith(".weights.h5"):
            weights = os.path.splitext(weights)[0] + ".weights.h5"  # Keras 3 weight-file naming
        n_train, _ = split_sizes(len(labels), c["validation_split"])
        self.tuner = AugmentTuner(
            c["model"], max_trials=1, method=METHODS[c["method"]],
            num_initial_points=c["opt_initial_points"],
            policy_space=PolicySpace.deepaugment(),
            executions_per_trial=c["opt_samples"], reward_k=c["opt_last_n_epochs"],
            train_set_size=min(c["train_set_size"], n_train) if c["train_set_size"] else None,
            validation_split=c["validation_split"], child_epochs=c["child_epochs"],
            batch_size=c["child_batch_size"], child_first_train_epochs=c["child_first_train_epochs"],
            pretrained_weights_path=weights if c["child_first_train_epochs"] else None,
            directory=directory, project_name="deepaugment", overwrite=True, seed=c["seed"],
            confirm_top_k=c["confirm_top_k"], confirm_executions=c["confirm_executions"], recipes=c["recipes"],
            base=c["base_augmentation"],
        )
        #: DeepAugment's notebook (its columns), rewritten from the tuner's after each ``optimize``.
        self.notebook_path = c["notebook_path"] or os.path.join(directory, "notebook.csv")
        #: The top-policies table, written by each ``optimize``.
        self.top_policies_path = os.path.join(os.path.dirname(os.path.abspath(self.notebook_path)), TOP_POLICIES_FILE)
        if self.logger is not None:
            self.tuner.display.write = self.logger.info
        self.top_policies: Any = []

    def optimize(self, iterations: int = 20) -> Any:
        """Run ``iterations`` more policies (the first call runs the no-augmentation baseline,
        trial 0, first, as DeepAugment's constructor did); return the top-policies table
        (`top_policies_table()`; a pandas DataFrame when pandas is installed, else a list of
        dicts), best first. The table is written to ``top20_policies.csv`` and DeepAugment's
        notebook to ``notebook_path``, both in the notebook's folder."""
        iterations = check_int("iterations", iterations)
        oracle = self.tuner.oracle
        oracle.max_trials = len(oracle.trials) + iterations + (0 if oracle.trials else 1)
        self.tuner.search(self.images, self.labels)
        results = self.tuner.results()
        rows = top_policies_table(results, self.tuner.policy_space, TOP_POLICIES)
        write_csv(self.top_policies_path, rows)
        write_csv(self.notebook_path, deepaugment_notebook(Notebook(self.tuner.notebook_path).read()))
        #: Whether the best policy beat no augmentation beyond the noise (`results.Verdict`):
        #: DeepAugment's table ranks by reward alone, so read this before using its first row.
        self.verdict = results.verdict()
        self.tuner.display.write(self.verdict.text)
        if self.logger is not None:
            self.logger.info(f"Top policies are saved to {self.top_policies_path}")
        self.top_policies = _as_table(rows)
        return self.top_policies

    def best_policies(self, n: int = 5) -> list[Policy]:
        """The ``n`` best policies as [`Policy`][keras_augtune.Policy] objects."""
        return self.tuner.get_best_policies(n)


# ----------------------------------------------------------------------------- DeepAugment's outputs
def top_policies_table(results: SearchResults, space: PolicySpace, k: int = TOP_POLICIES) -> list[dict[str, Any]]:
    """DeepAugment's top-policies table: the ``k`` best completed trials (the baseline among
    them), best first, with its columns ``trial_no`` (int), ``A_aug1_type``, ``A_aug1_magnitude``,
    ... ([`to_deepaugment_row()`][keras_augtune.deepaugment.to_deepaugment_row]), ``mean_late_val_acc`` (the trial's reward: the mean over
    its trainings of the overfit-filtered top-K validation accuracy),
    ``expected_accuracy_increase`` (its gain over the no-augmentation baseline, a fraction) and
    ``expected_accuracy_increase(%)`` (the same in points, DeepAugment 1.1's column). The
    baseline's row holds the space's no-augmentation values (every op at magnitude 0), as
    DeepAugment's did. Under a base recipe (``base_augmentation``) every row has a ``base`` column naming it: its
    gain is over the base alone, and its policy follows the base."""
    rows = []
    for trial in results.best(k):
        gain = trial.gain
        policy = policy_from_values(baseline_values(space)) if trial.is_baseline else trial.policy
        row: dict[str, Any] = {"trial_no": trial_index(trial.trial_id)}
        row.update(to_deepaugment_row(policy))
        row.update({"mean_late_val_acc": trial.reward, "expected_accuracy_increase": gain,
                    "expected_accuracy_increase(%)": None if gain is None else 100.0 * gain})
        if results.base_name is not None:
            row["base"] = results.base_name
        rows.append(row)
    return rows


def deepaugment_notebook(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tuner's notebook rows in DeepAugment's notebook columns: the Keras history columns,
    ``trial_no`` (-1 for the warm start's pretraining, as DeepAugment), the policy columns,
    ``sample_no`` (1-based training of the trial), ``mean_late_val_acc`` (that training's own
    reward), ``epoch``; a failed trial's row keeps ``status`` and ``error``. The race's trainings
    (the recipes', and the trials' fresh executions) are not DeepAugment's: the tuner's notebook has them."""
    out = []
    for row in rows:
        trial = str(row.get("trial", ""))
        if trial.startswith(("recipe-", "no-augmentation-")) or int(row.get("execution") or 0) >= FIRST_EXECUTION:
            continue
        converted = {key: value for key, value in row.items()
                     if key not in ("trial", "execution", "epoch", "reward", "policy", "hyperparameters", "status", "error")}
        converted["trial_no"] = -1 if trial.startswith("pretraining") else trial_index(trial)
        if row.get("policy"):
            converted.update(to_deepaugment_row(Policy(json.loads(row["policy"]))))
        converted["sample_no"] = int(row.get("execution") or 0) + 1
        converted["mean_late_val_acc"] = row.get("reward", "")
        converted["epoch"] = row.get("epoch", "")
        if row.get("status"):
            converted.update(status=row["status"], error=row.get("error", ""))
        out.append(converted)
    return out


def _as_table(rows: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame of ``rows`` when pandas is installed, else the rows."""
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


# ----------------------------------------------------------------------------- DeepAugment's policy formats
def to_deepaugment_list(policy: Policy) -> list[Any]:
    """DeepAugment's flat list ``[A_aug1_type, A_aug1_magnitude, A_aug2_type, ...]``.

    DeepAugment had no per-op probability (all ops fire); probabilities are dropped.
    """
    return [value for sub in policy.sub_policies for step in sub for value in (step.op, step.magnitude)]


def to_deepaugment_row(policy: Policy) -> dict[str, Any]:
    """DeepAugment's top-policies row: ``{"A_aug1_type": ..., "A_aug1_magnitude": ..., ...}``.

    Probabilities other than 1 are kept in extra ``*_probability`` columns.
    """
    if len(policy.sub_policies) > len(string.ascii_uppercase):
        raise ValueError("DeepAugment's row format has at most 26 sub-policies (A-Z).")
    row: dict[str, Any] = {}
    for letter, sub in zip(string.ascii_uppercase, policy.sub_policies):
        for j, step in enumerate(sub, start=1):
            row[f"{letter}_aug{j}_type"] = step.op
            row[f"{letter}_aug{j}_magnitude"] = step.magnitude
            if step.probability != 1.0:
                row[f"{letter}_aug{j}_probability"] = step.probability
    return row


def from_deepaugment(flat_or_row: Sequence[Any] | Mapping[str, Any], ops_per_sub_policy: int = 2) -> Policy:
    """A [`Policy`][keras_augtune.Policy] from DeepAugment's flat list or its top-policies row (dict/Series)."""
    if isinstance(flat_or_row, Mapping) or hasattr(flat_or_row, "to_dict"):
        row = dict(flat_or_row.to_dict() if hasattr(flat_or_row, "to_dict") else flat_or_row)
        subs = []
        for letter in string.ascii_uppercase:
            steps, j = [], 1
            while f"{letter}_aug{j}_type" in row:
                mag_key = f"{letter}_aug{j}_magnitude"
                if mag_key not in row:
                    raise ValueError(f"DeepAugment row has {letter}_aug{j}_type but no {mag_key!r}.")
                steps.append((row[f"{letter}_aug{j}_type"], row.get(f"{letter}_aug{j}_probability", 1.0),
                              row[mag_key]))
                j += 1
            if not steps:
                break
            subs.append(steps)
        if not subs:
            raise ValueError("Not a DeepAugment policy row: no 'A_aug1_type' column.")
        return Policy(subs)
    flat = list(flat_or_row)
    width = 2 * ops_per_sub_policy
    if not flat or len(flat) % width:
        raise ValueError(
            f"DeepAugment's flat policy list alternates op type and magnitude, {ops_per_sub_policy} ops "
            f"per sub-policy: its length must be a positive multiple of {width}, got {len(flat)}."
        )
    pairs = [(flat[k], 1.0, flat[k + 1]) for k in range(0, len(flat), 2)]
    return Policy([pairs[k:k + ops_per_sub_policy] for k in range(0, len(pairs), ops_per_sub_policy)])
