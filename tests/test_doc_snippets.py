"""Every Python block in README.md and docs/ runs, so the documentation cannot rot.

The blocks of one page run in order in one namespace, in a fresh working directory, at
tiny settings. Two things are added, nothing else (imports are the page's own business):

* **Data stand-ins** for the names a page uses without defining them, because they stand
  for the reader's own data: ``x, y`` and ``x_train, y_train`` (240 of scikit-learn's
  digits as 32x32 RGB uint8 images and their labels), ``images`` (8 of them),
  ``my_image`` (one), ``ds`` / ``val_ds`` (batched ``tf.data`` datasets of them),
  ``model`` (a compiled built-in ``"simple"`` CNN), ``my_model(input_shape, num_classes)``
  (an uncompiled one) and an ``augtune_runs/best_policies.json`` as ``keras-augtune
  search`` writes it.
* **Size substitutions** (:data:`SUBSTITUTIONS`): ``max_trials=…`` becomes 2,
  ``epochs=…``, ``child_epochs`` and ``max_epochs`` 1, ``train_set_size=…`` 120, ``optimize(…)`` 1,
  ``executions_per_trial`` 1, a density evaluator's ``folds`` 2 and ``draws`` 1, a page's own
  ``x[:N]`` / ``y[:N]`` slices 200 images; and ``AugmentTuner``'s default ``child_epochs`` is 1 and its
  race (defaults and explicit values) shrinks to ``confirm_top_k=1``, ``confirm_executions=2`` with
  TrivialAugment as the only default recipe (two fresh paired trainings each for the winner, the recipe
  and the baseline).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SUBSTITUTIONS = [
    (re.compile(r"\bmax_trials=\d+"), "max_trials=2"),
    (re.compile(r"\b(child_)?epochs=\d+"), lambda m: f"{m.group(1) or ''}epochs=1"),
    (re.compile(r"\"child_epochs\":\s*\d+"), '"child_epochs": 1'),
    (re.compile(r"\bmax_epochs=\d+"), "max_epochs=1"),
    (re.compile(r"\btrain_set_size=\d+"), "train_set_size=120"),
    (re.compile(r"\.optimize\(\d+\)"), ".optimize(1)"),
    (re.compile(r"\bconfirm_top_k=[1-9]\d*"), "confirm_top_k=1"),
    (re.compile(r"\bconfirm_executions=\d+"), "confirm_executions=2"),
    (re.compile(r"\bexecutions_per_trial=\d+"), "executions_per_trial=1"),
    (re.compile(r"\bfolds=\d+"), "folds=2"),
    (re.compile(r"\bdraws=\d+"), "draws=1"),
    (re.compile(r"\b([xy])\[:\d+\]"), r"\1[:200]"),
]


def _blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def _tiny(code: str) -> str:
    for pattern, replacement in SUBSTITUTIONS:
        code = pattern.sub(replacement, code)
    return code


def _stand_ins(workdir: Path) -> dict:
    import tensorflow as tf

    from keras_augtune import Policy
    from keras_augtune.loaders import load_digits
    from keras_augtune.models import build_model

    x, y = load_digits(32)
    x, y = np.repeat(x[:240], 3, axis=-1), y[:240]

    def my_model(input_shape, num_classes):
        return build_model("simple", input_shape, num_classes)

    model = my_model(x.shape[1:], 10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    runs = workdir / "augtune_runs"
    runs.mkdir()
    (runs / "best_policies.json").write_text(Policy([[("rotate", 0.5, 0.3)]]).to_json(), encoding="utf-8")
    return {
        "x": x, "y": y, "x_train": x, "y_train": y, "images": x[:8], "my_image": x[0],
        "ds": tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
        "val_ds": tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(32),
        "model": model, "my_model": my_model,
    }


def test_substitutions_shrink_the_settings():
    code = 'AugmentTuner(max_trials=50, child_epochs=8, train_set_size=800)\nm.fit(ds, epochs=30)\n' \
           'DeepAugment(config={"child_epochs": 10}).optimize(20)'
    assert _tiny(code) == ('AugmentTuner(max_trials=2, child_epochs=1, train_set_size=120)\nm.fit(ds, epochs=1)\n'
                           'DeepAugment(config={"child_epochs": 1}).optimize(1)')
    code = 'AugmentTuner(confirm_top_k=3, confirm_executions=3, executions_per_trial=2)\n' \
           'DensityEvaluator(folds=5, draws=3).fit(x[:800], y[:800])\nAugmentTuner(confirm_top_k=0)'
    assert _tiny(code) == ('AugmentTuner(confirm_top_k=1, confirm_executions=2, executions_per_trial=1)\n'
                           'DensityEvaluator(folds=2, draws=1).fit(x[:200], y[:200])\nAugmentTuner(confirm_top_k=0)')


def test_pages_have_python_blocks_to_run():
    # the collection below must not silently find nothing (a changed fence would skip every page)
    assert sum(len(_blocks(p)) for p in PAGES) >= 10


@pytest.fixture
def eager():
    """Keras's train and test steps run eagerly: with a page's few tiny trainings, tracing them
    into graphs costs more than it saves (about half of a page's time). What a page shows is
    the subject here; graph-mode training is what the other tests (test_tuner, test_apply) run."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_code_runs(page, tmp_path, monkeypatch, eager):
    from keras_augtune.tuner import AugmentTuner

    monkeypatch.chdir(tmp_path)
    defaults = AugmentTuner.__init__.__kwdefaults__
    monkeypatch.setitem(defaults, "confirm_top_k", 1)
    monkeypatch.setitem(defaults, "confirm_executions", 2)
    monkeypatch.setitem(defaults, "child_epochs", 1)
    monkeypatch.setattr("keras_augtune.recipes.DEFAULT_RECIPES", ("TrivialAugment",))
    namespace = {"__name__": "__doc_snippet__", **_stand_ins(tmp_path)}
    for number, code in enumerate(_blocks(page), start=1):
        try:
            exec(compile(_tiny(code), f"{page.name} block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{page.relative_to(ROOT)}, Python block {number} failed: {type(exc).__name__}: {exc}")
