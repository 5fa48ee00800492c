"""The policies file: the best policies of a search and its recommendation, as one JSON file (``best_policies.json``).

[`AugmentTuner.export_policies()`][keras_augtune.AugmentTuner.export_policies] and the command line write
it (`write_policies()`); [`load_policies()`][keras_augtune.load_policies] reads it back (or a single
policy's JSON file) as [`Policy`][keras_augtune.Policy] objects, best first.
"""

from __future__ import annotations

from typing import Any, Sequence

from keras_augtune.files import atomic_write_json
from keras_augtune.policy import Policy, read_policy_json

__all__ = ["POLICIES_FORMAT", "POLICIES_VERSION", "write_policies", "load_policies"]

#: ``format`` field of the policies file.
POLICIES_FORMAT = "keras_augtune.policies"
POLICIES_VERSION = 1


def write_policies(path: str, policies: Sequence[Policy], baseline_reward: float | None = None,
                   verdict: Any = None, baseline_rewards: Sequence[float] | None = None, base: Any = None) -> None:
    """Write ``policies`` (best first) to a JSON file that [`load_policies()`][keras_augtune.load_policies] reads, with the
    baseline's reward (and its executions' rewards) and the search's verdict
    ([`Verdict`][keras_augtune.recommendation.Verdict]: what to use, and its policy) when given. ``base``:
    the base recipe every policy was applied after (`keras_augtune.bases.Base.record()`): the
    recommendation is the base, then the verdict's policy ([`load_augmentation()`][keras_augtune.bases.load_augmentation])."""
    payload: dict[str, Any] = {"format": POLICIES_FORMAT, "version": POLICIES_VERSION,
                               "baseline_reward": baseline_reward}
    if base is not None:
        payload["base"] = dict(base)
    if baseline_rewards is not None:
        payload["baseline_execution_rewards"] = list(baseline_rewards)
    if verdict is not None:
        payload["verdict"] = {"better": verdict.better, "kind": verdict.kind, "name": verdict.name,
                              "text": verdict.text, "recommended": verdict.recommended.to_dict()}
    payload["policies"] = [p.to_dict() for p in policies]
    atomic_write_json(path, payload)


def load_policies(path: str) -> list[Policy]:
    """Read the policies written by [`AugmentTuner.export_policies()`][keras_augtune.AugmentTuner.export_policies] (or one policy file)."""
    data = read_policy_json(path)
    if isinstance(data, dict) and data.get("format") == POLICIES_FORMAT:
        version, policies = data.get("version"), data.get("policies")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError(f"{path}: field 'version' must be an integer, got {version!r:.40}.")
        if version > POLICIES_VERSION:
            raise ValueError(f"{path} was written by a newer keras_augtune (version {version:.3g}).")
        if not isinstance(policies, list):
            raise ValueError(f"{path}: field 'policies' must be a list of policies, got {type(policies).__name__}.")
        return [Policy.from_dict(p) for p in policies]
    return [Policy.from_dict(data)]
