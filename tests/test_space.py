"""Tests of the policy search space (keras_augtune.space)."""

import json

import keras_tuner as kt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_augtune.ops import DEEPAUGMENT_OPS, OP_NAMES
from keras_augtune.policy import Policy
from keras_augtune.space import PolicySpace, declare_policy_space


def test_default_space_shape_and_names():
    hp = kt.HyperParameters()
    policy = declare_policy_space(hp)
    assert len(hp.space) == 5 * 2 * 3
    names = [h.name for h in hp.space]
    assert names == PolicySpace().names
    assert names[:3] == [
        "augment/sub_policy_0/op_0/op",
        "augment/sub_policy_0/op_0/magnitude",
        "augment/sub_policy_0/op_0/probability",
    ]
    op_hp = hp.space[0]
    assert isinstance(op_hp, kt.engine.hyperparameters.Choice)
    assert tuple(op_hp.values) == OP_NAMES and not op_hp.ordered
    assert isinstance(hp.space[1], kt.engine.hyperparameters.Float)
    assert isinstance(hp.space[2], kt.engine.hyperparameters.Float)
    # The defaults describe an identity policy.
    assert isinstance(policy, Policy) and len(policy.sub_policies) == 5
    assert all(step.op == "identity" for sub in policy.sub_policies for step in sub)


def test_deepaugment_space_fixes_probabilities():
    space = PolicySpace.deepaugment()
    hp = space.hyperparameters()
    assert space.ops == DEEPAUGMENT_OPS
    probabilities = [h for h in hp.space if h.name.endswith("/probability")]
    assert len(probabilities) == 10
    assert all(isinstance(h, kt.engine.hyperparameters.Fixed) and h.value == 1.0 for h in probabilities)
    policy = space.to_policy(hp.values)
    assert all(step.probability == 1.0 for sub in policy.sub_policies for step in sub)


def test_options_shape_the_hyperparameters():
    space = PolicySpace(
        num_sub_policies=3, ops_per_sub_policy=1, ops=["Rotate", "gaussianblur", "rotate"],
        magnitude_range=(0.1, 0.6), probability_range=(0.5, 0.5), magnitude_step=0.1, prefix="policy",
    )
    assert space.ops == ("rotate", "gaussian-blur")  # aliases resolved, duplicates dropped
    hp = space.hyperparameters()
    assert [h.name for h in hp.space][:3] == [
        "policy/sub_policy_0/op_0/op", "policy/sub_policy_0/op_0/magnitude", "policy/sub_policy_0/op_0/probability"
    ]
    magnitude = hp.space[1]
    assert (magnitude.min_value, magnitude.max_value, magnitude.step) == (0.1, 0.6, 0.1)
    assert isinstance(hp.space[2], kt.engine.hyperparameters.Fixed)  # a range of one value
    assert hp.space[0].default == "rotate"  # no identity in the list: the first op


def test_round_trip_policy_to_values_to_policy():
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=2)
    policy = Policy([[("rotate", 0.3, 0.7), ("cutout", 1.0, 0.2)], [("invert", 0.5, 0.0), ("identity", 0.0, 1.0)]])
    values = space.to_values(policy)
    assert set(values) == set(space.names)
    assert space.to_policy(values) == policy
    hp = space.hyperparameters()
    hp.values.update(values)
    assert space.to_policy(hp) == policy
    assert json.loads(json.dumps(values)) == values


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_round_trip_values_to_policy_to_values(data):
    space = PolicySpace(num_sub_policies=2, ops_per_sub_policy=3, magnitude_range=(0.2, 0.9))
    values = {}
    for name in space.names:
        if name.endswith("/op"):
            values[name] = data.draw(st.sampled_from(space.ops))
        elif name.endswith("/magnitude"):
            values[name] = data.draw(st.floats(0.2, 0.9))
        else:
            values[name] = data.draw(st.floats(0.0, 1.0))
    assert space.to_values(space.to_policy(values)) == values


def test_declare_inside_a_trial_uses_the_trial_values():
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=2, ops=["rotate", "invert"])
    hp = kt.HyperParameters()
    hp.values.update({
        "augment/sub_policy_0/op_0/op": "invert", "augment/sub_policy_0/op_0/magnitude": 0.4,
        "augment/sub_policy_0/op_0/probability": 0.9, "augment/sub_policy_0/op_1/op": "rotate",
        "augment/sub_policy_0/op_1/magnitude": 0.1, "augment/sub_policy_0/op_1/probability": 0.2,
    })
    assert space.declare(hp) == Policy([[("invert", 0.9, 0.4), ("rotate", 0.2, 0.1)]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_sub_policies": 0}, "num_sub_policies"),
        ({"ops_per_sub_policy": 1.5}, "ops_per_sub_policy"),
        ({"ops": []}, "at least one op"),
        ({"ops": "rotate"}, "list of op names"),
        ({"magnitude_range": (0.8, 0.2)}, "low <= high"),
        ({"magnitude_range": (0.0, 2.0)}, r"magnitude_range\[1\]"),
        ({"probability_range": 0.5}, "pair"),
        ({"fixed_probability": -0.1}, "fixed_probability"),
        ({"magnitude_step": 0}, "magnitude_step"),
        ({"search_probabilities": "yes"}, "search_probabilities"),
        ({"prefix": ""}, "prefix"),
    ],
)
def test_bad_options_give_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolicySpace(**kwargs)


def test_unknown_op_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean 'rotate'"):
        PolicySpace(ops=["rotat"])


def test_to_values_rejects_policies_that_do_not_fit():
    space = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["rotate"], magnitude_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="1 sub-policies of 1 ops"):
        space.to_values(Policy([[("rotate", 1.0, 0.1)], [("rotate", 1.0, 0.1)]]))
    with pytest.raises(ValueError, match="not in this space's ops"):
        space.to_values(Policy([[("invert", 1.0, 0.1)]]))
    with pytest.raises(ValueError, match="outside this space's range"):
        space.to_values(Policy([[("rotate", 1.0, 0.9)]]))
    fixed = PolicySpace.deepaugment(num_sub_policies=1, ops_per_sub_policy=1)
    with pytest.raises(ValueError, match="fixes every probability"):
        fixed.to_values(Policy([[("rotate", 0.5, 0.1)]]))


def test_to_policy_reports_missing_names():
    with pytest.raises(ValueError, match="missing augment/sub_policy_0/op_0/op"):
        PolicySpace().to_policy({})
    with pytest.raises(TypeError, match="dict of hyperparameter values"):
        PolicySpace().to_policy(42)


@pytest.mark.parametrize("space", [
    PolicySpace(num_sub_policies=2, ops_per_sub_policy=1, ops=["identity", "rotate"]),
    PolicySpace.deepaugment(),
    PolicySpace(num_sub_policies=1, ops_per_sub_policy=3, magnitude_range=(0.1, 0.9), magnitude_step=0.1,
                probability_range=(0.2, 1.0), prefix="my/aug"),
])
def test_space_read_back_from_its_hyperparameters(space):
    from keras_augtune.space import parse_name

    assert PolicySpace.from_hyperparameters(space.hyperparameters()) == space
    assert parse_name(space.name(0, 0, "magnitude")) == (space.prefix, 0, 0, "magnitude")
    assert parse_name("units") is None
    assert PolicySpace.from_hyperparameters(kt.HyperParameters()) is None
