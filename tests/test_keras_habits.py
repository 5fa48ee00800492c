"""The Keras Tuner habits a user reaches for first (issue 23): reloading, objectives, the live lines, the progress bar."""

import re

import keras
import keras_tuner
import numpy as np
import pytest

from conftest import make_tuner, noise_child


def test_get_best_models_after_a_reload(tmp_path, digits):
    x, y = digits
    make_tuner(tmp_path, max_trials=2, child_epochs=1).search(x, y)
    reloaded = make_tuner(tmp_path, max_trials=2, child_epochs=1)  # same folder: "Reloading Tuner"
    model = reloaded.get_best_models(1)[0]
    assert isinstance(model, keras.Model)
    assert model.predict(x[:4].astype("float32"), verbose=0).shape == (4, 10)


@pytest.mark.parametrize("objective", [keras_tuner.Objective("val_loss", "min"), "accuracy",
                                       keras_tuner.Objective("reward", "min")])
def test_an_objective_other_than_the_reward_is_refused_at_construction(tmp_path, objective):
    with pytest.raises(ValueError, match=r"objective=.* is not supported: .* on 'reward'"):
        make_tuner(tmp_path, objective=objective)
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=objective, max_trials=2)
    with pytest.raises(ValueError, match="is not supported"):
        make_tuner(tmp_path, oracle=oracle, overwrite=True)


def _gains(text):
    return [float(g) for g in re.findall(r"\(([+-]\d\.\d+) vs no augmentation\)", text)]


def test_the_live_line_shows_the_policy_s_own_gain_under_joint_tuning(tmp_path, digits, capsys):
    x, y = digits
    # the architecture (width 1-3) moves the reward by 0.1 per step; the policies do nothing
    tuner = make_tuner(tmp_path, noise_child(width_effect=0.1, shared=0.0, own=0.002), max_trials=8,
                       num_initial_points=8, verbose=1)
    tuner.search(x, y)
    out = capsys.readouterr().out
    widths = {t.hyperparameters.get("width") for t in tuner.oracle.trials.values()}
    assert len(widths) > 1  # several architectures: a gain over another one's baseline would be off by >= 0.1
    assert all(abs(g) < 0.02 for g in _gains(out)), out


def test_hyperband_lines_count_trials_without_a_max(tmp_path, digits, capsys):
    from keras_augtune import reward_objective

    x, y = digits
    oracle = keras_tuner.oracles.HyperbandOracle(reward_objective(), max_epochs=3, factor=3, seed=1,
                                                 hyperband_iterations=1)
    tuner = make_tuner(tmp_path, noise_child(), oracle=oracle, verbose=1)
    tuner.search(x, y)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Trial ")]
    assert lines and not any("None" in line for line in lines)
    assert re.match(r"Trial \w+ \(1 done\)", lines[0])


def test_a_progress_bar_with_eta_at_verbose_1(tmp_path, digits, capsys):
    x, y = digits
    make_tuner(tmp_path, noise_child(), max_trials=3, verbose=1).search(x, y)
    captured = capsys.readouterr()
    assert re.search(r"search: 100%.*3/3 \[\d\d:\d\d<00:00", captured.err), captured.err
    assert captured.out.count("Trial ") == 3  # the lines, above the bar
    make_tuner(tmp_path / "quiet", noise_child(), max_trials=2, verbose=0).search(x, y)
    assert "search:" not in capsys.readouterr().err


def test_the_library_bounds_epochs_and_writes_keras_tuner_state_atomically(tmp_path):
    import subprocess
    import sys

    with pytest.raises(ValueError, match="child_epochs must be"):
        make_tuner(tmp_path, child_epochs=10**9)
    # a fresh process: only constructing the tuner can have installed Keras Tuner's atomic writer there
    code = ("import keras_augtune, keras_tuner.src.utils as u; before = u.save_json.__module__; "
            f"keras_augtune.AugmentTuner(directory={str(tmp_path / 'fresh')!r}, verbose=0); "
            "print(before, u.save_json.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.split()[-2:]
    assert before.startswith("keras_tuner") and after.startswith("keras_augtune"), done.stdout
