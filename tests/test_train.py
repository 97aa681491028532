"""train(), scripts/train.py and resuming, on a tiny model and a 30-image tree."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_seresnet import TrainConfig, build_from_config
from keras_seresnet.config import ConfigError
from keras_seresnet.data import pipeline
from keras_seresnet.data.cifar10 import load_cifar10
from keras_seresnet.inference.evaluate import evaluate_model
from keras_seresnet.training.callbacks import EpochSeed, WarmupCosineLearningRate, epoch_seed
from keras_seresnet.training.history import read_history_csv
from keras_seresnet.training.loop import (
    TrainingDivergedError,
    copy_matching_weights,
    default_out_dir,
    resolve_config,
    train,
    validation_split,
)
from keras_seresnet.training.loop_callbacks import CommitEpoch
from keras_seresnet.training.run_folder import FAULT_ENV, RunFolderError
from tests.tiny_model import TINY_MODEL, TINY_MODEL_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FILES = ["best.keras", "config.json", "final.keras", "history.csv", "plots", "results.json"]
EPOCHS = 2
# Two stages of one block, SE in the second: a graph that traces fast. No
# warmup, so two epochs already show the cosine: lr 0.1, then 0.0505.
TINY = dict(TINY_MODEL, batch_size=8, warmup_epochs=0)
TINY_FLAGS = [
    "--batch-size",
    "8",
    *TINY_MODEL_FLAGS,
    "--warmup-epochs",
    "0",
]


def tiny_config(tree, **changes):
    values = dict(TINY, data_dir=str(tree), epochs=EPOCHS)
    values.update(changes)
    return TrainConfig(**values)


def load_script(name):
    spec = importlib.util.spec_from_file_location(
        f"script_{name}", os.path.join(ROOT, "scripts", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Probe(keras.callbacks.Callback):
    """Counts fit's hooks and the traces of the train step per epoch; keeps the last weights."""

    def set_model(self, model):
        super().set_model(model)
        self.traces, self.traces_after_epoch, self.calls = 0, [], []
        train_step = model.train_step

        def counting_train_step(data):
            self.traces += 1  # Python runs only while TensorFlow traces
            return train_step(data)

        model.train_step = counting_train_step

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_end(self, epoch, logs=None):
        self.traces_after_epoch.append(self.traces)

    def on_train_end(self, logs=None):
        self.calls.append("train_end")
        self.weights = [w.numpy().copy() for w in self.model.weights]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_image_tree):
    out = tmp_path_factory.mktemp("runs") / "run"
    probe = Probe()
    builds = []
    with pytest.MonkeyPatch.context() as patch:
        build = pipeline.make_train_dataset
        patch.setattr(
            pipeline, "make_train_dataset", lambda *a, **k: builds.append(1) or build(*a, **k)
        )
        result = train(tiny_config(tiny_image_tree), out, callbacks=[probe], verbose=0)
    probe.dataset_builds = len(builds)
    return out, result, probe


def test_flip_tta_accuracy_of_the_final_model_is_in_the_results(finished_run, tiny_image_tree):
    out, result, _ = finished_run
    (_, _), (x_test, y_test) = load_cifar10(tiny_image_tree)
    evaluation = evaluate_model(str(out / "final.keras"), x_test, y_test, tta=True, verbose=0)
    assert result.results["test_accuracy_tta"] == evaluation["tta"]["accuracy"]


