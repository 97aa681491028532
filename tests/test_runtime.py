"""Process settings: importing the package changes nothing; configure_process() makes the settings."""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_seresnet import runtime
from keras_seresnet.runtime import SPEEDUPS_ENV
from tests.tiny_model import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", SPEEDUPS_ENV)

# Prints the process state the package must not change: the environment,
# TensorFlow's optimizer options and Pillow's decompression-bomb limit.
_REPORT = ("import json, os, PIL.Image, tensorflow as tf; "
           "print(json.dumps({'environ': dict(os.environ), "
           "'options': {k: str(v) for k, v in tf.config.optimizer.get_experimental_options().items()}, "
           "'max_pixels': PIL.Image.MAX_IMAGE_PIXELS}))")


def _child(code, **env):
    """Runs `code` then the report in a new Python without the settings, plus `env`; returns the report."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    clean.update({"PYTHONPATH": ROOT, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", **env})
    result = subprocess.run([sys.executable, "-c", f"{code}\n{_REPORT}"], env=clean,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_and_using_the_package_changes_nothing_in_the_process():
    bare = _child("import keras")
    used = _child("import keras_seresnet\n"
                  "from keras_seresnet.inference import loading, predict\n"
                  "from keras_seresnet.data import images, pipeline\n"
                  "from keras_seresnet.training import loop\n"
                  f"m = keras_seresnet.build_seresnet(**{TINY_MODEL!r})\n"
                  "keras_seresnet.TrainConfig()")
    assert used["environ"] == bare["environ"]
    assert used["options"] == bare["options"]
    assert used["max_pixels"] == bare["max_pixels"]


def test_configure_process_makes_the_settings_and_keeps_the_users():
    configured = _child("from keras_seresnet import runtime; runtime.configure_process()",
                        TF_CPP_MIN_LOG_LEVEL="1")
    assert configured["environ"]["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert configured["environ"]["KERAS_BACKEND"] == "tensorflow"
    assert configured["environ"]["TF_CPP_MIN_LOG_LEVEL"] == "1"  # the user's value is kept
    # Grappler keeps its defaults (the remapping pass is no longer turned off).
    assert configured["options"] == _child("import keras")["options"]


def test_speedups_off_makes_no_onednn_setting():
    off = _child("from keras_seresnet import runtime; runtime.configure_process()", **{SPEEDUPS_ENV: "0"})
    assert "TF_ENABLE_ONEDNN_OPTS" not in off["environ"]


def test_log_level_default_hides_errors_only_without_an_nvidia_driver(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv(SPEEDUPS_ENV, "0")  # nothing but the environment
    for present, level in ((True, "2"), (False, "3")):
        monkeypatch.setattr(runtime, "has_nvidia_driver", lambda: present)
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
        runtime.configure_process()
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == level


@pytest.mark.parametrize("value, enabled", [(None, True), ("1", True), ("0", False), ("off", False),
                                            (" False ", False), ("no", False)])
def test_speedups_enabled_reads_the_environment(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(SPEEDUPS_ENV, raising=False)
    else:
        monkeypatch.setenv(SPEEDUPS_ENV, value)
    assert runtime.speedups_enabled() is enabled


def test_require_tensorflow_passes_under_tensorflow():
    assert keras.backend.backend() == "tensorflow"
    runtime.require_tensorflow("The tf.data pipeline")


def test_fuse_batch_norm_is_kept_and_changes_nothing():
    from keras_seresnet import build_seresnet

    model = build_seresnet(**TINY_MODEL)
    config = model.get_config()
    assert runtime.fuse_batch_norm(model) is model
    assert model.get_config() == config
