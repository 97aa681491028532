"""keras_seresnet.compat: every upgrade of an earlier version's files and import paths."""

import importlib
import json
import os

import pytest

from keras_seresnet import compat
from keras_seresnet.config import FIELDS_ADDED_AFTER_0_1_0, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("module, name, home", [
    (module, name, home) for module, names in compat.MOVED_NAMES.items()
    for name, home in names.items()
])
def test_every_moved_name_is_importable_from_its_earlier_module(module, name, home):
    moved = getattr(importlib.import_module(module), name)
    assert moved is getattr(importlib.import_module(home), name)


def test_the_import_paths_users_know_still_work():
    from keras_seresnet.training.loop import epoch_seed
    from keras_seresnet.training.loop_callbacks import epoch_seed as home
    from keras_seresnet.training.run_folder import read_history_csv, with_legacy_names
    from keras_seresnet.training.schedules import learning_rate_at
    from keras_seresnet import schedules

    assert epoch_seed is home and learning_rate_at is schedules.learning_rate_at
    assert read_history_csv.__module__ == "keras_seresnet.training.history"
    assert with_legacy_names is compat.with_legacy_names
    namespace = {}
    exec("from keras_seresnet.training.schedules import *", namespace)
    assert namespace["warmup_cosine_lr"] is schedules.warmup_cosine_lr
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module("keras_seresnet.training.run_folder").no_such_name


def test_the_fields_added_after_0_1_0_are_those_its_config_json_lacks():
    with open(os.path.join(ROOT, "tests", "data", "config-0.1.0.json"), encoding="utf-8") as f:
        old = json.load(f)
    assert compat.CONFIG_FIELDS_OF_0_1_0 == set(old)
    assert set(FIELDS_ADDED_AFTER_0_1_0) == set(TrainConfig().to_dict()) - set(old)
    assert TrainConfig().compatible_dict() == old