def test_with_a_weight_average_the_evaluation_and_final_model_are_the_average(tmp_path):
    # The per-epoch evaluation sees the averaged weights (SwapEMAWeights) and
    # `fit` leaves them in the model: final.keras scores what the last row says.
    data = tiny_arrays()
    config = TrainConfig(**TINY, epochs=2, use_ema=True, ema_momentum=0.9, nesterov=True)
    result = train(config, tmp_path / "run", data=data, verbose=0)
    final = keras.models.load_model(tmp_path / "run" / "final.keras")
    final.compile(
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        )
    )
    (x_test, y_test) = data[1]
    loss = final.evaluate(x_test.astype("float32"), keras.ops.one_hot(y_test, 10), verbose=0)
    assert loss == pytest.approx(result.history["test_loss"][-1], rel=1e-5)
    plain = train(
        TrainConfig(**TINY, epochs=2, nesterov=True), tmp_path / "plain", data=data, verbose=0
    )
    assert plain.history["loss"] == result.history["loss"]  # the average changes no step
    assert plain.history["test_loss"][-1] != pytest.approx(loss, rel=1e-5)


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
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert header == [
        "epoch",
        "learning_rate",
        "mixup_alpha",
        "loss",
        "accuracy",
        "test_loss",
        "test_accuracy",
        "seconds",
    ]  # the per-epoch evaluation is on the test set
    for column in header:
        assert len(history[column]) == EPOCHS and np.isfinite(history[column]).all(), column
    schedule = WarmupCosineLearningRate(epochs=EPOCHS, warmup_epochs=0)
    assert history["learning_rate"] == [schedule.value_at(e) for e in range(EPOCHS)]
    assert history["learning_rate"] == pytest.approx([0.1, 0.0505])
    assert history["mixup_alpha"] == pytest.approx([0.4, 0.2])
    assert result.history["test_accuracy"] == history["test_accuracy"]
    # The old names keep working for code that reads them.
    assert history["val_accuracy"] == result.history["val_accuracy"] == history["test_accuracy"]


def test_results_are_the_final_epochs_test_metrics_and_models_load(finished_run):
    out, result, probe = finished_run
    results = json.loads((out / "results.json").read_text())
    assert results == result.results
    history = read_history_csv(out / "history.csv")
    assert results["test_accuracy"] == history["test_accuracy"][-1]
    assert results["test_loss"] == history["test_loss"][-1]
    assert results["best_test_accuracy"] == max(history["test_accuracy"])
    assert result.run_results.monitor == "test_accuracy"
    assert (
        results["best_accuracy"]
        == result.run_results.best_accuracy
        == results["best_test_accuracy"]
    )
    assert history["test_accuracy"][results["best_epoch"]] == max(history["test_accuracy"])
    assert (results["epochs_trained"], results["train_images"], results["test_images"]) == (
        EPOCHS,
        20,
        10,
    )
    final = keras.models.load_model(out / "final.keras")
    for saved, live in zip(final.weights, probe.weights):
        np.testing.assert_array_equal(saved.numpy(), live)


def test_one_fit_for_the_run_reuses_the_first_trace_and_the_dataset(finished_run):
    probe = finished_run[2]
    assert probe.calls == ["train_begin", "train_end"]  # user callbacks see one fit
    traces = probe.traces_after_epoch
    assert len(traces) == EPOCHS and traces[0] >= 1 and traces[0] == traces[-1]
    assert probe.dataset_builds == 1  # its epoch variable moves on, no rebuild


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
    with pytest.raises(
        TrainingDivergedError, match=r"epoch 1/\d+ at batch \d+/3.*Lower the learning rate"
    ):
        train(tiny_config(tiny_image_tree, base_lr=1e30, epochs=1), tmp_path, verbose=0)
    assert not (tmp_path / "checkpoint").exists() and not (tmp_path / "history.csv").exists()


def test_epoch_seeds_are_distinct_and_stable():
    seeds = [epoch_seed(0, e) for e in range(250)] + [epoch_seed(1, e) for e in range(250)]
    assert len(set(seeds)) == 500 and all(0 <= s < 2**31 for s in seeds)
    assert epoch_seed(0, 5) == epoch_seed(0, 5)


def test_default_out_dir_is_deterministic_and_config_specific():
    assert default_out_dir(TrainConfig()) == default_out_dir(TrainConfig(warmup_epochs=15))
    assert default_out_dir(TrainConfig()).startswith(
        os.path.join("saved_models", "seresnet-e250-seed0-")
    )
    assert default_out_dir(TrainConfig()) != default_out_dir(TrainConfig(use_se=False))
    assert default_out_dir(TrainConfig()) != default_out_dir(TrainConfig(val_split=5000))


def test_default_out_dir_finds_the_folders_of_earlier_versions():
    # The names the code of commit 4373dac gave (before val_split and schedule_unit existed).
    assert default_out_dir(TrainConfig()) == os.path.join(
        "saved_models", "seresnet-e250-seed0-ef97c934"
    )
    config = TrainConfig(epochs=2, data_dir="/data/cifar10", limit_train=512)
    assert default_out_dir(config) == os.path.join("saved_models", "seresnet-e2-seed0-419de296")


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


