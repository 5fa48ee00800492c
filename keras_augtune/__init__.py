"""keras_augtune: search the data-augmentation policy that suits your images, with Keras Tuner."""

from keras_augtune.layer import PolicyAugmentation
from keras_augtune.ops import OP_NAMES, resolve_op
from keras_augtune.policy import Policy, PolicyOp

__version__ = "0.1.0"

__all__ = ["OP_NAMES", "Policy", "PolicyAugmentation", "PolicyOp", "resolve_op", "__version__"]
