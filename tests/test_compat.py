"""keras_seresnet.compat: every upgrade of an earlier version's files and import paths."""

import importlib
import json
import os

import pytest

from keras_seresnet import compat
from keras_seresnet.config import FIELDS_ADDED_AFTER_0_1_0, TrainConfig
from keras_seresnet.training.records import RunResults, RunState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
    "module, name, home",
    [
        (module, name, home)
        for module, names in compat.MOVED_NAMES.items()
        for name, home in names.items()
    ],
)
def test_every_moved_name_is_importable_from_its_earlier_module(module, name, home):
    moved = getattr(importlib.import_module(module), name)
    assert moved is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize(
    "module, old, new",
    [
        (module, old, new)
        for module, names in compat.RENAMED_NAMES.items()
        for old, new in names.items()
    ],
)
def test_every_renamed_name_is_importable_under_its_earlier_name(module, old, new):
    renamed = importlib.import_module(module)
    assert getattr(renamed, old) is getattr(renamed, new)
    assert old not in vars(renamed)  # one definition, under its new name


def test_the_import_paths_users_know_still_work():
    from keras_seresnet import schedules
    from keras_seresnet.training.callbacks import epoch_seed as home
    from keras_seresnet.training.loop import epoch_seed
    from keras_seresnet.training.run_folder import read_history_csv, with_legacy_names
    from keras_seresnet.training.schedules import learning_rate_at

    assert epoch_seed is home and learning_rate_at is schedules.learning_rate_at
    assert read_history_csv.__module__ == "keras_seresnet.training.history"
    assert with_legacy_names is compat.with_legacy_names
    namespace = {}
    exec("from keras_seresnet.training.schedules import *", namespace)
    assert namespace["warmup_cosine_lr"] is schedules.warmup_cosine_lr
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = importlib.import_module("keras_seresnet.training.run_folder").no_such_name


def test_the_fields_added_after_0_1_0_are_those_its_config_json_lacks():
    with open(os.path.join(ROOT, "tests", "data", "config-0.1.0.json"), encoding="utf-8") as f:
        old = json.load(f)
    assert compat.CONFIG_FIELDS_OF_0_1_0 == set(old)
    assert set(FIELDS_ADDED_AFTER_0_1_0) == set(TrainConfig().to_dict()) - set(old)
    assert TrainConfig().compatible_dict() == old


def test_a_state_json_of_0_1_0_reads_as_todays():
    path = os.path.join(ROOT, "tests", "fixtures", "run_4373dac", "checkpoint", "state.json")
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    state = RunState.from_dict(compat.upgrade_state_dict(old, "test_accuracy"))
    assert state.commit.best_accuracy == old["best_val_accuracy"]
    assert state.history[0].test_loss == old["history"][0]["val_loss"]
    assert state.history[0].val_loss is None and state.previous is None
    assert compat.upgrade_state_dict(state.to_dict(), "val_accuracy") == state.to_dict()


@pytest.mark.parametrize(
    "monitor, best_key, val_images",
    [
        ("test_accuracy", "best_test_accuracy", None),  # 0.1.0, and later runs without a split
        ("val_accuracy", "best_val_accuracy", 10),  # a run with a validation split before `monitor`
    ],
)
def test_a_results_json_without_monitor_reads_as_todays(monitor, best_key, val_images):
    old = {
        "test_accuracy": 0.5,
        "test_loss": 0.9,
        "epochs_trained": 2,
        "best_epoch": 1,
        best_key: 0.6,
        "train_images": 10,
        "test_images": 10,
        "parameters": 15,
        "train_seconds": 3.0,
        "initial_weights": None,
    }
    if val_images:
        old["val_images"] = val_images
    results = RunResults.from_dict(compat.upgrade_results_dict(old))
    assert (results.monitor, results.best_accuracy, results.val_images) == (
        monitor,
        0.6,
        val_images,
    )
    assert results.test_accuracy_tta is None  # not measured before
    assert {key: results.to_dict()[key] for key in old} == old  # every old key, same value
