import argparse
import dataclasses
import errno
import inspect
import io
import os
import sys
import warnings

import pytest

from keras_seresnet import TrainConfig
from keras_seresnet.cli import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ArgumentParser,
    CommandError,
    add_config_arguments,
    config_from_args,
    flag_name,
    output_file,
    output_folder,
    parse_config,
    positive_int,
    progress_verbose,
    resumable_run,
    run_main,
)
from keras_seresnet.config import ConfigError
from keras_seresnet.errors import InvalidValueError, SeresnetError
from tests.tiny_model import TINY_MODEL, TINY_MODEL_FLAGS


def parser(**kwargs):
    p = ArgumentParser(prog="train.py")
    groups = add_config_arguments(p, **kwargs)
    return p, groups


def test_every_field_has_a_flag_help_and_a_section_group():
    p, groups = parser()
    assert list(groups) == [
        "data",
        "model",
        "optimiser",
        "schedule",
        "augmentation",
        "run",
        "scale",
    ]
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
    assert (config.use_se, config.mixup_cutout, config.color_jitter, config.grayscale) == (
        False,
        False,
        False,
        True,
    )
    assert config.widths == (8, 16, 16, 16) and config.warmup_epochs == 1
    assert flag_name("use_se") == "--se" and flag_name("limit_train") == "--limit-train"


