import dataclasses
import hashlib
import json
import os
import re

import numpy as np
import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.cli import config_from_args, parse_config
from keras_seresnet.cli.train import build_parser
from keras_seresnet.config import (
    EXECUTION_FIELDS,
    FIELDS_ADDED_AFTER_0_1_0,
    INFERENCE_PRECISION_POLICIES,
    MAX_SEED,
    PARTS,
    PRECISION_POLICIES,
    PRESETS,
    AugmentConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    ScaleConfig,
    ScheduleConfig,
    field_choices,
)

# `TrainConfig().to_json()` as version 0.1.0 (commit 4373dac) wrote it.
OLD_CONFIG = os.path.join(os.path.dirname(__file__), "data", "config-0.1.0.json")


def test_defaults_are_the_recipe():
    c = TrainConfig()
    assert (c.batch_size, c.epochs, c.base_lr, c.min_lr) == (128, 250, 0.1, 0.001)
    assert (c.momentum, c.weight_decay, c.label_smoothing, c.dropout) == (0.9, 5e-4, 0.08, 0.2)
    assert c.resolved_warmup_epochs == 15
    assert (c.brightness, c.contrast, c.saturation, c.hue) == (0.2, 0.2, 0.2, 0.05)
    assert (c.crop_padding, c.cutout_size, c.mixup_alpha, c.mixup_alpha_min) == (4, 16, 0.4, 0.1)
    assert (c.bn_momentum, c.bn_epsilon) == (0.9, 1e-5)
    assert c.mean == (0.4914, 0.4822, 0.4465) and c.std == (0.35, 0.35, 0.35)
    assert not c.grayscale and c.color_jitter and c.mixup_cutout and c.use_se


def test_json_round_trip_keeps_every_field_and_type(tmp_path):
    config = TrainConfig(epochs=7, widths=(16, 32, 64, 128), limit_train=100, use_se=False)
    path = tmp_path / "config.json"
    config.to_json(path)
    loaded = TrainConfig.from_json(str(path))
    assert loaded == config
    assert isinstance(loaded.widths, tuple)
    assert TrainConfig.from_json(config.to_json()) == config
    assert set(json.loads(path.read_text())) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_unknown_field_is_named():
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"bogus": 1})


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", -1),
        ("dropout", 1.5),
        ("hue", 0.7),
        ("warmup_epochs", 300),
        ("min_lr", 1.0),
        ("limit_train", 0),
        ("cutout_size", 40),
        ("strategy", "tpu"),
        ("mixed_precision", "float16"),
        ("jit", "yes"),
    ],
)
def test_invalid_values_name_field_and_value(field, value):
    with pytest.raises(ValueError, match=rf"`{field}`.*{field}={value!r}"):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("epochs, warmup", [(250, 15), (10, 1), (50, 3), (100, 6), (1, 0)])
def test_warmup_scales_with_the_run(epochs, warmup):
    assert TrainConfig(epochs=epochs).resolved_warmup_epochs == warmup
    assert TrainConfig(epochs=epochs, warmup_epochs=0).resolved_warmup_epochs == 0


def test_scale_defaults_are_one_device_float32_and_keras_jit_choice():
    c = TrainConfig()
    assert (c.strategy, c.mixed_precision, c.jit) == ("default", "off", None)
    with pytest.raises(ValueError, match=r"one of 'default', 'mirrored', 'multiworker'"):
        TrainConfig(strategy="tpu").validate()


def test_resume_dict_leaves_out_only_the_execution_fields():
    # The fields added after 0.1.0 are set away from their defaults, which
    # keeps them in (see the tests below for the defaults).
    c = TrainConfig(
        strategy="mirrored",
        jit=True,
        mixed_precision="mixed_bfloat16",
        val_split=100,
        schedule_unit="step",
        steps_per_execution=4,
        nesterov=True,
        use_ema=True,
        ema_momentum=0.9,
        max_params=10**7,
        zero_init_residual=True,
        tensorboard=True,
    )
    assert set(c.to_dict()) - set(c.resume_dict()) == {
        "strategy",
        "jit",
        "steps_per_execution",
        "tensorboard",
    }
    assert c.resume_dict()["mixed_precision"] == "mixed_bfloat16"
    assert (
        TrainConfig().resume_dict() == TrainConfig(strategy="multiworker", jit=False).resume_dict()
    )


# --- the parts ---


