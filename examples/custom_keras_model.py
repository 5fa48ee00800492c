"""Bring your own Keras model: search the policy that suits it.

A compiled (or uncompiled) ``keras.Model`` is cloned with fresh weights for every
trial; its loss, optimizer and metrics are kept ("accuracy" is added when missing,
since the reward is read from it). A user model receives the images as given, here
uint8-range floats, so it rescales them itself.

    python examples/custom_keras_model.py           # a few minutes on 2 CPU cores
    python examples/custom_keras_model.py --smoke   # seconds (or KERAS_AUGTUNE_SMOKE=1)
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

import keras_augtune
from keras_augtune.loaders import load_digits


def my_model(input_shape, num_classes=10):
    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="my_model")
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("KERAS_AUGTUNE_SMOKE") == "1")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    size, trials, epochs, n_train = (12, 2, 1, 150) if args.smoke else (28, 10, 8, 800)

    x, y = load_digits(size)
    # --smoke: a race of 1 policy, TrivialAugment and no augmentation on 2 executions (the default: 4 policies,
    # TrivialAugment, RandAugment(N=2, M=0.3 / 0.6) and 14 executions)
    race = dict(confirm_top_k=1, confirm_executions=2, recipes=["TrivialAugment"]) if args.smoke else {}
    tuner = keras_augtune.AugmentTuner(
        my_model(x.shape[1:]), max_trials=trials, child_epochs=epochs, train_set_size=n_train,
        ops=["identity", "rotate", "shear-x", "shear-y", "translate-x", "translate-y", "contrast", "cutout"],
        directory=args.out or tempfile.mkdtemp(prefix="augtune_custom_"), project_name="custom",
        overwrite=True, seed=0, **race,
    )
    tuner.search(x, y)
    tuner.results_summary(3)
    best = tuner.get_best_policies(1)[0]
    print("Best policy for my_model:", best)
    # The weights of the best trial's model (the policy layer is the identity at inference):
    model = tuner.get_best_models(1)[0]
    print("Best model's accuracy on 100 images:", model.evaluate(x[:100].astype("float32"), y[:100], verbose=0)[1])


if __name__ == "__main__":
    main()
