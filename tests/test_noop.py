"""No-op policies: what `Policy.is_noop` says, checked against imgaug on random images.

A policy called a no-op must leave every pixel unchanged on 5 seeds; one not called a
no-op must change some pixel. Images: full-range random images plus low-contrast ones
(auto-contrast and equalize only act on the latter), RGB and grayscale.
"""

import numpy as np
import pytest

from keras_augtune.ops import (
    COLOR_ONLY_OPS,
    OP_NAMES,
    identity_limit,
    involution_at,
    is_identity_at,
    ops_for_channels,
)
from keras_augtune.policy import Policy
from keras_augtune.space import PolicySpace, baseline_values, is_baseline

SEEDS = range(5)


def _images(channels, n=8, size=24, seed=0):
    rng = np.random.default_rng(seed)
    full = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
    low = rng.integers(60, 150, size=(n, size, size, channels), dtype=np.uint8)
    return np.concatenate([full, low])


RGB, GRAY = _images(3), _images(1)
GRAY_AS_RGB = np.repeat(GRAY, 3, axis=-1)  # grayscale content in three channels
BY_CHANNELS = {3: RGB, 1: GRAY}


def _changes(policy, images):
    return any(np.any(policy.augment(images, seed=seed) != images) for seed in SEEDS)


@pytest.mark.parametrize("name", OP_NAMES)
def test_each_op_is_the_identity_exactly_where_the_table_says(name):
    limit = identity_limit(name)
    for magnitude in {0.0, limit}:
        assert is_identity_at(name, magnitude)
        for images in (RGB, GRAY, GRAY[..., 0], GRAY_AS_RGB, RGB.astype(np.float32) / 255.0):
            assert not _changes(Policy([[(name, 1.0, magnitude)]]), images), (name, magnitude, images.shape)
    if name == "identity":
        return
    assert limit < 0.2
    for magnitude in (0.5, 1.0):
        assert not is_identity_at(name, magnitude)
        assert _changes(Policy([[(name, 1.0, magnitude)]]), RGB), (name, magnitude)
        color_only = name in COLOR_ONLY_OPS
        assert is_identity_at(name, magnitude, channels=1) == color_only
        assert _changes(Policy([[(name, 1.0, magnitude)]]), GRAY) != color_only, (name, magnitude)
        if color_only:
            assert not _changes(Policy([[(name, 1.0, magnitude)]]), GRAY_AS_RGB)


def test_identity_limits_where_the_parameter_is_rounded():
    assert identity_limit("posterize") == 0.125  # round(4 m) bits removed
    assert 0.0078 <= identity_limit("brighten") < 0.0079  # round(64 m) added
    assert 0.0019 <= identity_limit("solarize") < 0.002  # threshold 256 - round(256 m)
    assert identity_limit("rotate") < 1e-5
    assert _changes(Policy([[("posterize", 1.0, 0.13)]]), RGB)
    assert _changes(Policy([[("brighten", 1.0, 0.008)]]), RGB)
    assert involution_at("invert", 1.0) == involution_at("solarize", 1.0) == "invert"
    assert involution_at("invert", 0.99) is None and involution_at("rotate", 1.0) is None


# (sub-policies, no-op on RGB, no-op on grayscale)
PLANTED = [
    ([[("identity", 1.0, 0.0), ("identity", 1.0, 0.0)]], True, True),
    ([[("identity", 1.0, 0.7), ("coarse-dropout", 0.99, 0.0)]] * 5, True, True),  # issue 10's "winner"
    ([[("rotate", 0.0, 1.0), ("invert", 1.0, 0.0)], [("posterize", 1.0, 0.1), ("brighten", 1.0, 0.005)]], True, True),
    ([[("solarize", 1.0, 0.001), ("shear", 1.0, 0.0)], [("horizontal-flip", 1.0, 0.0)]], True, True),
    ([[("color", 1.0, 0.9), ("add-to-hue-and-saturation", 0.8, 1.0)]], False, True),
    ([[("color", 1.0, 0.9)], [("identity", 1.0, 0.0)]], False, True),
    ([[("invert", 1.0, 1.0), ("invert", 1.0, 1.0)]], True, True),
    ([[("horizontal-flip", 1.0, 1.0), ("horizontal-flip", 1.0, 1.0)]], True, True),
    ([[("solarize", 1.0, 1.0), ("invert", 1.0, 1.0)], [("vertical-flip", 1.0, 1.0), ("vertical-flip", 1.0, 1.0)]],
     True, True),
    ([[("invert", 1.0, 1.0), ("invert", 0.9, 1.0)]], False, False),  # the second one does not always fire
    ([[("invert", 1.0, 1.0), ("horizontal-flip", 1.0, 1.0)]], False, False),
    ([[("horizontal-flip", 1.0, 1.0), ("vertical-flip", 1.0, 1.0)]], False, False),
    ([[("invert", 1.0, 1.0), ("rotate", 1.0, 0.0)]], False, False),
    ([[("rotate", 0.5, 0.5), ("identity", 1.0, 0.0)]], False, False),
    ([[("identity", 1.0, 0.0)], [("posterize", 1.0, 0.2)]], False, False),
    ([[("color", 1.0, 0.5), ("brighten", 0.3, 0.2)]], False, False),
    ([[("coarse-dropout", 0.99, 0.3), ("identity", 1.0, 0.0)]], False, False),
    ([[("auto-contrast", 1.0, 1.0)]], False, False),
]


