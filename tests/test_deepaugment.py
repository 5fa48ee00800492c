"""The DeepAugment facade keeps DeepAugment's behaviour and formats: optimize(n) runs n policies
after the baseline, the top-policies table and top20_policies.csv, the notebook's columns."""

import csv

import pytest

from conftest import tiny_model
from keras_augtune import DeepAugment

POLICY_COLUMNS = [f"{letter}_aug{j}_{field}" for letter in "ABCDE" for j in (1, 2) for field in ("type", "magnitude")]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_optimize_runs_n_policies_after_the_baseline_with_deepaugments_outputs(tmp_path, digits):
    x, y = digits
    config = {"model": tiny_model(), "child_epochs": 1, "child_batch_size": 32, "train_set_size": 100,
              "opt_samples": 2, "child_first_train_epochs": 1, "directory": str(tmp_path), "seed": 0,
              "pre_aug_weights_path": str(tmp_path / "pre.weights.h5"), "confirm_top_k": 1, "confirm_executions": 2,
              "recipes": ["TrivialAugment"]}
    deepaug = DeepAugment(x, y, config=config)
    table = deepaug.optimize(1)
    if hasattr(table, "to_dict"):  # a pandas DataFrame when pandas is installed (the test extra has it)
        table = table.to_dict("records")
    assert len(deepaug.tuner.oracle.trials) == 2  # the baseline, then 1 policy
    assert sorted(row["trial_no"] for row in table) == [0, 1] and all(type(r["trial_no"]) is int for r in table)
    assert list(table[0]) == ["trial_no", *POLICY_COLUMNS, "mean_late_val_acc", "expected_accuracy_increase",
                              "expected_accuracy_increase(%)"]
    baseline = next(r for r in table if r["trial_no"] == 0)
    assert baseline["expected_accuracy_increase"] == 0.0 and baseline["A_aug1_magnitude"] == 0.0
    other = next(r for r in table if r["trial_no"] == 1)
    assert other["expected_accuracy_increase"] == pytest.approx(other["mean_late_val_acc"] - baseline["mean_late_val_acc"])
    written = read_csv(tmp_path / "top20_policies.csv")
    assert [int(r["trial_no"]) for r in written] == [r["trial_no"] for r in table]
    # DeepAugment's notebook: each training's own reward, the pretraining as trial -1
    notebook = read_csv(tmp_path / "notebook.csv")
    assert {"trial_no", "sample_no", "mean_late_val_acc", "epoch", "A_aug1_type"} <= set(notebook[0])
    assert {r["trial_no"] for r in notebook} == {"-1", "0", "1"}
    for trial in ("0", "1"):
        samples = {r["sample_no"]: float(r["mean_late_val_acc"]) for r in notebook if r["trial_no"] == trial}
        assert sorted(samples) == ["1", "2"]  # opt_samples=2 trainings (the race's are in the tuner's notebook)
        reward = next(r["mean_late_val_acc"] for r in table if str(r["trial_no"]) == trial)
        assert sum(samples.values()) / 2 == pytest.approx(reward)
    # the verdict is the one results model's: the race's, naming a searched policy, TrivialAugment or none
    assert deepaug.verdict.text == deepaug.tuner.results().verdict().text
    assert deepaug.tuner.results().race is not None and deepaug.verdict.kind in ("searched", "recipe", "baseline")
    assert len(deepaug.optimize(1)) == 3 and len(deepaug.tuner.oracle.trials) == 3  # n more policies
