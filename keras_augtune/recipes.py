"""The standard recipes a search races its policies against, and how a configuration names one.

A *recipe* is what a user would use without any search: TrivialAugment, RandAugment on a small
(N, M) grid, or a policy of their own. The race ([`keras_augtune.intensifier.race`][keras_augtune.intensifier.race])
measures them next to the searched policies and the no-augmentation baseline, so the verdict can
say "use TrivialAugment" when nothing searched beat it.

A recipe's configuration is the baseline's values (the same model) plus one value, ``recipe/policy``
(the recipe's policy as JSON), which `keras_augtune.space.policy_of()`
reads instead of the policy slots: it is no hyperparameter, never searched, and its execution
records are kept like any configuration's.

The *base recipes* (`BASE_RECIPES`) are the other standard augmentation: what a user trains with
anyway (crop+flip on CIFAR), which every candidate is applied after with ``AugmentTuner(base=...)``
([`keras_augtune.bases`][keras_augtune.bases]).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from keras_augtune.checks import check_choice
from keras_augtune.policy import Policy

__all__ = ["RECIPE", "DEFAULT_RECIPES", "BASE_RECIPES", "standard_recipes", "base_recipe", "baseline_label", "resolve_recipes",
           "recipe_values", "recipe_policy"]

#: The value holding a recipe's policy (JSON) in a configuration's values.
RECIPE = "recipe/policy"

#: What the race measures by default: TrivialAugment and RandAugment(N=2) at two magnitudes
#: (M on this package's [0, 1] scale: 0.3 is RandAugment's M=9 of 30).
DEFAULT_RECIPES = ("TrivialAugment", "RandAugment(N=2, M=0.3)", "RandAugment(N=2, M=0.6)")


#: The named base recipes: one sub-policy applied to every image. ``crop`` is the CIFAR pad-and-crop
#: (4 px of 32 on each side) as a random shift of up to 1/8 of the side on each axis (``translate-x``
#: and ``translate-y`` reach 0.3 of the side at magnitude 1); ``flip`` a horizontal flip half the time.
_CROP = [("translate-x", 1.0, 0.125 / 0.3), ("translate-y", 1.0, 0.125 / 0.3)]
_FLIP = [("horizontal-flip", 0.5, 1.0)]
BASE_RECIPES = {"crop-flip": _CROP + _FLIP, "crop": _CROP, "flip": _FLIP}


def base_recipe(name: str) -> Policy:
    """The base recipe ``name`` (one of `BASE_RECIPES`) as a [`Policy`][keras_augtune.Policy] named by it;
    a misspelt name raises a one-line ``ValueError`` suggesting the closest."""
    name = check_choice("base", name, tuple(BASE_RECIPES))
    return Policy([BASE_RECIPES[name]], metadata={"name": name})


def baseline_label(base_name: str | None) -> str:
    """What the baseline is called: ``no augmentation``, or under a base recipe ``base_name``,
    ``no augmentation beyond the base (<base_name>)``."""
    return "no augmentation" if base_name is None else f"no augmentation beyond the base ({base_name})"


def standard_recipes() -> dict[str, Policy]:
    """Every recipe known by name: TrivialAugment and RandAugment(N, M) for N in 1, 2 and M in
    0.1, 0.2, ..., 0.9."""
    known = {"TrivialAugment": Policy.trivial_augment()}
    for n in (1, 2):
        for m in range(1, 10):
            policy = Policy.rand_augment(n, m / 10)
            known[policy.metadata["name"]] = policy
    return known


def resolve_recipes(recipes: Any = None) -> dict[str, Policy]:
    """The recipes to race, by name: ``None`` for `DEFAULT_RECIPES`; a sequence of names (see
    `standard_recipes()`) or [`Policy`][keras_augtune.Policy] objects (named by their
    ``metadata["name"]``, else ``recipe 1``, ...); or a mapping of names to policies. ``()``: none."""
    if recipes is None:
        recipes = DEFAULT_RECIPES
    if isinstance(recipes, (str, Policy)):
        recipes = [recipes]
    if isinstance(recipes, Mapping):
        items = list(recipes.items())
    elif isinstance(recipes, Sequence):
        items = [(None, r) for r in recipes]
    else:
        raise TypeError(f"recipes must be recipe names, Policy objects or a dict of them, got {type(recipes).__name__}.")
    known, out = None, {}
    for number, (name, recipe) in enumerate(items, start=1):
        if isinstance(recipe, str):
            known = known or standard_recipes()
            recipe = known[check_choice("a recipe", recipe, tuple(known))]
        if not isinstance(recipe, Policy):
            raise TypeError(f"a recipe must be a name or a Policy, got {type(recipe).__name__}.")
        name = str(name or recipe.metadata.get("name") or f"recipe {number}")
        if name in out:
            raise ValueError(f"the recipe {name!r} is given twice.")
        out[name] = recipe
    return out


def recipe_values(values: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """``values`` (the baseline's: its model) running the recipe ``policy`` instead of its policy slots."""
    return {**values, RECIPE: json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":"))}


def recipe_policy(values: Mapping[str, Any]) -> Policy | None:
    """The recipe policy ``values`` hold (`recipe_values()`), or ``None`` for a trial's values."""
    text = values.get(RECIPE)
    return None if text is None else Policy.from_dict(json.loads(text))
