"""Issue 21's last two parts: a base recipe every candidate is applied after (``base=``), and the race
trained on more images than the trials (``race_train_size``). The child is `noise_child`: seconds per search."""

import hashlib
import json

import keras
import keras_tuner
import numpy as np
import pytest

from conftest import make_tuner, noise_child, tiny_model
from keras_augtune import AugmentHyperModel, Policy, load_augmentation
from keras_augtune.bases import Base, seed_base_layers
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.recipes import recipe_values
from keras_augtune.runner import build_seeded
from keras_augtune.seeds import base_seed, derive_seed
from keras_augtune.space import baseline_values
from keras_augtune.trials import TRAIN_SIZE


def _tuner(tmp_path, **options):
    settings = dict(max_trials=4, num_initial_points=4, confirm_top_k=2, confirm_executions=3,
                    recipes=["TrivialAugment"])
    settings.update(options)
    return make_tuner(tmp_path, noise_child(shared=0.02, own=0.004), **settings)


def _spy(tuner):
    """Every training's (values, number of images, hash of the images, whether the model has a base layer)."""
    calls, original = [], tuner.hypermodel.fit

    def fit(hp, model, x, *args, **kwargs):
        based = [getattr(layer, "_keras_augtune_base", False) for layer in model.layers]
        calls.append((dict(hp.values), len(x), hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest(), based))
        return original(hp, model, x, *args, **kwargs)

    tuner.hypermodel.fit = fit
    return calls


# ----------------------------------------------------------------------------- race_train_size
def test_the_race_trains_on_its_own_paired_subsets(tmp_path, digits):
    x, y = digits  # 200 images: 160 left for training after the validation split
    tuner = _tuner(tmp_path, train_set_size=40, race_train_size=100)
    calls = _spy(tuner)
    tuner.search(x, y)
    trials = [c for c in calls if TRAIN_SIZE not in c[0]]
    race = [c for c in calls if TRAIN_SIZE in c[0]]
    assert trials and race and all(n == 40 for _, n, _, _ in trials) and all(n == 100 for _, n, _, _ in race)
    plan = tuner.results().race.plan
    assert plan["train_size"] == 100 and tuner.results().race.complete
    executions = plan["screening"] + plan["confirmation"]
    # each execution has one subset, the same for every configuration (paired), and they differ between executions
    subsets = {hashlib.sha1(np.ascontiguousarray(tuner.race_training(100, e)[0]).tobytes()).hexdigest(): e
               for e in executions}
    assert len(subsets) == len(executions) and {h for _, _, h, _ in race} <= set(subsets)
    confirmation = {h for h, e in subsets.items() if e in plan["confirmation"]}
    by_config = {}
    for values, _, h, _ in race:
        by_config.setdefault(json.dumps(values, sort_keys=True), set()).add(h)
    assert sum(seen >= confirmation for seen in by_config.values()) == 3  # the finalists: the same subsets


def test_race_train_size_is_checked_in_one_line(tmp_path, digits):
    x, y = digits
    with pytest.raises(ValueError, match="race_train_size must be a positive integer"):
        _tuner(tmp_path, race_train_size=0)
    with pytest.raises(ValueError, match="race_train_size and race_epochs configure the race"):
        _tuner(tmp_path, intensifier="confirmation", race_train_size=10)
    tuner = _tuner(tmp_path, race_train_size=1000)
    with pytest.raises(ValueError, match=r"^race_train_size=1000 is larger than the 160 training images"):
        tuner.search(x, y)


# ----------------------------------------------------------------------------- base=
def test_every_candidate_follows_the_base_and_the_verdict_says_so(tmp_path, digits):
    x, y = digits
    tuner = _tuner(tmp_path, base="crop-flip")
    calls = _spy(tuner)
    tuner.search(x, y)
    assert calls and all(based[1] and sum(based) == 1 for _, _, _, based in calls)  # base first, in every model
    results = tuner.results()
    assert results.base["name"] == "crop-flip" and results.base_name == "crop-flip"
    verdict = results.verdict()
    assert "no augmentation beyond the base (crop-flip)" in verdict.text and verdict.base == "crop-flip"
    text = results.summary_text()
    assert "baseline (no augmentation beyond the base (crop-flip))" in text and "vs base alone" in text
    assert "no augmentation beyond the base (crop-flip)" in results.race.kinds
    path = tmp_path / "best.json"
    tuner.export_policies(str(path))
    assert json.loads(path.read_text())["base"]["name"] == "crop-flip"
    layer = load_augmentation(str(path), value_range=(0, 255), seed=1)
    assert [type(sub).__name__ for sub in layer.layers] == ["PolicyAugmentation", "PolicyAugmentation"]
    assert layer.layers[0].policy == Base.resolve("crop-flip").policy
    assert layer.layers[1].policy == verdict.recommended
    images = x[:4].astype("float32")
    assert layer(images, training=True).shape == images.shape
    assert np.array_equal(keras.ops.convert_to_numpy(layer(images)), images)  # identity outside training
    assert results.augmentation(value_range=(0, 255)).layers[0].policy == layer.layers[0].policy


def test_a_search_without_a_base_says_no_augmentation(tmp_path, digits):
    x, y = digits
    tuner = _tuner(tmp_path)
    tuner.search(x, y)
    assert tuner.results().base is None and "beyond the base" not in tuner.results().summary_text()


