"""train(), scripts/train.py and resuming, on a tiny model and a 30-image tree."""

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_seresnet import TrainConfig, build_from_config
from keras_seresnet.data import pipeline
from keras_seresnet.training.callbacks import WarmupCosineLearningRate
from keras_seresnet.training.run_folder import RunFolderError, read_history_csv
from keras_seresnet.training.loop import (
    TrainingDivergedError,
    copy_matching_weights,
    default_out_dir,
    epoch_seed,
    resolve_config,
    train,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FILES = ["best.keras", "config.json", "final.keras", "history.csv", "plots", "results.json"]
EPOCHS = 2
# Two stages of one block, SE in the second: a graph that traces fast. No
# warmup, so two epochs already show the cosine: lr 0.1, then 0.0505.
TINY = dict(widths=(8, 16), blocks=(1, 1), se_stages=(2,), batch_size=8, warmup_epochs=0)
TINY_FLAGS = [
    "--batch-size", "8", "--widths", "8", "16", "--blocks", "1", "1", "--se-stages", "2",
    "--warmup-epochs", "0",
]


def tiny_config(tree, **changes):
    values = dict(TINY, data_dir=str(tree), epochs=EPOCHS)
    values.update(changes)
    return TrainConfig(**values)


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Probe(keras.callbacks.Callback):
    """Counts the traces of the train step after each fit and keeps the last weights."""

    def set_model(self, model):
        super().set_model(model)
        self.traces, self.traces_after_fit = 0, []
        train_step = model.train_step

        def counting_train_step(data):
            self.traces += 1  # Python runs only while TensorFlow traces
            return train_step(data)

        model.train_step = counting_train_step

    def on_train_end(self, logs=None):
        self.traces_after_fit.append(self.traces)
        self.weights = [w.numpy().copy() for w in self.model.weights]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_image_tree):
    out = tmp_path_factory.mktemp("runs") / "run"
    probe = Probe()
    builds = []
    with pytest.MonkeyPatch.context() as patch:
        build = pipeline.make_train_dataset
        patch.setattr(pipeline, "make_train_dataset", lambda *a, **k: builds.append(1) or build(*a, **k))
        result = train(tiny_config(tiny_image_tree), out, callbacks=[probe], verbose=0)
    probe.dataset_builds = len(builds)
    return out, result, probe


