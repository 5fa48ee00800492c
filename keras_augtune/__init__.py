"""keras_augtune: search the data-augmentation policy that suits your images, with Keras Tuner.

    tuner = keras_augtune.AugmentTuner(max_trials=20)
    tuner.search(x, y)
    best = tuner.get_best_policies(1)[0]
    ds = ds.map(best.tf_map(), num_parallel_calls=tf.data.AUTOTUNE)

The package, in the order a search runs through it (``docs/architecture.md`` has one sentence
per module):

* ``ops`` (the op table) -> ``policy`` (a policy's value and JSON) -> ``engines`` (applying a
  policy: ``execution`` is imgaug, ``keras_engine`` with ``keras_twins`` the Keras-native engine;
  the layer in ``layer``) -> ``recipes`` (TrivialAugment, RandAugment; the base recipes) -> ``bases`` (the
  base recipe every candidate follows; the final augmentation layer) -> ``space`` (policies as
  hyperparameters) -> ``oracle/`` (random-forest proposals; Hyperband; which oracle) ->
  ``evaluation/`` (the reward; the verdict's statistics; density matching)
  -> ``hypermodel`` (child model + policy layer; ``models``, ``schedule``, ``warm_start``)
  -> ``records`` (every execution kept) -> ``runner`` (one training of one configuration)
  -> ``intensifier/`` (the race, the confirmation) -> ``preparation`` -> ``tuner`` (the Keras
  Tuner lifecycle; ``display``, ``distributed``) -> ``results`` (the data model;
  ``recommendation``: the verdict; ``policies_file``; ``frames``) -> ``effects`` (which ops
  help) -> ``report``, ``plot``, ``cli``, ``deepaugment``;
* shared underneath: ``data``, ``loaders`` and ``images`` (input checks and loaders), ``files``
  and ``repair`` (atomic writes, lock, notebook; damaged run files), ``trials`` (status names,
  order, budgets), ``seeds``, ``checks``, ``heap`` (cheap garbage collection during a search),
  ``lazy`` (modules imported on first use), ``registration`` (the layer known to Keras's loader,
  without importing Keras early), and ``compat`` (the private Keras Tuner internals used, with why).

The public names below are imported on first use, so ``import keras_augtune`` (and the
command line's ``--help``) does not start TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module defining it
_EXPORTS = {
    "AugmentHyperModel": "keras_augtune.hypermodel",
    "AugmentTuner": "keras_augtune.tuner",
    "Base": "keras_augtune.bases",
    "augmentation_layer": "keras_augtune.bases",
    "load_augmentation": "keras_augtune.bases",
    "DeepAugment": "keras_augtune.deepaugment",
    "OP_NAMES": "keras_augtune.ops",
    "Policy": "keras_augtune.policy",
    "PolicyAugmentation": "keras_augtune.layer",
    "PolicyOp": "keras_augtune.policy",
    "PolicySpace": "keras_augtune.space",
    "Race": "keras_augtune.intensifier",
    "RandomForestHyperbandOracle": "keras_augtune.oracle",
    "RandomForestOracle": "keras_augtune.oracle",
    "declare_policy_space": "keras_augtune.space",
    "load_model": "keras_augtune.registration",
    "load_policies": "keras_augtune.policies_file",
    "overfit_filtered_reward": "keras_augtune.evaluation.reward",
    "resolve_op": "keras_augtune.ops",
    "reward_objective": "keras_augtune.evaluation.reward",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_augtune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs
    from keras_augtune.bases import Base, augmentation_layer, load_augmentation
    from keras_augtune.deepaugment import DeepAugment
    from keras_augtune.hypermodel import AugmentHyperModel
    from keras_augtune.layer import PolicyAugmentation
    from keras_augtune.evaluation.reward import overfit_filtered_reward, reward_objective
    from keras_augtune.ops import OP_NAMES, resolve_op
    from keras_augtune.intensifier import Race
    from keras_augtune.oracle import RandomForestHyperbandOracle, RandomForestOracle
    from keras_augtune.policy import Policy, PolicyOp
    from keras_augtune.space import PolicySpace, declare_policy_space
    from keras_augtune.registration import load_model
    from keras_augtune.policies_file import load_policies
    from keras_augtune.tuner import AugmentTuner


# A .keras file holding PolicyAugmentation loads after a plain `import keras_augtune`, yet this
# import stays free of TensorFlow: see keras_augtune.registration for why it is done this way.
from keras_augtune import registration as _registration  # noqa: E402

_registration.register_when_keras_loads()
