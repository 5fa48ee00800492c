"""Loading hints: a ``.keras`` file holding the layer, loaded without the package imported, and
``import keras`` with no backend installed (the package installs no TensorFlow), each in a fresh
process (the registration hook acts on the first import of Keras only)."""

from __future__ import annotations

import os
import subprocess
import sys

import keras

from keras_augtune import Policy, PolicyAugmentation
from keras_augtune.registration import missing_backend_message

POLICY = Policy([[("rotate", 1.0, 0.5)]])
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)


def test_a_keras_file_without_the_import_names_the_package_then_load_model_loads_it(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2)(PolicyAugmentation(POLICY, seed=1)(inputs))
    path = str(tmp_path / "model.keras")
    keras.Model(inputs, outputs).save(path)
    code = (
        "import keras\n"
        "try:\n"
        f"    keras.saving.load_model({path!r})\n"
        "except TypeError as exc:\n"
        "    print('KERAS-ERROR', exc)\n"
        "import keras_augtune\n"
        f"model = keras_augtune.load_model({path!r})\n"
        "print('LOADED', type(model.layers[1]).__name__, model.layers[1].policy)\n"
    )
    run = _run(code)
    assert run.returncode == 0, run.stderr[-2000:]
    # Keras's own message (it cannot be changed) shows the registered name: the package to import
    error = run.stdout.split("KERAS-ERROR", 1)[1].split("LOADED")[0]
    assert "Could not locate class 'PolicyAugmentation'" in error and "keras_augtune>PolicyAugmentation" in error
    assert f"LOADED PolicyAugmentation {POLICY}" in run.stdout


def test_import_keras_without_its_backend_says_how_to_install_one():
    # `None` in sys.modules makes `import tensorflow` fail as if it were not installed
    code = ("import sys\nsys.modules['tensorflow'] = None\nimport keras_augtune\n"
            "try:\n    import keras\nexcept ModuleNotFoundError as exc:\n    print('ERROR', exc.name, '|', exc)\n")
    run = _run(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"ERROR tensorflow | {missing_backend_message('tensorflow')}" in run.stdout
    assert "pip install '.[tensorflow-cpu]' (CPU only) or '.[gpu]' (NVIDIA GPU)" in missing_backend_message("tensorflow")
