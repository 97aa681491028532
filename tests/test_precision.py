"""Reduced precision: mixed_bfloat16 and mixed_float16 steps train; the fused BatchNorm equals Keras's."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_model import _norm_pair

from keras_seresnet.models.layers import BatchNormalization as FusedBatchNormalization
from keras_seresnet.models.seresnet import build_seresnet
from keras_seresnet.training.distribute import precision_policy
from keras_seresnet.training.optimizers import TorchSGD
from tests.tiny_model import TINY_MODEL

N, H, W, C = 16, 6, 6, 8
POLICIES = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
# Relative rounding of one value: 2**-8 (bfloat16), 2**-11 (float16); a few
# roundings happen between the input and a compared value.
RESOLUTION = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
TINY = dict(TINY_MODEL, dropout=0.0)


def _pair(policy):
    return _norm_pair(policy, channels=C)


def _inputs(dtype):
    return tf.cast(np.random.default_rng(1).normal(2.0, 3.0, (N, H, W, C)), dtype)


def _graph_ops(function, *args):
    return tf.function(function).get_concrete_function(*args).graph.get_operations()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("training", [False, True])
def test_fused_low_precision_batch_norm_equals_keras(policy, training):
    dtype = POLICIES[policy]
    fused, plain = _pair(policy)
    assert {w.dtype for w in fused.weights} == {"float32"}  # statistics, scale and offset
    x = _inputs(dtype)
    # The kernel takes the low-precision feature map as it is (Keras's layer
    # casts it to float32 and back).
    kernels = [
        op
        for op in _graph_ops(lambda t: fused(t, training=training), x)
        if op.type == "FusedBatchNormV3"
    ]
    assert len(kernels) == 1 and kernels[0].get_attr("T") == tf.as_dtype(dtype)
    assert kernels[0].get_attr("U") == tf.float32
    weights = tf.cast(np.random.default_rng(3).normal(size=(N, H, W, C)), "float32")
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
        assert y.dtype == dtype
        results.append([y] + tape.gradient(loss, [x, layer.gamma.value, layer.beta.value]))
    for name, a, b in zip(
        ("outputs", "input gradient", "gamma gradient", "beta gradient"), *results
    ):
        a, b = (np.asarray(tf.cast(t, "float32")) for t in (a, b))
        np.testing.assert_allclose(
            a, b, rtol=0, atol=4 * RESOLUTION[dtype] * np.abs(b).max(), err_msg=name
        )
    # Both see the same low-precision input and compute its statistics in float32.
    np.testing.assert_allclose(
        fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_low_precision_batch_norm_casts_no_feature_map_to_float32(policy):
    dtype = POLICIES[policy]
    with precision_policy(policy):
        model = build_seresnet(**TINY)
    assert {w.dtype for w in model.weights} == {"float32"}  # float32 master weights
    assert model.get_layer("normalize").compute_dtype == "float32"
    assert model.get_layer("stem_conv").compute_dtype == dtype
    assert model.get_layer("logits").compute_dtype == "float32"
    x = tf.zeros((2, 32, 32, 3))
    ops = _graph_ops(lambda t: model(t, training=True), x)
    upcasts = {
        op.name.split("/")[1].rsplit("_", 1)[0]
        for op in ops
        if op.type == "Cast"
        and op.inputs[0].dtype == dtype
        and op.outputs[0].dtype == tf.float32
        and op.inputs[0].shape.rank == 4
    }
    # Only the average pools cast a feature map to float32 (Keras's mean sums
    # in float32); Keras's BatchNormalization would cast each of its inputs.
    assert upcasts == {"stage2_block1_se_pool", "head_pool"}
    assert sum(op.type == "FusedBatchNormV3" for op in ops) == sum(
        isinstance(layer, FusedBatchNormalization) for layer in model.layers
    )
    assert model(x).dtype == "float32"


@pytest.mark.parametrize("policy", POLICIES)
def test_low_precision_training_steps_lower_the_loss(policy):
    keras.utils.set_random_seed(0)
    with precision_policy(policy):
        model = build_seresnet(**TINY)
        model.compile(
            optimizer=TorchSGD(0.05, 0.9, 5e-4),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
    if policy == "mixed_float16":  # Keras scales the float16 loss dynamically
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[np.arange(8)]
    losses = [float(model.train_on_batch(x, y)) for _ in range(8)]
    assert np.isfinite(losses).all()
    assert (np.diff(losses) < 0).all() and losses[-1] < losses[0] - 0.1, losses
    assert {w.dtype for w in model.weights} == {"float32"}


def test_fused_batch_norm_with_float16_variables_runs_keras_code():
    # A pure "float16" policy makes float16 statistics, which the kernel cannot take.
    fused, plain = _pair("float16")
    x = _inputs("float16")
    assert not any(
        op.type == "FusedBatchNormV3" for op in _graph_ops(lambda t: fused(t, training=True), x)
    )
    np.testing.assert_array_equal(
        np.asarray(fused(x, training=True)), np.asarray(plain(x, training=True))
    )
