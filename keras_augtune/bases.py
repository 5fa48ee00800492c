"""The base recipe: the augmentation every candidate of a search is applied after, and the final augmentation layer.

A user who always trains with crop+flip does not ask "which augmentation?" but "what on top of
crop+flip?". ``AugmentTuner(base="crop-flip")`` puts the base in front of every candidate's policy
layer: the searched trials, every recipe in the race and the no-augmentation baseline, which then
means *the base alone*. The verdict, the race's table, the command line and the report say "no
augmentation beyond the base (crop-flip)", and the recommendation is the base, then the verdict's
policy ([`augmentation_layer()`][keras_augtune.bases.augmentation_layer],
[`load_augmentation()`][keras_augtune.bases.load_augmentation]).

A base ([`Base.resolve()`][keras_augtune.bases.Base.resolve]) is a name (`keras_augtune.recipes.BASE_RECIPES`),
a policy JSON file, a [`Policy`][keras_augtune.Policy], or a Keras preprocessing layer (``keras.layers.RandomFlip``,
``RandomTranslation``, a ``keras.Sequential`` of them), kept as its serialized config so that every
model gets a fresh copy and the search records what it was (``executions/base.json``,
``best_policies.json``). In a model built under an execution's seed the base's layer gets its own
derived seed (`keras_augtune.seeds.base_seed()`), never the candidate's.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import keras
import numpy as np

from keras_augtune.checks import check_choice
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.policies_file import POLICIES_FORMAT
from keras_augtune.policy import Policy, read_policy_json
from keras_augtune.recipes import BASE_RECIPES, base_recipe, baseline_label
from keras_augtune.records import BASE_FILE  # noqa: F401 (where a search records its base)
from keras_augtune.seeds import base_seed, derive_seed

__all__ = ["Base", "BASE_FILE", "baseline_label", "augmentation_layer", "load_augmentation", "seed_base_layers"]

#: The attribute marking a model's base layer.
_MARK = "_keras_augtune_base"


@dataclasses.dataclass(frozen=True)
class Base:
    """A base recipe: its ``name`` (shown), and either its ``policy`` or a Keras layer's serialized ``layer_config``."""

    name: str
    policy: Policy | None = None
    layer_config: dict | None = None

    @classmethod
    def resolve(cls, base: Any) -> "Base | None":
        """The base ``base`` names: ``None`` (none), a name of `BASE_RECIPES` (a misspelt one raises a
        one-line ``ValueError`` suggesting the closest), a policy ``.json`` file (a ``best_policies.json``
        gives its best policy), a [`Policy`][keras_augtune.Policy], a Keras layer, or a `record()`."""
        if base is None or isinstance(base, Base):
            return base
        if isinstance(base, str):
            if base in BASE_RECIPES:
                return cls(base, policy=base_recipe(base))
            if base.lower().endswith(".json"):
                if not os.path.isfile(base):
                    raise ValueError(f"base {base!r}: no such policy file.")
                data = read_policy_json(base)
                if isinstance(data, dict) and data.get("format") == POLICIES_FORMAT:
                    data = (data.get("policies") or [None])[0]
                policy = Policy.from_dict(data)
                return cls(str(policy.metadata.get("name") or os.path.basename(base)), policy=policy)
            check_choice("base (a name, a policy .json file, a Policy or a Keras layer)", base, tuple(BASE_RECIPES))
        if isinstance(base, Policy):
            return cls(str(base.metadata.get("name") or "your policy"), policy=base)
        if isinstance(base, Mapping) and "name" in base:
            return cls.from_record(base)
        if isinstance(base, keras.layers.Layer):
            try:
                config = json.loads(json.dumps(keras.saving.serialize_keras_object(base)))
            except Exception as exc:
                raise ValueError(f"base: the Keras layer {base.name!r} cannot be serialized ({type(exc).__name__}: "
                                 f"{exc}); give a layer Keras can save, or a Policy.") from None
            return cls(_layer_name(base), layer_config=config)
        raise TypeError(f"base must be a name ({', '.join(map(repr, BASE_RECIPES))}), a policy .json file, a Policy "
                        f"or a Keras preprocessing layer, got {type(base).__name__}.")

    def record(self) -> dict[str, Any]:
        """The base as JSON (what the search and ``best_policies.json`` record); `from_record()` reads it."""
        if self.policy is not None:
            return {"name": self.name, "policy": self.policy.to_dict()}
        return {"name": self.name, "keras_layer": self.layer_config}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Base":
        if record.get("policy") is not None:
            return cls(str(record["name"]), policy=Policy.from_dict(record["policy"]))
        if not isinstance(record.get("keras_layer"), Mapping):
            raise ValueError("a base record needs a 'policy' or a 'keras_layer'.")
        return cls(str(record["name"]), layer_config=dict(record["keras_layer"]))

    @property
    def baseline_name(self) -> str:
        """What "no augmentation" means under this base."""
        return baseline_label(self.name)

    def layer(self, value_range: Any = None, engine: str = "imgaug") -> keras.layers.Layer:
        """A fresh layer applying the base (when training), marked as the model's base layer."""
        if self.policy is not None:
            layer = PolicyAugmentation(self.policy, value_range=value_range, engine=engine, name="base_augmentation")
        else:
            layer = keras.saving.deserialize_keras_object(self.layer_config)
        setattr(layer, _MARK, True)
        return layer


