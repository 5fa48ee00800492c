"""Slow end-to-end checks, excluded from the default run: ``python -m pytest -m slow``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_real_search_on_digits_then_final_model(tmp_path):
    import keras
    import tensorflow as tf

    from keras_augtune import AugmentTuner
    from keras_augtune.data import stratified_split
    from keras_augtune.loaders import load_digits
    from keras_augtune.models import build_model

    x, y = load_digits(32)
    train, test = stratified_split(y, 400, 0, what="test")
    tuner = AugmentTuner(max_trials=6, child_epochs=8, train_set_size=800, directory=str(tmp_path), seed=0,
                         verbose=0)
    tuner.search(x[train], y[train])
    results = tuner.results()
    verdict = results.verdict()
    # the winner was confirmed on 3 paired executions, and no policy that changes nothing is ranked
    assert verdict.winner is not None and verdict.winner.executions == 3 and verdict.interval is not None
    assert len(results.baseline.execution_rewards) == 3
    assert not any(t.policy.is_noop(1) for t in results.best(skip_identity=True))
    assert tuner.baseline_reward() > 0.5  # the child learns digits in 8 epochs
    best = verdict.recommended  # the winner only when it beat no augmentation beyond the noise

    ds = (tf.data.Dataset.from_tensor_slices((x[train], y[train])).shuffle(2000, seed=0).batch(64)
          .map(best.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
          .map(lambda im, lab: (tf.cast(im, tf.float32) / 255.0, lab)).prefetch(2))
    model = build_model("simple", x.shape[1:], 10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=15, verbose=0)
    _, accuracy = model.evaluate(x[test].astype("float32") / 255.0, y[test], verbose=0)
    assert accuracy > 0.85


def test_end_to_end_benchmark_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "end_to_end.py"), "--data", "digits", "--quick",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    assert {"no augmentation", "crop", "crop + TrivialAugment", "crop + searched policy",
            "crop + random-search best"} <= set(results["finals"])
    assert any(k.startswith("crop + RandAugment(N=") for k in results["finals"])  # grid-picked
    assert any(k.startswith("crop + searched policy × ") for k in results["finals"])  # scale picked
    assert set(results["selection"]) == {"RandAugment", "scale"}
    assert results["reference"] == "crop + TrivialAugment"
    assert {tuple(seeds) for seeds in results["final_seeds"].values()} == {(0, 1)}  # every configuration, same seeds
    assert all(0.0 <= e <= 1.0 for errors in results["finals"].values() for e in errors)
    assert "paired difference vs crop + TrivialAugment" in (tmp_path / "end_to_end_digits.md").read_text()
    assert [r["method"] for r in results["searches"]] == ["bayesian", "random"]
    assert np.isfinite(results["searches"][0]["best_reward"])
