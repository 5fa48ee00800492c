"""The race as a search's intensifier (issue 21): recipes as candidates, fresh executions, the three-way
verdict everywhere it is shown, resume. The child is `noise_child` (no training): seconds per search."""

import json
import os
import re

import pytest

from conftest import make_tuner, noise_child, spy_fit
from keras_augtune import load_policies
from keras_augtune.intensifier.race import FIRST_EXECUTION
from keras_augtune.records import ExecutionStore


def _share(policy, op):
    """The share of the policy's sub-policies that apply ``op``."""
    return sum(any(step.op == op for step in sub) for sub in policy.sub_policies) / len(policy.sub_policies)


def _tuner(tmp_path, effect=None, **options):
    settings = dict(max_trials=6, num_initial_points=6, confirm_top_k=2, confirm_executions=6,
                    recipes=["TrivialAugment", "RandAugment(N=1, M=0.3)"])
    settings.update(options)
    return make_tuner(tmp_path, noise_child(effect=effect, shared=0.02, own=0.004), **settings)


def _race_trainings(tuner):
    return [v for v in spy_fit(tuner, lambda hp, model: dict(hp.values))]


def test_a_planted_searched_op_wins_over_the_recipes_on_fresh_executions(tmp_path, digits):
    x, y = digits
    tuner = _tuner(tmp_path, effect=lambda p: 0.05 * _share(p, "rotate"))
    calls = spy_fit(tuner, lambda hp, model: dict(hp.values))
    tuner.search(x, y)
    results = tuner.results()
    race = results.race
    assert race is not None and race.complete
    # 2 searched + 2 recipes: one screening round of 2 executions each, then 3 finalists x 6
    assert len(calls) == 6 + 4 * 2 + 3 * 6
    executions = set(race.plan["screening"]) | set(race.plan["confirmation"])
    assert min(executions) == FIRST_EXECUTION and len(race.plan["confirmation"]) == 6
    for record in ExecutionStore(tuner.project_dir).records().values():  # trials keep their own executions
        assert all(e < 1 or e >= FIRST_EXECUTION for e in record.rewards)
    verdict = results.verdict()
    assert verdict.kind == "searched" and verdict.better and verdict.winner is not None
    assert _share(verdict.recommended, "rotate") == 1.0
    assert verdict.gain > 0 and verdict.interval[0] > 0 and verdict.interval_vs_recipe[0] > 0
    assert verdict.winner.trial_id == results.best(1, skip_identity=True)[0].trial_id  # raced first
    # the baseline raced too: ranked with the raced trials (by its race mean), never after the unraced ones
    ranked = [t.trial_id for t in results.best()]
    assert results.baseline.confirmed and ranked.index(results.baseline.trial_id) < len(race.plan["candidates"])
    text = results.summary_text()
    assert "Race (6 confirmation executions" in text and "TrivialAugment" in text and "Use the searched policy" in text


def test_a_recipe_is_recommended_when_nothing_searched_beats_it(tmp_path, digits):
    x, y = digits
    tuner = _tuner(tmp_path, effect=lambda p: 0.05 if p.metadata.get("name") == "TrivialAugment" else 0.0)
    tuner.search(x, y)
    verdict = tuner.results().verdict()
    assert verdict.kind == "recipe" and verdict.name == "TrivialAugment" and verdict.better
    assert verdict.recommended.metadata["name"] == "TrivialAugment"
    assert re.match(r"Use TrivialAugment: \+0\.0\d+ \[\+0\.0\d+, \+0\.0\d+\] over no augmentation; no searched", verdict.text)
    path = tmp_path / "best.json"
    tuner.export_policies(str(path))
    saved = json.loads(path.read_text())["verdict"]
    assert saved["kind"] == "recipe" and saved["recommended"]["metadata"]["name"] == "TrivialAugment"
    assert load_policies(str(path))  # the searched policies are still listed
    with open(tuner.notebook_path) as f:
        assert "recipe-" in f.read()  # the recipes' trainings are in the notebook
    from keras_augtune.report import write_report

    page = open(write_report(tuner.project_dir, str(tmp_path / "report.html")), encoding="utf-8").read()
    assert "The race: searched policies against the recipes" in page and "<td>TrivialAugment</td>" in page
    assert "Use TrivialAugment" in page  # the headline


def test_a_null_search_recommends_no_augmentation(tmp_path, digits):
    x, y = digits
    tuner = _tuner(tmp_path)
    tuner.search(x, y)
    verdict = tuner.results().verdict()
    assert verdict.kind == "baseline" and not verdict.better and verdict.recommended.is_identity
    assert verdict.text.startswith("Use no augmentation: nothing beat it beyond the noise")


def test_a_race_stopped_halfway_resumes_without_repeating_a_training(tmp_path, digits):
    x, y = digits
    effect = lambda p: 0.05 * _share(p, "rotate")  # noqa: E731
    full = _tuner(tmp_path / "full", effect=effect)
    everything = spy_fit(full, lambda hp, model: json.dumps(hp.values, sort_keys=True))
    full.search(x, y)
    stopped = _tuner(tmp_path / "stopped", effect=effect)
    first = spy_fit(stopped, lambda hp, model: json.dumps(hp.values, sort_keys=True), stop_at=20)
    with pytest.raises(KeyboardInterrupt):
        stopped.search(x, y)
    assert not stopped.results().race.complete
    assert "The race stopped before its decision" in stopped.results().verdict().text
    again = _tuner(tmp_path / "stopped", effect=effect)
    second = spy_fit(again, lambda hp, model: json.dumps(hp.values, sort_keys=True))
    again.search(x, y)
    assert len(first) - 1 + len(second) == len(everything)  # the interrupted training is the only one run twice
    assert again.results().verdict().text == full.results().verdict().text


def test_old_execution_records_are_still_read(tmp_path):
    folder = tmp_path / "executions"
    os.makedirs(folder)
    store = ExecutionStore(str(tmp_path))
    values = {"augment/sub_policy_0/op_0/op": "identity"}
    with open(store.path(values), "w") as f:  # as keras_augtune 0.2 wrote it
        json.dump({"format": "keras_augtune.executions", "version": 1, "values": values, "trial_id": "00",
                   "search_seed": 3, "executions": {"0": {"reward": 0.5, "history": {}}}}, f)
    assert store.read(values, 3).rewards == {0: 0.5}


def test_bad_race_settings_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'race'"):
        make_tuner(tmp_path, intensifier="rase")
    with pytest.raises(ValueError, match="Did you mean 'TrivialAugment'"):
        make_tuner(tmp_path, confirm_top_k=2, recipes=["TrivialAugmnt"])
    with pytest.raises(ValueError, match="race_epochs configure the race"):
        make_tuner(tmp_path, intensifier="confirmation", race_epochs=3)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        make_tuner(tmp_path, confirm_top_k=2, race_epochs=0)
