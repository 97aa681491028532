import dataclasses
import json

import pytest

from keras_seresnet import TrainConfig


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
    [("epochs", 0), ("batch_size", -1), ("dropout", 1.5), ("hue", 0.7), ("warmup_epochs", 300),
     ("min_lr", 1.0), ("limit_train", 0), ("cutout_size", 40), ("strategy", "tpu"),
     ("mixed_precision", "float16"), ("jit", "yes")],
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
    c = TrainConfig(strategy="mirrored", jit=True, mixed_precision="mixed_bfloat16")
    assert set(c.to_dict()) - set(c.resume_dict()) == {"strategy", "jit", "steps_per_execution"}
    assert c.resume_dict()["mixed_precision"] == "mixed_bfloat16"
    assert TrainConfig().resume_dict() == TrainConfig(strategy="multiworker", jit=False).resume_dict()
