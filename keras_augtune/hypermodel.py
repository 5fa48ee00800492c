"""`AugmentHyperModel`: the user's (or a built-in) child model behind a policy-augmentation layer."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import keras_tuner

from keras_augtune.bases import Base
from keras_augtune.engines import DEFAULT_ENGINE, check_engine
from keras_augtune.layer import PolicyAugmentation
from keras_augtune.models import DEFAULT_MODEL, build_model, check_model_name
from keras_augtune.ops import OP_NAMES
from keras_augtune.policy import Policy
from keras_augtune.schedule import DEFAULT_LEARNING_RATES, WarmupCosineDecay, check_schedule
from keras_augtune.space import PolicySpace, policy_of


class AugmentHyperModel(keras_tuner.HyperModel):
    """Wrap a child model with the [`PolicyAugmentation`][keras_augtune.PolicyAugmentation] layer of the trial's policy.

    Args:
        model: the child: a ``keras_tuner.HyperModel`` or ``build(hp)`` function (its
            own hyperparameters are tuned jointly with the policy), a ``keras.Model``
            (cloned with fresh weights for every trial; compiled or not), or the name
            of a built-in model (``"simple"``, ``"basiccnn"``, ``"wrn_16_2"``,
            ``"mobilenetv2"``, ``"inceptionv3"``). Default: ``"simple"``.
        policy_space: the [`PolicySpace`][keras_augtune.space.PolicySpace] searched
            (its hyperparameters live under the ``augment/`` name scope).
        learning_rate: Adam's (peak) learning rate when the hypermodel compiles the model
            itself; default 3e-3 with the ``"cosine"`` schedule, 1e-3 with ``"constant"``
            (``keras_augtune.schedule.DEFAULT_LEARNING_RATES``).
        learning_rate_schedule: for a model the hypermodel compiles itself (the built-in
            ones, an uncompiled user model): ``"cosine"`` (default) warms the rate up over
            the first epoch (at most 10 % of the steps), then decays it along a cosine to ~0
            by the last step of every ``fit`` ([`WarmupCosineDecay`][keras_augtune.schedule.WarmupCosineDecay]),
            so the child ends training settled; ``"constant"`` or ``None`` keeps it constant.
            A model the user compiled keeps its own optimizer and schedule.
        engine: the engine of the trial's [`PolicyAugmentation`][keras_augtune.PolicyAugmentation] layer:
            ``"imgaug"`` (default) or ``"keras"`` (the ops' Keras twins, in the compiled training step,
            on any backend and device; `keras_augtune.engines`). On ``"keras"`` the default space
            (every op) leaves out the ops without a twin (``keras_augtune.keras_twins.NO_TWIN``);
            a space that names one of them is refused in one line.
        base: a base recipe applied before the policy layer in every model, the baseline's
            included ([`Base.resolve()`][keras_augtune.bases.Base.resolve]: a name such as
            ``"crop-flip"``, a ``Policy`` or a Keras preprocessing layer); ``None``: none.

    The policy hyperparameters are declared up front (``declare_hyperparameters``),
    so the oracle sees the whole space before the first trial. Validation data is
    never augmented: the layer is the identity outside training. Built-in models get
    their inputs rescaled to [0, 1]; a user model receives the images as given.
    """

    def __init__(self, model: Any = None, policy_space: PolicySpace | None = None,
                 learning_rate: float | None = None, name: str | None = None, tunable: bool = True,
                 learning_rate_schedule: str | None = "cosine", engine: str = DEFAULT_ENGINE, base: Any = None):
        super().__init__(name=name, tunable=tunable)
        self.engine = check_engine(engine)
        #: The base recipe every model applies before the policy (a `Base`), or None.
        self.base = Base.resolve(base)
        self.policy_space = policy_space if policy_space is not None else PolicySpace()
        self.learning_rate_schedule = check_schedule(learning_rate_schedule)
        if learning_rate is None:
            learning_rate = DEFAULT_LEARNING_RATES[self.learning_rate_schedule]
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
        self.learning_rate = float(learning_rate)
        self.child_name: str | None = None
        self.child_hypermodel: keras_tuner.HyperModel | None = None
        self.child_model: keras.Model | None = None
        model = DEFAULT_MODEL if model is None else model
        if isinstance(model, str):
            self.child_name = check_model_name(model)
        elif isinstance(model, keras_tuner.HyperModel):
            self.child_hypermodel = model
        elif isinstance(model, keras.Model):
            self.child_model = model
        elif callable(model):
            self.child_hypermodel = keras_tuner.HyperModel()
            self.child_hypermodel.build = model  # type: ignore[method-assign]
        else:
            raise TypeError(
                "hypermodel must be a keras_tuner.HyperModel, a build(hp) function, a keras.Model "
                f"or a built-in model name; got {type(model).__name__}."
            )
        # Set from the data by `configure` (the tuner does it in `search`).
        self.input_shape: tuple[int, ...] | None = None
        self.num_classes: int | None = None
        self.value_range: tuple[float, float] = (0.0, 255.0)
        self.one_hot = False
        #: A `WarmStart` giving each new child its starting
        #: weights (the tuner sets it when ``child_first_train_epochs > 0``), or None.
        self.warm_start: Any = None

    @classmethod
    def of(cls, hypermodel: Any, policy_space: PolicySpace | None = None, engine: str | None = None,
           base: Any = None, **space_options: Any) -> tuple["AugmentHyperModel", bool]:
        """``(AugmentHyperModel, default_ops)`` for what ``AugmentTuner(hypermodel, policy_space=..., engine=...,
        base=...)`` was given: an ``AugmentHyperModel`` as it is (with ``policy_space``, ``engine`` and ``base`` when given),
        anything else wrapped over a ``policy_space`` (or one made of ``space_options``) on ``engine``
        (default imgaug). ``default_ops``: nobody chose the ops, so the search may leave out those
        that cannot act on the images."""
        if isinstance(hypermodel, cls):
            if engine is not None:
                hypermodel.engine = check_engine(engine)
            if policy_space is not None:
                hypermodel.policy_space = policy_space
            if base is not None:
                hypermodel.base = Base.resolve(base)
            return hypermodel, False
        default_ops = policy_space is None and space_options.get("ops") is None
        if policy_space is None:
            policy_space = PolicySpace(**space_options)
        return cls(hypermodel, policy_space=policy_space, engine=engine or DEFAULT_ENGINE, base=base), default_ops

    # ------------------------------------------------------------------ set-up
    @property
    def policy_space(self) -> PolicySpace:
        """The searched space (on the Keras engine, without the ops that have no Keras twin)."""
        return self._policy_space

    @policy_space.setter
    def policy_space(self, space: PolicySpace) -> None:
        # a setter, not an __init__ check: the tuner assigns the space after construction too
        if not isinstance(space, PolicySpace):
            raise TypeError(f"policy_space must be a PolicySpace, got {type(space).__name__}.")
        if self.engine == "keras":
            from keras_augtune.keras_twins import NO_TWIN

            if tuple(space.ops) == OP_NAMES:  # the default space: every op that has a twin
                space = dataclasses.replace(space, ops=tuple(op for op in space.ops if op not in NO_TWIN))
            missing = [op for op in space.ops if op in NO_TWIN]
            if missing:
                raise ValueError(f"The Keras engine has no twin of {', '.join(map(repr, missing))}: leave "
                                 "them out of the PolicySpace's ops, or use engine='imgaug'.")
        self._policy_space = space

    def configure(self, input_shape, num_classes: int, value_range=(0.0, 255.0), one_hot: bool = False) -> None:
        """Tell the hypermodel what data it will see."""
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.one_hot = bool(one_hot)

    def data_config(self) -> dict[str, Any]:
        """What `configure()` was told, as JSON (``configure(**data_config())`` restores it)."""
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "value_range": list(self.value_range), "one_hot": self.one_hot}

    @property
    def configured(self) -> bool:
        return self.input_shape is not None

    def declare_hyperparameters(self, hp: keras_tuner.HyperParameters) -> None:
        self.policy_space.declare(hp)
        if self.child_hypermodel is not None:
            self.child_hypermodel.declare_hyperparameters(hp)

    # ------------------------------------------------------------------ building
    def build_child(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """The child model alone (fresh weights), uncompiled or as the user compiled it."""
        if self.child_hypermodel is not None:
            child = self.child_hypermodel.build(hp)
            if not isinstance(child, keras.Model):
                raise TypeError(f"The hypermodel's build(hp) must return a keras.Model, got {type(child).__name__}.")
            return child
        if self.child_model is not None:
            child = keras.models.clone_model(self.child_model)
            return child
        self._require_configured()
        return build_model(self.child_name, self.input_shape, self.num_classes)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        self.policy_space.declare(hp)
        self.policy(hp)  # invalid policy values fail here, before any model is built
        if not self.configured:
            # Keras Tuner explores the space before search() has shown us the data:
            # only a user hypermodel can declare more hyperparameters.
            return self.build_child(hp) if self.child_hypermodel is not None else None
        child = self.build_child(hp)
        if self.warm_start is not None:
            self.warm_start.load(self, hp, child)
        return self.wrap(hp, child)

    def wrap(self, hp: keras_tuner.HyperParameters, child: keras.Model) -> keras.Model:
        """The trial's model: ``child`` behind the base's layer (when there is a base), the policy layer
        of ``hp`` (and the rescaling of built-in models), compiled."""
        policy = self.policy(hp)
        inputs = keras.Input(self.input_shape, name="images")
        x = inputs
        if self.base is not None:  # every candidate, the baseline included, is applied after the base
            x = self.base.layer(self.value_range, self.engine)(x)
        if not policy.is_noop(self.input_shape[-1]):  # a no-op policy trains exactly as the baseline
            x = PolicyAugmentation(policy, value_range=self.value_range, engine=self.engine,
                                   name="policy_augmentation")(x)
        if self.child_name is not None:
            low, high = self.value_range
            x = keras.layers.Rescaling(1.0 / (high - low), offset=-low / (high - low), name="rescale")(x)
        outputs = child(x)
        model = keras.Model(inputs, outputs, name=f"augmented_{child.name}")
        self._compile(model, child)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Train ``model``: the user hypermodel's ``fit`` when there is one, else ``model.fit``.

        A model this hypermodel compiled itself gets the ``learning_rate_schedule`` callback.
        """
        if getattr(model, "_keras_augtune_compiled", False) and self.learning_rate_schedule == "cosine":
            schedule = WarmupCosineDecay(self.learning_rate)
            if len(args) > 5:  # model.fit(x, y, batch_size, epochs, verbose, callbacks, ...)
                args = (*args[:5], list(args[5] or []) + [schedule], *args[6:])
            else:
                kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [schedule]
        if self.child_hypermodel is not None:
            return self.child_hypermodel.fit(hp, model, *args, **kwargs)
        return model.fit(*args, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _compile(self, model: keras.Model, child: keras.Model) -> None:
        source = next((m for m in (child, self.child_model) if getattr(m, "optimizer", None) is not None), None)
        if source is not None:
            config = source.get_compile_config() or {}
            metrics = config.get("metrics") or []
            if not any(m in ("accuracy", "acc") for m in metrics if isinstance(m, str)):
                metrics = list(metrics) + ["accuracy"]
            config["metrics"] = metrics
            model.compile_from_config(config)
            return
        from_logits = not _ends_in_softmax(child)
        loss = (keras.losses.CategoricalCrossentropy(from_logits=from_logits) if self.one_hot
                else keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=loss, metrics=["accuracy"])
        model._keras_augtune_compiled = True  # our optimizer: `fit` may schedule its learning rate

    def _require_configured(self) -> None:
        if not self.configured:
            raise RuntimeError(
                "The built-in child model needs the input shape and class count: call "
                "configure(input_shape, num_classes) or run it through AugmentTuner.search(x, y)."
            )

    def policy(self, hp_or_values: Any) -> Policy:
        """The policy a trial's hyperparameters (or values dict) describe; the baseline
        values give ``Policy.identity()``."""
        return policy_of(self.policy_space, getattr(hp_or_values, "values", hp_or_values))


def _ends_in_softmax(model: keras.Model) -> bool:
    """Whether the model's output is a softmax (then its loss takes probabilities, not logits).

    Looks through nested models, because a user's child is often ``keras.Sequential([...,
    base_model])`` whose last layer is a whole model: reading that layer's ``activation`` alone
    took its probabilities for logits (Keras on TensorFlow recovers them with a warning; on JAX
    and PyTorch the loss was silently wrong)."""
    layer = model
    while isinstance(layer, keras.Model) and layer.layers:
        layer = layer.layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) in (keras.activations.softmax, "softmax")
