"""The calibration of the recommendation: simulated searches (random proposals), the default race and its decision
on a fake child with known true gains (``benchmarks/_calibration.py``; the published figures come from
``benchmarks/calibration.py`` with the real oracle)."""

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _calibration as calibration  # noqa: E402

from keras_augtune.intensifier.race import Race  # noqa: E402


def _run(name, searches, race=None):
    setting = calibration.SETTINGS[name]
    outcomes = [calibration.simulate(setting, seed, race or Race()) for seed in range(searches)]
    return calibration.summarise(setting, outcomes)


def test_no_false_better_and_no_bias_when_nothing_helps():
    """2000 null searches. The rule passes at its nominal 2.5 % (binomial sd 0.35 %: 3.5 % is 2.9 sd
    above); today's rule (5.0 % false "better", +0.9 sigma winner's gain) fails both bounds
    (3.5 % is 3.1 sd below 5 %; the bias's standard error here is ~0.02 sigma)."""
    summary = _run("all gains 0", 2000)
    assert summary["better_rate"] <= 0.035
    assert abs(summary["bias_sigma"]) <= 0.2
    assert summary["pooled_share"] > 0.9  # equal noise: the two-way model pools
    # the bound has the power to fail today's rule: a true 5 % rate passes it with probability < 0.1 %
    from scipy import stats

    assert stats.binom.cdf(int(0.035 * 2000), 2000, 0.05) < 0.001
    assert summary["bias_sigma_se"] < 0.05  # +0.9 sigma (today's) is 14 standard errors above 0.2


def test_power_when_an_op_helps():
    """+2 sigma for every policy that can apply `rotate` (the recipes can): >= 80 % name a truly
    helpful configuration (300 searches), and a searched policy is not said to beat an equally good
    recipe more often than the nominal rate."""
    summary = _run("rotate +2 sigma", 300)
    assert summary["power"] >= 0.8
    assert summary["searched_over_recipe_rate"] <= 0.035 + 0.02  # 300 searches: a looser bound
    assert abs(summary["bias_sigma"]) <= 0.2


def test_the_published_table_is_the_results_file():
    """docs/benchmarks.md's calibration tables are generated from benchmarks/results/calibration*.json."""
    import calibration as script

    results = json.loads((ROOT / "benchmarks" / "results" / "calibration.json").read_text())
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    effects = json.loads((ROOT / "benchmarks" / "results" / "calibration_effects.json").read_text())
    assert script.markdown(results) in page and script.markdown_effects(effects) in page
    assert page.endswith(script.docs_section(results, effects))  # the prose's figures too
    assert results["false_better_rate"] == max(s["better_rate"] for s in results["settings"].values() if s["null"])
    assert set(results["power"]) == {"1", "2", "4"}


@pytest.mark.parametrize("bad, message", [({"screen_executions": 0}, "screen_executions must be a positive integer"),
                                          ({"confidence": 95}, "confidence must be a number in")])
def test_bad_race_options(bad, message):
    with pytest.raises(ValueError, match=message):
        Race(**bad)


def test_op_effects_label_few_null_ops():
    """Op effects of 60 simulated 20-trial searches over the default space's 31 ops: an op that
    does nothing is labelled "helps"/"hurts" in <= 1 % of cases (issue target 5 %; the intervals
    are simultaneous over the ops; bootstrap percentiles uncorrected labelled ~4 % even after a
    Bonferroni correction, because the bootstrap understates the spread), every estimate lies
    inside its interval, and a planted helpful op is never labelled "hurts"."""
    null = calibration.summarise_effects([calibration.effects_search(s, False, num_bootstrap=50) for s in range(60)])
    assert null["null_ops"] > 1500 and null["false_label_rate"] <= 0.01 and null["inside_rate"] == 1.0
    planted = calibration.summarise_effects([calibration.effects_search(s, True, num_bootstrap=50) for s in range(30)])
    assert planted["rotate_wrong_rate"] == 0.0 and planted["invert_wrong_rate"] == 0.0
    assert planted["rotate_helps_rate"] > 0.0  # the planted +2 sigma op is found in some searches
