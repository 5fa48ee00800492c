"""Registering `PolicyAugmentation` with Keras's serialization, without importing Keras early.

A ``.keras`` file holding the layer names it ``keras_augtune>PolicyAugmentation``;
Keras finds that name only in its registry of custom objects, which the layer's
``@register_keras_serializable`` decorator fills when ``keras_augtune.layer`` is
imported. ``import keras_augtune`` must make that happen, yet it must not import
Keras itself (that starts TensorFlow: seconds, for a command line that only shows
``--help``). Why this mechanism:

* Keras already imported (``keras`` in ``sys.modules``): import the layer now.
* Keras not imported yet: a one-shot import hook (`_AfterKerasFinder`) wraps
  the loader of the top-level ``keras`` package, so that right after Keras's own
  module has run, ``keras_augtune.layer`` is imported and registers the class. Every
  route to Keras (``import keras``, ``keras_tuner``, ``tf.keras``) goes through that
  package, and the hook removes itself after that one import.

A proxy registered in Keras's registry would also need Keras imported; an eager
import would cost every ``import keras_augtune`` the TensorFlow start-up. The hook
costs nothing until Keras is imported, then ~0.5 s (imgaug) on top of Keras's own import.

Two hints ride on the same hook, for the two ways a first Keras step fails here:

* a ``.keras`` file loaded without ``import keras_augtune`` fails in Keras with "Could not
  locate class 'PolicyAugmentation'" (Keras imports only its own packages' modules, and its
  message cannot be changed; it shows the registered name ``keras_augtune>PolicyAugmentation``):
  `load_model()` is the documented loader that needs no prior import;
* the package installs no TensorFlow (it would replace the user's, see docs/install.md), so
  ``import keras`` can fail for want of a backend: that error gets the install line.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from typing import Any

_MODULE = "keras_augtune.layer"
#: the module each Keras backend imports first -> how to install it with keras-augtune
_BACKEND_INSTALLS = {"tensorflow": "'.[tensorflow-cpu]' (CPU only) or '.[gpu]' (NVIDIA GPU)",
                     "jax": "'.[jax]'", "torch": "'.[torch]'"}


def missing_backend_message(module: str) -> str:
    """One line for ``import keras`` failing because its backend's package is not installed."""
    return (f"Keras's backend package {module!r} is not installed (keras-augtune installs none, so as never to "
            f"replace yours): pip install {_BACKEND_INSTALLS.get(module, repr(module))} in the keras-augtune "
            f"folder, or set KERAS_BACKEND to an installed backend; see docs/install.md")


def load_model(filepath: Any, custom_objects: dict | None = None, compile: bool = True, safe_mode: bool = True) -> Any:
    """Load a ``.keras`` file that may hold a `PolicyAugmentation` layer: `keras.saving.load_model`
    with the layer registered first.

    ``import keras_augtune`` before ``keras.saving.load_model`` does the same; this function is
    for code that loads a model without otherwise using the package (Keras's own error then is
    "Could not locate class 'PolicyAugmentation'"). The arguments are Keras's.
    """
    import keras

    register_layer()
    return keras.saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def register_layer() -> None:
    """Import the layer module (its decorator registers ``PolicyAugmentation``).

    A partially imported module (the layer module is what imported Keras) is left to
    finish: its decorator registers the class when it gets there. A failure only warns:
    a program that never loads a saved model must not fail at ``import keras``.
    """
    try:
        importlib.import_module(_MODULE)
    except Exception as exc:  # pragma: no cover (a broken imgaug install)
        warnings.warn(f"keras_augtune could not register PolicyAugmentation with Keras "
                      f"({type(exc).__name__}: {exc}); .keras files holding it will not load.", stacklevel=2)


class _RegisteringLoader(importlib.abc.Loader):
    """Keras's own loader, plus `register_layer()` once Keras's module has run."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        try:
            self._loader.exec_module(module)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top in _BACKEND_INSTALLS:  # the backend is missing: say how to install one
                raise ModuleNotFoundError(missing_backend_message(top), name=top) from exc
            raise
        register_layer()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ... as Keras's loader
        return getattr(self._loader, name)


class _AfterKerasFinder(importlib.abc.MetaPathFinder):
    """Finds ``keras`` with the other finders and wraps its loader; then removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        remove_hook()
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


_HOOK = _AfterKerasFinder()


def remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def register_when_keras_loads() -> None:
    """Register the layer now if Keras is loaded, else right after Keras is first imported."""
    if "keras" in sys.modules:
        register_layer()
    elif _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
