"""Tune the model's own hyperparameters and the augmentation policy together.

The hypermodel declares its hyperparameters (width, dropout, learning rate) with
``hp`` as in any Keras Tuner code; ``AugmentTuner`` adds the policy's and the one
random-forest oracle searches both.

    python examples/joint_architecture_tuning.py           # a few minutes on 2 CPU cores
    python examples/joint_architecture_tuning.py --smoke   # seconds (or KERAS_AUGTUNE_SMOKE=1)
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import keras_tuner

import keras_augtune
from keras_augtune.loaders import load_digits


class SmallCNN(keras_tuner.HyperModel):
    """A CNN whose width, dropout and learning rate are tuned."""

    def build(self, hp):
        width = hp.Int("width", 8, 32, step=8)
        dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
        learning_rate = hp.Choice("learning_rate", [1e-3, 3e-3])
        model = keras.Sequential([
            keras.layers.Rescaling(1 / 255),  # user models receive the images as given (0-255 here)
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("KERAS_AUGTUNE_SMOKE") == "1")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    size, trials, epochs, n_train = (12, 2, 1, 150) if args.smoke else (24, 12, 6, 800)

    x, y = load_digits(size)
    # --smoke: a race of 1 policy, TrivialAugment and no augmentation on 2 executions (the default: 4 policies,
    # TrivialAugment, RandAugment(N=2, M=0.3 / 0.6) and 14 executions)
    race = dict(confirm_top_k=1, confirm_executions=2, recipes=["TrivialAugment"]) if args.smoke else {}
    tuner = keras_augtune.AugmentTuner(
        SmallCNN(), max_trials=trials, child_epochs=epochs, train_set_size=n_train,
        num_sub_policies=3,  # a smaller policy space leaves the forest more room for the architecture
        directory=args.out or tempfile.mkdtemp(prefix="augtune_joint_"), project_name="joint",
        overwrite=True, seed=0, **race,
    )
    tuner.search(x, y)
    tuner.results_summary(3)
    best_policy = tuner.get_best_policies(1)[0]
    best_hp = tuner.get_best_hyperparameters(1)[0]
    architecture = {k: v for k, v in best_hp.values.items() if not k.startswith("augment/")}
    print("Best architecture:", architecture)
    print("Best policy:", best_policy)
    print("Importances:", dict(list(tuner.oracle.hyperparameter_importances().items())[:5]))


if __name__ == "__main__":
    main()
