"""The model's own layer: a BatchNormalization that runs TensorFlow's fused kernel.

`keras_seresnet.models.layers.BatchNormalization` (the fused BatchNorm) is
`keras.layers.BatchNormalization` with the same arguments, weights and
function. On the TensorFlow backend, for 4-D NHWC
inputs (channels last) in float32, float16 or bfloat16, it computes the
normalisation with TensorFlow's single `FusedBatchNormV3` kernel (and its
fused gradient) instead of Keras's separate moment and element-wise
operations. Under a mixed precision policy the kernel takes the
float16/bfloat16 feature map as it is and keeps the batch statistics,
`gamma`, `beta` and the moving statistics in float32, as cuDNN does; Keras's
layer instead casts the feature map to float32 and back around its own code.

Everything else runs Keras's code unchanged (`super().call`): another backend,
float64 inputs, variables of another dtype than float32 (a "float16" policy),
other ranks or axes, masks, `renorm`, `center=False` or `scale=False`, and
training with `synchronized=True` under a `tf.distribute` strategy of several
replicas (batch statistics all-reduced across them; with one replica the
fused kernel computes the same statistics).

Both paths update the moving statistics with the biased batch variance, as
Keras's layer does; outputs, gradients and moving statistics agree with
Keras's layer to the rounding of the compute dtype.

Saved files: a `.keras` file names this class
(`keras_seresnet>BatchNormalization`), so loading it needs
`keras_seresnet` installed and `keras_seresnet.models` imported (importing
any module of the package's models or inference does it). Under another
Keras backend the loaded layer runs Keras's code. `synchronized=True` is
accepted under every backend: only a `tf.distribute` strategy splits a batch
across replicas in one program, so elsewhere the statistics are already those
of the whole batch. The class has Keras's class name on purpose: weights
files (`.weights.h5`, and the weights inside a `.keras` file) key each layer
by its class name, so a model built with either class reads the other's
weights, and checkpoints saved with Keras's layer still load.
"""

import keras
from keras import ops


def _tensorflow():
    import tensorflow as tf

    return tf


@keras.saving.register_keras_serializable(package="keras_seresnet")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel where it can.

    Args:
        synchronized: all-reduce the batch statistics across the replicas of
            a `tf.distribute` strategy when training. Default False. Accepted
            under every backend (see the module docstring).
        **kwargs: every other `keras.layers.BatchNormalization` argument
            (`axis`, `momentum`, `epsilon`, ...), with the same defaults.

    Call arguments, shapes and dtypes are those of
    `keras.layers.BatchNormalization`: the output has the input's shape and
    the layer's compute dtype; the variables are float32 under a mixed
    precision policy.
    """

    def __init__(self, synchronized=False, **kwargs):
        tensorflow_backend = keras.backend.backend() == "tensorflow"
        # Keras's layer refuses synchronized=True off TensorFlow; this one
        # keeps the flag (and so the saved config) and runs unsynchronised.
        super().__init__(synchronized=synchronized and tensorflow_backend, **kwargs)
        self.synchronized = bool(synchronized)
        self._fusable_backend = tensorflow_backend

    def _fuses(self, inputs, training, mask):
        axis = self.axis if isinstance(self.axis, int) else None
        if not (
            self._fusable_backend
            and mask is None
            and not self.renorm
            and self.scale
            and self.center
            and len(inputs.shape) == 4
            and axis in (-1, 3)
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "float16", "bfloat16")
            and keras.backend.standardize_dtype(self.variable_dtype) == "float32"
        ):
            return False
        # Synchronised statistics matter only when a strategy splits the batch.
        return not (
            training
            and self.synchronized
            and _tensorflow().distribute.get_strategy().num_replicas_in_sync > 1
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fuses(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        tf = _tensorflow()
        inputs = ops.cast(inputs, self.compute_dtype)
        train = bool(training and self.trainable)
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=ops.convert_to_tensor(self.gamma),
            offset=ops.convert_to_tensor(self.beta),
            mean=ops.convert_to_tensor(self.moving_mean),
            variance=ops.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=train,
        )
        if train:
            # The kernel returns the unbiased (Bessel-corrected) variance;
            # Keras's layer updates with the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        return outputs
