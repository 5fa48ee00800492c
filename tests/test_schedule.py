"""The child's learning-rate schedule: warm-up then cosine to ~0 for models the hypermodel
compiles; a user's compiled model keeps its optimizer."""

import keras
import numpy as np
import pytest

from keras_augtune.hypermodel import AugmentHyperModel
from keras_augtune.schedule import WarmupCosineDecay


class RecordRate(keras.callbacks.Callback):
    """The learning rate each training step used."""

    def on_train_begin(self, logs=None):
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _fit(hypermodel, data, **kwargs):
    x, y = data
    hypermodel.configure(x.shape[1:], 10)
    hp = __import__("keras_tuner").HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    model = hypermodel.build(hp)
    record = RecordRate()
    kwargs.setdefault("epochs", 3)
    hypermodel.fit(hp, model, x, y, batch_size=16, verbose=0, callbacks=[record], **kwargs)
    return model, np.array(record.rates)


def test_builtin_child_warms_up_then_decays_to_zero(digits_small):
    model, rates = _fit(AugmentHyperModel("simple", learning_rate=0.01), digits_small)
    assert len(rates) == 3 * 4  # 64 images, batch 16, 3 epochs
    peak = int(np.argmax(rates))
    assert 0 < peak < 4 and rates.max() == pytest.approx(0.01)  # warm-up within the first epoch
    assert rates[0] < 0.01 and np.all(np.diff(rates[:peak + 1]) > 0)
    assert np.all(np.diff(rates[peak:]) < 0)
    assert rates[-1] < 0.01 * 0.05  # ~0 at the last step


def test_continued_training_gets_its_own_settled_schedule(digits_small):
    _, rates = _fit(AugmentHyperModel("simple", learning_rate=0.01), digits_small, epochs=5, initial_epoch=3)
    assert len(rates) == 2 * 4 and rates.max() == pytest.approx(0.01) and rates[-1] < 0.01 * 0.1


def test_unknown_steps_per_epoch_set_the_rate_per_epoch(digits_small):
    import tensorflow as tf

    x, y = digits_small
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(16)  # unknown size
    hypermodel = AugmentHyperModel("simple", learning_rate=0.01)
    hypermodel.configure(x.shape[1:], 10)
    hp = __import__("keras_tuner").HyperParameters()
    model = hypermodel.build(hp)
    schedule = WarmupCosineDecay(0.01)
    model.fit(ds, epochs=3, verbose=0, callbacks=[schedule])
    assert len(schedule.rates) == 3 and schedule.rates[0] == pytest.approx(0.01)
    assert schedule.rates[0] > schedule.rates[1] > schedule.rates[2] > 0


def test_uncompiled_user_model_is_scheduled_compiled_one_keeps_its_optimizer(digits_small):
    def user_model():
        inputs = keras.Input((16, 16, 1))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Flatten()(x)
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))

    _, rates = _fit(AugmentHyperModel(user_model(), learning_rate=0.02), digits_small)
    assert rates.max() == pytest.approx(0.02) and rates[-1] < 0.001

    compiled = user_model()
    compiled.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model, rates = _fit(AugmentHyperModel(compiled), digits_small)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert np.allclose(rates, 0.05) and len(rates) == 12


def test_constant_schedule_and_bad_names(digits_small):
    _, rates = _fit(AugmentHyperModel("simple", learning_rate=0.01, learning_rate_schedule=None), digits_small)
    assert np.allclose(rates, 0.01)
    with pytest.raises(ValueError, match="learning_rate_schedule must be one of 'cosine', 'constant'"):
        AugmentHyperModel("simple", learning_rate_schedule="cosin")
    with pytest.raises(ValueError, match="warmup_fraction"):
        WarmupCosineDecay(0.01, warmup_fraction=1.5)


def test_default_peak_rate_depends_on_the_schedule():
    assert AugmentHyperModel("simple").learning_rate == 3e-3
    assert AugmentHyperModel("simple", learning_rate_schedule="constant").learning_rate == 1e-3
    assert AugmentHyperModel("simple", learning_rate=0.02).learning_rate == 0.02
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        AugmentHyperModel("simple", learning_rate=0)
