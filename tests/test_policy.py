import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from keras_augtune import OP_NAMES, Policy, PolicyOp
from keras_augtune.deepaugment import from_deepaugment, to_deepaugment_list, to_deepaugment_row

EXAMPLE = [[("rotate", 0.8, 0.5), ("invert", 0.2, 0.0)], [("shear", 1.0, 0.3)]]


def test_construction_and_value_semantics():
    p = Policy(EXAMPLE)
    assert p.sub_policies[0][0] == PolicyOp("rotate", 0.8, 0.5)
    assert p == Policy([[("Rotate", 0.8, 0.5), ("invert", 0.2, 0)], [("shear", 1, 0.3)]])
    assert p != Policy([[("rotate", 0.8, 0.5)]])
    assert hash(p) == hash(Policy(EXAMPLE))
    assert "('rotate', 0.8, 0.5)" in repr(p)
    assert p.ops == ["rotate", "invert", "shear"]


@pytest.mark.parametrize("bad,exc,message", [
    ([[("rotat", 0.5, 0.5)]], ValueError, "Did you mean 'rotate'"),
    ([[("rotate", 1.5, 0.5)]], ValueError, "probability of sub-policy 0, op 0 must be in"),
    ([[("rotate", 0.5, -0.1)]], ValueError, "magnitude of sub-policy 0, op 0 must be in"),
    ([[("rotate", 0.5, float("nan"))]], ValueError, "magnitude"),
    ([[("rotate", "high", 0.5)]], TypeError, "probability"),
    ([], ValueError, "at least one sub-policy"),
    ([[("rotate", 0.5, 0.5)], []], ValueError, "Sub-policy 1 is empty"),
    ([[("rotate", 0.5)]], ValueError, r"\(op, probability, magnitude\)"),
    ("rotate", TypeError, "list of sub-policies"),
])
def test_bad_policies(bad, exc, message):
    with pytest.raises(exc, match=message):
        Policy(bad)


def test_json_round_trip_and_file(tmp_path):
    p = Policy(EXAMPLE, metadata={"reward": 0.9})
    assert Policy.from_json(p.to_json()) == p
    path = tmp_path / "p.json"
    p.to_json(str(path))
    q = Policy.from_json(str(path))
    assert q == p and q.metadata == {"reward": 0.9}


@pytest.mark.parametrize("data,message", [
    ("{not json", "Malformed policy JSON"),
    ('{"sub_policies": 3}', "'sub_policies' must be a list"),
    ('{"version": 1}', "'sub_policies' is missing"),
    ('{"version": 99, "sub_policies": []}', "newer keras_augtune"),
    ('{"sub_policies": [[{"op": "rotate", "magnitude": 0.3}]]}', r"'sub_policies\[0\]\[0\]' is missing 'probability'"),
    ('{"sub_policies": [[{"op": "warp", "probability": 1, "magnitude": 0.3}]]}', "Unknown augmentation op 'warp'"),
    ('{"format": "other", "sub_policies": []}', "'format' must be"),
    ('[1, 2]', "must be a JSON object"),
])
def test_malformed_json(data, message):
    with pytest.raises(ValueError, match=message):
        Policy.from_json(data)


step = st.tuples(st.sampled_from(OP_NAMES), st.floats(0, 1), st.floats(0, 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(step, min_size=1, max_size=3), min_size=1, max_size=6))
def test_json_round_trip_property(subs):
    p = Policy(subs)
    q = Policy.from_json(p.to_json())
    assert q == p
    assert json.loads(q.to_json()) == json.loads(p.to_json())


def test_deepaugment_formats():
    flat = ["rotate", 0.3, "invert", 0.1, "crop", 0.5, "gaussianblur", 0.2]
    p = from_deepaugment(flat)
    assert p.sub_policies[1][1] == PolicyOp("gaussian-blur", 1.0, 0.2)
    assert from_deepaugment(to_deepaugment_list(p)) == p
    row = to_deepaugment_row(p)
    assert row["A_aug1_type"] == "rotate" and row["B_aug2_magnitude"] == 0.2
    assert from_deepaugment(row) == p
    with_prob = Policy(EXAMPLE)
    assert from_deepaugment(to_deepaugment_row(with_prob)) == with_prob
    with pytest.raises(ValueError, match="multiple of 4"):
        from_deepaugment(["rotate", 0.3, "invert"])


