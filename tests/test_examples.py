"""Every example runs end to end, smoke-sized (--smoke)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name, expect", [
    ("quickstart_digits.py", "Test accuracy with the best policy"),
    ("joint_architecture_tuning.py", "Best architecture"),
    ("best_policy_to_tf_data.py", "Test accuracy with the policy"),
    ("custom_keras_model.py", "Best policy for my_model"),
])
def test_example_runs(name, expect, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_AUGTUNE_SMOKE="1")
    args = [sys.executable, str(EXAMPLES / name), "--smoke"]
    if name != "best_policy_to_tf_data.py":
        args += ["--out", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert expect in proc.stdout
