"""Process-wide settings, made by explicit calls: the scripts call `configure_process()` first.

Importing `keras_seresnet` (or any of its modules) changes nothing in the
process. The settings below are what the package's scripts make, before
Keras or TensorFlow is imported, with `configure_process()`; library users
may call it too, or make the same settings themselves. A value already set
in the environment is always kept.

- `KERAS_BACKEND=tensorflow`: the training loop, the tf.data pipeline, the
  SavedModel export and the distribution strategies are TensorFlow's
  (`require_tensorflow` says so under another backend). The model, the
  optimizer and the schedules use `keras.ops` only and run under any backend.
- `TF_CPP_MIN_LOG_LEVEL`: TensorFlow's C++ log level. "2" (errors only)
  where an NVIDIA driver is present; "3" (errors hidden too) on a machine with
  no NVIDIA driver at all, where TensorFlow's CUDA build otherwise logs a failed
  `cuInit` error on every run although nothing is wrong. GPUs are never
  hidden (`CUDA_VISIBLE_DEVICES` is not touched).
- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow turns its oneDNN CPU kernels on by
  default only on some CPUs; elsewhere it falls back to slower Eigen kernels.
  TensorFlow reads the variable once, when it starts.

Grappler's graph passes keep TensorFlow's defaults: with its "remapping"
pass on (oneDNN fuses convolution, BatchNorm and ReLU) the training step and
inference measured as fast or faster than with it off.

`KERAS_SERESNET_SPEEDUPS=0` (or false, no, off) leaves oneDNN to TensorFlow's
own choice and makes `build_seresnet` use Keras's own BatchNormalization
instead of the fused one (`keras_seresnet.models.layers`).
"""

import ctypes.util
import os

SPEEDUPS_ENV = "KERAS_SERESNET_SPEEDUPS"
_NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")


def speedups_enabled():
    """False when the environment sets KERAS_SERESNET_SPEEDUPS to 0, false, no or off."""
    return os.environ.get(SPEEDUPS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def has_nvidia_driver():
    """True when the machine shows any sign of an NVIDIA driver (device files or libcuda)."""
    return (any(os.path.exists(path) for path in _NVIDIA_DRIVER_PATHS)
            or ctypes.util.find_library("cuda") is not None)


def configure_process():
    """Makes the process-wide settings of the module docstring; call before Keras or TensorFlow starts.

    Sets `KERAS_BACKEND` (default "tensorflow"), `TF_CPP_MIN_LOG_LEVEL`
    (default "2", or "3" without an NVIDIA driver) and runs
    `enable_onednn()`. Every value already set in the environment is kept.
    The library itself never calls it.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if has_nvidia_driver() else "3")
    enable_onednn()


def enable_onednn():
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set or speedups are off; call before TensorFlow starts."""
    if speedups_enabled():
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def require_tensorflow(what):
    """Refuses to go on unless Keras runs with the TensorFlow backend.

    Args:
        what: what needs TensorFlow, for the message, e.g. "The tf.data
            training pipeline".

    Raises:
        RuntimeError: Keras's backend is not "tensorflow"; the message names
            `what`, the backend, and how to choose TensorFlow.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs Keras's TensorFlow backend, but this process runs Keras with "
            f"the {backend!r} backend. Set KERAS_BACKEND=tensorflow before Keras is imported. "
            "(The model, TorchSGD and the learning-rate schedules work under any backend.)"
        )


def fuse_batch_norm(model):
    """Kept for compatibility: returns `model` unchanged.

    Models from `build_seresnet` (and `.keras` files saved from them) already
    hold the fused `keras_seresnet.models.layers.BatchNormalization`, which run TensorFlow's fused
    kernel themselves; nothing needs to be applied after building or
    loading. A model of Keras's own BatchNormalization layers keeps them.

    Args:
        model: a `keras.Model`.

    Returns:
        `model`.
    """
    return model
