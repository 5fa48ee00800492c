"""Quick start: search an augmentation policy for scikit-learn's digits, then train a
final model with the best policy in a tf.data pipeline.

    python examples/quickstart_digits.py            # a few minutes on 2 CPU cores
    python examples/quickstart_digits.py --smoke    # seconds (or KERAS_AUGTUNE_SMOKE=1)

Everything runs offline: the digits ship inside scikit-learn.
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import keras_augtune
from keras_augtune.loaders import load_digits
from keras_augtune.models import build_model
from keras_augtune.report import write_report


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("KERAS_AUGTUNE_SMOKE") == "1",
                        help="tiny sizes, for tests")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = parser.parse_args()
    size, trials, epochs, n_train, final_epochs = (12, 2, 1, 150, 1) if args.smoke else (32, 12, 8, 800, 20)
    out = args.out or tempfile.mkdtemp(prefix="augtune_quickstart_")

    # 1. Data: 1,797 8x8 digits, upscaled; hold out a test set the search never sees.
    x, y = load_digits(size)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    test, rest = order[:300], order[300:]
    x_test, y_test, x, y = x[test], y[test], x[rest], y[rest]

    # 2. Search: trial 0 is the no-augmentation baseline; each later trial trains the
    #    built-in "simple" CNN on images augmented by the oracle's next policy.
    # --smoke: a race of 1 policy, TrivialAugment and no augmentation on 2 executions (the default: 4 policies,
    # TrivialAugment, RandAugment(N=2, M=0.3 / 0.6) and 14 executions)
    race = dict(confirm_top_k=1, confirm_executions=2, recipes=["TrivialAugment"]) if args.smoke else {}
    tuner = keras_augtune.AugmentTuner(
        "simple", max_trials=trials, child_epochs=epochs, train_set_size=n_train,
        directory=out, project_name="quickstart", overwrite=True, seed=0, **race,
    )
    #    Then the best policies race TrivialAugment, RandAugment and no augmentation on fresh
    #    paired executions, and the verdict names one of them.
    tuner.search(x, y)
    tuner.results_summary(3)
    verdict = tuner.results().verdict()  # a searched policy, a recipe, or no augmentation
    best = verdict.recommended  # the policy to use (Policy.identity() for none)
    print("Verdict:", verdict.text)
    tuner.export_policies(os.path.join(out, "best_policies.json"))
    write_report(tuner, os.path.join(out, "report.html"))

    # 3. Final training: the recommended policy in the tf.data pipeline (training set only).
    ds = (tf.data.Dataset.from_tensor_slices((x, y))  # uint8: the policy's default value range
          .shuffle(len(y), seed=0)
          .batch(64)
          .map(best.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
          .map(lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels))
          .prefetch(tf.data.AUTOTUNE))
    model = build_model("simple", x.shape[1:], 10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=final_epochs, verbose=2)
    _, accuracy = model.evaluate(x_test.astype("float32") / 255.0, y_test, verbose=0)
    print(f"Test accuracy with the best policy: {accuracy:.4f}")
    print(f"Report: {os.path.join(out, 'report.html')}")


if __name__ == "__main__":
    main()
