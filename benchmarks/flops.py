"""FLOPs counted from a built model, and the machine's own rates to compare them with.

A multiply-add counts as 2 FLOP. Only the convolutions and dense layers are
counted (`Conv1D/2D/3D`, `DepthwiseConv2D`, `Dense`): each costs its
output's positions times its kernel's size; BatchNorm, activations, pooling
and the SE scaling are element-wise and add a few percent at most. A
training step costs `TRAIN_FLOPS_PER_FORWARD` forward passes: the forward
pass, the gradient with respect to the inputs and the one with respect to
the weights, each about one forward pass of multiply-adds.

The machine's rates are a float32 matrix multiply (`matmul_gflops`) and a
3x3 convolution with both its gradients in a given dtype
(`prepare_convolution`): the ratio of the bfloat16 convolution's rate to the
float32 one is about what a mixed-precision training step of this model can
gain on the machine, since the convolutions hold nearly all its FLOPs (the
element-wise work, moving half the bytes, may gain a little more).
"""

import math
import statistics
import time

import keras

from benchmarks.timing import Prepared, check_positive_int

TRAIN_FLOPS_PER_FORWARD = 3
_COUNTED = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dense,
)


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
            raise ValueError(
                f"Argument `model` must have fully defined shapes; layer "
                f"{layer.name!r} has output shape {layer.output.shape}. Build it "
                f"with a fixed input shape."
            )
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


def convolution_flops(size=16, channels=128):
    """FLOPs per example of a 3x3 convolution with both gradients (`prepare_convolution`)."""
    return TRAIN_FLOPS_PER_FORWARD * 2 * size * size * 9 * channels * channels


def prepare_convolution(
    dtype="float32", *, batch_size=128, size=16, channels=128, steps=10, name=None
) -> Prepared:
    """TensorFlow's 3x3 convolution, forward and both gradients, in `dtype`, ready to time.

    One run computes `steps` times, for a [batch_size, size, size, channels]
    input and a [3, 3, channels, channels] kernel ("SAME" padding), the
    output, the gradient with respect to the input and the one with respect
    to the kernel (the output standing in for the incoming gradient): the
    work of one convolution layer in a training step, at the size of the
    model's third stage, without anything else around it.

    Args:
        dtype: "float32", "bfloat16" or "float16".
        batch_size, size, channels, steps: positive integers.
        name: the `Result`'s name; default `f"conv-{dtype}"`.

    Returns:
        A `Prepared` counting `batch_size` examples per convolution (details:
        the shape, dtype and GFLOP per example).

    Raises:
        ValueError: an argument is out of range.
    """
    import tensorflow as tf

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(
            f"Argument `dtype` must be one of 'float32', 'bfloat16', 'float16'. "
            f"Received: dtype={dtype!r}"
        )
    for argument, value in (
        ("batch_size", batch_size),
        ("size", size),
        ("channels", channels),
        ("steps", steps),
    ):
        check_positive_int(argument, value)
    inputs = tf.cast(
        tf.random.stateless_normal((batch_size, size, size, channels), seed=(0, 0)), dtype
    )
    kernel = tf.cast(
        0.05 * tf.random.stateless_normal((3, 3, channels, channels), seed=(0, 1)), dtype
    )

    @tf.function
    def convolution():
        with tf.GradientTape() as tape:
            tape.watch([inputs, kernel])
            outputs = tf.nn.conv2d(inputs, kernel, 1, "SAME")
        input_grad, kernel_grad = tape.gradient(outputs, [inputs, kernel], output_gradients=outputs)
        return input_grad[0, 0, 0, 0] + kernel_grad[0, 0, 0, 0]

    def run():
        for _ in range(steps):
            done = convolution()
        done.numpy()
        return steps * batch_size

    convolution().numpy()  # traces
    return Prepared(
        name or f"conv-{dtype}",
        run,
        {
            "shape": f"{batch_size}x{size}x{size}x{channels}",
            "dtype": dtype,
            "steps": steps,
            "gflop_per_example": round(convolution_flops(size, channels) / 1e9, 4),
        },
    )
