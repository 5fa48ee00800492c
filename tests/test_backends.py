"""The search on Keras's JAX backend (issue 23): with the Keras engine a tiny search runs end to end, in a
fresh process (this one runs TensorFlow); with the imgaug engine it is refused in one line."""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    import keras
    import keras_augtune
    from keras_augtune.loaders import load_digits

    assert keras.backend.backend() == "jax", keras.backend.backend()
    x, y = load_digits(12)
    x, y = x[:120], y[:120]
    try:
        keras_augtune.AugmentTuner("simple", max_trials=2, child_epochs=1, directory=sys.argv[1] + "/imgaug",
                                   verbose=0).search(x, y)
    except RuntimeError as exc:
        print("refused:", exc)
    tuner = keras_augtune.AugmentTuner("simple", max_trials=2, child_epochs=1, batch_size=32, engine="keras",
                                       num_initial_points=2, directory=sys.argv[1], seed=1, verbose=0,
                                       confirm_top_k=0)
    tuner.search(x, y)
    results = tuner.results()
    print("completed", len(results.completed), "baseline", results.baseline.trial_id)
    trial = next(t for t in tuner.oracle.trials.values() if t.trial_id != results.baseline.trial_id)
    model = tuner.load_model(trial)  # its saved weights, in a model built again on JAX
    print("engines", [layer.engine for layer in model.layers if type(layer).__name__ == "PolicyAugmentation"])
""")


def test_a_search_runs_on_the_jax_backend_with_the_keras_engine(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "refused: The imgaug engine augments inside the child model through tf.numpy_function" in out
    assert "Pass engine='keras'" in out
    assert "completed 2 baseline 0" in out
    assert "engines ['keras']" in out
