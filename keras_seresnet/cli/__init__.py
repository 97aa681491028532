"""The command-line programs, and their flags for every `TrainConfig` field.

Each field becomes a flag named after it (`limit_train` -> `--limit-train`)
with the dataclass default as its default, and the `"help"` and `"group"` of
the field's metadata (see `keras_seresnet.config`) as its help text and
argument group (data, model, optimiser, schedule, augmentation, run, scale).
A field added to a configuration part therefore gets its flag, help and
group without touching this module; nothing here reads source code. Flag
shapes:

- `bool`: a `--name/--no-name` pair, the `use_` prefix dropped: `use_se`
  gives `--se/--no-se`, `mixup_cutout` gives `--mixup-cutout/--no-mixup-cutout`,
  `grayscale` gives `--grayscale/--no-grayscale`.
- `Tuple[int, ...]` / `Tuple[float, ...]`: one or more values (`--widths 8 16 16 16`).
- `Optional[int]` / `Optional[str]`: the value, default None.
- `Literal[...]`: one of the listed values (`--strategy {default,mirrored,multiworker}`).
- `Optional[bool]`: a `--name/--no-name` pair whose default None means "not set"
  (`--jit/--no-jit`, None: Keras decides).

The programs (`keras_seresnet.cli.train`, `.predict`, `.evaluate`, `.export`,
`.ablation`, `.import_torch`, `.plots`) are installed as the commands
`keras-seresnet-train`, `keras-seresnet-predict`, ... and wrapped by
`scripts/*.py`. Each `main(argv=None)` goes through `run_main`, so all of them
answer mistakes the same way: one line `prog: error: message`, exit status 2
for a usage mistake (a bad flag or value, a missing input path, arguments in
the wrong order) and 1 for a failure while running (see `run_main`).

The recipe the defaults describe is written up in `docs/recipe.md`. Library
code never reads `sys.argv`.
"""

import argparse
import contextlib
import dataclasses
import functools
import os
import sys
import types
import typing
import warnings

from keras_seresnet.config import PRESETS, ConfigError, TrainConfig, field_group, field_help
from keras_seresnet.errors import SeresnetError
from keras_seresnet.pretrained import is_pretrained_name

