"""Ctrl-C and SIGTERM stop keras-seresnet-train in every phase, even where Python would swallow them.

The command tests run it in a subprocess on a 30-image tree with the tiny
model; the signal comes from the fault hook at a named point
(`run_folder.fault_point`), never from a timer. The interrupted folder is then
resumed in this process, as a user reruns the command. The block itself
(`interrupts.signals_interrupt`) is tested here, in the main thread.
"""

import gc
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from keras_seresnet.interrupts import Interrupted, signals_interrupt
from keras_seresnet.training.run_folder import FAULT_ENV
from tests.tiny_model import TINY_MODEL_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 2
# The fault point of each phase: the images being decoded, Keras tracing the
# first training step, the first step of the second epoch (epoch 0 committed).
PHASES = {"decode": "decode", "trace": "trace", "epoch": "after-step:1:1"}


@pytest.fixture
def fresh_tree(tiny_image_tree, tmp_path):
    """A copy of the tiny tree without a decoded cache, so that the command decodes it."""
    return shutil.copytree(
        tiny_image_tree, tmp_path / "tree", ignore=shutil.ignore_patterns(".keras_seresnet_cache")
    )


def _command(tree, out):
    return [
        sys.executable,
        os.path.join(ROOT, "scripts", "train.py"),
        "--data-dir",
        str(tree),
        "--epochs",
        str(EPOCHS),
        "--out",
        str(out),
        "--quiet",
        "--batch-size",
        "8",
        "--warmup-epochs",
        "0",
        *TINY_MODEL_FLAGS,
    ]


def _interrupted(command, fault, backend="tensorflow"):
    env = dict(
        os.environ,
        PYTHONPATH=ROOT,
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        KERAS_BACKEND=backend,
        JAX_PLATFORMS="cpu",
        **{FAULT_ENV: fault},
    )
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _assert_stopped_with_one_line(result, out):
    assert result.returncode == 130, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"train.py: interrupted. Run the same command again to resume from the last finished "
        f"epoch ({out})."
    ), result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, (
        result.stderr
    )


def _assert_rerun_finishes(command, capsys):
    """The same command, run again here (without a second TensorFlow start), finishes the run."""
    from keras_seresnet.cli import train as train_command

    capsys.readouterr()
    assert train_command.main(command[2:]) == 0, capsys.readouterr()
    assert "Finished: test accuracy" in capsys.readouterr().out
    out = command[command.index("--out") + 1]
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
        assert json.load(f)["epochs_trained"] == EPOCHS


def _assert_stopped_in(phase, out, stdout):
    """Where the run stood: no folder before training starts, nothing or epoch 0 committed after."""
    state = out / "checkpoint" / "state.json"
    if phase == "decode":
        assert not out.exists() and "Starting a run" not in stdout
    elif phase == "trace":
        assert "Starting a run" in stdout and not state.exists()
    else:
        assert json.loads(state.read_text())["epoch"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_command_in_every_phase_and_the_rerun_finishes(
    signal_name, phase, fresh_tree, tmp_path, capsys, no_process_settings
):
    out = tmp_path / "run"
    command = _command(fresh_tree, out)
    result = _interrupted(command, f"{PHASES[phase]}:{signal_name}")
    _assert_stopped_with_one_line(result, out)
    _assert_stopped_in(phase, out, result.stdout)
    _assert_rerun_finishes(command, capsys)


@pytest.mark.slow
@pytest.mark.parametrize(
    "phase, backend", [("decode", "tensorflow"), ("trace", "tensorflow"), ("trace", "jax")]
)
def test_ctrl_c_inside_a_gc_callback_still_stops_the_command(
    phase, backend, fresh_tree, tmp_path, capsys, no_process_settings
):
    # SIGINT arrives while a gc.callbacks callback runs, as with JAX's
    # _xla_gc_callback: Python's own handler raises KeyboardInterrupt there,
    # reports it as "Exception ignored in: <function ...>" and goes on training.
    # Under JAX the interrupt sent again may land in _xla_gc_callback itself,
    # or in Keras's bare `except:` around its check of the model's inputs.
    out = tmp_path / "run"
    command = _command(fresh_tree, out)
    result = _interrupted(command, f"{PHASES[phase]}:SIGINT-in-gc", backend)
    _assert_stopped_with_one_line(result, out)
    _assert_rerun_finishes(command, capsys)


class _Stopped(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_block_raises_its_error_and_restores_the_handlers_and_the_hook(signum):
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook)
    with pytest.raises(_Stopped, match=signal.Signals(signum).name):
        with signals_interrupt(lambda received: _Stopped(signal.Signals(received).name)):
            signal.raise_signal(signum)
    assert (
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
        sys.unraisablehook,
    ) == before


def test_an_interrupt_dropped_by_a_gc_callback_or_a_bare_except_is_raised_again(capsys):
    def callback(phase, info):
        if phase == "start":
            signal.raise_signal(signal.SIGINT)

    for drop in ("gc callback", "bare except"):
        with pytest.raises(Interrupted):
            with signals_interrupt():
                if drop == "gc callback":
                    gc.callbacks.append(callback)
                    try:
                        gc.collect()
                    finally:
                        gc.callbacks.remove(callback)
                else:
                    try:
                        signal.raise_signal(signal.SIGINT)
                    except:  # noqa: E722 (the library code this test stands for)
                        pass
        assert "Exception ignored" not in capsys.readouterr().err