def test_script_missing_data_dir_is_one_line_and_leaves_no_folder(
    capsys, tmp_path, tiny_image_tree
):
    train_script = load_script("train")
    out = tmp_path / "run"
    # The step unit: in the epoch unit a 1-epoch run would add its short-run warning line.
    flags = ["--epochs", "1", "--schedule-unit", "step", "--quiet", *TINY_FLAGS]
    rc = train_script.main(["--data-dir", str(tmp_path / "nowhere"), "--out", str(out), *flags])
    assert rc == 1
    assert "nowhere" in one_error_line(capsys)
    assert not out.exists()
    # The corrected command is not refused: there is no folder of the failed one.
    assert train_script.main(["--data-dir", str(tiny_image_tree), "--out", str(out), *flags]) == 0
    assert sorted(os.listdir(out)) == RUN_FILES


def test_script_with_too_few_classes_for_the_labels_is_one_line_and_leaves_no_folder(
    capsys, tmp_path, tiny_image_tree
):
    out = tmp_path / "rx"
    rc = load_script("train").main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--num-classes",
            "1",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--schedule-unit",
            "step",
            "--quiet",
            *TINY_FLAGS,
        ]
    )
    assert rc == 1
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "Traceback" not in printed.err
    assert (
        "Config field `num_classes` must be greater than the data's largest label (9). "
        "Received: num_classes=1" in printed.err
    )
    assert "Starting a run" not in printed.out
    assert not out.exists()  # so the corrected command is not refused (as with a missing data dir)


def test_a_test_label_beyond_num_classes_fails_before_the_folder_exists(tmp_path):
    x = np.zeros((4, 32, 32, 3), np.uint8)
    data = ((x, np.array([0, 1, 0, 1])), (x[:2], np.array([0, 2])))
    with pytest.raises(ConfigError, match=r"largest label \(2\). Received: num_classes=2") as info:
        train(TrainConfig(**TINY, epochs=1, num_classes=2), tmp_path / "run", data=data, verbose=0)
    assert info.value.fields == ("num_classes",)
    assert not (tmp_path / "run").exists()


def test_the_script_prints_one_line_per_epoch_when_stdout_is_not_a_terminal(
    capsys, tmp_path, tiny_image_tree, no_process_settings
):
    # capsys's stdout is not a terminal, as a log file is: Keras's progress
    # bar would write a line per update there, each with its ANSI codes.
    capsys.readouterr()
    rc = load_script("train").main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "2",
            "--schedule-unit",
            "step",
            *TINY_FLAGS,
        ]
    )
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "\x1b[" not in printed.out and "/step" not in printed.out and "━" not in printed.out
    epochs = [
        line.split(":")[0] for line in printed.out.splitlines() if line.lower().startswith("epoch ")
    ]
    assert epochs == ["epoch 1/2", "epoch 2/2"], printed.out  # the summaries, no bar's "Epoch 1/2"


def test_script_with_the_default_out_leaves_no_orphan_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_script("train").main(["--data-dir", str(tmp_path / "nowhere")]) == 1
    one_error_line(capsys)
    assert os.listdir(tmp_path) == []


def test_script_refuses_a_folder_of_another_config(capsys, tmp_path, tiny_image_tree):
    (tmp_path / "config.json").write_text(TrainConfig(epochs=7).to_json())
    (tmp_path / "results.json").write_text("{}")  # a finished run: it has something to lose
    # 4 epochs: a shorter run would add its short-run warning line.
    rc = load_script("train").main(
        ["--data-dir", str(tiny_image_tree), "--epochs", "4", "--out", str(tmp_path)]
    )
    assert rc == 1
    err = one_error_line(capsys)
    assert "epochs: 7 in the folder, 4 requested" in err and "--overwrite" in err


