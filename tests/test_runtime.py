"""Process settings: importing the package changes nothing; configure_process() makes the settings."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from keras_seresnet import runtime
from keras_seresnet.runtime import SPEEDUPS_ENV
from tests.tiny_model import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", SPEEDUPS_ENV)

# Prints the process state the package must not change: the environment,
# TensorFlow's optimizer options and Pillow's decompression-bomb limit.
_REPORT = (
    "import json, os, PIL.Image, tensorflow as tf; "
    "print(json.dumps({'environ': dict(os.environ), "
    "'options': {k: str(v) for k, v in tf.config.optimizer.get_experimental_options().items()}, "
    "'max_pixels': PIL.Image.MAX_IMAGE_PIXELS}))"
)


def _child(code, **env):
    """Runs `code` then the report in a new Python without the settings, plus `env`; returns the report."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    clean.update(
        {"PYTHONPATH": ROOT, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    )
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{_REPORT}"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_and_using_the_package_changes_nothing_in_the_process():
    bare = _child("import keras")
    used = _child(
        "import keras_seresnet\n"
        "from keras_seresnet.inference import loading, predict\n"
        "from keras_seresnet.data import images, pipeline\n"
        "from keras_seresnet.training import loop\n"
        f"m = keras_seresnet.build_seresnet(**{TINY_MODEL!r})\n"
        "keras_seresnet.TrainConfig()"
    )
    assert used["environ"] == bare["environ"]
    assert used["options"] == bare["options"]
    assert used["max_pixels"] == bare["max_pixels"]


def test_configure_process_makes_the_settings_and_keeps_the_users():
    configured = _child(
        "from keras_seresnet import runtime; runtime.configure_process()", TF_CPP_MIN_LOG_LEVEL="1"
    )
    assert configured["environ"]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert configured["environ"]["KERAS_BACKEND"] == "tensorflow"
    assert configured["environ"]["TF_CPP_MIN_LOG_LEVEL"] == "1"  # the user's value is kept
    # Grappler keeps its defaults (the remapping pass is no longer turned off).
    assert configured["options"] == _child("import keras")["options"]


def test_speedups_off_makes_no_onednn_setting():
    off = _child(
        "from keras_seresnet import runtime; runtime.configure_process()", **{SPEEDUPS_ENV: "0"}
    )
    assert "TF_ENABLE_ONEDNN_OPTS" not in off["environ"]


def test_log_level_default_hides_errors_only_without_an_nvidia_driver(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv(SPEEDUPS_ENV, "0")  # nothing but the environment
    for present, level in ((True, "2"), (False, "3")):
        monkeypatch.setattr(runtime, "has_nvidia_driver", lambda present=present: present)
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
        runtime.configure_process()
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == level


@pytest.mark.parametrize(
    "value, enabled",
    [(None, True), ("1", True), ("0", False), ("off", False), (" False ", False), ("no", False)],
)
def test_speedups_enabled_reads_the_environment(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(SPEEDUPS_ENV, raising=False)
    else:
        monkeypatch.setenv(SPEEDUPS_ENV, value)
    assert runtime.speedups_enabled() is enabled


@pytest.mark.parametrize(
    "line, hidden_from",
    [
        (b"I0000 00:00:1796356089.435081   14596 port.cc:153] oneDNN custom operations are on.", 1),
        (b"I1204 03:12:45.123456 77 cudart_stub.cc:31] Could not find cuda drivers", 1),
        (
            b"W0000 00:00:1796356089.435081 14596 gpu_device.cc:2342] Cannot dlopen some GPU libraries.",
            2,
        ),
        (b"E0000 00:00:1796356089.435081 14596 cuda_executor.cc:1228] failed call to cuInit", 3),
        (
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
            1,
        ),
        (
            b"F0000 00:00:1796356089.435081 14596 check.cc:1] Check failed",
            None,
        ),  # fatal: always shown
        (b"Traceback (most recent call last):", None),
        (b"train.py: error: I0000 00:00:1.0 1 a.cc:1] quoted in a message", None),
    ],
)
def test_hides_log_line_follows_tf_cpp_min_log_level(line, hidden_from):
    for level in range(4):
        hidden = hidden_from is not None and level >= hidden_from
        assert runtime.hides_log_line(line, level) is hidden, (line, level)


_NATIVE_WRITES = (
    "import os, sys\n"
    "from keras_seresnet import runtime\n"
    "with runtime.native_log_level():\n"
    "    os.write(2, b'I0000 00:00:1.5 7 port.cc:153] info\\nW0000 00:00:1.5 7 a.cc:1] warn\\n')\n"
    "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called\\nplain ')\n"
    "    print('python line', file=sys.stderr)\n"
    "    os.write(2, b'E0000 00:00:1.5 7 b.cc:2] error\\nlast, no newline')\n"
    "print('after', file=sys.stderr)\n"
)


@pytest.mark.parametrize(
    "level, expected",
    [
        (
            "1",
            "W0000 00:00:1.5 7 a.cc:1] warn\nplain python line\nE0000 00:00:1.5 7 b.cc:2] error\n"
            "last, no newlineafter\n",
        ),
        ("3", "plain python line\nlast, no newlineafter\n"),
        (
            "0",
            "I0000 00:00:1.5 7 port.cc:153] info\nW0000 00:00:1.5 7 a.cc:1] warn\n"
            "WARNING: All log messages before absl::InitializeLog() is called\nplain python line\n"
            "E0000 00:00:1.5 7 b.cc:2] error\nlast, no newlineafter\n",
        ),
    ],
)
def test_native_log_level_drops_only_the_hidden_lines_of_fd_2(level, expected):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL=level)
    result = subprocess.run(
        [sys.executable, "-c", _NATIVE_WRITES], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == expected


def test_import_tensorflow_hides_its_start_up_lines():
    code = (
        "from keras_seresnet import runtime\nruntime.configure_process()\n"
        "print(runtime.import_tensorflow().__version__)"
    )
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    # Level 3, as configure_process() chooses without an NVIDIA driver, whatever this machine has.
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(clean, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == tf.__version__
    assert result.stderr == ""  # TensorFlow 2.21 writes 6 lines here without the filter
