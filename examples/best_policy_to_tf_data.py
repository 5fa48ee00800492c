"""Attach a searched policy to a tf.data pipeline and train the final model, with and
without the policy, on the same data.

    keras-augtune search --out augtune_runs
    python examples/best_policy_to_tf_data.py augtune_runs/best_policies.json
    python examples/best_policy_to_tf_data.py --smoke      # a built-in policy, seconds

With no policy file, a RandAugment-style policy stands in. Images are augmented per
image on the CPU (imgaug inside ``tf.numpy_function``), in parallel with training.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from keras_augtune import Policy, load_policies
from keras_augtune.loaders import load_digits
from keras_augtune.models import build_model


def pipeline(x, y, policy=None, batch_size=64, seed=0):
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(batch_size)
    if policy is not None:
        # uint8 or float images in [0, 255]; only the images are augmented, labels pass through
        ds = ds.map(policy.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels)).prefetch(tf.data.AUTOTUNE)


def train(ds, x_test, y_test, input_shape, epochs):
    keras.utils.set_random_seed(0)
    model = build_model("simple", input_shape, 10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=epochs, verbose=0)
    return model.evaluate(x_test.astype("float32") / 255.0, y_test, verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", nargs="?", help="best_policies.json (from keras-augtune search) or a policy JSON")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("KERAS_AUGTUNE_SMOKE") == "1")
    args = parser.parse_args()
    size, n_train, epochs = (12, 200, 1) if args.smoke else (32, 1000, 25)

    if args.policy:
        policy = load_policies(args.policy)[0]
    else:
        policy = Policy.rand_augment(num_ops=2, magnitude=0.3, ops=["rotate", "shear-x", "translate-x", "translate-y"])
    print("Policy:", policy)

    x, y = load_digits(size)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train_idx, test_idx = order[:n_train], order[n_train:]
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]

    plain = train(pipeline(x_train, y_train), x_test, y_test, x.shape[1:], epochs)
    augmented = train(pipeline(x_train, y_train, policy), x_test, y_test, x.shape[1:], epochs)
    print(f"Test accuracy without augmentation: {plain:.4f}")
    print(f"Test accuracy with the policy:      {augmented:.4f} ({augmented - plain:+.4f})")


if __name__ == "__main__":
    main()