@pytest.mark.parametrize("monitor", ["val_accuracy", "test_accuracy"])
def test_early_stopping_stops_the_run(tiny_image_tree, tmp_path, monitor):
    # min_delta=1.0: no epoch after the first improves, so patience 0 stops
    # at the end of epoch 1 (Keras never stops after epoch 0). The run prints
    # and records `test_accuracy`; Keras's name for it works too.
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=0, min_delta=1.0, mode="max")
    result = train(tiny_config(tiny_image_tree, epochs=5), tmp_path, callbacks=[stop], verbose=0)
    assert stop.stopped_epoch == 1
    assert result.results["epochs_trained"] == 2 and result.history["epoch"] == [0, 1]
    assert json.loads((tmp_path / "results.json").read_text())["epochs_trained"] == 2


@pytest.mark.parametrize(
    "changes, monitor, hint",
    [
        (
            {},
            "test_acc",
            "it logs loss, accuracy, learning_rate, seconds, val_loss, val_accuracy, "
            "mixup_alpha, test_loss, test_accuracy",
        ),
        (
            {"val_split": 10},
            "test_accuracy",
            "with a validation split the test set is evaluated once",
        ),
    ],
)
def test_a_monitor_the_run_does_not_log_is_refused_before_the_folder_exists(
    tiny_image_tree, tmp_path, changes, monitor, hint
):
    stop = keras.callbacks.EarlyStopping(monitor=monitor)
    with pytest.raises(
        ValueError,
        match=rf"EarlyStopping monitors '{monitor}', which this run "
        rf"does not log.*{re.escape(hint)}",
    ):
        train(
            tiny_config(tiny_image_tree, **changes), tmp_path / "run", callbacks=[stop], verbose=0
        )
    assert not (tmp_path / "run").exists()


def test_a_test_metric_with_keras_auto_mode_is_refused_with_the_mode_to_pass(
    tiny_image_tree, tmp_path
):
    stop = keras.callbacks.EarlyStopping(monitor="test_loss")
    with pytest.raises(
        ValueError,
        match=r"monitors 'test_loss' with mode='auto', which Keras "
        r"resolves for its own names only: pass mode='min' "
        r"\(or monitor 'val_loss'\)",
    ):
        train(tiny_config(tiny_image_tree), tmp_path / "run", callbacks=[stop], verbose=0)
    assert not (tmp_path / "run").exists()


def test_tensorboard_logs_go_into_the_run_folder(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(TrainConfig(**TINY, epochs=2, tensorboard=True), tmp_path, data=tiny_arrays(), verbose=0)
    logs = EventAccumulator(str(tmp_path / "tensorboard" / "train"), size_guidance={"tensors": 0})
    logs.Reload()
    tags = set(logs.Tags()["tensors"])
    assert {"epoch_loss", "epoch_learning_rate", "epoch_test_accuracy"} <= tags
    assert [event.step for event in logs.Tensors("epoch_loss")] == [0, 1]


def test_reduce_lr_on_plateau_scales_the_schedule(tiny_image_tree, tmp_path):
    # Epoch 1 does not improve by 1.0: the rate of epoch 2 is halved.
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_accuracy", mode="max", factor=0.5, patience=0, min_delta=1.0, min_lr=0.0
    )
    result = train(tiny_config(tiny_image_tree, epochs=3), tmp_path, callbacks=[plateau], verbose=0)
    schedule = WarmupCosineLearningRate(epochs=3, warmup_epochs=0)
    expected = [schedule.value_at(0), schedule.value_at(1), 0.5 * schedule.value_at(2)]
    assert result.history["learning_rate"] == pytest.approx(expected, rel=1e-6)
    assert (
        read_history_csv(tmp_path / "history.csv")["learning_rate"]
        == result.history["learning_rate"]
    )


def test_validation_split_is_stratified_deterministic_and_a_partition():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    train_indices, val_indices = validation_split(y, 10, seed=0)
    assert np.bincount(y[val_indices]).tolist() == [1, 2, 3, 4]
    assert sorted(np.concatenate([train_indices, val_indices]).tolist()) == list(range(100))
    again = validation_split(y, 10, seed=0)
    assert again[1].tolist() == val_indices.tolist()
    assert validation_split(y, 10, seed=1)[1].tolist() != val_indices.tolist()
    with pytest.raises(ValueError, match=r"Argument `val_split` must be an integer in \[1, 100\)"):
        validation_split(y, 100, seed=0)