@pytest.mark.parametrize(
    "argv,expected",
    [
        ("--epochs abc", "argument --epochs: invalid int value: 'abc'"),
        (
            "--epochs 0",
            "argument --epochs: Config field `epochs` must be a positive integer. Received: epochs=0",
        ),
        ("--base-lr -1", "argument --base-lr: Config field `base_lr` must be positive"),
        (
            "--widths 8 16",
            "Config fields `widths` and `blocks` must be non-empty and of equal length",
        ),
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
    _, config = parse_config(
        p, "--strategy mirrored --mixed-precision mixed_bfloat16 --jit".split()
    )
    assert (config.strategy, config.mixed_precision, config.jit) == (
        "mirrored",
        "mixed_bfloat16",
        True,
    )
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


def test_flags_and_help_do_not_need_the_source(monkeypatch):
    def no_source(*args, **kwargs):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    monkeypatch.setattr(inspect, "getsourcelines", no_source)
    p, groups = parser()
    assert list(groups) == [
        "data",
        "model",
        "optimiser",
        "schedule",
        "augmentation",
        "run",
        "scale",
    ]
    for action in p._actions[1:]:  # after --help
        field = next(f for f in dataclasses.fields(TrainConfig) if f.name == action.dest)
        assert action.help == field.metadata["help"]
    assert "hold out N training images" in p.format_help()


def test_only_adds_the_named_fields():
    p = ArgumentParser(prog="evaluate.py")
    add_config_arguments(p, only=("data_dir", "limit_test"))
    assert p.parse_args(["--limit-test", "5"]).limit_test == 5
    assert {a.dest for a in p._actions} == {"help", "data_dir", "limit_test"}


def test_an_override_error_is_not_blamed_on_a_flag():
    with pytest.raises(ConfigError) as info:
        config_from_args(parser()[0].parse_args([]), epochs=0)
    assert str(info.value).startswith("Config field `epochs`")


# --- run_main: one behaviour for every program ---


def program(command, **kwargs):
    p = ArgumentParser(prog="prog")
    p.add_argument("--value", type=int, default=1)
    return lambda argv: run_main(p, command, argv, **kwargs)


@pytest.mark.parametrize(
    "error",
    [
        InvalidValueError("bad value"),
        FileNotFoundError("No such model: m.keras"),
        FileExistsError("Export folder out exists"),
        ConfigError("Config field `x`", ("x",)),
        CommandError("training diverged"),
        OSError("disk full\nsecond line"),
    ],
)
def test_documented_failures_are_one_line_and_status_1(capsys, no_process_settings, error):
    def command(args):
        raise error

    assert program(command)([]) == EXIT_FAILURE == 1
    err = capsys.readouterr().err
    assert err == f"prog: error: {' '.join(str(error).split())}\n"
    assert no_process_settings == ["configured"]


def test_process_settings_come_after_parsing_and_before_the_command(capsys, no_process_settings):
    seen = []
    assert (
        program(lambda args: seen.append((args.value, list(no_process_settings))))(["--value", "3"])
        == 0
    )
    assert seen == [(3, ["configured"])]
    with pytest.raises(SystemExit) as info:
        program(lambda args: 0)(["--value", "x"])
    assert info.value.code == EXIT_USAGE == 2
    assert no_process_settings == ["configured"]  # not again: a usage error stops before


def test_check_runs_before_the_process_settings(capsys, no_process_settings):
    def check(parser, args):
        parser.error("argument MODEL: no such file or folder: 'm.keras'")

    with pytest.raises(SystemExit) as info:
        program(lambda args: 0, check=check)([])
    assert info.value.code == 2 and not no_process_settings
    assert capsys.readouterr().err.count("\n") == 1


def test_with_config_passes_the_validated_config(no_process_settings):
    p = ArgumentParser(prog="train.py")
    add_config_arguments(p)
    got = []
    assert (
        run_main(p, lambda args, config: got.append(config), ["--epochs", "3"], with_config=True)
        == 0
    )
    assert got == [TrainConfig(epochs=3)]


def test_interrupt_is_one_line_and_status_130(capsys, no_process_settings):
    def command(args):
        raise KeyboardInterrupt

    assert program(command)([]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.strip() == "prog: interrupted."


@pytest.mark.parametrize("error", [KeyError("bug"), ValueError("bug"), TypeError("bug")])
def test_a_bug_keeps_its_traceback(no_process_settings, error):
    def command(args):
        raise error

    with pytest.raises(type(error)):
        program(command)([])


def test_a_user_mistake_found_while_running_is_one_line(
    capsys, no_process_settings, tmp_path, tiny_image_tree
):
    from keras_seresnet.cli import train

    # 20 training images in the tree, so no hold-out of 50 fits: found once the data is loaded.
    argv = [
        "--data-dir",
        str(tiny_image_tree),
        "--val-split",
        "50",
        "--epochs",
        "1",
        "--schedule-unit",
        "step",
        *TINY_MODEL_FLAGS,
        "--out",
        str(tmp_path / "run"),
    ]
    assert train.main(argv) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(
        ": error: Argument `val_split` must be an integer in [1, 20) (the training images "
        "loaded). Received: val_split=50\n"
    ), err
    assert not (tmp_path / "run").exists()


def test_a_value_error_from_deep_inside_a_run_keeps_its_traceback(no_process_settings, tmp_path):
    import keras
    import numpy as np

    from keras_seresnet.training.loop import train

    class Broken(keras.callbacks.Callback):
        """A bug that Keras calls from inside `model.fit`, as a user's callback is called."""

        def on_train_begin(self, logs=None):
            raise ValueError("a bug deep inside")

    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.arange(4) % 2
    config = TrainConfig(**TINY_MODEL, epochs=1, batch_size=4, warmup_epochs=0)

    def command(args):
        train(
            config,
            tmp_path / "run",
            data=((images, labels), (images, labels)),
            callbacks=[Broken()],
            verbose=0,
        )

    with pytest.raises(ValueError, match="a bug deep inside") as info:
        program(command)([])
    assert not isinstance(info.value, SeresnetError)
    assert "on_train_begin" in {entry.name for entry in info.traceback}


def test_the_cli_reads_no_source_and_uses_no_private_argparse_api():
    import keras_seresnet.cli as cli_package

    folder = os.path.dirname(cli_package.__file__)
    sources = [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".py")]
    root = os.path.dirname(os.path.dirname(folder))
    sources += [
        os.path.join(root, "scripts", name)
        for name in os.listdir(os.path.join(root, "scripts"))
        if name.endswith(".py") and name != "benchmark.py"
    ]
    for path in sources:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for banned in ("inspect", "import re\n", "_option_string_actions", "getsource"):
            assert banned not in text, (path, banned)


def test_a_training_interrupt_says_how_to_resume(capsys, no_process_settings):
    def command(args):
        with resumable_run("saved_models/run"):
            raise KeyboardInterrupt

    assert program(command)([]) == 130
    assert capsys.readouterr().err.strip() == (
        "prog: interrupted. Run the same command again to resume from the last finished epoch "
        "(saved_models/run)."
    )


def test_a_diverged_run_is_one_line(capsys, no_process_settings):
    from keras_seresnet.training.loop import TrainingDivergedError

    def command(args):
        with resumable_run("out"):
            raise TrainingDivergedError("The loss became NaN at epoch 3.")

    assert program(command)([]) == 1
    assert capsys.readouterr().err == "prog: error: The loss became NaN at epoch 3.\n"


def test_a_system_error_names_its_path_not_its_errno(capsys, no_process_settings):
    def command(args):
        raise PermissionError(errno.EACCES, "Permission denied", "out/model.keras")

    def move(args):
        raise OSError(errno.EXDEV, "Invalid cross-device link", "a.csv", None, "b.csv")

    assert program(command)([]) == program(move)([]) == EXIT_FAILURE
    assert capsys.readouterr().err == (
        "prog: error: out/model.keras: Permission denied\n"
        "prog: error: a.csv -> b.csv: Invalid cross-device link\n"
    )


def test_warnings_are_one_line_and_the_hook_is_restored(capsys, no_process_settings):
    hook = warnings.showwarning

    def command(args):
        warnings.warn("Skipping broken image a.jpg:\n  cannot identify image file", stacklevel=2)

    assert program(command)([]) == 0
    assert capsys.readouterr().err == (
        "prog: warning: Skipping broken image a.jpg: cannot identify image file\n"
    )
    assert warnings.showwarning is hook


def output_parser():
    p = ArgumentParser(prog="prog")
    p.add_argument("--out", type=output_folder)
    p.add_argument("--output", type=output_file)
    p.add_argument("--batch-size", type=positive_int)
    return p


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "{tmp}/afile"], "argument --out: '{tmp}/afile' is a file, not a folder"),
        (
            ["--out", "{tmp}/afile/run"],
            "argument --out: cannot create '{tmp}/afile/run': '{tmp}/afile' is a file, not a folder",
        ),
        (["--output", "{tmp}/adir"], "argument --output: '{tmp}/adir' is a folder, not a file"),
        (
            ["--output", "{tmp}/afile/p.csv"],
            "argument --output: cannot create '{tmp}/afile/p.csv': '{tmp}/afile' is a file, not a folder",
        ),
        (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1. Received: 0"),
        (["--batch-size", "a"], "argument --batch-size: must be an integer >= 1. Received: 'a'"),
    ],
)
def test_unusable_outputs_and_counts_are_usage_errors(capsys, tmp_path, argv, message):
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    with pytest.raises(SystemExit) as info:
        output_parser().parse_args([arg.format(tmp=tmp_path) for arg in argv])
    assert info.value.code == EXIT_USAGE
    assert (
        capsys.readouterr().err
        == f"prog: error: {message.format(tmp=tmp_path)} (see prog --help)\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["adir", "afile"]


def test_usable_outputs_pass_and_an_unwritable_folder_is_a_usage_error(
    capsys, tmp_path, monkeypatch
):
    args = output_parser().parse_args(
        [
            "--out",
            str(tmp_path / "new" / "run"),
            "--output",
            str(tmp_path / "p.csv"),
            "--batch-size",
            "8",
        ]
    )
    assert (args.out, args.output, args.batch_size) == (
        str(tmp_path / "new" / "run"),
        str(tmp_path / "p.csv"),
        8,
    )
    assert os.listdir(tmp_path) == []  # nothing created
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only mount
    with pytest.raises(SystemExit):
        output_parser().parse_args(["--output", str(tmp_path / "p.csv")])
    assert capsys.readouterr().err == (
        f"prog: error: argument --output: cannot write "
        f"'{tmp_path}/p.csv': '{tmp_path}' is not writable "
        "(see prog --help)\n"
    )


def test_switches_default_on_have_both_forms():
    from keras_seresnet.cli import export, predict

    defaults = predict.build_parser().parse_args(["m.keras", "."])
    assert (defaults.recursive, defaults.follow_symlinks, defaults.safe_mode) == (True, True, True)
    off = predict.build_parser().parse_args(
        ["m.keras", ".", "--no-recursive", "--no-follow-symlinks", "--no-safe-mode"]
    )
    assert (off.recursive, off.follow_symlinks, off.safe_mode) == (False, False, False)
    assert not export.build_parser().parse_args(["m.keras", "out", "--no-keras-file"]).save_keras
    assert "--recursive, --no-recursive" in predict.build_parser().format_help()


@pytest.mark.parametrize(
    "quiet, terminal, verbose",
    [
        (False, True, 1),
        (True, True, 2),
        (False, False, 2),
        (True, False, 2),
    ],
)
def test_the_progress_bar_is_for_a_terminal_only(monkeypatch, quiet, terminal, verbose):
    class Stdout(io.StringIO):
        def isatty(self):
            return terminal

    monkeypatch.setattr(sys, "stdout", Stdout())
    assert progress_verbose(argparse.Namespace(quiet=quiet)) == verbose
