"""FLOPs counted from a built model, and the machine's matrix-multiply rate to compare them with.

A multiply-add counts as 2 FLOP. Only the convolutions and dense layers are
counted (`Conv1D/2D/3D`, `DepthwiseConv2D`, `Dense`): each costs its
output's positions times its kernel's size; BatchNorm, activations, pooling
and the SE scaling are element-wise and add a few percent at most. A
training step costs `TRAIN_FLOPS_PER_FORWARD` forward passes: the forward
pass, the gradient with respect to the inputs and the one with respect to
the weights, each about one forward pass of multiply-adds.
"""

import math
import statistics
import time

import keras

TRAIN_FLOPS_PER_FORWARD = 3
_COUNTED = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
            keras.layers.DepthwiseConv2D, keras.layers.Dense)


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds of one forward pass of one example through `model`.

    Args:
        model: a built Functional model (every layer has a defined output
            shape apart from the batch dimension).

    Raises:
        ValueError: a counted layer's output shape is not fully defined.
    """
    total = 0
    for layer in _layers(model):
        if not isinstance(layer, _COUNTED):
            continue
        positions = layer.output.shape[1:-1]
        if any(size is None for size in positions):
            raise ValueError(f"Argument `model` must have fully defined shapes; layer "
                             f"{layer.name!r} has output shape {layer.output.shape}. Build it "
                             f"with a fixed input shape.")
        total += math.prod(positions) * math.prod(layer.kernel.shape)
    return total


def forward_flops(model: keras.Model) -> int:
    """FLOPs of one example's forward pass (2 per multiply-add)."""
    return 2 * multiply_adds(model)


def train_flops(model: keras.Model) -> int:
    """FLOPs of one example's training step: `TRAIN_FLOPS_PER_FORWARD` forward passes."""
    return TRAIN_FLOPS_PER_FORWARD * forward_flops(model)


def matmul_gflops(size=2048, repeats=3):
    """The machine's float32 matrix-multiply rate in GFLOP/s (TensorFlow, all cores).

    Median of `repeats` timings of 4 products of two [size, size] matrices,
    after one warm-up product: a ceiling for the model's convolutions.
    """
    import tensorflow as tf

    a = tf.random.stateless_uniform((size, size), seed=(0, 0))
    b = tf.random.stateless_uniform((size, size), seed=(0, 1))
    tf.matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            tf.matmul(a, b).numpy()
        rates.append(4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)