def test_val_split_chooses_on_validation_and_tests_once_at_the_end(tiny_image_tree, tmp_path):
    result = train(tiny_config(tiny_image_tree, val_split=10), tmp_path, verbose=0)
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert "val_accuracy" in header and "val_loss" in header and "test_accuracy" not in header
    history = read_history_csv(tmp_path / "history.csv")
    results = result.results
    assert (results["train_images"], results["val_images"], results["test_images"]) == (10, 10, 10)
    assert results["best_val_accuracy"] == max(history["val_accuracy"])
    assert "best_test_accuracy" not in results
    assert result.run_results.monitor == "val_accuracy"
    assert result.run_results.best_accuracy == results["best_val_accuracy"]
    final = keras.models.load_model(tmp_path / "final.keras")
    final.compile(
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    (_, _), (x_test, y_test) = load_cifar10(tiny_image_tree)
    test = final.evaluate(
        x_test.astype("float32"), keras.ops.one_hot(y_test, 10), verbose=0, return_dict=True
    )
    assert results["test_accuracy"] == pytest.approx(test["accuracy"])
    assert results["test_loss"] == pytest.approx(test["loss"], rel=1e-5)


def test_a_run_folder_of_commit_4373dac_resumes(finished_run, tiny_image_tree, tmp_path):
    """The fixture: epoch 0 of the tiny run, written by the code of 4373dac (fixtures/make_run_4373dac.py)."""
    out = tmp_path / "run"
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "run_4373dac"), out)
    config = json.loads((out / "config.json").read_text())
    assert (
        "val_split" not in config
        and "best_val_accuracy" in (out / "checkpoint" / "state.json").read_text()
    )
    config["data_dir"] = str(tiny_image_tree)
    (out / "config.json").write_text(json.dumps(config))
    result = train(tiny_config(tiny_image_tree), out, verbose=0)
    assert result.history["epoch"] == [0, 1]
    assert result.results["best_test_accuracy"] == max(result.history["test_accuracy"])
    reference = finished_run[1].history
    for column in ("loss", "accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            result.history[column], reference[column], rtol=1e-5, err_msg=column
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
        *TINY_FLAGS,
    ]


def _env(**extra):
    return dict(
        os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", **extra
    )


def _resume_in_a_new_process(command):
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    return result.returncode, result.stdout, result.stderr


def _resume_in_this_process(command, capsys):
    """The command's `main` here: a process that never ran this run, without a second TF import.

    Use with the `no_process_settings` fixture, so this process's settings stay as they are.
    """
    from keras_seresnet.cli import train as train_command

    capsys.readouterr()
    returncode = train_command.main(command[2:])
    printed = capsys.readouterr()
    return returncode, printed.out, printed.err


