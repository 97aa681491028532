"""CPU speed settings that change no result: oneDNN kernels and fused BatchNormalization.

Two measured speedups (README, "Speed"), both on by default and both off with
the environment variable `KERAS_SERESNET_SPEEDUPS=0`:

- oneDNN. TensorFlow 2.21 uses its oneDNN (MKL) kernels by default only on
  CPUs with AVX-512; on AVX2 machines such as a 2-core cloud VM it falls back
  to Eigen kernels: this model's training step ran at 50 img/s with them and
  67 img/s with oneDNN (81 with the fused BatchNormalization below). The
  package sets `TF_ENABLE_ONEDNN_OPTS=1` when it is imported, unless the
  variable is already set. TensorFlow reads it once, when it starts, so this
  works only if `keras_seresnet` is imported before `tensorflow` (the
  scripts do); set the variable yourself otherwise.
- Fused BatchNormalization. Keras 3's BatchNormalization computes moments
  and the normalisation as separate element-wise operations, each a pass over
  the feature map; `fuse_batch_norm(model)` makes every float32 NHWC
  BatchNormalization of a model run TensorFlow's single FusedBatchNormV3
  kernel (and its fused gradient), about 20% faster per training step. It
  computes the same function as Keras's layer (outputs, gradients and
  moving statistics agree to float32 rounding; `tests/test_runtime.py`) and
  changes no configuration: the model saves, loads and exports as plain
  Keras layers.
"""

import os

SPEEDUPS_ENV = "KERAS_SERESNET_SPEEDUPS"


def speedups_enabled():
    """False when the environment sets KERAS_SERESNET_SPEEDUPS to 0, false, no or off."""
    return os.environ.get(SPEEDUPS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def configure_process():
    """The process-wide settings the scripts make before TensorFlow starts.

    Keras's backend defaults to "tensorflow", TensorFlow's C++ log level to 2
    (warnings and errors), and `enable_onednn()` runs. Every value already
    set in the environment is kept. Call it before `keras` or `tensorflow`
    is imported; the library itself never calls it.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    enable_onednn()


def enable_onednn():
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set or speedups are off; call before TensorFlow starts.

    With oneDNN on, it also turns off Grappler's "remapping" pass: with
    oneDNN that pass fuses some graphs of this package's training step into
    a kernel that does not exist ("Fusion is not implemented: [BiasAdd,Add]",
    seen with widths (8, 16) in TensorFlow 2.21); without it the default
    model's step measured the same speed within noise (87 against 90 img/s).
    """
    if not speedups_enabled():
        return
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1":
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"remapping": False})


def _can_fuse(layer, inputs, mask):
    axis = layer.axis if isinstance(layer.axis, int) else None
    return (mask is None and not layer.synchronized and not layer.renorm
            and layer.scale and layer.center and inputs.dtype == "float32"
            and len(inputs.shape) == 4 and axis in (-1, 3))


def _fused_call(layer):
    import tensorflow as tf

    keras_call = layer.call

    def call(inputs, training=None, mask=None):
        if not _can_fuse(layer, inputs, mask):
            return keras_call(inputs, training=training, mask=mask)
        if training and layer.trainable:
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=layer.gamma.value, offset=layer.beta.value,
                mean=tf.zeros_like(layer.moving_mean.value),
                variance=tf.zeros_like(layer.moving_variance.value),
                epsilon=layer.epsilon, data_format="NHWC", is_training=True)
            # The kernel returns the unbiased variance; Keras's layer (and so
            # a synchronized or float64 one) updates with the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), variance.dtype)
            variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
            layer.moving_mean.assign(
                layer.moving_mean * layer.momentum + mean * (1.0 - layer.momentum))
            layer.moving_variance.assign(
                layer.moving_variance * layer.momentum + variance * (1.0 - layer.momentum))
            return outputs
        outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=layer.gamma.value, offset=layer.beta.value,
            mean=layer.moving_mean.value, variance=layer.moving_variance.value,
            epsilon=layer.epsilon, data_format="NHWC", is_training=False)
        return outputs

    call.keras_call = keras_call
    return call


def fuse_batch_norm(model):
    """Makes every BatchNormalization layer of `model` use the fused kernel where it can.

    Float32 NHWC inputs take FusedBatchNormV3; anything else (float64,
    mixed precision, synchronized statistics across replicas, masks) runs
    Keras's own code unchanged. Does nothing when speedups are off
    (KERAS_SERESNET_SPEEDUPS=0) or the Keras backend is not TensorFlow.
    Calling it twice is harmless.

    Args:
        model: a `keras.Model`; changed in place.

    Returns:
        `model`.
    """
    import keras

    if not speedups_enabled() or keras.backend.backend() != "tensorflow":
        return model
    for layer in model._flatten_layers(include_self=False):
        if (isinstance(layer, keras.layers.BatchNormalization)
                and not hasattr(layer.call, "keras_call")):
            layer.call = _fused_call(layer)
    return model