# The exit statuses of `run_main` (2 is also argparse's for a usage mistake).
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(SeresnetError):
    """A failure a program reports as one line (exit status 1), raised by a command."""


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` that reports a bad flag in one line, defaults in --help.

    A script with forty flags would otherwise print a twenty-line usage block
    above the one line that matters.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def flag_name(field):
    """The flag of a config field: `limit_train` -> `--limit-train`, `use_se` -> `--se`."""
    name = field[len("use_") :] if field.startswith("use_") else field
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def add_config_arguments(parser, *, exclude=(), only=None):
    """Adds a flag for every `TrainConfig` field to `parser`, grouped by the field's group.

    Args:
        parser: an `argparse.ArgumentParser`.
        exclude: field names to leave out (a script that sets them itself).
        only: if given, the field names to add (a script that needs a few).

    Returns:
        `{group: argument group}` of every group, in the order of the fields,
        even those whose fields are all left out (`--help` skips empty
        groups), so a script can add its own flags (such as `--out`) to the
        "run" group.
    """
    hints = typing.get_type_hints(TrainConfig)
    groups = {}
    for field in dataclasses.fields(TrainConfig):
        group_name = field_group(field)
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        if field.name in exclude or (only is not None and field.name not in only):
            continue
        group = groups[group_name]
        annotation = _unwrap_optional(hints[field.name])
        kwargs = dict(dest=field.name, default=field.default, help=field_help(field))
        if annotation is bool:
            group.add_argument(
                flag_name(field.name), action=argparse.BooleanOptionalAction, **kwargs
            )
        elif typing.get_origin(annotation) is typing.Literal:
            group.add_argument(flag_name(field.name), choices=typing.get_args(annotation), **kwargs)
        elif typing.get_origin(annotation) is tuple:
            item = typing.get_args(annotation)[0]
            group.add_argument(flag_name(field.name), type=item, nargs="+", **kwargs)
        else:
            group.add_argument(flag_name(field.name), type=annotation, **kwargs)
    return groups


def config_from_args(args, **overrides):
    """The validated `TrainConfig` of a parsed namespace.

    Args:
        args: the namespace of a parser set up by `add_config_arguments`;
            fields it lacks (excluded ones) keep their defaults.
        **overrides: field values that win over the namespace.

    Raises:
        ConfigError: from `TrainConfig.validate()`, its message prefixed with
            the flag of the first offending field when that field came from
            the namespace.
    """
    values = {}
    for field in dataclasses.fields(TrainConfig):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    try:
        return TrainConfig(**values).validate()
    except ConfigError as e:
        if e.fields and e.fields[0] in values and e.fields[0] not in overrides:
            raise ConfigError(f"argument {flag_name(e.fields[0])}: {e}", e.fields) from None
        raise


def parse_config(parser, argv=None, **overrides):
    """Parses `argv` and returns `(args, config)`; a bad value exits with one line.

    Args:
        parser: a parser set up by `add_config_arguments`.
        argv: the arguments (a script's `main(argv)` passes its own; None
            lets argparse read the command line).
        **overrides: passed to `config_from_args`.

    A parser with a `--preset` flag (`add_preset_argument`) takes the
    preset's values as the defaults of the config flags, so flags given
    beside it still win.
    """
    known, _ = parser.parse_known_args(argv)
    if getattr(known, "preset", None):
        parser.set_defaults(**PRESETS[known.preset])
    args = parser.parse_args(argv)
    try:
        return args, config_from_args(args, **overrides)
    except ConfigError as e:
        parser.error(str(e))


def add_preset_argument(group):
    """Adds `--preset {recipe,fast}` (`args.preset`): a named set of config defaults (`PRESETS`)."""
    group.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="recipe",
        help="defaults of the config flags: recipe (the paper's 250 epochs) or "
        "fast (30 epochs for a CPU, the pretrained weights' schedule); flags "
        "given beside it win",
    )


def add_run_folder_arguments(group, *, out_help, overwrite_help):
    """Adds `--out`, `--overwrite` and `--quiet` for the programs that train into a folder."""
    group.add_argument("--out", type=output_folder, help=out_help)
    group.add_argument("--overwrite", action="store_true", help=overwrite_help)
    group.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar, only one line per epoch (the default when stdout is not a terminal)",
    )


def progress_verbose(args):
    """`train(verbose=...)` for a command with `--quiet`: 1 (progress bar) or 2 (summary lines).

    2 with `--quiet`, or when stdout is not a terminal (a log file, a pipe),
    where Keras's progress bar would write one line per update; 1 otherwise.
    """
    return 2 if args.quiet or not sys.stdout.isatty() else 1


def add_safe_mode_argument(parser):
    """Adds `--safe-mode/--no-safe-mode` (`args.safe_mode`, default True) for scripts that load models."""
    parser.add_argument(
        "--safe-mode",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse .keras files with Lambda layers; --no-safe-mode allows them "
        "(runs code stored in the file: only for files you trust)",
    )


def _missing(path):
    return f"no such file or folder: {path!r}"


def existing_path(text):
    """An argparse `type` for an input file or folder: the path, if it exists.

    Raises:
        argparse.ArgumentTypeError: nothing exists at `text` (a usage error).
    """
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(_missing(text))
    return text


def _unwritable(path, *, folder):
    """Why `path` cannot be written as a folder (`folder`) or a file, or None if it can."""
    if folder and os.path.exists(path) and not os.path.isdir(path):
        return f"{path!r} is a file, not a folder"
    if not folder and os.path.isdir(path):
        return f"{path!r} is a folder, not a file"
    # The folder that must let us write: the output folder itself if it exists,
    # else the nearest existing folder above it, where it will be created.
    where = os.path.abspath(path)
    if not (folder and os.path.isdir(where)):
        where = os.path.dirname(where)
    while not os.path.exists(where):
        where = os.path.dirname(where)
    if not os.path.isdir(where):
        return f"cannot create {path!r}: {where!r} is a file, not a folder"
    if not os.access(where, os.W_OK | os.X_OK):
        return f"cannot write {path!r}: {where!r} is not writable"
    return None


def output_folder(text):
    """An argparse `type` for an output folder: the path, if a folder can be written there.

    The folder may exist or not; nothing is created.

    Raises:
        argparse.ArgumentTypeError: `text` is a file, lies below a file, or
            its folder (or the nearest existing one above it) is not
            writable (a usage error, before any work is done).
    """
    reason = _unwritable(text, folder=True)
    if reason:
        raise argparse.ArgumentTypeError(reason)
    return text


def output_file(text):
    """An argparse `type` for an output file: the path, if a file can be written there.

    Raises:
        argparse.ArgumentTypeError: `text` is a folder, lies below a file, or
            the folder that would hold it is not writable.
    """
    reason = _unwritable(text, folder=False)
    if reason:
        raise argparse.ArgumentTypeError(reason)
    return text


def check_output_folder(parser, name, path):
    """A usage error naming argument `name` when no folder can be written at `path` (`output_folder`).

    For a positional argument, checked after `check_order`, whose hint is the
    better one when the arguments are swapped.
    """
    try:
        output_folder(path)
    except argparse.ArgumentTypeError as e:
        parser.error(f"argument {name}: {e}")


def positive_int(text):
    """An argparse `type` for a count that must be at least 1, such as `--batch-size`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {value}")
    return value


def check_exists(parser, name, path):
    """A usage error naming argument `name` when nothing exists at `path`."""
    if not os.path.exists(path):
        parser.error(f"argument {name}: {_missing(path)}")


def check_model(parser, name, model):
    """A usage error naming argument `name` when `model` is neither a pretrained name nor a path."""
    if not is_pretrained_name(model):
        check_exists(parser, name, model)


def run_main(parser, command, argv=None, *, with_config=False, check=None, tensorflow=True):
    """Runs a command-line program: parse, make the process settings, run, report.

    1. `argv` is parsed (`parse_config` with `with_config`): `--help`, or a
       usage mistake as one line and `SystemExit(2)`, before TensorFlow
       starts. `check(parser, args)`, if given, then looks for mistakes the
       flags alone cannot show (it calls `parser.error`).
    2. `keras_seresnet.runtime.configure_process()` makes the process-wide
       settings, before the command imports Keras or TensorFlow; with
       `tensorflow` (default True; False for a command that never needs it)
       `runtime.import_tensorflow()` then starts TensorFlow without the
       start-up lines its log level hides.
    3. `command(args)` (`command(args, config)` with `with_config`) runs;
       its return value is the exit status (None means 0). A failure the
       package explains, a `keras_seresnet.errors.SeresnetError` (such as
       `ConfigError`, `DataError`, `RunFolderError` or `CommandError`) or an
       `OSError` (such as `FileNotFoundError`, `PermissionError`), is
       printed as one line `prog: error: message` on stderr and gives 1 (an
       `OSError` as "path: reason"); a Python warning (such as a skipped
       broken image) is printed as one line `prog: warning: message`; Ctrl-C
       or SIGTERM gives 130 after one line (with the message of the
       `KeyboardInterrupt`, if any, such as `resumable_run`'s) in any phase of
       the command, even where Python would swallow the interrupt
       (`keras_seresnet.interrupts`). Anything else is a bug and keeps its
       traceback: a plain `ValueError` too, which Keras and TensorFlow raise
       for programming errors.

    Returns:
        The exit status, for `sys.exit`.
    """
    if with_config:
        args, config = parse_config(parser, argv)
        arguments = (args, config)
    else:
        args = parser.parse_args(argv)
        arguments = (args,)
    if check is not None:
        check(parser, args)

    from keras_seresnet import interrupts, runtime

    runtime.configure_process()  # before the command imports Keras and TensorFlow
    if tensorflow:
        runtime.import_tensorflow()
    try:
        # Both restore what they change (the signal handlers, the warnings module's hook) after.
        with interrupts.signals_interrupt(), warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, parser.prog)
            status = command(*arguments)
    except KeyboardInterrupt as e:
        hint = f" {e}" if str(e) else ""
        print(f"\n{parser.prog}: interrupted.{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SeresnetError, OSError) as e:
        print(f"{parser.prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILURE
    return 0 if status is None else status


@contextlib.contextmanager
def resumable_run(out):
    """Around a training call: a diverged run is a `CommandError`; Ctrl-C says how to resume.

    Args:
        out: the run (or ablation) folder that the same command resumes.
    """
    from keras_seresnet.training.loop import TrainingDivergedError

    try:
        yield
    except TrainingDivergedError as e:
        raise CommandError(str(e)) from None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"Run the same command again to resume from the last finished epoch ({out})."
        ) from None


def _show_warning(prog, message, category, filename, lineno, file=None, line=None):
    """`warnings.showwarning` for a command: `prog: warning: message`, one line on stderr."""
    print(f"{prog}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _one_line(error):
    """An exception's message with its line breaks folded; an empty one gives the type's name.

    An `OSError` of the system that names its file reads "path: reason"
    ("out/model.keras: Permission denied"), not Python's "[Errno 13] ...".
    """
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
        if error.filename2 is not None:
            text = f"{error.filename} -> {error.filename2}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def looks_like_model_file(path):
    """Whether `path` names a model file: a `.keras` file or a SavedModel folder.

    Only the name and the folder's `saved_model.pb` are looked at, so it is
    cheap enough for argument checks before TensorFlow starts.

    >>> looks_like_model_file("best.keras"), looks_like_model_file("cifar10")
    (True, False)
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "saved_model.pb"))
    return path.endswith(".keras")


def looks_like_model(path):
    """Whether `path` names a model `keras_seresnet.load_model` reads.

    That is a pretrained name ("cifar10") or a model file (`looks_like_model_file`).

    >>> looks_like_model("cifar10"), looks_like_model("best.keras"), looks_like_model("cat.png")
    (True, True, False)
    """
    return is_pretrained_name(path) or looks_like_model_file(path)


def looks_like_keras_model(path):
    """Whether `path` names a Keras model: a pretrained name or a `.keras` file (no SavedModel).

    >>> looks_like_keras_model("cifar10"), looks_like_keras_model("serving/seresnet/1")
    (True, False)
    """
    return is_pretrained_name(path) or os.fspath(path).endswith(".keras")


def check_order(parser, first, second, *, looks_like_first=None, looks_like_second=None):
    """A usage error when two positional arguments look swapped.

    Args:
        parser: the program's parser (for `parser.error`).
        first, second: `(metavar, value)` of the two arguments, in their
            documented order.
        looks_like_first, looks_like_second: `value -> bool`, whether a value
            looks like that argument (for example, a `.keras` file). The
            arguments look swapped when one's own value does not and the
            other's does.
    """
    (first_name, first_value), (second_name, second_value) = first, second
    swapped = any(
        looks_like is not None and not looks_like(own) and looks_like(other)
        for looks_like, own, other in (
            (looks_like_first, first_value, second_value),
            (looks_like_second, second_value, first_value),
        )
    )
    if swapped:
        parser.error(
            f"arguments {first_name} and {second_name} look swapped (received {first_value!r} "
            f"then {second_value!r}); the order is {first_name} {second_name}"
        )