def _assert_resumed_to_the_reference(resumed, out, reference):
    returncode, stdout, stderr = resumed
    assert returncode == 0, stdout + stderr
    assert "Finished: test accuracy" in stdout and "Traceback" not in stderr
    assert sorted(os.listdir(out)) == RUN_FILES
    assert sorted(os.listdir(out / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]
    history = read_history_csv(out / "history.csv")
    assert history["epoch"] == list(range(EPOCHS))
    best = json.loads((out / "results.json").read_text())["best_epoch"]
    assert f" at epoch {best + 1}/{EPOCHS}. Run folder: " in stdout  # 1-based, as printed per epoch
    schedule = WarmupCosineLearningRate(epochs=EPOCHS, warmup_epochs=0)
    assert history["learning_rate"] == [schedule.value_at(e) for e in range(EPOCHS)]
    # Killed, resumed from the folder alone by another process, yet the same
    # numbers as the uninterrupted run: same data order, augmentation, dropout
    # and optimizer state (CPU kernels are deterministic here).
    for column in ("loss", "accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(history[column], reference[column], rtol=1e-5, err_msg=column)
    results = json.loads((out / "results.json").read_text())
    assert results["test_accuracy"] == history["test_accuracy"][-1]
    return stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, committed",
    [
        ("after-step:0:2", None),  # mid-epoch 0: nothing committed yet
        ("mid-commit:0", None),  # epoch 0's checkpoint written, state.json not
        ("after-step:1:1", 0),
        ("mid-commit:1", 0),
        ("plots:1", 1),  # every epoch committed, drawing the final plots
        ("before-results", 1),  # final.keras written, results.json not
    ],
)
def test_a_run_killed_at_a_named_point_resumes_to_the_uninterrupted_result(
    point, committed, finished_run, tiny_image_tree, tmp_path, capsys, no_process_settings
):
    out = tmp_path / "run"
    command = _command(tiny_image_tree, out)
    killed = subprocess.run(
        command, env=_env(**{FAULT_ENV: point}), capture_output=True, text=True, timeout=600
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILL, at that point
    state = out / "checkpoint" / "state.json"
    if committed is None:
        assert not state.exists()
    else:
        assert json.loads(state.read_text())["epoch"] == committed
    assert not (out / "results.json").exists()
    printed = _assert_resumed_to_the_reference(
        _resume_in_this_process(command, capsys), out, finished_run[1].history
    )
    if committed is None:
        assert "Starting a run" in printed
    elif committed < EPOCHS - 1:
        assert f"Resuming the run in {out} at epoch {committed + 2}/{EPOCHS}" in printed


@pytest.mark.slow
def test_sigterm_stops_cleanly_says_how_to_resume_and_resumes(
    finished_run, tiny_image_tree, tmp_path
):
    out = tmp_path / "run"
    command = _command(tiny_image_tree, out)
    stopped = subprocess.run(
        command, env=_env(**{FAULT_ENV: "signal:1:1"}), capture_output=True, text=True, timeout=600
    )
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert "Run the same command again to resume" in stopped.stderr
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 0
    printed = _assert_resumed_to_the_reference(
        _resume_in_a_new_process(command), out, finished_run[1].history
    )
    assert f"Resuming the run in {out} at epoch 2/{EPOCHS} (epoch 1 is done)." in printed


def test_the_loop_callbacks_round_trip_through_their_config(tmp_path):
    for callback in (
        EpochSeed(7, pipeline.make_epoch_variable(3)),
        CommitEpoch(tmp_path, validation=True),
    ):
        clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(callback))
        assert type(clone) is type(callback) and clone.get_config() == callback.get_config()
    assert EpochSeed(7).get_config() == {"seed": 7}
    assert CommitEpoch(tmp_path).folder.monitor == "test_accuracy"


@pytest.mark.parametrize("validation, loss_name", [(False, "test loss"), (True, "val loss")])
def test_a_non_finite_evaluation_loss_stops_and_commits_nothing(tmp_path, validation, loss_name):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    commit = CommitEpoch(tmp_path / "run", validation=validation)
    commit.set_model(model)
    commit.on_epoch_end(
        4, {"loss": 1.0, "accuracy": 0.5, "val_loss": float("nan"), "val_accuracy": 0.1}
    )
    assert model.stop_training
    assert commit.error.startswith(f"After epoch 4 (zero-based) the {loss_name} is nan")
    assert commit.state is None and not (tmp_path / "run").exists()


def test_steps_per_execution_changes_no_number(finished_run, tiny_image_tree, tmp_path):
    # 3 batches per epoch in executions of 2: the last execution runs one step.
    result = train(tiny_config(tiny_image_tree, steps_per_execution=2), tmp_path, verbose=0)
    for column in ("loss", "accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            result.history[column], finished_run[1].history[column], rtol=1e-5, err_msg=column
        )


def tiny_arrays(labels_shape=(-1,)):
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(8) % 10).reshape(labels_shape)
    return (x, y), (x[:4], y[:4])


def test_labels_of_shape_n_1_train_and_callbacks_may_be_none(tmp_path):
    result = train(
        TrainConfig(**TINY, epochs=np.int64(1)),
        tmp_path / "run",
        data=tiny_arrays((-1, 1)),
        callbacks=None,
        verbose=0,
    )
    assert result.results["epochs_trained"] == 1 and result.results["train_images"] == 8