def test_train_config_is_the_parts_fields_flat_each_written_once():
    names = [f.name for part in PARTS for f in dataclasses.fields(part)]
    assert len(names) == len(set(names))  # no field in two parts
    assert [f.name for f in dataclasses.fields(TrainConfig)] == names
    whole = TrainConfig()
    for part in PARTS:
        assert issubclass(TrainConfig, part)
        for field in dataclasses.fields(part):
            assert getattr(part(), field.name) == getattr(whole, field.name), field.name


def test_every_field_has_help_and_group_metadata():
    groups = {
        DataConfig: "data",
        ModelConfig: "model",
        OptimizerConfig: "optimiser",
        ScheduleConfig: "schedule",
        AugmentConfig: "augmentation",
        RunConfig: "run",
        ScaleConfig: "scale",
    }
    assert set(groups) == set(PARTS)
    for part, group in groups.items():
        for field in dataclasses.fields(part):
            assert field.metadata["group"] == group, field.name
            assert field.metadata["help"].strip(), field.name


def test_properties_return_the_parts_with_the_configs_values():
    config = TrainConfig(
        epochs=10,
        base_lr=0.05,
        widths=(8, 16),
        blocks=(1, 1),
        se_stages=(2,),
        seed=3,
        jit=True,
        limit_train=64,
    )
    assert config.schedule_config == ScheduleConfig(epochs=10, base_lr=0.05)
    assert config.model_config == ModelConfig(widths=(8, 16), blocks=(1, 1), se_stages=(2,))
    assert config.run_config == RunConfig(seed=3)
    assert config.scale_config == ScaleConfig(jit=True)
    assert config.data_config == DataConfig(limit_train=64)
    assert config.optimizer_config == OptimizerConfig()
    assert config.augment_config == AugmentConfig()
    assert config.schedule_config.resolved_warmup_epochs == config.resolved_warmup_epochs == 1
    rebuilt = TrainConfig.from_parts(
        config.data_config, config.model_config, config.schedule_config, config.scale_config, seed=3
    )
    assert rebuilt == config


def test_from_parts_refuses_what_is_not_a_part():
    with pytest.raises(ConfigError, match=r"configuration parts.*Received: \{'epochs': 3\}"):
        TrainConfig.from_parts({"epochs": 3})


@pytest.mark.parametrize(
    "part, field, value, rule",
    [
        (DataConfig, "limit_test", 0, "a positive integer or None"),
        (ModelConfig, "se_reduction", 0, "a positive integer"),
        (ModelConfig, "use_se", "no", "True or False"),
        (AugmentConfig, "hue", 0.7, "in [0, 0.5]"),
        (AugmentConfig, "grayscale", 1, "True or False"),
        (OptimizerConfig, "weight_decay", -1.0, "non-negative"),
        (ScheduleConfig, "base_lr", -1, "positive"),
        (ScheduleConfig, "schedule_unit", "batch", "one of 'epoch', 'step'"),
        (RunConfig, "seed", 1.5, "an integer"),
        (ScaleConfig, "steps_per_execution", 0, "a positive integer"),
        (ModelConfig, "dropout", "0.2", "a number"),
        (OptimizerConfig, "momentum", True, "a number"),
        (ScheduleConfig, "epochs", 2.0, "an integer"),
    ],
)
def test_each_part_validates_its_own_fields(part, field, value, rule):
    for config_class in (part, TrainConfig):
        with pytest.raises(ConfigError) as info:
            config_class(**{field: value}).validate()
        assert (
            str(info.value) == f"Config field `{field}` must be {rule}. Received: {field}={value!r}"
        )
        assert info.value.fields == (field,)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_outside_numpys_range_names_the_seed(seed):
    with pytest.raises(ConfigError) as info:
        TrainConfig(seed=seed).validate()
    assert (
        str(info.value) == f"Config field `seed` must be in [0, 4294967295]. Received: seed={seed}"
    )
    assert info.value.fields == ("seed",)
    with pytest.raises(ValueError):
        np.random.seed(seed)  # what the run would have failed with, later and naming no flag


def test_the_seeds_at_the_ends_of_the_range_are_valid_numpy_seeds():
    for seed in (0, MAX_SEED):
        assert RunConfig(seed=seed).validate().seed == seed
        np.random.seed(seed)


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--seed", "-1"],
            "argument --seed: Config field `seed` must be in [0, 4294967295]. Received: seed=-1",
        ),
        (
            ["--mixup-alpha", "-1"],
            "argument --mixup-alpha: Config field `mixup_alpha` must be "
            "positive. Received: mixup_alpha=-1.0",
        ),
        (
            ["--mixup-alpha", "0.05"],
            "argument --mixup-alpha-min: Config field `mixup_alpha_min` must "
            "be in (0, mixup_alpha=0.05]. Received: mixup_alpha_min=0.1",
        ),
    ],
)
def test_a_bad_value_is_reported_under_its_own_flag(flags, message):
    with pytest.raises(ConfigError) as info:
        config_from_args(build_parser().parse_args(flags))
    assert str(info.value) == message


