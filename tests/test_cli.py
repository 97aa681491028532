import dataclasses

import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.cli import ArgumentParser, add_config_arguments, flag_name, parse_config


def parser(**kwargs):
    p = ArgumentParser(prog="train.py")
    groups = add_config_arguments(p, **kwargs)
    return p, groups


def test_every_field_has_a_flag_help_and_a_section_group():
    p, groups = parser()
    assert list(groups) == ["data", "model", "optimiser", "schedule", "augmentation", "run", "scale"]
    actions = {a.dest: a for a in p._actions}
    for field in dataclasses.fields(TrainConfig):
        assert field.name in actions, field.name
        assert actions[field.name].help, field.name
    grouped = {a.dest for g in groups.values() for a in g._group_actions}
    assert grouped == {f.name for f in dataclasses.fields(TrainConfig)}
    assert "seed" in {a.dest for a in groups["run"]._group_actions}
    assert "grayscale" in {a.dest for a in groups["augmentation"]._group_actions}


def test_no_flags_give_the_recipe():
    _, config = parse_config(parser()[0], [])
    assert config == TrainConfig()


def test_issue_flags_and_ablation_switches():
    argv = (
        "--data-dir /data --epochs 3 --batch-size 8 --limit-train 64 --limit-test 16 --seed 7 "
        "--no-se --no-mixup-cutout --no-color-jitter --grayscale --widths 8 16 16 16 --warmup-epochs 1"
    ).split()
    _, config = parse_config(parser()[0], argv)
    assert (config.data_dir, config.epochs, config.batch_size) == ("/data", 3, 8)
    assert (config.limit_train, config.limit_test, config.seed) == (64, 16, 7)
    assert (config.use_se, config.mixup_cutout, config.color_jitter, config.grayscale) == (False, False, False, True)
    assert config.widths == (8, 16, 16, 16) and config.warmup_epochs == 1
    assert flag_name("use_se") == "--se" and flag_name("limit_train") == "--limit-train"


@pytest.mark.parametrize(
    "argv,expected",
    [
        ("--epochs abc", "argument --epochs: invalid int value: 'abc'"),
        ("--epochs 0", "argument --epochs: Config field `epochs` must be a positive integer. Received: epochs=0"),
        ("--base-lr -1", "argument --base-lr: Config field `base_lr` must be positive"),
        ("--widths 8 16", "Config fields `widths` and `blocks` must be non-empty and of equal length"),
        ("--hue 0.7", "argument --hue: Config field `hue` must be in [0, 0.5]"),
        ("--no-such-flag", "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_values_exit_with_one_line(capsys, argv, expected):
    with pytest.raises(SystemExit) as info:
        parse_config(parser()[0], argv.split())
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: error: ")
    assert expected in err


def test_scale_flags_offer_their_choices():
    p, _ = parser()
    actions = {a.dest: a for a in p._actions}
    assert actions["strategy"].choices == ("default", "mirrored", "multiworker")
    assert actions["mixed_precision"].choices == ("off", "mixed_float16", "mixed_bfloat16")
    _, config = parse_config(p, "--strategy mirrored --mixed-precision mixed_bfloat16 --jit".split())
    assert (config.strategy, config.mixed_precision, config.jit) == ("mirrored", "mixed_bfloat16", True)
    assert parse_config(p, ["--no-jit"])[1].jit is False and parse_config(p, [])[1].jit is None


def test_a_value_outside_the_choices_is_one_line(capsys):
    with pytest.raises(SystemExit):
        parse_config(parser()[0], ["--strategy", "tpu"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --strategy: invalid choice: 'tpu' (choose from " in err
    assert all(choice in err for choice in ("default", "mirrored", "multiworker"))


def test_excluded_fields_keep_defaults():
    p, _ = parser(exclude=("use_se", "seed"))
    with pytest.raises(SystemExit):
        p.parse_args(["--no-se"])
    _, config = parse_config(p, [], seed=3)
    assert config.use_se and config.seed == 3
