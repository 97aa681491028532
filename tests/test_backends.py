"""Keras 3 backends: the model, TorchSGD and the loss train identically under JAX and PyTorch; train() runs there (and resumes under JAX); tf.distribute says it is TensorFlow's."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seresnet import TrainConfig, build_from_config
from keras_seresnet.training.history import read_history_csv
from keras_seresnet.training.run_folder import FAULT_ENV
from tests.tiny_model import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Two stages of one block, SE in the second: a model JAX compiles fast. SE
# bottleneck of 4 units: with the recipe's reduction 16 this width leaves one
# ReLU unit, whose sign flips with float32 rounding for some weights (then the
# second loss moves by 2.6e-4 between any two implementations, measured).
CONFIG = TrainConfig(**TINY_MODEL, se_reduction=4, dropout=0.0)

# Builds the same model, compiles it with the recipe's optimizer and loss,
# loads the weights, takes two steps on the batch; prints the losses.
_TRAIN = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from keras_seresnet import TrainConfig, build_from_config
    from keras_seresnet.training.optimizers import TorchSGD

    folder = sys.argv[1]
    config = TrainConfig.from_dict(json.load(open(folder + "/config.json")))
    model = build_from_config(config)
    model.compile(optimizer=TorchSGD(config.base_lr, config.momentum, config.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=config.label_smoothing))
    model.load_weights(folder + "/initial.weights.h5")
    batch = np.load(folder + "/batch.npz")
    losses = [float(model.train_on_batch(batch["x"], batch["y"])) for _ in range(2)]
    model.save_weights(folder + "/after.weights.h5")
    print(json.dumps({"backend": keras.backend.backend(), "losses": losses}))
""")

# A strategy of tf.distribute asked for under JAX: the error, before any work.
_REFUSAL = textwrap.dedent("""
    import json
    from keras_seresnet.training import distribute
    try:
        distribute.make_strategy("mirrored")
        print(json.dumps(None))
    except ValueError as e:
        print(json.dumps(str(e)))
""")

# train() on the arrays of a .npz file into a run folder; prints the history.
_TRAIN_RUN = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from keras_seresnet import TrainConfig, train

    folder, config = sys.argv[1], TrainConfig.from_json(sys.argv[2])
    arrays = np.load(sys.argv[3])
    data = ((arrays["x"], arrays["y"]), (arrays["x"][:8], arrays["y"][:8]))
    result = train(config, folder, data=data, verbose=0)
    print(json.dumps({"backend": keras.backend.backend(), "history": result.history}))
""")


def _run(code, *args, backend, fault=None):
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        PYTHONPATH=ROOT,
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.pop(FAULT_ENV, None)
    if fault is not None:
        env[FAULT_ENV] = fault
    if backend == "jax":
        # XLA without its backend optimisation passes: the same arithmetic,
        # compiled in a fraction of the time (measured on a 2-core AVX2 EPYC:
        # building this model, one compiled initializer per weight shape, 20 s
        # by default against 2.6 s).
        env["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
        ).strip()
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if fault is not None:  # the fault point kills the process
        assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
        return None
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_two_training_steps_under_another_backend_equal_tensorflow(tmp_path, backend):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG.to_dict()))
    keras.utils.set_random_seed(0)
    build_from_config(CONFIG).save_weights(tmp_path / "initial.weights.h5")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "batch.npz",
        x=rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32"),
        y=np.eye(10, dtype="float32")[rng.integers(0, 10, 16)],
    )
    reports, weights = {}, {}
    for name in ("tensorflow", backend):
        reports[name] = _run(_TRAIN, tmp_path, backend=name)
        assert reports[name]["backend"] == name
        model = build_from_config(CONFIG)
        model.load_weights(tmp_path / "after.weights.h5")
        weights[name] = [w.numpy() for w in model.weights]
    # Measured: losses within 3.1e-7 relative (JAX) and 1.0e-7 (PyTorch);
    # after two steps the weights (up to ~1) within 2.7e-7 (JAX) and 1.3e-7
    # (PyTorch) here, 1.3e-4 for a four-stage model under JAX: TensorFlow's
    # fused BatchNorm and the other backends' reductions sum the gradients of
    # 16 x 32 x 32 terms in other orders.
    np.testing.assert_allclose(
        reports[backend]["losses"], reports["tensorflow"]["losses"], rtol=1e-5
    )
    assert (
        reports[backend]["losses"][1] != reports[backend]["losses"][0]
    )  # the first step changed the weights
    for a, b in zip(weights[backend], weights["tensorflow"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-4)


def test_a_tf_distribute_strategy_is_refused_under_jax_in_one_line():
    message = _run(_REFUSAL, backend="jax")
    assert message == (
        "Config field `strategy` must be 'default' under Keras's jax backend: "
        "'mirrored' is a tf.distribute strategy, which needs "
        "KERAS_BACKEND=tensorflow. Received: strategy='mirrored'"
    )


def _two_epoch_run_inputs(folder):
    """The JSON config of a two-epoch tiny run, and its 16 images in `folder/data.npz`."""
    rng = np.random.default_rng(0)
    np.savez(
        folder / "data.npz",
        x=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
        y=np.arange(16) % 10,
    )
    return TrainConfig(**TINY_MODEL, batch_size=8, epochs=2, warmup_epochs=0).to_json()


def test_train_under_jax_resumes_a_killed_run_to_the_uninterrupted_result(tmp_path):
    config = _two_epoch_run_inputs(tmp_path)
    reference = _run(
        _TRAIN_RUN, tmp_path / "reference", config, tmp_path / "data.npz", backend="jax"
    )
    assert reference["backend"] == "jax" and len(reference["history"]["loss"]) == 2
    _run(
        _TRAIN_RUN,
        tmp_path / "run",
        config,
        tmp_path / "data.npz",
        backend="jax",
        fault="after-step:1:1",
    )  # killed in the second epoch
    assert len(read_history_csv(tmp_path / "run" / "history.csv")["epoch"]) == 1
    resumed = _run(_TRAIN_RUN, tmp_path / "run", config, tmp_path / "data.npz", backend="jax")
    for column in ("loss", "accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            resumed["history"][column], reference["history"][column], rtol=1e-5, err_msg=column
        )


def test_train_under_torch_runs_two_epochs_into_a_run_folder(tmp_path):
    config = _two_epoch_run_inputs(tmp_path)
    report = _run(_TRAIN_RUN, tmp_path / "run", config, tmp_path / "data.npz", backend="torch")
    assert report["backend"] == "torch"
    history = report["history"]
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"]))
    assert history["learning_rate"][0] > history["learning_rate"][1] > 0  # the cosine ran
    written = read_history_csv(tmp_path / "run" / "history.csv")
    np.testing.assert_allclose(written["test_accuracy"], history["test_accuracy"])
    assert (tmp_path / "run" / "final.keras").is_file()