def test_mixup_alphas_own_range_comes_before_the_rule_relating_it_to_the_floor():
    for alpha in (-1.0, 0.0, float("nan")):
        with pytest.raises(ConfigError) as info:
            AugmentConfig(mixup_alpha=alpha).validate()
        assert info.value.fields == ("mixup_alpha",)
    with pytest.raises(ConfigError) as info:
        AugmentConfig(mixup_alpha_min=0.0).validate()
    assert info.value.fields == ("mixup_alpha_min",)
    assert AugmentConfig(mixup_alpha=0.1, mixup_alpha_min=0.1).validate().mixup_alpha == 0.1


def test_a_part_round_trips_through_json_and_refuses_other_parts_fields():
    schedule = ScheduleConfig(epochs=20, warmup_epochs=2, schedule_unit="step")
    assert ScheduleConfig.from_json(schedule.to_json()) == schedule
    with pytest.raises(ConfigError, match="Unknown config field.*seed"):
        ScheduleConfig.from_dict({"seed": 1})


def test_rules_relating_two_fields():
    with pytest.raises(
        ConfigError, match=r"`warmup_epochs` must be an integer in \[0, epochs=10\)"
    ):
        ScheduleConfig(epochs=10, warmup_epochs=10).validate()
    with pytest.raises(ConfigError, match=r"`val_split` must be smaller than limit_train=100"):
        TrainConfig(limit_train=100, val_split=100).validate()
    TrainConfig(limit_train=100, val_split=99).validate()
    with pytest.raises(ConfigError, match=r"`se_stages` must be stage numbers in 1..2") as info:
        TrainConfig(widths=(8, 16), blocks=(1, 1)).validate()
    assert info.value.fields == ("se_stages",)
    with pytest.raises(ConfigError) as info:
        TrainConfig(widths=(8, 16)).validate()
    assert info.value.fields == ("widths", "blocks")


def test_field_choices_of_the_whole_and_of_a_part():
    assert field_choices() == {
        "schedule_unit": ("epoch", "step"),
        "strategy": ("default", "mirrored", "multiworker"),
        "mixed_precision": ("off", "mixed_float16", "mixed_bfloat16"),
    }
    assert field_choices(ScaleConfig) == {
        "strategy": ("default", "mirrored", "multiworker"),
        "mixed_precision": ("off", "mixed_float16", "mixed_bfloat16"),
    }


def test_both_precision_vocabularies_name_the_same_three_policies():
    assert tuple(PRECISION_POLICIES) == field_choices()["mixed_precision"]
    assert sorted(PRECISION_POLICIES.values()) == sorted(INFERENCE_PRECISION_POLICIES.values())
    assert INFERENCE_PRECISION_POLICIES["bfloat16"] == PRECISION_POLICIES["mixed_bfloat16"]
    from keras_seresnet.training import distribute

    assert distribute.PRECISION_POLICIES is PRECISION_POLICIES


# --- files and run folders of version 0.1.0 ---


def test_a_config_json_of_version_0_1_0_loads():
    with open(OLD_CONFIG, encoding="utf-8") as f:
        old = json.load(f)
    assert not set(FIELDS_ADDED_AFTER_0_1_0) & set(old)  # the file predates them
    config = TrainConfig.from_json(OLD_CONFIG)
    assert config == TrainConfig()
    assert (config.val_split, config.schedule_unit, config.steps_per_execution) == (
        None,
        "epoch",
        1,
    )
    # What a resumed run compares is exactly what 0.1.0 compared.
    assert config.resume_dict() == {k: v for k, v in old.items() if k not in EXECUTION_FIELDS}


