"""Strategies, mixed precision and XLA: keras_seresnet/scale.py and how train() uses it."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_seresnet import TrainConfig, build_from_config
from keras_seresnet.training import distribute as scale
from keras_seresnet.training.checkpoint import load_checkpoint
from keras_seresnet.training.history import read_history_csv
from keras_seresnet.training.loop import compile_model, default_out_dir, train
from tests.tiny_model import TINY_MODEL, TINY_MODEL_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FILES = ["best.keras", "config.json", "final.keras", "history.csv", "plots", "results.json"]
# A graph that traces fast; no colour jitter or crop, whose XLA compilation
# would double each run's time (the host's augmentation is not what these
# tests are about; tests/test_pipeline.py covers it).
TINY = dict(TINY_MODEL, batch_size=8, warmup_epochs=0, epochs=2, color_jitter=False, crop_padding=0)
TINY_FLAGS = [
    "--batch-size",
    "8",
    *TINY_MODEL_FLAGS,
    "--warmup-epochs",
    "0",
    "--epochs",
    "2",
    "--no-color-jitter",
    "--crop-padding",
    "0",
]
ENV = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")


def tf_config(index, ports):
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "TF_CONFIG environment variable, which is not set"),
        ("{not json", "is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'has no "cluster" object'),
        (
            '{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}',
            '"host:port" addresses',
        ),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', '"task": {"type": one of'),
        (
            '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
            "task index 2, not in 0..1",
        ),
    ],
)
def test_bad_tf_config_is_named_with_an_example(value, expected):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(ValueError) as info:
        scale.read_tf_config(environ)
    assert expected in str(info.value)
    assert '"index": 1 on host2' in str(info.value)  # the example of two machines
    if value is not None:
        assert f"Received: TF_CONFIG={value!r}" in str(info.value)


def test_good_tf_config_is_returned():
    value = scale.read_tf_config({"TF_CONFIG": tf_config(1, [2222, 2223])})
    assert value["task"] == {"type": "worker", "index": 1} and len(value["cluster"]["worker"]) == 2


def test_multiworker_without_tf_config_fails_before_tensorflow_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable, which is not set"):
        train(TrainConfig(strategy="multiworker"), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_default_strategy_is_one_chief_replica_and_collectives_are_identities():
    strategy = scale.make_strategy("default")
    assert strategy.num_replicas_in_sync == 1 and scale.is_chief(strategy)
    assert scale.describe_worker(strategy) is None
    np.testing.assert_array_equal(
        scale.broadcast_from_chief(strategy, [3, 2**40 + 1]), [3, 2**40 + 1]
    )
    assert scale.all_workers(strategy, True) and not scale.all_workers(strategy, False)
    scale.check_xla(strategy, True)  # one device: XLA allowed
    with pytest.raises(ValueError, match="Received: name='tpu'"):
        scale.make_strategy("tpu")


def test_precision_policy_sets_and_restores_the_global_policy():
    with scale.precision_policy("mixed_float16"):
        model = build_from_config(TrainConfig(**TINY))
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert model.get_layer("logits").compute_dtype == "float32"
    assert {w.dtype for w in model.weights} == {"float32"}
    assert model(np.zeros((2, 32, 32, 3), np.float32)).dtype == "float32"
    with pytest.raises(ValueError, match="Received: name='float16'"):
        with scale.precision_policy("float16"):
            pass


@pytest.fixture(scope="module")
def bfloat16_run(tmp_path_factory, tiny_image_tree):
    """One epoch under mixed_bfloat16 (slow on CPU, but it runs)."""
    config = TrainConfig(
        **dict(TINY, epochs=1), data_dir=str(tiny_image_tree), mixed_precision="mixed_bfloat16"
    )
    out = tmp_path_factory.mktemp("bfloat16")
    return out, train(config, out, verbose=0), config


def test_mixed_bfloat16_run_trains_and_its_model_loads_back(bfloat16_run):
    out, result, _ = bfloat16_run
    assert np.isfinite(result.history["loss"]).all() and sorted(os.listdir(out)) == RUN_FILES
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run
    model = keras.models.load_model(out / "final.keras")
    assert model.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert (
        model.get_layer("stem_bn").compute_dtype == "bfloat16"
    )  # its statistics are float32 inside
    assert model.get_layer("logits").compute_dtype == "float32"
    assert {w.dtype for w in model.weights} == {"float32"}
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    logits = model.predict(images, verbose=0)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()


class CopyFolderAt(keras.callbacks.Callback):
    """Copies the run folder when `epoch` begins: a run killed after epoch - 1's commit."""

    def __init__(self, epoch, source, target):
        super().__init__()
        self.epoch, self.source, self.target = epoch, source, target

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.source, self.target)