@pytest.mark.parametrize("subs,noop_rgb,noop_gray", PLANTED)
def test_planted_policies_against_real_augmentation(subs, noop_rgb, noop_gray):
    policy = Policy(subs)
    for channels, expected in ((3, noop_rgb), (1, noop_gray)):
        assert policy.is_noop(channels) == expected, (subs, channels)
        assert _changes(policy, BY_CHANNELS[channels]) != expected, (subs, channels)
        effective = policy.effective(channels)
        assert len(effective) == len(policy) or effective == Policy.identity()
        assert effective.is_noop(channels) == expected
        assert (effective == Policy.identity()) == expected


def test_random_policies_agree_with_real_augmentation():
    rng = np.random.default_rng(7)
    names = list(OP_NAMES)
    checked = {True: 0, False: 0}
    for _ in range(40):
        subs = []
        for _ in range(int(rng.integers(1, 3))):
            steps = []
            for _ in range(2):
                name = names[rng.integers(len(names))]
                magnitude = [0.0, identity_limit(name), 0.6, 1.0][rng.integers(4)]
                steps.append((name, [0.0, 1.0][rng.integers(2)], magnitude))
            subs.append(steps)
        policy = Policy(subs)
        for channels, images in BY_CHANNELS.items():
            noop = policy.is_noop(channels)
            assert _changes(policy, images) != noop, (subs, channels)
            checked[noop] += 1
    assert min(checked.values()) >= 10  # both kinds were exercised


def test_effective_drops_only_the_steps_that_do_nothing():
    policy = Policy([[("rotate", 0.5, 0.5), ("invert", 0.0, 1.0)], [("color", 1.0, 0.5)]], metadata={"reward": 1})
    assert policy.effective(3) == Policy([[("rotate", 0.5, 0.5)], [("color", 1.0, 0.5)]])
    assert policy.effective(1) == Policy([[("rotate", 0.5, 0.5)], [("identity", 1.0, 0.0)]])
    assert policy.effective(1).metadata == {"reward": 1}
    odd = Policy([[("invert", 1.0, 1.0), ("invert", 1.0, 1.0), ("horizontal-flip", 1.0, 1.0)]])
    assert odd.effective() == Policy([[("horizontal-flip", 1.0, 1.0)]])
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        policy.is_noop(channels=4)


def test_grayscale_space_leaves_out_color_only_ops():
    assert COLOR_ONLY_OPS == {"color", "add-to-hue-and-saturation"}
    gray = PolicySpace().for_channels(1)
    assert set(gray.ops) == set(OP_NAMES) - COLOR_ONLY_OPS
    assert PolicySpace().for_channels(3) == PolicySpace()
    assert PolicySpace.deepaugment().for_channels(1).ops == tuple(
        op for op in PolicySpace.deepaugment().ops if op != "add-to-hue-and-saturation")
    assert ops_for_channels(["rotate", "color"], 1) == ["rotate"]
    with pytest.raises(ValueError, match="acts on colour only"):
        PolicySpace(ops=["color", "add-to-hue-and-saturation"]).for_channels(1)


def test_canonical_values_map_every_noop_policy_to_the_baseline():
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2)
    baseline = baseline_values(space)
    noop = space.to_values(Policy([[("identity", 1.0, 0.3), ("coarse-dropout", 0.99, 0.0)],
                                   [("rotate", 0.0, 0.8), ("color", 1.0, 0.5)]]))
    # colour changes an RGB image: only the colour step is kept, the steps that never fire are the baseline's
    only_colour = space.to_values(Policy([[("identity", 0.0, 0.0), ("identity", 0.0, 0.0)],
                                          [("identity", 0.0, 0.0), ("color", 1.0, 0.5)]]))
    assert baseline[space.name(0, 0, "probability")] == 0.0
    assert space.canonical_values(noop, channels=3) == only_colour
    assert space.canonical_values(noop, channels=1) == baseline
    real = space.to_values(Policy([[("rotate", 1.0, 0.5), ("invert", 0.7, 0.6)]] * 2))
    assert space.canonical_values(real) == real and space.canonical_values(real) is not real
    # steps that never fire do not make a policy new: the same augmentation, the same canonical values
    inert = [space.to_values(Policy([[("rotate", 1.0, 0.5), step]] * 2))
             for step in (("identity", 1.0, 0.0), ("shear-x", 0.0, 0.9), ("invert", 0.8, 0.0))]
    assert len({tuple(sorted(space.canonical_values(v).items())) for v in inert}) == 1
    assert space.canonical_values(inert[0]) != inert[0]
    # other hyperparameters (a jointly tuned architecture) are kept
    joint = {**space.to_values(Policy([[("invert", 1.0, 1.0), ("invert", 1.0, 1.0)]] * 2)), "units": 64}
    assert space.canonical_values(joint) == {**baseline, "units": 64}
    assert is_baseline(space, space.canonical_values(joint))


def test_baseline_values_without_identity_op():
    space = PolicySpace(ops=["rotate", "posterize"], search_probabilities=False, magnitude_range=(0.1, 1.0),
                        num_sub_policies=1, ops_per_sub_policy=2)
    values = baseline_values(space)
    assert set(v for k, v in values.items() if k.endswith("/op")) == {"posterize"}  # identity below 0.125
    assert space.to_policy(values).is_noop()
    assert space.canonical_values(space.to_values(Policy([[("posterize", 1.0, 0.12)] * 2]))) == values
    with pytest.raises(ValueError, match="cannot be expressed"):
        baseline_values(PolicySpace(ops=["rotate"], search_probabilities=False, magnitude_range=(0.1, 1.0)))