def _digest(config):
    text = json.dumps(config.resume_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    "changes, digest",
    [  # Computed with the TrainConfig of version 0.1.0 (commit 4373dac).
        ({}, "3afeef2c"),
        ({"warmup_epochs": 15}, "ef97c934"),
        ({"epochs": 10, "limit_train": 512, "seed": 3, "warmup_epochs": 1}, "f9cb818c"),
        (
            {
                "epochs": 10,
                "limit_train": 512,
                "seed": 3,
                "warmup_epochs": 1,
                "strategy": "mirrored",
                "jit": True,
                "steps_per_execution": 8,
            },
            "f9cb818c",
        ),
    ],
)
def test_the_resume_hash_of_a_config_without_new_fields_is_that_of_0_1_0(changes, digest):
    assert _digest(TrainConfig(**changes)) == digest


@pytest.mark.parametrize("changes", [{"val_split": 1000}, {"schedule_unit": "step"}])
def test_a_new_field_away_from_its_default_changes_the_resume_hash(changes):
    config = TrainConfig(**changes)
    assert _digest(config) != _digest(TrainConfig())
    assert set(changes) <= set(config.resume_dict())


def test_the_default_run_folder_keeps_its_0_1_0_name():
    from keras_seresnet.training.loop import default_out_dir

    # 0.1.0's default_out_dir(TrainConfig()): the hash of the resolved config (warmup 15).
    assert default_out_dir(TrainConfig()) == os.path.join(
        "saved_models", "seresnet-e250-seed0-ef97c934"
    )


def test_numpy_numbers_paths_and_lists_are_accepted_as_plain_values(tmp_path):
    config = TrainConfig(
        epochs=np.int64(10),
        base_lr=np.float32(0.5),
        limit_train=np.int32(100),
        seed=np.uint32(3),
        widths=[np.int64(8), 16],
        blocks=[1, 1],
        se_stages=[2],
        data_dir=tmp_path,
    ).validate()
    assert (config.epochs, config.limit_train, config.seed) == (10, 100, 3)
    assert type(config.epochs) is int and type(config.base_lr) is float and config.base_lr == 0.5
    assert config.widths == (8, 16) and type(config.widths[0]) is int
    assert config.data_dir == str(tmp_path)
    assert TrainConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    "field, value, rule",
    [
        ("widths", 32, "a tuple (or list) of integers"),
        ("se_stages", ("3",), "a tuple (or list) of integers"),
        ("mean", 0.5, "a tuple (or list) of finite numbers"),
        ("std", ("a", "b", "c"), "a tuple (or list) of finite numbers"),
        ("std", (0.35, 0.35, float("nan")), "a tuple (or list) of finite numbers"),
        ("base_lr", float("inf"), "a finite number"),
        ("weight_decay", float("nan"), "a finite number"),
        ("data_dir", 5, "a path (str or os.PathLike) or None"),
    ],
)
def test_wrongly_typed_and_non_finite_fields_raise_config_error(field, value, rule):
    with pytest.raises(
        ConfigError,
        match=rf"^Config field `{field}` must be {re.escape(rule)}\. "
        rf"Received: {field}=",
    ) as info:
        TrainConfig(**{field: value}).validate()
    assert info.value.fields == (field,)


@pytest.mark.parametrize("values", [None, [("epochs", 3)]])
def test_from_dict_refuses_what_is_not_a_dict(values):
    with pytest.raises(
        ConfigError,
        match=r"^Argument `values` must be a dict of config fields. "
        r"Received: values of type (NoneType|list)$",
    ):
        TrainConfig.from_dict(values)


# --- presets ---


def test_the_recipe_preset_is_the_defaults_and_fast_changes_only_its_fields():
    assert TrainConfig.preset("recipe") == TrainConfig()
    fast = TrainConfig.fast()
    assert fast == TrainConfig.preset("fast") == TrainConfig(**PRESETS["fast"])
    changed = {k for k, v in fast.to_dict().items() if v != TrainConfig().to_dict()[k]}
    assert changed <= set(PRESETS["fast"])
    assert fast.epochs <= 30 and fast.widths == TrainConfig().widths  # same network


def test_preset_fields_override_and_an_unknown_name_is_refused():
    assert TrainConfig.fast(epochs=4, seed=2).resolved_warmup_epochs == 1
    with pytest.raises(
        ConfigError,
        match=r"`name` must be one of 'recipe', 'fast'. "
        r"Received: name='quick'",
    ):
        TrainConfig.preset("quick")


def test_the_preset_flag_sets_the_defaults_and_explicit_flags_win():
    _, config = parse_config(build_parser(), ["--preset", "fast", "--epochs", "12"])
    assert config == TrainConfig.fast(epochs=12)
    _, config = parse_config(build_parser(), ["--label-smoothing", "0.1"])
    assert config == TrainConfig(label_smoothing=0.1)