def test_run_folder_holds_exactly_the_documented_files(finished_run, tiny_image_tree):
    out, result, _ = finished_run
    assert sorted(os.listdir(out)) == RUN_FILES
    assert sorted(os.listdir(out / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == EPOCHS and config["warmup_epochs"] == 0
    assert TrainConfig.from_dict(config) == resolve_config(tiny_config(tiny_image_tree))


def test_history_csv_has_one_row_per_epoch_with_the_schedules(finished_run):
    out, result, _ = finished_run
    history = read_history_csv(out / "history.csv")
    assert history["epoch"] == list(range(EPOCHS))
    for column in ("learning_rate", "mixup_alpha", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(history[column]) == EPOCHS and np.isfinite(history[column]).all(), column
    schedule = WarmupCosineLearningRate(epochs=EPOCHS, warmup_epochs=0)
    assert history["learning_rate"] == [schedule.value_at(e) for e in range(EPOCHS)]
    assert history["learning_rate"] == pytest.approx([0.1, 0.0505])
    assert history["mixup_alpha"] == pytest.approx([0.4, 0.2])
    assert result.history["val_accuracy"] == history["val_accuracy"]


def test_results_are_the_final_epochs_test_metrics_and_models_load(finished_run):
    out, result, probe = finished_run
    results = json.loads((out / "results.json").read_text())
    assert results == result.results
    history = read_history_csv(out / "history.csv")
    assert results["test_accuracy"] == history["val_accuracy"][-1]
    assert results["test_loss"] == history["val_loss"][-1]
    assert results["best_test_accuracy"] == max(history["val_accuracy"])
    assert history["val_accuracy"][results["best_epoch"]] == max(history["val_accuracy"])
    assert (results["epochs_trained"], results["train_images"], results["test_images"]) == (EPOCHS, 20, 10)
    final = keras.models.load_model(out / "final.keras")
    for saved, live in zip(final.weights, probe.weights):
        np.testing.assert_array_equal(saved.numpy(), live)


def test_per_epoch_fits_reuse_the_first_trace_and_the_dataset(finished_run):
    traces = finished_run[2].traces_after_fit
    assert len(traces) == EPOCHS and traces[0] >= 1 and traces[0] == traces[-1]
    assert finished_run[2].dataset_builds == 1  # its epoch variable moves on, no rebuild


def test_finished_run_is_reported_not_retrained(finished_run, tiny_image_tree, capsys):
    out, result, _ = finished_run
    stamp = os.stat(out / "final.keras").st_mtime_ns
    again = train(tiny_config(tiny_image_tree), out)
    printed = capsys.readouterr().out
    assert "already finished" in printed and "test accuracy" in printed
    assert again.results == result.results
    assert os.stat(out / "final.keras").st_mtime_ns == stamp


def test_another_config_in_the_same_folder_is_refused(finished_run, tiny_image_tree):
    out = finished_run[0]
    with pytest.raises(RunFolderError, match=r"epochs: 2 in the folder, 4 requested.*--overwrite"):
        train(tiny_config(tiny_image_tree, epochs=4), out, verbose=0)


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_nothing_of_it(tiny_image_tree, tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"epoch 1/\d+ at batch \d+/3.*Lower the learning rate"):
        train(tiny_config(tiny_image_tree, base_lr=1e30, epochs=1), tmp_path, verbose=0)
    assert not (tmp_path / "checkpoint").exists() and not (tmp_path / "history.csv").exists()


def test_epoch_seeds_are_distinct_and_stable():
    seeds = [epoch_seed(0, e) for e in range(250)] + [epoch_seed(1, e) for e in range(250)]
    assert len(set(seeds)) == 500 and all(0 <= s < 2**31 for s in seeds)
    assert epoch_seed(0, 5) == epoch_seed(0, 5)


def test_default_out_dir_is_deterministic_and_config_specific():
    assert default_out_dir(TrainConfig()) == default_out_dir(TrainConfig(warmup_epochs=15))
    assert default_out_dir(TrainConfig()).startswith(os.path.join("saved_models", "seresnet-e250-seed0-"))
    assert default_out_dir(TrainConfig()) != default_out_dir(TrainConfig(use_se=False))


def test_model_5_takes_every_weight_it_shares_with_model_1():
    keras.utils.set_random_seed(1)
    full = build_from_config(TrainConfig(**TINY))
    keras.utils.set_random_seed(2)
    no_se = build_from_config(TrainConfig(**TINY, use_se=False))
    copied, not_found = copy_matching_weights(full, no_se)
    assert not_found == []
    assert len(copied) == len([layer for layer in no_se.layers if layer.weights])
    for layer in no_se.layers:
        for a, b in zip(layer.weights, full.get_layer(layer.name).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="No layer of the initial weights"):
        copy_matching_weights(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), no_se)


def one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_script_bad_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        load_script("train").main(["--epochs", "0"])
    assert info.value.code == 2
    assert "argument --epochs" in one_error_line(capsys)


def test_script_missing_data_dir_is_one_line(capsys, tmp_path):
    rc = load_script("train").main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert rc == 1
    assert "nowhere" in one_error_line(capsys)


def test_script_refuses_a_folder_of_another_config(capsys, tmp_path, tiny_image_tree):
    (tmp_path / "config.json").write_text(TrainConfig(epochs=7).to_json())
    rc = load_script("train").main(["--data-dir", str(tiny_image_tree), "--epochs", "2", "--out", str(tmp_path)])
    assert rc == 1
    err = one_error_line(capsys)
    assert "epochs: 7 in the folder, 2 requested" in err and "--overwrite" in err


def _wait_for(predicate, proc, timeout):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the training process ended before the kill"
        assert time.monotonic() < deadline, "timed out waiting for the training process"
        time.sleep(0.05)


def _committed_epoch(out):
    """After a kill: state.json is whole and names files that exist."""
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert [row["epoch"] for row in state["history"]] == list(range(state["epoch"] + 1))
    for key in ("model_file", "best_file"):
        assert (out / "checkpoint" / state[key]).exists()
    return state["epoch"]


@pytest.mark.slow
def test_sigkilled_script_resumes_to_the_uninterrupted_result(finished_run, tiny_image_tree, tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--data-dir", str(tiny_image_tree),
        "--epochs", str(EPOCHS), "--out", str(out), "--quiet", *TINY_FLAGS,
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")

    # SIGKILL at a random moment after epoch 0's checkpoint exists: mid-epoch,
    # mid-commit, while plotting, or between two writes.
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(lambda: (out / "checkpoint" / "state.json").exists(), proc, timeout=300)
        time.sleep(random.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_after = _committed_epoch(out)

    # The same command resumes after the last committed epoch and finishes.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    if killed_after < EPOCHS - 1:
        assert f"Resuming the run in {out} at epoch {killed_after + 2}/{EPOCHS}" in result.stdout
    assert "Finished: test accuracy" in result.stdout and "Traceback" not in result.stderr
    assert sorted(os.listdir(out)) == RUN_FILES
    history = read_history_csv(out / "history.csv")
    assert history["epoch"] == list(range(EPOCHS))
    schedule = WarmupCosineLearningRate(epochs=EPOCHS, warmup_epochs=0)
    assert history["learning_rate"] == [schedule.value_at(e) for e in range(EPOCHS)]
    # Killed, resumed in a new process, yet the same numbers as the
    # uninterrupted in-process run: same data order, augmentation, dropout and
    # optimizer state (CPU kernels are deterministic here).
    reference = finished_run[1].history
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[column], reference[column], rtol=1e-5, err_msg=column)
    results = json.loads((out / "results.json").read_text())
    assert results["test_accuracy"] == history["val_accuracy"][-1]