@pytest.mark.slow
def test_mixed_float16_resumes_with_its_loss_scale_optimizer_state(tiny_image_tree, tmp_path):
    config = TrainConfig(**TINY, data_dir=str(tiny_image_tree), mixed_precision="mixed_float16")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    reference = train(config, whole, callbacks=[CopyFolderAt(1, whole, cut)], verbose=0)
    with scale.precision_policy("mixed_float16"):
        checkpoint = compile_model(build_from_config(config), config)
        checkpoint.optimizer.build(checkpoint.trainable_variables)
    load_checkpoint(checkpoint, next((cut / "checkpoint").glob("epoch-*.npz")))
    optimizer = checkpoint.optimizer
    assert type(optimizer).__name__ == "LossScaleOptimizer"
    assert int(optimizer.iterations.numpy()) == 3  # 20 images in batches of 8
    assert float(optimizer.dynamic_scale.numpy()) > 1
    assert any(np.abs(v.numpy()).max() > 0 for v in optimizer.variables if "momentum" in v.path)
    # Resumed from the copy in the same process: epoch 1 as without the cut.
    resumed = train(config, cut, verbose=0)
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(resumed.history[column], reference.history[column], rtol=1e-5)


def test_a_run_continues_with_other_execution_fields_but_not_another_precision(bfloat16_run):
    out, result, config = bfloat16_run
    again = train(dataclasses.replace(config, strategy="mirrored", jit=False), out, verbose=0)
    assert again.results == result.results  # the same run, reported as finished
    assert default_out_dir(config) == default_out_dir(
        dataclasses.replace(config, strategy="multiworker")
    )
    with pytest.raises(
        ValueError, match="mixed_precision: 'mixed_bfloat16' in the folder, 'off' requested"
    ):
        train(dataclasses.replace(config, mixed_precision="off"), out, verbose=0)


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_equals_one_device():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "mirrored_check.py")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["replicas"] == 2
    # Keras splits the host's batches: the replicas' shares put back together
    # are the one-device batches, and an alpha assigned after the dataset was
    # distributed reaches the mixing (E[lambda (1 - lambda)] 0.244 vs 0.0096).
    assert report["same_batches"]
    assert abs(report["spread_wide"] - 20 / 82) < 0.02 and report["spread_narrow"] < 0.05
    # Two steps (one per epoch, lr and alpha changing in between) on two
    # replicas with synchronised BatchNorm equal one device's up to float32
    # rounding: the gradient sums are reassociated, synchronised BatchNorm
    # uses a one-pass variance, and one device runs the fused BatchNorm
    # kernel (keras_seresnet.models.layers) with oneDNN convolutions. Measured
    # 1.2e-7 with the same kernels on both sides, 1.7e-5 with these, for
    # weights up to ~0.6. Unsynchronised BatchNorm differs by 2e-3 to 8e-3.
    for step in report["steps"]:
        assert step["max_abs"] < 1e-4, report
    np.testing.assert_allclose(report["losses"]["mirrored"], report["losses"]["default"], rtol=1e-5)
    assert "--jit (XLA) cannot run across the 2 CPU devices" in report["jit_error"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_resume_the_chiefs_run_and_only_the_chief_writes(tiny_image_tree, tmp_path):
    # Dropout off: replicas draw other masks than one device (see scale.py).
    config = TrainConfig(**TINY, data_dir=str(tiny_image_tree), dropout=0.0)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    reference = train(config, whole, callbacks=[CopyFolderAt(1, whole, cut)], verbose=0)

    # Two worker processes on loopback ports resume the copy (killed after
    # epoch 0) with the same command line; only worker 0 (the chief) sees
    # the checkpoint's epoch and weights, worker 1 gets them from the chief.
    command = [
        sys.executable,
        os.path.join(ROOT, "scripts", "train.py"),
        "--data-dir",
        str(tiny_image_tree),
        "--out",
        str(cut),
        "--quiet",
        "--strategy",
        "multiworker",
        "--dropout",
        "0",
        *TINY_FLAGS,
    ]
    ports = free_ports(2)
    scratch = tmp_path / "worker1-tmp"
    scratch.mkdir()
    workers = [
        subprocess.Popen(
            command,
            env=dict(ENV, TF_CONFIG=tf_config(i, ports), TMPDIR=str(scratch)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:  # a worker whose peer died would wait for it
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    assert f"Resuming the run in {cut} at epoch 2/2" in outputs[0]
    assert "This is worker 1 of 2 (2 replicas), not the chief" in outputs[1]
    assert "epoch 2/2:" in outputs[1]  # worker 1 resumed at the chief's epoch too
    assert os.listdir(scratch) == []  # its temporary folder is gone

    assert sorted(os.listdir(cut)) == RUN_FILES
    history = read_history_csv(cut / "history.csv")
    assert history["epoch"] == [0, 1]
    # Epoch 1 on two workers from the chief's checkpoint = one device going
    # on, up to rounding: measured 1e-7 relative in the losses, 5.5e-6 in the
    # weights (conv kernels up to 0.12). Were worker 1 to keep its own fresh
    # weights, the epoch's loss would differ by 1.2%.
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            history[column], reference.history[column], rtol=1e-5, err_msg=column
        )
    final = keras.models.load_model(cut / "final.keras")
    expected = keras.models.load_model(whole / "final.keras")
    for a, b in zip(final.weights, expected.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=5e-5, err_msg=a.path)
