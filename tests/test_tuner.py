"""AugmentTuner end to end with tiny models and data (seconds per search)."""

import csv
import json
import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from conftest import make_tuner, tiny_model
from keras_augtune import Policy, load_policies

def completed(tuner):
    return [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]


def test_search_baseline_first_results_and_notebook(tmp_path, digits, capsys):
    x, y = digits
    tuner = make_tuner(tmp_path, verbose=1, confirm_top_k=1, confirm_executions=2, intensifier="confirmation")
    tuner.search(x, y)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert len(completed(tuner)) == 3
    first = tuner.hypermodel.policy(trials[0].hyperparameters)
    assert first.is_identity  # trial 0 is the no-augmentation baseline
    results = tuner.results()
    # the baseline's reward: the mean of its own execution and the confirmation's
    base = results.baseline.execution_rewards
    assert len(base) == 2 and base[0] == trials[0].metrics.get_best_value("reward")
    assert tuner.baseline_reward() == pytest.approx(np.mean(base))
    best = tuner.get_best_policies(3)
    assert len(best) == 3 and isinstance(best[0], Policy)
    confirmed = [p for p in best if p.metadata["confirmed"]]
    assert len(confirmed) == 2 and best[:2] == confirmed  # the confirmed first, by their mean
    assert confirmed[0].metadata["reward"] >= confirmed[1].metadata["reward"]
    for policy in confirmed:
        assert policy.metadata["executions"] == 2
        assert policy.metadata["gain"] == pytest.approx(np.mean(np.subtract(policy.metadata["execution_rewards"], base)))
    rest = best[2]
    assert rest.metadata["executions"] == 1 and rest.metadata["gain_interval"] is None
    assert rest.metadata["gain"] == pytest.approx(rest.metadata["reward"] - base[0])  # paired on execution 0
    out = capsys.readouterr().out
    assert out.count("Trial ") == 3 and "vs no augmentation" in out
    assert "Confirmation: 1 best policy and 1 no-augmentation run(s), 2 paired executions each: 2 more" in out
    tuner.results_summary()
    summary = capsys.readouterr().out
    assert "no-augmentation baseline reward" in summary and "no augmentation" in summary
    assert f"Verdict: {results.verdict().text}" in summary
    # notebook: one row per trial x execution x epoch (the confirmation's included), with the policy and reward
    with open(tuner.notebook_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == (3 + 2) * 2
    assert sorted({(r["trial"], r["execution"]) for r in rows if r["execution"] == "1"}) == sorted(
        (p.metadata["trial_id"], "1") for p in confirmed)
    assert {"trial", "execution", "epoch", "loss", "accuracy", "val_accuracy", "reward", "policy"} <= set(rows[0])
    assert {r["trial"] for r in rows} == {t.trial_id for t in trials}
    # export and reload
    path = tmp_path / "best.json"
    tuner.export_policies(str(path), num_policies=2)
    assert load_policies(str(path)) == best[:2]
    payload = json.loads(path.read_text())
    assert payload["baseline_reward"] == tuner.baseline_reward() and payload["baseline_execution_rewards"] == base


def test_validation_images_are_never_augmented(tmp_path, digits):
    """Trained on inverted images (invert, p=1, m=1: every image), the child alone, evaluated
    on the untouched validation images, scores what the search recorded as validation accuracy."""
    from keras_augtune import PolicySpace

    x, y = digits
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["invert"], magnitude_range=(1.0, 1.0),
                        search_probabilities=False)
    linear = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                               keras.layers.Dense(10, activation="softmax")])  # learns these digits in a few epochs
    linear.compile(keras.optimizers.Adam(0.03), "sparse_categorical_crossentropy", metrics=["accuracy"])
    tuner = make_tuner(tmp_path, linear, max_trials=1, baseline_trial=False, policy_space=space, child_epochs=6)
    seen = {}
    original = tuner.hypermodel.fit

    def spy(hp, model, x_fit, y_fit, validation_data=None, **kwargs):
        seen["model"], seen["validation"] = model, validation_data
        seen["history"] = original(hp, model, x_fit, y_fit, validation_data=validation_data, **kwargs).history
        return seen["history"]

    tuner.hypermodel.fit = spy
    tuner.search(x, y)
    model, (x_val, y_val) = seen["model"], seen["validation"]
    layer = model.get_layer("policy_augmentation")
    assert np.array_equal(layer(x_val[:4], training=True), 255.0 - x_val[:4])  # training images are inverted
    child = model.layers[-1]
    plain = float(np.mean(np.argmax(child.predict(x_val, verbose=0), axis=1) == y_val))
    inverted = float(np.mean(np.argmax(child.predict(255.0 - x_val, verbose=0), axis=1) == y_val))
    assert inverted - plain > 0.2  # it learnt inverted digits: the check below can tell the two apart
    assert seen["history"]["val_accuracy"][-1] == pytest.approx(plain, abs=1e-6)


