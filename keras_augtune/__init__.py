"""keras_augtune: search the data-augmentation policy that suits your images, with Keras Tuner.

    tuner = keras_augtune.AugmentTuner(max_trials=20)
    tuner.search(x, y)
    best = tuner.get_best_policies(1)[0]
    ds = ds.map(best.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)
"""

from keras_augtune.deepaugment import DeepAugment
from keras_augtune.hypermodel import AugmentHyperModel
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.objective import overfit_filtered_reward, reward_objective
from keras_augtune.ops import OP_NAMES, resolve_op
from keras_augtune.oracle import RandomForestOracle
from keras_augtune.policy import Policy, PolicyOp
from keras_augtune.space import PolicySpace, declare_policy_space
from keras_augtune.tuner import AugmentTuner, load_policies

__version__ = "0.1.0"

__all__ = [
    "AugmentHyperModel", "AugmentTuner", "DeepAugment", "OP_NAMES", "Policy", "PolicyAugmentation",
    "PolicyOp", "PolicySpace", "RandomForestOracle", "declare_policy_space", "load_policies",
    "overfit_filtered_reward", "resolve_op", "reward_objective", "__version__",
]
