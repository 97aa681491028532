import hashlib
import json
import math
import os
import shutil
import zipfile

import keras
import numpy as np
import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.training.checkpoint import load_checkpoint, save_checkpoint
from keras_seresnet.training.history import (
    HISTORY_COLUMNS,
    HistoryRow,
    accuracy_column,
    evaluation_columns,
    history_row,
    read_history_csv,
    rows_to_history,
    write_history_csv,
)
from keras_seresnet.training.optimizers import TorchSGD
from keras_seresnet.training.records import RunResults
from keras_seresnet.training.run_folder import RunFolder, RunFolderError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def untrained_tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="tiny")
    model.compile(optimizer=TorchSGD(learning_rate=0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def trained_tiny_model():
    model = untrained_tiny_model()
    model.fit(np.ones((4, 4), "float32"), np.zeros((4, 3), "float32"), epochs=1, verbose=0)
    return model


def row(epoch, test_accuracy, **extra):
    values = dict(
        epoch=epoch,
        learning_rate=0.1,
        mixup_alpha=0.4,
        loss=1.0,
        accuracy=0.5,
        test_loss=0.9,
        test_accuracy=test_accuracy,
        seconds=1.5,
    )
    values.update(extra)
    return HistoryRow.from_dict(values)


def results(**changes):
    values = dict(
        monitor="test_accuracy",
        best_epoch=0,
        best_accuracy=0.5,
        test_accuracy=0.5,
        test_loss=0.9,
        test_accuracy_tta=0.5,
        epochs_trained=1,
        train_images=4,
        val_images=None,
        test_images=4,
        parameters=15,
        train_seconds=1.5,
        initial_weights=None,
    )
    values.update(changes)
    return RunResults(**values)


def hashes(folder):
    """`{relative path: SHA-256}` of every file under `folder`."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def test_history_csv_round_trip_keeps_precision_order_and_missing_values(tmp_path):
    path = tmp_path / "history.csv"
    rows = [row(0, 0.25, learning_rate=1 / 15, mixup_alpha=None), row(1, 0.5, extra_metric=2.0)]
    write_history_csv(path, rows)
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(HISTORY_COLUMNS) + ["extra_metric"]
    history = read_history_csv(path)
    assert history["epoch"] == [0, 1]
    assert history["learning_rate"][0] == 1 / 15  # exact, not rounded
    assert math.isnan(history["mixup_alpha"][0]) and history["mixup_alpha"][1] == 0.4
    assert math.isnan(history["extra_metric"][0])
    assert rows_to_history(rows)["test_accuracy"] == [0.25, 0.5]
    assert rows_to_history(rows)["val_accuracy"] == [0.25, 0.5]  # the old name still reads


def test_history_csv_of_an_earlier_version_reads_with_both_names(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,learning_rate,mixup_alpha,loss,accuracy,val_loss,val_accuracy,seconds\n"
        "0,0.1,0.4,2.3,0.1,2.2,0.25,13.5\n"
    )
    history = read_history_csv(path)
    assert history["test_accuracy"] == history["val_accuracy"] == [0.25]
    assert history["test_loss"] == history["val_loss"] == [2.2]


def test_history_csv_of_a_validation_run_has_only_its_val_columns(tmp_path):
    path = tmp_path / "history.csv"
    rows = [dict(epoch=0, loss=1.0, val_loss=0.8, val_accuracy=0.3, seconds=1.0)]
    write_history_csv(path, rows)
    assert path.read_text().splitlines()[0] == "epoch,loss,val_loss,val_accuracy,seconds"
    (tmp_path / "config.json").write_text(json.dumps({"val_split": 10}))
    assert "test_accuracy" not in read_history_csv(path)


def test_history_csv_errors_name_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n0,1.0\n1,oops\n")
    with pytest.raises(ValueError, match=r"bad.csv, line 3: column `loss` holds 'oops'"):
        read_history_csv(bad)
    bad.write_text("loss\n1.0\n")
    with pytest.raises(ValueError, match="no `epoch` column"):
        read_history_csv(bad)


def test_open_writes_config_and_refuses_another_config_naming_fields(tmp_path):
    folder = RunFolder(tmp_path / "run")
    config = TrainConfig(epochs=10).to_dict()
    folder.open(config)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == config
    folder.open(config)  # the same config: accepted, to resume
    folder.commit_epoch(trained_tiny_model(), row(0, 0.5))
    other = TrainConfig(epochs=12, use_se=False).to_dict()
    with pytest.raises(RunFolderError) as info:
        folder.open(other)
    message = str(info.value)
    assert "epochs: 10 in the folder, 12 requested" in message
    assert "use_se: True in the folder, False requested" in message
    assert "--out" in message and "--overwrite" in message
    assert "batch_size" not in message


def test_a_run_of_another_config_that_finished_no_epoch_is_replaced_with_a_warning(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.open(TrainConfig(epochs=10, num_classes=1).to_dict())  # then failed in its first epoch
    (tmp_path / "run" / "checkpoint").mkdir()  # a commit cut short: no state.json yet
    (tmp_path / "run" / "checkpoint" / "epoch-0000.npz").write_bytes(b"partial")
    fixed = TrainConfig(epochs=10).to_dict()
    with pytest.warns(
        UserWarning,
        match=r"held a run of another config that finished no epoch "
        r"\(num_classes: 1 in the folder, 10 requested\); it is replaced",
    ):
        folder.open(fixed)
    assert os.listdir(tmp_path / "run") == ["config.json"]
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == fixed


def test_open_refuses_a_foreign_folder_and_overwrite_spares_foreign_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    folder = RunFolder(tmp_path)
    with pytest.raises(RunFolderError, match="not a run folder"):
        folder.open(TrainConfig().to_dict())
    (tmp_path / "config.json").write_text(json.dumps(TrainConfig(epochs=3).to_dict()))
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "plots").mkdir()
    folder.open(TrainConfig().to_dict(), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "notes.txt"]
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 250


def test_check_writes_nothing_and_open_creates_the_folder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.check(TrainConfig().to_dict())
    assert not (tmp_path / "run").exists()
    folder.open(TrainConfig().to_dict())
    assert os.listdir(tmp_path / "run") == ["config.json"]


def test_a_config_json_without_newer_fields_matches_their_defaults(tmp_path):
    saved = TrainConfig(epochs=3).to_dict()
    del saved["val_split"], saved["schedule_unit"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict(), defaults=TrainConfig().to_dict())
    folder.commit_epoch(trained_tiny_model(), row(0, 0.5))
    with pytest.raises(RunFolderError, match=r"val_split: None in the folder, 5 requested"):
        folder.open(TrainConfig(epochs=3, val_split=5).to_dict(), defaults=TrainConfig().to_dict())


def test_commit_keeps_best_history_and_the_last_two_checkpoints(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict())
    model = trained_tiny_model()
    state = folder.commit_epoch(model, row(0, 0.5))
    state = folder.commit_epoch(model, row(1, 0.4), state)
    assert (state.commit.epoch, state.commit.best_epoch, state.commit.best_accuracy) == (1, 0, 0.5)
    assert state.previous.epoch == 0 and state.monitor == "test_accuracy"
    assert sorted(os.listdir(tmp_path / "checkpoint")) == [
        "best-0000.keras",
        "epoch-0000.npz",
        "epoch-0001.npz",
        "state.json",
    ]
    state = folder.commit_epoch(model, row(2, 0.6), state)
    assert sorted(os.listdir(tmp_path / "checkpoint")) == [
        "best-0000.keras",
        "best-0002.keras",
        "epoch-0001.npz",
        "epoch-0002.npz",
        "state.json",
    ]
    assert read_history_csv(tmp_path / "history.csv")["epoch"] == [0, 1, 2]
    assert not (tmp_path / "plots").exists()  # drawn at the end of the run, not every epoch
    assert (tmp_path / "best.keras").read_bytes() == (
        tmp_path / "checkpoint" / "best-0002.keras"
    ).read_bytes()
    # The checkpoint restores the optimizer's state, not only the weights.
    restored = untrained_tiny_model()
    load_checkpoint(restored, folder.checkpoint_file(state.commit.model_file))
    for saved, live in zip(
        restored.variables + restored.optimizer.variables,
        model.variables + model.optimizer.variables,
    ):
        np.testing.assert_array_equal(saved.numpy(), live.numpy())
    assert restored.optimizer.iterations.numpy() == 1
    assert folder.read_state() == state  # what state.json holds
    folder.draw_plots(state.history)
    assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]


def test_restart_after_a_kill_mid_commit_drops_the_uncommitted_epoch(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=5).to_dict())
    model = trained_tiny_model()
    state = folder.commit_epoch(model, row(0, 0.5))
    # A kill while epoch 1 was being committed: its checkpoint and best model
    # are complete, a temporary file is half written, state.json not replaced,
    # and a derived file from some later point lists the epoch.
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(model, ckpt / "epoch-0001.npz")
    model.save(ckpt / "best-0001.keras")
    (ckpt / ".tmp-state.json").write_text('{"epoch": 1')
    (tmp_path / ".tmp-history-x1y2").mkdir()  # a kill inside keras_seresnet.files.atomic_path
    (tmp_path / ".tmp-history-x1y2" / "history.csv").write_text("partial")
    write_history_csv(tmp_path / "history.csv", [row(0, 0.5), row(1, 0.9)])
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=5).to_dict())
    resumed = folder.repair()
    assert resumed == state
    assert sorted(os.listdir(ckpt)) == ["best-0000.keras", "epoch-0000.npz", "state.json"]
    assert read_history_csv(tmp_path / "history.csv")["epoch"] == [0]
    assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_finish_writes_plain_inference_models_and_results(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=1).to_dict())
    model = trained_tiny_model()
    folder.commit_epoch(model, row(0, 0.5))
    assert folder.read_results() is None
    folder.finish(model, results())
    assert sorted(os.listdir(tmp_path)) == [
        "best.keras",
        "config.json",
        "final.keras",
        "history.csv",
        "plots",
        "results.json",
    ]
    assert folder.read_results() == results()
    for name in ("best.keras", "final.keras"):
        with zipfile.ZipFile(tmp_path / name) as archive:
            assert not json.loads(archive.read("config.json")).get("compile_config")
            assert "optimizer" not in archive.read("model.weights.h5").decode("latin-1")
        loaded = keras.models.load_model(tmp_path / name)
        assert getattr(loaded, "optimizer", None) is None and not loaded.compiled
        x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
        )


def test_missing_checkpoint_file_is_a_clear_error(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict())
    folder.commit_epoch(trained_tiny_model(), row(0, 0.5))
    os.remove(tmp_path / "checkpoint" / "epoch-0000.npz")
    with pytest.raises(RunFolderError, match="epoch-0000.npz, which is missing"):
        folder.repair()


def _truncate(path, size=1000):
    with open(path, "r+b") as f:
        f.truncate(size)


def test_a_damaged_latest_checkpoint_falls_back_to_the_epoch_before(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict())
    model = trained_tiny_model()
    state = folder.commit_epoch(model, row(0, 0.5))
    folder.commit_epoch(model, row(1, 0.7), state)
    _truncate(tmp_path / "checkpoint" / "epoch-0001.npz")
    with pytest.warns(UserWarning, match=r"epoch-0001.npz is damaged.*epoch 0"):
        resumed = RunFolder(tmp_path).repair()
    assert (resumed.commit.epoch, resumed.commit.best_epoch, resumed.commit.best_accuracy) == (
        0,
        0,
        0.5,
    )
    assert resumed.history == (row(0, 0.5),) and resumed.previous is None
    assert resumed.commit.model_file == "epoch-0000.npz"
    assert sorted(os.listdir(tmp_path / "checkpoint")) == [
        "best-0000.keras",
        "epoch-0000.npz",
        "state.json",
    ]
    assert read_history_csv(tmp_path / "history.csv")["epoch"] == [0]
    load_checkpoint(untrained_tiny_model(), folder.checkpoint_file(resumed.commit.model_file))
    # The fallback is written down: a second restart (killed before the next
    # commit) resumes from epoch 0 too, not from the damaged file it removed.
    assert folder.read_state() == resumed
    assert RunFolder(tmp_path).repair() == resumed


def test_a_damaged_only_checkpoint_is_a_one_line_error_naming_it(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict())
    folder.commit_epoch(trained_tiny_model(), row(0, 0.5))
    _truncate(tmp_path / "checkpoint" / "epoch-0000.npz")
    with pytest.raises(RunFolderError) as info:
        folder.repair()
    message = str(info.value)
    assert "\n" not in message and "epoch-0000.npz is damaged" in message
    assert "--overwrite" in message and "checkpoint/" in message


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"epochs": 3', "is not valid JSON (Expecting ',' delimiter: line 1 column 13"),
        ("[3]", "is not a JSON object (it holds a list)"),
        ("\xff", "is not valid JSON ("),
    ],
)
def test_a_damaged_config_json_is_a_one_line_error_naming_it(tmp_path, text, problem):
    (tmp_path / "config.json").write_bytes(text.encode("latin-1"))
    folder = RunFolder(tmp_path)
    for claim in (folder.check, folder.open):
        with pytest.raises(RunFolderError) as info:
            claim(TrainConfig(epochs=3).to_dict())
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{tmp_path / 'config.json'} {problem}")
        assert message.endswith("fix it, or start again with --overwrite.")
    folder.open(TrainConfig(epochs=3).to_dict(), overwrite=True)  # the way out it names
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 3


def test_a_damaged_state_or_results_json_is_a_one_line_error_naming_it(tmp_path):
    folder = RunFolder(tmp_path)
    folder.open(TrainConfig(epochs=3).to_dict())
    folder.commit_epoch(trained_tiny_model(), row(0, 0.5))
    state = tmp_path / "checkpoint" / "state.json"
    state.write_text(state.read_text()[:20])
    with pytest.raises(RunFolderError) as info:
        folder.read_state()
    assert str(info.value).startswith(f"{state} is not valid JSON (")
    assert "\n" not in str(info.value) and "checkpoint/" in str(info.value)
    (tmp_path / "results.json").write_text("")
    with pytest.raises(RunFolderError, match=r"results.json is not valid JSON \(Expecting value"):
        folder.read_results()
    (tmp_path / "results.json").write_text('{"test_accuracy": 0.5}')
    with pytest.raises(
        RunFolderError,
        match=r"results.json holds no results of this package \("
        r"results.json lacks the field\(s\) best_epoch, "
        r"best_accuracy, test_loss.*--overwrite\.$",
    ):
        folder.read_results()
    assert state.exists()  # reading removes nothing


def test_history_rows_name_the_per_epoch_evaluation_by_what_it_evaluates():
    logs = {
        "loss": np.float32(1.5),
        "accuracy": 0.25,
        "val_loss": 1.75,
        "val_accuracy": 0.5,
        "learning_rate": None,
    }
    test_row = history_row(3, logs, validation=False)
    assert test_row == HistoryRow(
        epoch=3, loss=1.5, accuracy=0.25, test_loss=1.75, test_accuracy=0.5
    )
    assert test_row.to_dict() == {
        "epoch": 3,
        "loss": 1.5,
        "accuracy": 0.25,
        "test_loss": 1.75,
        "test_accuracy": 0.5,
        "learning_rate": None,
        "mixup_alpha": None,
        "seconds": None,
    }
    assert type(test_row.loss) is float
    val_row = history_row(3, dict(logs, mixup_alpha=0.2, top5=0.9), validation=True)
    assert val_row.val_accuracy == 0.5 and val_row.test_accuracy is None
    assert "test_accuracy" not in val_row.to_dict() and val_row.to_dict()["top5"] == 0.9
    assert val_row.mixup_alpha == pytest.approx(0.2)
    assert HistoryRow.from_dict(val_row.to_dict()) == val_row
    assert evaluation_columns(False) == ("test_loss", "test_accuracy")
    assert evaluation_columns(True) == ("val_loss", "val_accuracy")
    assert accuracy_column(False) == "test_accuracy" and accuracy_column(True) == "val_accuracy"


def test_a_path_that_is_a_file_is_refused_even_with_overwrite(tmp_path):
    path = tmp_path / "run"
    path.write_text("x")
    for overwrite in (False, True):
        with pytest.raises(
            RunFolderError, match=r"^The output folder .*run is a file, not a folder"
        ):
            RunFolder(path).check(TrainConfig().to_dict(), overwrite=overwrite)
    assert path.read_text() == "x"


def _killed_mid_commit(path):
    """An unfinished run folder as a kill while committing epoch 2 leaves it.

    Epochs 0 and 1 are committed; epoch 2's checkpoint and best model are
    written, `state.json` is not replaced, a temporary file is half written,
    `history.csv` already lists epoch 2, `best.keras` and the plots are gone.
    """
    folder = RunFolder(path)
    folder.open(TrainConfig(epochs=5).to_dict())
    model = trained_tiny_model()
    state = folder.commit_epoch(model, row(0, 0.5))
    state = folder.commit_epoch(model, row(1, 0.4), state)
    save_checkpoint(model, path / "checkpoint" / "epoch-0002.npz")
    model.save(path / "checkpoint" / "best-0002.keras")
    (path / "checkpoint" / ".tmp-state.json").write_text('{"epoch": 2')
    (path / ".tmp-history-x1y2").mkdir()
    (path / ".tmp-history-x1y2" / "history.csv").write_text("partial")
    write_history_csv(path / "history.csv", [row(0, 0.5), row(1, 0.4), row(2, 0.9)])
    os.remove(path / "best.keras")
    return folder, state


def _finished_with_a_left_checkpoint(path):
    """A finished run folder as a kill after `results.json`, before `checkpoint/` went, leaves it."""
    folder = RunFolder(path)
    folder.open(TrainConfig(epochs=1).to_dict())
    model = trained_tiny_model()
    folder.commit_epoch(model, row(0, 0.5))
    kept = path.parent / "kept-checkpoint"
    shutil.copytree(path / "checkpoint", kept)
    folder.finish(model, results())
    shutil.copytree(kept, path / "checkpoint")
    return folder


def _load_everything(folder):
    """Every public way of reading a run folder."""
    with open(folder.file("config.json"), encoding="utf-8") as f:
        folder.check(TrainConfig(epochs=json.load(f)["epochs"]).to_dict())
    loaded = folder.read_results(), folder.read_state()
    if os.path.exists(folder.file("history.csv")):
        read_history_csv(folder.file("history.csv"))
    return loaded


def test_loading_a_run_folder_changes_no_file(tmp_path):
    unfinished, state = _killed_mid_commit(tmp_path / "unfinished")
    finished = _finished_with_a_left_checkpoint(tmp_path / "finished")
    for folder in (unfinished, finished):
        before = hashes(folder.path)
        assert any(name.startswith("checkpoint") for name in before)
        _load_everything(folder)
        assert hashes(folder.path) == before, folder.path
    assert _load_everything(unfinished) == (None, state)
    assert _load_everything(finished)[0] == results()


def test_loading_a_run_folder_of_version_0_1_0_changes_no_file_and_reads_todays_records(tmp_path):
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "run_4373dac"), tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    before = hashes(folder.path)
    state = folder.read_state()
    history = read_history_csv(folder.file("history.csv"))
    assert hashes(folder.path) == before
    assert state.monitor == "test_accuracy" and state.previous is None
    assert (state.commit.epoch, state.commit.model_file) == (0, "epoch-0000.keras")
    assert (
        state.commit.best_accuracy == state.history[0].test_accuracy == history["test_accuracy"][0]
    )
    assert state.history[0].val_accuracy is None  # 0.1.0's val_* columns were the test set's


def test_repair_makes_an_unfinished_folder_what_its_last_commit_says(tmp_path):
    folder, state = _killed_mid_commit(tmp_path)
    state_json = (tmp_path / "checkpoint" / "state.json").read_bytes()
    assert folder.repair() == state
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]
    assert sorted(os.listdir(tmp_path / "checkpoint")) == [  # epoch 2's files are gone
        "best-0000.keras",
        "epoch-0000.npz",
        "epoch-0001.npz",
        "state.json",
    ]
    assert (tmp_path / "checkpoint" / "state.json").read_bytes() == state_json  # already right
    assert read_history_csv(tmp_path / "history.csv")["epoch"] == [0, 1]
    assert (tmp_path / "best.keras").read_bytes() == (
        tmp_path / "checkpoint" / "best-0000.keras"
    ).read_bytes()
    assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]
    before = hashes(tmp_path)
    assert folder.repair() == state  # a repaired folder needs nothing more
    assert {k: v for k, v in hashes(tmp_path).items() if not k.startswith("plots")} == {
        k: v for k, v in before.items() if not k.startswith("plots")
    }


def test_repair_drops_the_checkpoint_of_a_finished_run_or_of_no_committed_epoch(tmp_path):
    folder = _finished_with_a_left_checkpoint(tmp_path / "finished")
    before = {k: v for k, v in hashes(folder.path).items() if not k.startswith("checkpoint")}
    assert folder.repair() is None
    assert hashes(folder.path) == before
    started = RunFolder(tmp_path / "started")
    started.open(TrainConfig(epochs=1).to_dict())
    (tmp_path / "started" / "checkpoint").mkdir()  # a first commit cut short
    (tmp_path / "started" / "checkpoint" / "epoch-0000.npz").write_bytes(b"partial")
    assert started.repair() is None
    assert os.listdir(tmp_path / "started") == ["config.json"]
    assert RunFolder(tmp_path / "missing").repair() is None
    assert not (tmp_path / "missing").exists()


def test_repair_writes_a_folder_of_version_0_1_0_in_todays_format(tmp_path):
    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "run_4373dac"), tmp_path / "run")
    folder = RunFolder(tmp_path / "run")
    state = folder.read_state()
    assert folder.repair() == state
    saved = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert saved["monitor"] == "test_accuracy" and "best_val_accuracy" not in saved
    assert "test_accuracy" in saved["history"][0] and "val_accuracy" not in saved["history"][0]
    header = (tmp_path / "run" / "history.csv").read_text().splitlines()[0].split(",")
    assert "test_accuracy" in header and "val_accuracy" not in header
    assert folder.read_state() == state
