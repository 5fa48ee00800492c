"""The documentation site builds with `mkdocs build --strict` (as in CI)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (pip install '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for page in ("index.html", "api/index.html", "cli/index.html", "ops/index.html", "how-to/resume/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert "AugmentTuner" in (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
