"""Confirmation and the execution records: the best policies and the baseline re-measured on paired
executions, ranked by their mean, gains with t-intervals, nothing lost or repeated after a stop.
The child is `noise_child` (no training): these searches cost seconds."""

import glob
import json
import os

import numpy as np
import pytest
from scipy import stats

from conftest import make_tuner, noise_child, spy_fit
from keras_augtune import load_policies
from keras_augtune.evaluation.verdict import mean_interval, paired_gain
from keras_augtune.records import ExecutionStore
from keras_augtune.recommendation import Verdict
from keras_augtune.results import TrialResult, baseline_config


def _counting(tuner, stop_at=None):
    """Record each training's values; raise KeyboardInterrupt at training number ``stop_at`` (1-based)."""
    return spy_fit(tuner, lambda hp, model: dict(hp.values), stop_at)


def _records(tuner):
    return {key: (r.trial_id, sorted(r.rewards.items())) for key, r in ExecutionStore(tuner.project_dir).records().items()}


def test_paired_gain_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.02, 5), rng.normal(0.88, 0.02, 5)
    measured = paired_gain(list(a), list(b))
    expected = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert measured.pairs == 5 and measured.gain == pytest.approx(float(np.mean(a - b)))
    assert measured.interval == pytest.approx((expected.low, expected.high))
    assert paired_gain([0.9, 0.8, 0.7], [0.85]).interval is None and paired_gain([0.9], [0.85]).pairs == 1
    assert paired_gain([], [0.8]) is None
    assert mean_interval([1.0]) == (1.0, None)


def _trial(gain, interval, executions=3):
    from keras_augtune import Policy

    return TrialResult("05", 6, "COMPLETED", Policy([[("rotate", 1.0, 0.5)]]), 0.9, 0.9, 0.9, {}, gain=gain,
                       gain_interval=interval, executions=executions)


def test_verdict_says_better_only_when_the_interval_is_above_zero():
    better = Verdict.of(_trial(0.02, (0.001, 0.04)), None)
    assert better.better and better.text.startswith("Better than no augmentation") and "+0.0010" in better.text
    assert better.recommended.ops == ["rotate"]
    for trial in (_trial(0.02, (-0.001, 0.04)), _trial(0.05, None, 1), _trial(-0.01, (-0.03, 0.01))):
        verdict = Verdict.of(trial, None)
        assert not verdict.better and verdict.recommended.is_identity
        assert verdict.text.startswith("No policy beat no augmentation beyond the noise")
        assert "Recommendation: no augmentation" in verdict.text
    assert "too few for an interval" in Verdict.of(_trial(0.05, None, 1), None).text
    assert not Verdict.of(None, None).better and not Verdict.of(_trial(None, None), None).better


def test_confirmation_measures_the_top_policies_and_the_baseline(tmp_path, digits, capsys):
    x, y = digits
    tuner = make_tuner(tmp_path, noise_child(effect=lambda p: 0.01 * p.ops.count("rotate")), max_trials=5,
                       num_initial_points=3, confirm_top_k=2, confirm_executions=3, verbose=1,
                       intensifier="confirmation")
    calls = _counting(tuner)
    tuner.search(x, y)
    out = capsys.readouterr().out
    # 5 trials, then 2 more executions of the 2 best policies and of the baseline
    assert len(calls) == 5 + 3 * 2
    assert "Confirmation: 2 best policies and 1 no-augmentation run(s), 3 paired executions each: 6 more" in out
    assert out.count("Confirmation ") == 6
    results = tuner.results()
    confirmed = [t for t in results.trials if t.confirmed]
    assert len(confirmed) == 3 and results.baseline in confirmed
    assert {t.trial_id for t in confirmed} - {results.baseline.trial_id} == {
        t.trial_id for t in results.best(2, skip_identity=True, by_score=True)}
    # the confirmed come first, by their mean over the three executions
    best = tuner.get_best_policies(5)
    means = [p.metadata["reward"] for p in best[:3]]
    assert means == sorted(means, reverse=True) and all(p.metadata["confirmed"] for p in best[:3])
    assert not any(p.metadata["confirmed"] for p in best[3:])
    base = results.baseline.execution_rewards
    assert len(base) == 3
    for policy in best[:3]:
        rewards = policy.metadata["execution_rewards"]
        assert policy.metadata["executions"] == 3 and policy.metadata["reward"] == pytest.approx(np.mean(rewards))
        differences = np.subtract(rewards, base)
        assert policy.metadata["gain"] == pytest.approx(differences.mean())
        if policy.metadata["trial_id"] != results.baseline.trial_id:
            low, high = stats.ttest_rel(rewards, base).confidence_interval(0.95)
            assert policy.metadata["gain_interval"] == pytest.approx([low, high])
    for policy in best[3:]:  # unconfirmed: one execution, paired with the baseline's first
        assert policy.metadata["gain_interval"] is None and policy.metadata["executions"] == 1
        assert policy.metadata["gain"] == pytest.approx(policy.metadata["reward"] - base[0])
    summary = tuner.summary_text()
    assert "Confirmation: the 2 best policies and 1 no-augmentation run measured on 3 paired executions each: " \
           "6 trainings beyond the trials." in summary
    assert f"Verdict: {results.verdict().text}" in summary and "95% interval" in summary
    # the policies file carries the metadata and the verdict; reloading the search gives the same
    path = tmp_path / "best.json"
    tuner.export_policies(str(path), 3)
    payload = json.loads(path.read_text())
    assert payload["verdict"]["text"] == results.verdict().text and payload["baseline_execution_rewards"] == base
    assert [p.metadata["gain_interval"] for p in load_policies(str(path))] == [p.metadata["gain_interval"] for p in best[:3]]
    from keras_augtune import report

    disk = report.load_search(tuner.project_dir)
    assert [(t.trial_id, t.confirmed_rank, t.gain) for t in disk.best()] == [
        (t.trial_id, t.confirmed_rank, t.gain) for t in results.best()]