def test_a_short_epoch_unit_run_warns_once_that_its_learning_rate_hardly_decays(tmp_path):
    # 2 epochs: warmup at 0.1, then the cosine's first value, 0.1.
    with pytest.warns(UserWarning) as caught:
        train(
            TrainConfig(**TINY_MODEL, batch_size=8, epochs=2),
            tmp_path / "run",
            data=tiny_arrays(),
            verbose=0,
        )
    [warning] = [w for w in caught if "schedule" in str(w.message)]
    assert "--schedule-unit step" in str(warning.message)
    assert 'schedule_unit="step"' in str(warning.message)
    assert warning.filename == __file__  # the caller's line, not the package's


@pytest.mark.parametrize(
    "data, message",
    [
        (
            (tiny_arrays()[0], (np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64))),
            r"^Argument `x_test` must be images \[N, H, W, 3\] with N >= 1. Received: x_test with shape "
            r"\(0, 32, 32, 3\)$",
        ),
        (
            ((tiny_arrays()[0][0][..., 0], tiny_arrays()[0][1]), tiny_arrays()[1]),
            r"^Argument `x_train` must be images \[N, H, W, 3\] with N >= 1. Received: x_train with "
            r"shape \(8, 32, 32\)$",
        ),
        (
            ((tiny_arrays()[0][0][:, :16, :16], tiny_arrays()[0][1]), tiny_arrays()[1]),
            r"^Argument `x_train` must be images \[N, 32, 32, 3\] \(the model's input\). Received: "
            r"x_train with shape \(8, 16, 16, 3\)$",
        ),
        (
            ((tiny_arrays()[0][0], tiny_arrays()[0][1] + 0.5), tiny_arrays()[1]),
            r"^Argument `y_train` must be integer labels \[N\] \(or \[N, 1\]\) with N = len\(x_train\) = "
            r"8; .* dtype float64$",
        ),
        (
            (tiny_arrays()[0], (tiny_arrays()[1][0], -tiny_arrays()[1][1])),
            r"^Argument `y_test` must hold non-negative labels. Received: labels from -3 to 0$",
        ),
        (
            tiny_arrays()[0],
            r"^Argument `data` must be None or \(\(x_train, y_train\), \(x_test, "
            r"y_test\)\). Received: data of type tuple$",
        ),
    ],
)
def test_bad_data_arrays_fail_before_the_folder_exists(tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        train(TrainConfig(**TINY, epochs=1), tmp_path / "run", data=data, verbose=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (
            dict(config={"epochs": 1}),
            TypeError,
            r"^Argument `config` must be a TrainConfig \(for a dict use `TrainConfig.from_dict`\). "
            r"Received: config of type dict$",
        ),
        (
            dict(out_dir=None),
            TypeError,
            r"^Argument `out_dir` must be a folder path \(str or "
            r"os.PathLike\). Received: out_dir of type NoneType$",
        ),
        (
            dict(callbacks=["not a callback"]),
            TypeError,
            r"^Argument `callbacks` must be a list of keras.callbacks.Callback instances. Received: an "
            r"item of type str$",
        ),
        (
            dict(initial_weights=5),
            TypeError,
            r"^Argument `initial_weights` must be None, a keras.Model "
            r"or the path of a `.keras` file. Received: initial_"
            r"weights of type int$",
        ),
        (
            dict(initial_weights="missing.keras"),
            FileNotFoundError,
            r"^Argument `initial_weights` must be an existing `.keras` file. Received: initial_weights="
            r"'missing.keras'$",
        ),
    ],
)
def test_bad_arguments_fail_before_the_folder_exists(tmp_path, arguments, error, message):
    arguments = {
        "config": TrainConfig(**TINY, epochs=1),
        "out_dir": tmp_path / "run",
        "data": tiny_arrays(),
        "verbose": 0,
        **arguments,
    }
    with pytest.raises(error, match=message):
        train(**arguments)
    assert not (tmp_path / "run").exists()


def test_an_out_dir_that_is_a_file_is_refused_before_training(tmp_path):
    out = tmp_path / "run"
    out.write_text("not a folder")
    with pytest.raises(
        RunFolderError,
        match=r"^The output folder .*run is a file, not a folder. "
        r"Choose another output folder \(--out\).$",
    ):
        train(TrainConfig(**TINY, epochs=1), out, data=tiny_arrays(), verbose=0, overwrite=True)
    assert out.read_text() == "not a folder"
