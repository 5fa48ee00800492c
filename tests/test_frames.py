"""SearchResults.to_frame(): one row per trial with the results' own numbers, and one clear line without pandas."""

import math
import sys

import pytest

from keras_augtune.frames import PANDAS_MISSING
from keras_augtune.policy import Policy
from keras_augtune.results import SearchResults, TrialResult


def _results():
    rotate = Policy([[("rotate", 1.0, 0.5)]])
    invert = Policy([[("invert", 1.0, 1.0)]])
    return SearchResults([
        TrialResult("00", 1, "COMPLETED", Policy.identity(), 0.80, 0.80, 0.81, {"width": 32}, is_baseline=True),
        TrialResult("01", 2, "COMPLETED", invert, 0.70, 0.70, 0.72, {"width": 64}, gain=-0.1,
                    gain_interval=(-0.2, 0.0), executions=2),
        TrialResult("02", 3, "COMPLETED", rotate, 0.85, 0.85, 0.86, {"width": 32}, gain=0.05,
                    gain_interval=(0.01, 0.09), executions=3),
        TrialResult("03", 4, "FAILED", None, None, None, None, {"width": 16}, message="boom"),
    ])


def test_to_frame_has_a_row_per_trial_with_the_results_numbers():
    pytest.importorskip("pandas")
    results = _results()
    frame = results.to_frame()
    assert list(frame.index) == ["00", "01", "02", "03"]
    assert frame.loc["02", "rank"] == 1 and frame.loc["00", "rank"] == 2 and frame.loc["01", "rank"] == 3
    assert math.isnan(frame.loc["03", "rank"]) and frame.loc["03", "status"] == "FAILED"
    assert frame.loc["03", "message"] == "boom"
    assert (frame.loc["02", "gain"], frame.loc["02", "gain_low"], frame.loc["02", "gain_high"]) == (0.05, 0.01, 0.09)
    assert math.isnan(frame.loc["00", "gain_low"]) and bool(frame.loc["00", "is_baseline"])
    assert frame.loc["01", "reward"] == 0.70 and frame.loc["01", "val_accuracy"] == 0.72
    assert frame.loc["01", "hp/width"] == 64
    assert "rotate" in frame.loc["02", "policy"]
    assert frame.sort_values("gain", ascending=False).index[0] == results.verdict().winner.trial_id


def test_to_frame_without_pandas_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails as if not installed
    with pytest.raises(ImportError) as info:
        _results().to_frame()
    assert str(info.value) == PANDAS_MISSING
    assert "pip install 'keras-augtune[pandas]'" in PANDAS_MISSING