def test_a_stopped_confirmation_resumes_without_repeating(tmp_path, digits):
    x, y = digits
    options = dict(max_trials=4, num_initial_points=2, confirm_top_k=2, confirm_executions=3,
                   intensifier="confirmation")
    reference = make_tuner(tmp_path / "reference", noise_child(), **options)
    reference_calls = _counting(reference)
    reference.search(x, y)
    assert len(reference_calls) == 4 + 6

    stopped = make_tuner(tmp_path / "stopped", noise_child(), **options)
    first = _counting(stopped, stop_at=4 + 3)  # the third confirmation training
    with pytest.raises(KeyboardInterrupt):
        stopped.search(x, y)
    plan = ExecutionStore(stopped.project_dir).read_plan()
    assert plan["complete"] is False and "not finished" in stopped.results().confirmation_text()
    resumed = make_tuner(tmp_path / "stopped", noise_child(), **options)
    second = _counting(resumed)
    resumed.search(x, y)
    assert len(first) - 1 + len(second) == len(reference_calls)  # nothing repeated, nothing lost
    assert sorted(map(json.dumps, first[:-1] + second)) == sorted(map(json.dumps, reference_calls))
    assert _records(resumed) == _records(reference)
    assert ExecutionStore(resumed.project_dir).read_plan()["complete"] is True
    assert [(t.trial_id, t.gain) for t in resumed.results().best()] == [
        (t.trial_id, t.gain) for t in reference.results().best()]
    assert not glob.glob(os.path.join(resumed.project_dir, "executions", "*.tmp*"))


def test_a_stopped_trial_keeps_its_finished_executions(tmp_path, digits):
    x, y = digits
    options = dict(max_trials=3, num_initial_points=2, executions_per_trial=2, confirm_top_k=0)
    tuner = make_tuner(tmp_path, noise_child(), **options)
    first = _counting(tuner, stop_at=4)  # trial 1, execution 1
    with pytest.raises(KeyboardInterrupt):
        tuner.search(x, y)
    resumed = make_tuner(tmp_path, noise_child(), **options)
    second = _counting(resumed)
    resumed.search(x, y)
    assert len(first) - 1 + len(second) == 3 * 2 and first[-1] == second[0]  # only the interrupted one again
    assert all(len(rewards) == 2 for _, rewards in _records(resumed).values())
    assert len([t for t in resumed.oracle.trials.values() if t.status == "COMPLETED"]) == 3


def test_joint_tuning_gain_is_against_the_same_architecture(tmp_path, digits):
    x, y = digits
    # the architecture (width 1-3) adds 0.03 per step; the policy nothing
    tuner = make_tuner(tmp_path, noise_child(width_effect=0.03, own=0.002), max_trials=6, num_initial_points=4,
                       confirm_top_k=3, confirm_executions=2, intensifier="confirmation")
    tuner.search(x, y)
    results = tuner.results()
    baseline_width = results.baseline.hyperparameters["width"]
    store = ExecutionStore(tuner.project_dir)
    confirmed = [t for t in results.best(skip_identity=True) if t.confirmed]
    assert len(confirmed) == 3
    assert any(t.hyperparameters["width"] != baseline_width for t in results.best(skip_identity=True)[:3])
    for t in confirmed:
        base = store.read(baseline_config(tuner.policy_space, t.values))
        assert base is not None and len(base.reward_list()) == 2  # measured, as part of the confirmation
        assert t.gain == pytest.approx(np.mean(np.subtract(t.execution_rewards, base.reward_list())))
        assert abs(t.gain) < 0.02  # the architecture's 0.03 per step is not counted as a gain
    assert not results.verdict().better