def test_factories():
    assert Policy.identity().ops == ["identity"]
    ra = Policy.rand_augment(num_ops=2, magnitude=0.3)
    assert len(ra) == 14 ** 2 and all(len(s) == 2 for s in ra.sub_policies)
    assert all(st.magnitude == 0.3 and st.probability == 1.0 for s in ra.sub_policies for st in s)
    ta = Policy.trivial_augment(num_magnitude_bins=11)
    assert len(ta) == 14 * 11 and all(len(s) == 1 for s in ta.sub_policies)
    assert {s[0].magnitude for s in ta.sub_policies} == set(np.linspace(0, 1, 11))
    with pytest.raises(ValueError, match="num_ops"):
        Policy.rand_augment(num_ops=0)
    with pytest.raises(ValueError, match="Did you mean"):
        Policy.rand_augment(ops=["rotat"])


def test_augment_identity_is_exact_for_floats_and_ints():
    x = np.random.default_rng(0).random((5, 9, 11, 3))
    assert np.array_equal(Policy.identity().augment(x), x)
    g = np.random.default_rng(0).integers(0, 17, (5, 8, 8)).astype(np.int64)
    assert np.array_equal(Policy.identity().augment(g, value_range=(0, 16)), g)


def test_per_image_randomness_and_seed_determinism():
    img = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    batch = np.repeat(img, 16, axis=0)
    p = Policy([[("rotate", 1.0, 1.0)], [("invert", 1.0, 1.0)], [("identity", 1.0, 0.0)]])
    out = p.augment(batch, seed=7)
    distinct = {o.tobytes() for o in out}
    assert len(distinct) > 3  # different sub-policies and angles within one batch
    assert np.array_equal(out, p.augment(batch, seed=7))
    assert not np.array_equal(out, p.augment(batch, seed=8))


def test_probability_is_respected():
    batch = np.full((400, 8, 8, 1), 10, dtype=np.uint8)
    out = Policy([[("invert", 0.25, 1.0)]]).augment(batch, seed=0)
    fired = np.mean(out[:, 0, 0, 0] != 10)
    assert 0.15 < fired < 0.35


@pytest.mark.parametrize("images,value_range,exc,message", [
    (np.zeros((2, 8)), None, ValueError, "rank 2"),
    (np.zeros((1, 2, 8, 8, 3)), None, ValueError, "rank 5"),
    (np.zeros((2, 8, 8, 4), np.uint8), None, ValueError, "1 .grayscale. or 3 .RGB. channels"),
    (np.array([["a"]]), None, TypeError, "must hold numbers"),
    (np.zeros((2, 8, 8), dtype=object), None, TypeError, "must hold numbers"),
    (np.full((2, 8, 8), np.nan), None, ValueError, "NaN"),
    (np.full((2, 8, 8), 200.0), None, ValueError, r"outside the value_range of float64 images with none declared \(0, 1\)"),
    (np.zeros((2, 8, 8)), (1, 0), ValueError, "low < high"),
])
def test_bad_images(images, value_range, exc, message):
    with pytest.raises(exc, match=message):
        Policy.identity().augment(images, value_range=value_range)


def test_float_range_declared():
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32) * 255
    out = Policy([[("invert", 1.0, 1.0)]]).augment(x, value_range=(0, 255))
    assert np.allclose(out, 255 - x, atol=1.0)


def test_scaled_multiplies_and_clips_magnitudes_only():
    p = Policy(EXAMPLE, metadata={"reward": 0.9})
    q = p.scaled(1.5)
    assert [[(s.op, s.probability) for s in sub] for sub in q.sub_policies] == \
        [[(s.op, s.probability) for s in sub] for sub in p.sub_policies]
    assert [s.magnitude for sub in q.sub_policies for s in sub] == [0.75, 0.0, pytest.approx(0.45)]
    assert p.scaled(3).sub_policies[0][0].magnitude == 1.0  # clipped
    assert q.metadata == {"reward": 0.9, "magnitude_scale": 1.5}
    assert q.scaled(2).metadata["magnitude_scale"] == 3.0  # scales compose
    assert p.scaled(1) == p and p.metadata == {"reward": 0.9}  # the original is untouched
    assert all(s.magnitude == 0.0 for sub in p.scaled(0).sub_policies for s in sub)
    assert Policy.from_json(q.to_json()).metadata["magnitude_scale"] == 1.5


@pytest.mark.parametrize("factor,exc", [
    (-0.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    ("2", TypeError), (None, TypeError), (True, TypeError),
])
def test_scaled_bad_factor(factor, exc):
    with pytest.raises(exc, match="scale factor must be a finite number >= 0"):
        Policy(EXAMPLE).scaled(factor)