def test_base_and_candidate_draw_their_own_randomness():
    flip = Policy([[("horizontal-flip", 0.5, 1.0)]])
    model = AugmentHyperModel(tiny_model(), base=flip)
    model.configure((12, 12, 1), 10, (0.0, 255.0))
    hp = keras_tuner.HyperParameters()
    model.declare_hyperparameters(hp)
    hp.values.update(recipe_values(baseline_values(model.policy_space), flip))  # the candidate is the base's policy
    built = build_seeded(model.build, hp, 7)
    layers = [layer for layer in built.layers if isinstance(layer, PolicyAugmentation)]
    assert len(layers) == 2 and layers[0].name == "base_augmentation"
    assert (layers[0].seed, layers[1].seed) == (base_seed(7), 7) and base_seed(7) != 7

    keras_base = AugmentHyperModel(tiny_model(), base=keras.layers.RandomFlip("horizontal"))
    keras_base.configure((12, 12, 1), 10, (0.0, 255.0))
    states = []
    for _ in range(2):  # the same execution seed: the same base randomness (paired), derived from it
        built = build_seeded(keras_base.build, hp, 7)
        flips = [layer for layer in built.layers if isinstance(layer, keras.layers.RandomFlip)]
        states.append(keras.ops.convert_to_numpy(flips[0].generator.state).tolist())
    assert states[0] == states[1] == [derive_seed(base_seed(7), 0), 0]
    assert seed_base_layers(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), 7) is False


def test_a_resumed_search_keeps_its_base(tmp_path, digits):
    x, y = digits
    _tuner(tmp_path, base="flip", confirm_top_k=0, max_trials=2).search(x, y)
    for other, said in (("crop", "with the base 'crop'"), (None, "without one")):
        again = _tuner(tmp_path, base=other, confirm_top_k=0, max_trials=3)
        with pytest.raises(ValueError, match=f"began with the base 'flip': it cannot go on {said}"):
            again.search(x, y)
    same = _tuner(tmp_path, base="flip", confirm_top_k=0, max_trials=3)
    same.search(x, y)
    assert len(same.oracle.trials) == 3


def test_bad_bases_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'crop-flip'"):
        _tuner(tmp_path, base="crop-flp")
    with pytest.raises(TypeError, match="base must be a name"):
        _tuner(tmp_path, base=3)
    with pytest.raises(ValueError, match="no such policy file"):
        _tuner(tmp_path, base=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="evaluator='density' scores a policy without the base"):
        _tuner(tmp_path, base="flip", evaluator="density")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(Policy([[("rotate", 1.0, 0.2)]]).to_dict()))
    assert Base.resolve(str(path)).policy == Policy([[("rotate", 1.0, 0.2)]])


# ----------------------------------------------------------------------------- the command line, DeepAugment
def test_the_command_line_takes_a_base_and_a_race_train_size(tmp_path, capsys):
    from keras_augtune import cli

    tiny = ["--data", "digits", "--image-size", "12", "--trials", "2", "--epochs", "1", "--train-set-size", "60",
            "--batch-size", "32", "--initial-points", "1", "--sub-policies", "1", "--ops-per-sub-policy", "1",
            "--ops", "identity,rotate", "--confirm-top-k", "1", "--confirm-executions", "2", "--recipes", "none"]
    out = tmp_path / "run"
    assert cli.main(["search", *tiny, "--base", "crop-flip", "--race-train-size", "90", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no augmentation beyond the base (crop-flip)" in printed and "Verdict: Use " in printed
    assert json.loads((out / "best_policies.json").read_text())["base"]["name"] == "crop-flip"
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["base"] == "crop-flip" and settings["race_train_size"] == 90
    assert "followed the base recipe <strong>crop-flip</strong>" in (out / "report.html").read_text()
    assert cli.main(["show", str(out / "best_policies.json"), "--image-size", "12", "--images", "2",
                     "--augmentations", "1", "--out", str(tmp_path / "g.png")]) == 0
    assert "after the base 'crop-flip'" in capsys.readouterr().out
    assert cli.main(["search", "--out", str(out), "--resume", "--base", "crop"]) == 1
    assert "--base differ" in capsys.readouterr().err
    assert cli.main(["search", "--race-train-size", "5000", "--out", str(tmp_path / "o")]) == 1
    assert "--race-train-size 5000 is larger than the 1437 training images" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["search", "--base", "crop-flp"])
    assert "Did you mean 'crop-flip'" in capsys.readouterr().err


def test_deepaugment_takes_a_base(tmp_path, digits):
    from keras_augtune import DeepAugment
    from keras_augtune.deepaugment import top_policies_table

    x, y = digits
    deepaug = DeepAugment(x, y, config={"model": tiny_model(), "directory": str(tmp_path), "base_augmentation": "flip",
                                        "child_epochs": 1, "confirm_top_k": 0})
    assert deepaug.tuner.hypermodel.base.name == "flip" and deepaug.tuner.intensifier is None
    deepaug.tuner.hypermodel.fit = noise_child().fit
    deepaug.optimize(1)
    rows = top_policies_table(deepaug.tuner.results(), deepaug.tuner.policy_space)
    assert rows and all(row["base"] == "flip" for row in rows)
    assert "no augmentation beyond the base (flip)" in deepaug.verdict.text


def test_the_race_benchmark_takes_and_records_a_base():
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import race_search

    assert race_search.parse_args(["--base", "crop-flip"]).base == "crop-flip"
    text = race_search.markdown({"command": "c", "images": 3, "data": "d", "trials": 1, "trainings": {"race": 2},
                                 "minutes": 1, "load_before": [1], "load_after": [1], "base": "crop-flip",
                                 "baseline": "no augmentation beyond the base (crop-flip)", "race": [],
                                 "verdict": {"text": "t"}})
    assert "follows the base recipe crop-flip" in text and "vs no augmentation beyond the base (crop-flip)" in text