def test_joint_architecture_and_policy_search(tmp_path, digits):
    x, y = digits

    def build(hp):
        units = hp.Int("units", 4, 16, step=4)
        model = keras.Sequential([
            keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
            keras.layers.Dense(units, activation=hp.Choice("activation", ["relu", "tanh"])),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-2, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = make_tuner(tmp_path, build, max_trials=4)
    names = [hp.name for hp in tuner.oracle.hyperparameters.space]
    assert any(n.startswith("augment/") for n in names)  # declared before trial 1
    tuner.search(x, y)
    names = [hp.name for hp in tuner.oracle.hyperparameters.space]
    assert {"units", "activation", "lr"} <= set(names)
    units = {t.hyperparameters.get("units") for t in completed(tuner)}
    assert len(completed(tuner)) == 4 and len(units) >= 2
    best = tuner.get_best_policies(1)[0]
    assert set(best.metadata["hyperparameters"]) == {"units", "activation", "lr"}


class TinyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = tiny_model()
        model.compile(keras.optimizers.Adam(hp.Choice("lr", [0.01, 0.003])), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        kwargs["batch_size"] = hp.Choice("batch_size", [16, 32])
        return model.fit(*args, **kwargs)


@pytest.mark.parametrize("form", ["hypermodel", "compiled_model", "uncompiled_model", "builtin"])
def test_hypermodel_forms(tmp_path, digits, form):
    x, y = digits
    hypermodel = {
        "hypermodel": TinyHyperModel(),
        "compiled_model": tiny_model(compiled=True),
        "uncompiled_model": tiny_model(),
        "builtin": "simple",
    }[form]
    tuner = make_tuner(tmp_path, hypermodel, max_trials=2, child_epochs=1)
    tuner.search(x, y)
    assert len(completed(tuner)) == 2
    if form == "hypermodel":
        assert "batch_size" in tuner.oracle.hyperparameters  # the user's fit() hyperparameters too
    model = tuner.get_best_models(1)[0]
    assert model.predict(x[:4].astype("float32"), verbose=0).shape == (4, 10)


def test_one_hot_labels_rgb_float_images_and_validation_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 10, 14, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(60) % 3, 3)
    model = keras.Sequential([keras.Input((10, 14, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    tuner = make_tuner(tmp_path, model, max_trials=2, child_epochs=1)
    tuner.search(x[:45], y[:45], validation_data=(x[45:], y[45:]))
    assert len(completed(tuner)) == 2
    assert tuner.hypermodel.one_hot and tuner.hypermodel.value_range == (0.0, 1.0)


def test_warm_start_pretrains_once_and_starts_trials_from_it(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, max_trials=2, child_epochs=1, child_first_train_epochs=2)
    starts = []
    tuner.search(x, y)
    files = os.listdir(os.path.join(tuner.project_dir, "warm_start"))
    assert len(files) == 1 and files[0].endswith(".weights.h5")
    # a new build starts from the pretrained weights
    pretrained = tiny_model()
    pretrained.load_weights(os.path.join(tuner.project_dir, "warm_start", files[0]))
    build_child = tuner.hypermodel.build_child
    tuner.hypermodel.build_child = lambda hp: starts.append(build_child(hp)) or starts[-1]
    tuner.hypermodel.build(completed(tuner)[0].hyperparameters)
    for a, b in zip(starts[0].get_weights(), pretrained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_best_policy_into_tf_data_and_final_fit(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, max_trials=2, child_epochs=1)
    tuner.search(x, y)
    best = tuner.get_best_policies(1)[0]
    ds = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(200, seed=0).batch(32)
          .map(best.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
          .map(lambda im, label: (tf.cast(im, tf.float32), label)).prefetch(2))
    final = tiny_model(compiled=True)
    history = final.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"][-1])


def test_train_set_size_subsample_is_stratified(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, max_trials=1, child_epochs=1, train_set_size=50, baseline_trial=False)
    seen = {}
    original = tuner.hypermodel.fit

    def spy(hp, model, x_fit, y_fit, **kwargs):
        seen["y"] = y_fit
        return original(hp, model, x_fit, y_fit, **kwargs)

    tuner.hypermodel.fit = spy
    tuner.search(x, y)
    assert len(seen["y"]) == 50 and len(np.unique(seen["y"])) == 10


@pytest.mark.parametrize("kwargs,message", [
    ({"max_trials": 0}, "max_trials must be a positive integer"),
    ({"child_epochs": -1}, "child_epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"method": "bayes"}, "method must be one of"),
    ({"validation_split": 1.5}, "validation_split"),
])
def test_bad_tuner_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_tuner(tmp_path, **kwargs)


def test_unknown_model_name_suggests(tmp_path):
    with pytest.raises(ValueError, match="Did you mean 'simple'"):
        make_tuner(tmp_path, "simpel")
    with pytest.raises(ValueError, match="wrn_<depth>_<width>"):
        make_tuner(tmp_path, "wrn_16")


def test_model_output_mismatch_fails_before_any_trial(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, tiny_model(classes=4))
    with pytest.raises(ValueError, match="labels have 10 classes"):
        tuner.search(x, y)
    assert not tuner.oracle.trials


def test_random_method(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, method="random", max_trials=2, child_epochs=1)
    tuner.search(x, y)
    assert tuner.oracle.acquisition == "random" and len(completed(tuner)) == 2


def test_non_tensorflow_backend_is_refused_clearly(tmp_path, digits, monkeypatch):
    x, y = digits
    tuner = make_tuner(tmp_path)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="needs Keras's TensorFlow backend; Keras runs on 'jax'"):
        tuner.search(x, y)


def test_warm_start_is_keyed_by_architecture_data_and_settings(tmp_path, digits):
    """Only architecture values form the key (not lr or dropout); a file from another model or
    another pretraining setting is never loaded."""
    x, y = digits

    def build(hp):
        model = keras.Sequential([
            keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"),
            keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)), keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-2, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = make_tuner(tmp_path / "a", build, max_trials=4, child_epochs=1, child_first_train_epochs=1)
    tuner.search(x, y)
    units = {t.hyperparameters.get("units") for t in completed(tuner)}
    assert len(completed(tuner)) == 4
    assert len(os.listdir(os.path.join(tuner.project_dir, "warm_start"))) == len(units)  # not one per lr/dropout

    path = tmp_path / "pre.weights.h5"
    tiny_model(classes=3).save_weights(str(path))  # another model's weights, left by another run

    def run(first_train_epochs):
        tuner = make_tuner(tmp_path / f"e{first_train_epochs}", max_trials=2, child_epochs=1,
                           child_first_train_epochs=first_train_epochs, pretrained_weights_path=str(path))
        tuner.search(x, y)
        assert len(completed(tuner)) == 2, [t.message for t in tuner.oracle.trials.values()]
        return path.read_bytes()

    first = run(1)
    assert run(1) == first  # same model, data and settings: reused
    assert run(2) != first  # child_first_train_epochs changed: pretrained again
    assert json.loads((tmp_path / "pre.weights.h5.json").read_text())["epochs"] == 2


def test_any_oracle_hyperband_epochs_are_honoured_and_the_baseline_runs(tmp_path, digits):
    from keras_augtune import reward_objective

    x, y = digits
    oracle = keras_tuner.oracles.HyperbandOracle(reward_objective(), max_epochs=3, factor=3, seed=1)
    tuner = make_tuner(tmp_path, oracle=oracle, child_epochs=1)
    tuner.search(x, y)
    trials = completed(tuner)
    assert tuner.baseline_reward() is not None  # the no-augmentation baseline ran first
    assert tuner.hypermodel.policy(tuner.oracle.trials[min(tuner.oracle.trials)].hyperparameters).is_identity
    with open(tuner.notebook_path, newline="") as f:
        rows = list(csv.DictReader(f))
    budgets = [t for t in trials if "tuner/epochs" in t.hyperparameters.values]
    assert any(t.hyperparameters.values["tuner/epochs"] == 3 for t in budgets)
    for t in budgets:
        first, last = t.hyperparameters.values["tuner/initial_epoch"], t.hyperparameters.values["tuner/epochs"]
        assert [int(r["epoch"]) for r in rows if r["trial"] == t.trial_id] == list(range(first + 1, last + 1))
    with pytest.raises(ValueError, match="max_retries_per_trial configure the oracle: pass them to the oracle"):
        make_tuner(tmp_path, oracle=keras_tuner.oracles.RandomSearchOracle(reward_objective(), max_trials=2),
                   max_retries_per_trial=1)


class FlakyHyperModel(keras_tuner.HyperModel):
    """Units and activation of the child are hyperparameters; the first fit raises; fit returns a number
    (the objective's value) when ``number``."""

    def __init__(self, number=False):
        super().__init__()
        self.calls, self.number = 0, number

    def build(self, hp):
        model = keras.Sequential([
            keras.Input((12, 12, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation=hp.Choice("activation", ["relu", "tanh"])),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        self.calls += 1
        if self.calls == 1 and not self.number:
            raise RuntimeError("flaky")
        history = model.fit(*args, **kwargs)
        return max(history.history["val_accuracy"]) if self.number else history


def test_keras_tuner_oracle_arguments_are_passed_on(tmp_path, digits):
    x, y = digits
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 4, 16, step=4)
    tuner = make_tuner(tmp_path, FlakyHyperModel(), max_trials=3, child_epochs=1, hyperparameters=hp,
                       tune_new_entries=False, max_retries_per_trial=1)
    # before search(): the user's own hyperparameters are listed with the policy's
    names = [p.name for p in tuner.oracle.get_space().space]
    assert "units" in names and any(n.startswith("augment/") for n in names)
    tuner.search(x, y)
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED"] * 3  # the flaky first fit was retried
    assert tuner.oracle._run_times[trials[0].trial_id] == 2
    assert {t.hyperparameters.get("activation") for t in trials} == {"relu"}  # not tuned: its default
    assert "activation" not in [p.name for p in tuner.oracle.get_space().space]


def test_fit_returning_a_number_is_the_objective_value(tmp_path, digits):
    x, y = digits
    hypermodel = FlakyHyperModel(number=True)
    tuner = make_tuner(tmp_path, hypermodel, max_trials=2, child_epochs=2)
    tuner.search(x, y)
    trials = completed(tuner)
    assert len(trials) == 2 and tuner.baseline_reward() is not None
    with open(tuner.notebook_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["epoch"] == "" for r in rows)  # one row per execution: no epochs
    for t in trials:
        row = next(r for r in rows if r["trial"] == t.trial_id)
        assert float(row["reward"]) == pytest.approx(t.metrics.get_best_value("reward"))
        assert 0.0 <= float(row["reward"]) <= 1.0


def test_tensorboard_gets_a_folder_per_trial_and_execution_with_hparams_reward_and_policy(tmp_path, digits):
    x, y = digits
    logs = tmp_path / "logs"
    tuner = make_tuner(tmp_path, max_trials=2, child_epochs=1, executions_per_trial=2)
    tuner.search(x, y, callbacks=[keras.callbacks.TensorBoard(log_dir=str(logs))])
    assert sorted(os.listdir(logs)) == sorted(tuner.oracle.trials)
    for trial_id in tuner.oracle.trials:
        assert sorted(os.listdir(logs / trial_id)) == ["execution0", "execution1"]
        folder = logs / trial_id / "execution0"
        assert {"train", "validation"} <= set(os.listdir(folder))
        tags = set()
        for name in os.listdir(folder):
            if name.startswith("events."):
                for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
                    tags.update(value.tag for value in event.summary.value)
        assert {"_hparams_/session_start_info", "reward", "policy"} <= tags, tags


def _spy_fit(tuner):
    """Record what each trial's fit receives."""
    seen = []
    original = tuner.hypermodel.fit

    def spy(hp, model, x_fit, y_fit, **kwargs):
        seen.append({"x": x_fit, "y": y_fit, **kwargs})
        return original(hp, model, x_fit, y_fit, **kwargs)

    tuner.hypermodel.fit = spy
    return seen


def test_search_validation_split_and_sample_weight_follow_the_images(tmp_path, digits):
    x, y = digits
    tuner = make_tuner(tmp_path, max_trials=1, child_epochs=1, train_set_size=60)
    seen = _spy_fit(tuner)
    weights = np.arange(len(y), dtype="float32")  # weight i marks image i
    tuner.search(x, y, validation_split=0.5, sample_weight=weights)
    fit = seen[0]
    assert len(fit["y"]) == 60 and "validation_split" not in fit
    x_val, y_val, w_val = fit["validation_data"]
    assert len(y_val) == 100  # half of the 200 images held out, as asked (not the tuner's 0.2)
    kept, held = fit["sample_weight"].astype(int), w_val.astype(int)
    assert np.array_equal(fit["x"], x[kept].astype("float32")) and np.array_equal(fit["y"], y[kept])
    assert np.array_equal(x_val, x[held].astype("float32")) and not set(kept) & set(held)
    with pytest.raises(ValueError, match="sample_weight has 3 weights but x has 200 images"):
        tuner.search(x, y, sample_weight=weights[:3])


@pytest.mark.parametrize("batched", [True, False])
def test_search_on_a_tf_data_dataset(tmp_path, digits, batched):
    x, y = digits
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.batch(32) if batched else ds
    tuner = make_tuner(tmp_path, max_trials=1, child_epochs=1, train_set_size=80)
    seen = _spy_fit(tuner)
    tuner.search(ds)
    assert len(completed(tuner)) == 1
    assert len(seen[0]["y"]) == 80 and len(seen[0]["validation_data"][1]) == 20  # read 100 images, not all 200
    assert tuner.dataset.input_shape == (12, 12, 1) and tuner.dataset.value_range == (0.0, 255.0)


def test_search_on_image_dataset_from_directory(tmp_path, digits):
    from PIL import Image

    x, y = digits
    for i, (image, label) in enumerate(zip(x[:90], y[:90])):
        folder = tmp_path / "images" / ["zero", "one", "two"][label % 3]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / f"{i}.png")
    ds = keras.utils.image_dataset_from_directory(tmp_path / "images", image_size=(12, 12), color_mode="grayscale",
                                                  batch_size=16, seed=0)
    tuner = make_tuner(tmp_path, tiny_model(classes=3), max_trials=1, child_epochs=1)
    tuner.search(ds)  # float32 pixels in 0-255, as Keras documents: value_range (0, 255)
    assert len(completed(tuner)) == 1
    assert tuner.dataset.class_names == ["one", "two", "zero"] and tuner.dataset.value_range == (0.0, 255.0)
    with pytest.raises(ValueError, match="yields the labels"):
        tuner.search(ds, y)
