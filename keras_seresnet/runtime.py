"""Process-wide settings, made by explicit calls: the scripts call `configure_process()` first.

Importing `keras_seresnet` (or any of its modules) changes nothing in the
process. The settings below are what the package's scripts make, before
Keras or TensorFlow is imported, with `configure_process()`; library users
may call it too, or make the same settings themselves. A value already set
in the environment is always kept.

- `KERAS_BACKEND=tensorflow`, unless the environment names another backend:
  the fastest on a CPU, and the one the `tf.distribute` strategies need.
  Training on one device, prediction and export also run under JAX and
  PyTorch (tf.data feeds every backend).
- `TF_CPP_MIN_LOG_LEVEL`: TensorFlow's C++ log level. "2" (errors only)
  where an NVIDIA driver is present; "3" (errors hidden too) on a machine with
  no NVIDIA driver at all, where TensorFlow's CUDA build otherwise logs a failed
  `cuInit` error on every run although nothing is wrong. GPUs are never
  hidden (`CUDA_VISIBLE_DEVICES` is not touched).
- `TF_ENABLE_ONEDNN_OPTS=1`: TensorFlow turns its oneDNN CPU kernels on by
  default only on some CPUs; elsewhere it falls back to slower Eigen kernels.
  TensorFlow reads the variable once, when it starts.

`import_tensorflow()`, which the commands that use TensorFlow call next,
imports it with its `TF_CPP_MIN_LOG_LEVEL` honoured from the first line:
TensorFlow 2.21 writes its start-up lines ("oneDNN custom operations are
on", "Could not find cuda drivers") before its C++ logging reads the level.

Grappler's graph passes keep TensorFlow's defaults: with its "remapping"
pass on (oneDNN fuses convolution, BatchNorm and ReLU) the training step and
inference measured as fast or faster than with it off.

`KERAS_SERESNET_SPEEDUPS=0` (or false, no, off) leaves oneDNN to TensorFlow's
own choice and makes `build_seresnet` use Keras's own BatchNormalization
instead of the fused one (`keras_seresnet.models.layers`).
"""

import contextlib
import ctypes.util
import os
import re
import sys
import threading

SPEEDUPS_ENV = "KERAS_SERESNET_SPEEDUPS"
_NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")


def speedups_enabled():
    """False when the environment sets KERAS_SERESNET_SPEEDUPS to 0, false, no or off."""
    return os.environ.get(SPEEDUPS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def has_nvidia_driver():
    """True when the machine shows any sign of an NVIDIA driver (device files or libcuda)."""
    return (
        any(os.path.exists(path) for path in _NVIDIA_DRIVER_PATHS)
        or ctypes.util.find_library("cuda") is not None
    )


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


# A line of Abseil's C++ log format: severity, MMDD, hh:mm:ss.us (before initialisation
# 00:00:<seconds since 1970>), thread, file:line].
_ABSL_LINE = re.compile(rb"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] ")
_ABSL_UNINITIALISED = b"WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITIES = b"IWEF"  # TF_CPP_MIN_LOG_LEVEL 1 hides I, 2 also W, 3 also E; F always shows


def hides_log_line(line, level):
    """True when TensorFlow's `TF_CPP_MIN_LOG_LEVEL` = `level` asks to hide this stderr line.

    Args:
        line: one line of bytes written to stderr.
        level: 0 (show all), 1 (hide INFO), 2 (also WARNING), 3 (also ERROR).

    Returns:
        True for an Abseil log line (`I0000 00:00:... file.cc:12] ...`) below
        the level, and for Abseil's note that logging is not initialised
        (with level >= 1); False for every other line.
    """
    if line.startswith(_ABSL_UNINITIALISED):
        return level >= 1
    match = _ABSL_LINE.match(line)
    return bool(match) and _SEVERITIES.index(match.group(1)) < level


def _log_level():
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return int(level) if level in ("0", "1", "2", "3") else 0


@contextlib.contextmanager
def native_log_level():
    """Applies `TF_CPP_MIN_LOG_LEVEL` to what native code writes to stderr (fd 2) inside the block.

    Lines that `hides_log_line` picks are dropped; every other line reaches
    stderr as soon as it is complete (a thread forwards a pipe), so an
    error, a traceback or a crash's last words still show. Nothing changes
    when the level is 0 or unset. Only for programs that own their stderr
    (the commands); the block restores fd 2 as it found it.
    """
    level = _log_level()
    if level == 0:
        yield
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    stderr = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    forwarder = threading.Thread(target=_forward, args=(read_end, stderr, level), daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(stderr, 2)  # the pipe's last writer closes: the forwarder reads to its end
        forwarder.join()
        os.close(stderr)


def _forward(read_end, stderr, level):
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        for chunk in iter(lambda: pipe.read(65536), b""):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if not hides_log_line(line, level):
                    os.write(stderr, line + b"\n")
    if pending and not hides_log_line(pending, level):
        os.write(stderr, pending)


def import_tensorflow():
    """Imports TensorFlow under `native_log_level()`; call after `configure_process()`.

    Returns:
        The `tensorflow` module (imported once; later calls return it).
    """
    if "tensorflow" not in sys.modules:
        with native_log_level():
            import tensorflow  # noqa: F401
    return sys.modules["tensorflow"]