def seed_base_layers(model: keras.Model, seed: int) -> bool:
    """Give ``model``'s base layer its own augmentation seed, derived from the execution's ``seed``
    (`keras_augtune.seeds.base_seed()`): a policy layer's ``seed`` and every Keras seed generator
    inside it. Returns whether the model has a base layer."""
    found = False
    for layer in model.layers:
        if getattr(layer, _MARK, False):
            found = True
            _reseed(layer, base_seed(seed))
    return found


def _reseed(layer: keras.layers.Layer, seed: int) -> None:
    if isinstance(layer, PolicyAugmentation):
        layer.seed = seed
    layers = layer._flatten_layers(include_self=True, recursive=True) if hasattr(layer, "_flatten_layers") else [layer]
    generators = [g for sub in layers for g in getattr(sub, "_seed_generators", [])]
    for number, generator in enumerate(generators):
        state = np.asarray([derive_seed(seed, number), 0])
        generator.state.assign(keras.ops.convert_to_tensor(state, dtype=generator.state.dtype))


def _layer_name(layer: keras.layers.Layer) -> str:
    if isinstance(layer, keras.Sequential):
        return "+".join(type(sub).__name__ for sub in layer.layers) or layer.name
    return type(layer).__name__


def augmentation_layer(policy: Any = None, base: Any = None, value_range: Any = None, engine: str = "imgaug",
                       seed: int | None = None) -> keras.Sequential:
    """The final augmentation as one Keras layer: the ``base`` (`Base.resolve()`), then ``policy``.

    Like Keras's own augmentation layers it augments only when training: put it first in your
    model, or map a ``tf.data`` pipeline with it, ``ds.map(lambda x, y: (layer(x, training=True), y))``.
    ``value_range`` as for [`PolicyAugmentation`][keras_augtune.PolicyAugmentation]; ``seed`` seeds the
    policy's layer and, derived from it, the base's."""
    base = Base.resolve(base)
    layers = []
    if base is not None:
        layers.append(base.layer(value_range, engine))
    layers.append(PolicyAugmentation(Policy.identity() if policy is None else policy, value_range=value_range,
                                     seed=seed, engine=engine, name="policy_augmentation"))
    if seed is not None and base is not None:
        _reseed(layers[0], base_seed(seed))
    return keras.Sequential(layers, name="augmentation")


def load_augmentation(path: str, value_range: Any = None, engine: str = "imgaug", seed: int | None = None) -> keras.Sequential:
    """The augmentation a search recommends, from its ``best_policies.json``: its base, then the
    verdict's policy (the best policy when the file holds no verdict; a single policy's file: that
    policy), as [`augmentation_layer()`][keras_augtune.bases.augmentation_layer] builds it."""
    data = read_policy_json(path)
    if isinstance(data, dict) and data.get("format") == POLICIES_FORMAT:
        verdict = data.get("verdict") if isinstance(data.get("verdict"), dict) else {}
        chosen = verdict.get("recommended") or (data.get("policies") or [None])[0]
        policy = Policy.identity() if chosen is None else Policy.from_dict(chosen)
        return augmentation_layer(policy, data.get("base"), value_range, engine, seed)
    return augmentation_layer(Policy.from_dict(data), None, value_range, engine, seed)
