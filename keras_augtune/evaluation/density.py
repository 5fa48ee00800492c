"""Density matching (Fast AutoAugment): score a policy by how well models trained on clean data
recognise the policy's augmented held-out images — no training per policy.

``DensityEvaluator`` splits the data into ``folds`` stratified folds and trains the child
once per fold on the other folds' clean images (``fit``). ``score(policy)`` then augments each
fold's held-out images with the policy ``draws`` times (seeded) and runs them through that
fold's frozen model: a policy whose augmented images still look like the data the model learnt
("matches its density") scores high; one that destroys the images scores low.

Which number: by default the **accuracy averaged over the draws** and pooled over every
held-out image (each image is held out by exactly one fold). ``metric="loss"`` scores the
negative mean cross-entropy instead; ``reduction="best"`` takes, per image, the best of the
draws (the highest correctness / lowest loss), as Fast AutoAugment's ``eval_tta`` does with one
draw per sub-policy. ``score_details`` returns all four numbers from the same predictions.

``fit(x, y, cache_dir=...)`` keeps the fold models' weights in ``cache_dir`` (one file per
fold, and a key: the data's fingerprint, the settings and the model's architecture), so a fit
run again on the same data and settings — a resumed search — loads them instead of training;
a fit killed halfway keeps the folds it finished.

Reference: Lim et al., "Fast AutoAugment", NeurIPS 2019 (kakaobrain/fast-autoaugment).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import numpy as np

from keras_augtune.checks import check_choice, check_int, check_seed
from keras_augtune.data import check_dataset, stratified_folds
from keras_augtune.files import atomic_write_json, load_weights, save_weights
from keras_augtune.policy import as_policy
from keras_augtune.seeds import derive_call_seed

METRICS = ("accuracy", "loss")
REDUCTIONS = ("mean", "best")
_PREDICT_BATCH = 256


class DensityEvaluator:
    """Score policies with child models trained once per fold on clean data.

    Args:
        model: the child, as for [`AugmentTuner`][keras_augtune.AugmentTuner]: a built-in model name
            (default ``"simple"``, built by ``keras_augtune.models.build_model`` with inputs
            rescaled to [0, 1]), a ``keras.Model`` (cloned per fold), a ``build(hp)`` function
            or ``keras_tuner.HyperModel`` (built with its hyperparameters' defaults), or an
            [`AugmentHyperModel`][keras_augtune.AugmentHyperModel] (its child is used, never its policy).
            Models the user did not compile are compiled with Adam(``learning_rate``).
        folds: K of the stratified K folds (>= 2; Fast AutoAugment used 5).
        epochs, batch_size: training of each fold model.
        draws: augmented copies of every held-out image per policy.
        metric: ``"accuracy"`` (default) or ``"loss"`` (the score is then the negative
            cross-entropy, so higher is better for both).
        reduction: ``"mean"`` over the draws (default) or ``"best"`` of the draws per image.
        seed: seeds the folds, the fold models' training and the augmentation draws. Every
            policy is scored on the same draw seeds (common random numbers), so comparisons
            between policies are not blurred by draw noise. ``None``: one random seed, drawn
            now. Note that ``fit`` calls ``keras.utils.set_random_seed`` (global seeds).
        learning_rate: Adam's learning rate for models the user did not compile.
        verbose: 0 silent, 1 a line per fold.

    ``evaluator.fit(x, y).score(policy)`` (higher is better); ``clean_score`` is the score
    of no augmentation.
    """

    def __init__(self, model: Any = "simple", folds: int = 3, epochs: int = 10, batch_size: int = 64,
                 draws: int = 3, metric: str = "accuracy", reduction: str = "mean", seed: int | None = 0,
                 learning_rate: float = 1e-3, verbose: int = 0):
        from keras_augtune.hypermodel import AugmentHyperModel

        for name, value, minimum in (("folds", folds, 2), ("epochs", epochs, 1), ("batch_size", batch_size, 1),
                                     ("draws", draws, 1)):
            check_int(name, value, minimum=minimum)
        self.metric = check_choice("metric", metric, METRICS)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        check_seed(seed)
        if isinstance(model, AugmentHyperModel):  # its child, without its policy space
            learning_rate = model.learning_rate
            model = model.child_hypermodel or model.child_model or model.child_name
        self.hypermodel = AugmentHyperModel(model, learning_rate=learning_rate)
        self.folds, self.epochs, self.batch_size, self.draws = int(folds), int(epochs), int(batch_size), int(draws)
        self.seed = int(seed)
        self.verbose = int(verbose)
        self._models: list[Any] = []
        self._predict_fns: dict[int, Any] = {}
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # per fold: (raw images, integer labels)
        self._value_range: tuple[float, float] | None = None
        self.fold_indices: list[np.ndarray] = []
        #: Seconds ``fit`` took (all folds).
        self.fit_seconds: float | None = None
        #: How many fold models the last ``fit`` loaded from its ``cache_dir`` instead of training.
        self.cached_folds = 0
        #: The clean (no-augmentation) numbers, as ``score_details`` reports them.
        self.clean_details: dict[str, Any] | None = None

    # ------------------------------------------------------------------ training
    def fit(self, x: Any, y: Any, value_range: Any = None, cache_dir: str | None = None) -> "DensityEvaluator":
        """Train one child per fold on the other folds' clean images; returns ``self``.

        ``x``: images (N, H, W[, C]); ``y``: class ids or one-hot rows; ``value_range``:
        the pixel range of float images (default (0, 1); uint8 images are (0, 255)).
        ``cache_dir``: a folder that keeps the fold models (see the module docstring): the
        folds it holds for the same data, settings and model are loaded, not trained.
        """
        import keras
        import keras_tuner

        data = check_dataset(x, y, value_range=value_range)
        labels_for_fit = np.asarray(y) if data.one_hot else data.y
        self.hypermodel.configure(data.input_shape, data.num_classes, data.value_range, data.one_hot)
        self._value_range = data.value_range
        self._models, self._held, self.fold_indices, self._predict_fns = [], [], [], {}
        hp = keras_tuner.HyperParameters()
        self.hypermodel.declare_hyperparameters(hp)  # the space's default values: the identity policy
        cache = _FoldCache(cache_dir, self._cache_material(data, hp)) if cache_dir is not None else None
        self.cached_folds = 0
        start = time.perf_counter()
        for fold, (kept, held) in enumerate(stratified_folds(data.y, self.folds, self.seed)):
            keras.utils.set_random_seed(derive_call_seed(self.seed, fold))
            model = self.hypermodel.build(hp)
            if cache is not None and cache.load(fold, model):
                self.cached_folds += 1
                line = "loaded from the cache"
            else:
                history = self.hypermodel.fit(hp, model, data.x[kept], labels_for_fit[kept], epochs=self.epochs,
                                              batch_size=self.batch_size, verbose=0)
                if cache is not None:
                    cache.save(fold, model)
                accuracy = getattr(history, "history", history or {}).get("accuracy", [float("nan")])[-1]
                line = f"train accuracy {accuracy:.4f}"
            self._models.append(model)
            self._held.append((data.x[held], data.y[held]))
            self.fold_indices.append(held)
            if self.verbose:
                print(f"density fold {fold + 1}/{self.folds}: {len(kept)} train / {len(held)} held out, {line}",
                      flush=True)
        self.fit_seconds = time.perf_counter() - start
        clean = [[self._predict(fold, images)] for fold, (images, _) in enumerate(self._held)]
        self.clean_details = self._summarise(clean)
        return self

    @property
    def fitted(self) -> bool:
        return bool(self._models)

    @property
    def models(self) -> list[Any]:
        """The frozen fold models; ``models[k]`` never saw the images ``fold_indices[k]``."""
        return list(self._models)

    @property
    def clean_score(self) -> float:
        """The score of no augmentation (the fold models on their clean held-out images)."""
        self._require_fitted()
        return self.value_of(self.clean_details)

    # ------------------------------------------------------------------ scoring
    def score(self, policy: Any) -> float:
        """The policy's score (higher is better): see the module docstring for the number."""
        return self.value_of(self.score_details(policy))

    def score_details(self, policy: Any) -> dict[str, Any]:
        """Every variant of the score from one set of predictions.

        Keys: ``accuracy_mean``, ``accuracy_best``, ``neg_loss_mean``, ``neg_loss_best``
        (pooled over all held-out images), ``fold_accuracy_mean`` (per fold) and ``seconds``.
        """
        self._require_fitted()
        policy = as_policy(policy)
        start = time.perf_counter()
        outputs = []
        for fold, (images, _) in enumerate(self._held):
            outputs.append([
                self._predict(fold, policy.augment(images, seed=self._draw_seed(fold, draw),
                                                   value_range=self._value_range))
                for draw in range(self.draws)
            ])
        details = self._summarise(outputs)
        details["seconds"] = time.perf_counter() - start
        return details

    # ------------------------------------------------------------------ helpers
    def _cache_material(self, data: Any, hp: Any) -> dict[str, Any]:
        """What the fold models depend on: the data, the training settings and the architecture."""
        from keras_augtune.data import data_fingerprint
        from keras_augtune.warm_start import architecture_signature

        child = self.hypermodel.build_child(hp)
        return {
            "data": data_fingerprint(data.x, data.y, [])["sample_sha256"], "value_range": list(data.value_range),
            "input_shape": list(data.input_shape), "classes": int(data.num_classes),
            "architecture": architecture_signature(child, data.input_shape),
            "folds": self.folds, "epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
            "learning_rate": self.hypermodel.learning_rate,
            "learning_rate_schedule": self.hypermodel.learning_rate_schedule,
        }

    def _draw_seed(self, fold: int, draw: int) -> int:
        # calls 0..folds-1 seeded the fold models' training; the draws come after
        return derive_call_seed(self.seed, self.folds + fold * self.draws + draw)

    def _predict(self, fold: int, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        if fold not in self._predict_fns:  # one traced function per fold model (keras's predict retraces)
            model = self._models[fold]
            self._predict_fns[fold] = tf.function(
                lambda batch: model(batch, training=False),
                input_signature=[tf.TensorSpec((None, *images.shape[1:]), tf.float32)])
        batches = [self._predict_fns[fold](images[i:i + _PREDICT_BATCH].astype(np.float32))
                   for i in range(0, len(images), _PREDICT_BATCH)]
        out = np.concatenate([np.asarray(b, dtype=np.float64) for b in batches])
        if out.min() < 0 or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):  # logits: softmax them
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def _summarise(self, outputs: list[list[np.ndarray]]) -> dict[str, Any]:
        """outputs[fold][draw]: class probabilities of the fold's held-out images."""
        correct, loss = [], []
        for (_, labels), draws in zip(self._held, outputs):
            probs = np.stack(draws)  # (draws, n, classes)
            correct.append(probs.argmax(axis=2) == labels[None])
            loss.append(-np.log(np.clip(probs[:, np.arange(len(labels)), labels], 1e-12, None)))
        return {
            "accuracy_mean": float(np.concatenate([c.mean(axis=0) for c in correct]).mean()),
            "accuracy_best": float(np.concatenate([c.max(axis=0) for c in correct]).mean()),
            "neg_loss_mean": -float(np.concatenate([l.mean(axis=0) for l in loss]).mean()),
            "neg_loss_best": -float(np.concatenate([l.min(axis=0) for l in loss]).mean()),
            "fold_accuracy_mean": [float(c.mean()) for c in correct],
        }

    def value_of(self, details: dict[str, Any]) -> float:
        """The score (the chosen ``metric`` and ``reduction``) among the numbers of ``score_details``."""
        return details[f"{'accuracy' if self.metric == 'accuracy' else 'neg_loss'}_{self.reduction}"]

    def _require_fitted(self) -> None:
        if not self._models:
            raise RuntimeError("The DensityEvaluator is not fitted: call fit(x, y) before scoring policies.")


class _FoldCache:
    """The fold models' weights in a folder: ``fold_<k>.weights.h5`` and ``density.json`` (the key
    and the folds done). Files made under another key are trained again, never loaded."""

    def __init__(self, directory: str, material: dict[str, Any]):
        self.directory = os.fspath(directory)
        self.key = hashlib.sha1(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.material = material
        self.manifest = os.path.join(self.directory, "density.json")
        try:
            with open(self.manifest, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
        same = isinstance(state, dict) and state.get("key") == self.key
        self.done = set(state.get("folds_done", [])) if same else set()

    def _path(self, fold: int) -> str:
        return os.path.join(self.directory, f"fold_{fold}.weights.h5")

    def load(self, fold: int, model: Any) -> bool:
        """Load fold ``fold``'s weights into ``model`` when the cache holds them (same key)."""
        if fold not in self.done or not os.path.exists(self._path(fold)):
            return False
        load_weights(model, self._path(fold))
        return True

    def save(self, fold: int, model: Any) -> None:
        os.makedirs(self.directory, exist_ok=True)
        save_weights(model, self._path(fold))
        self.done.add(fold)
        atomic_write_json(self.manifest, {"key": self.key, "folds_done": sorted(self.done), "material": self.material})
