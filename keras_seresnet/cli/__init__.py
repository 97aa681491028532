"""Command-line flags for every `TrainConfig` field, built from the dataclass itself.

Each field becomes a flag named after it (`limit_train` -> `--limit-train`)
with the dataclass default as its default, the field's unit comment in
`config.py` as its help, in an argument group named after the `# --- group ---`
section the field sits in (data, model, optimiser, schedule, augmentation,
run, scale). A field added to `TrainConfig` therefore gets its flag, help and group
without touching this module. Flag shapes:

- `bool`: a `--name/--no-name` pair, the `use_` prefix dropped: `use_se`
  gives `--se/--no-se`, `mixup_cutout` gives `--mixup-cutout/--no-mixup-cutout`,
  `grayscale` gives `--grayscale/--no-grayscale`.
- `Tuple[int, ...]` / `Tuple[float, ...]`: one or more values (`--widths 8 16 16 16`).
- `Optional[int]` / `Optional[str]`: the value, default None.
- `Literal[...]`: one of the listed values (`--strategy {default,mirrored,multiworker}`).
- `Optional[bool]`: a `--name/--no-name` pair whose default None means "not set"
  (`--jit/--no-jit`, None: Keras decides).

Library code never reads `sys.argv`; scripts build a parser with
`ArgumentParser`, add the flags with `add_config_arguments`, and turn the
parsed namespace into a validated config with `config_from_args`.
"""

import argparse
import dataclasses
import inspect
import re
import typing

from keras_seresnet.config import TrainConfig

_SECTION = re.compile(r"^\s*# --- (.+?) ---\s*$")
_FIELD = re.compile(r"^    (\w+)\s*:.*?=.*?(?:#\s?(.*))?$")


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` that reports a bad flag in one line, defaults in --help.

    A script with forty flags would otherwise print a twenty-line usage block
    above the one line that matters.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _field_sections():
    """`{field: (section, help)}` from the source of `TrainConfig`, or {} without source."""
    try:
        source = inspect.getsource(TrainConfig)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    section, found = "config", {}
    for line in source.splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            continue
        match = _FIELD.match(line)
        if match and match.group(1) in names:
            found[match.group(1)] = (section, (match.group(2) or "").strip())
    return found


def flag_name(field):
    """The flag of a config field: `limit_train` -> `--limit-train`, `use_se` -> `--se`."""
    name = field[len("use_"):] if field.startswith("use_") else field
    return "--" + name.replace("_", "-")


def _unwrap_optional(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(args) == 1:
        return args[0]
    return annotation


def add_config_arguments(parser, *, exclude=()):
    """Adds a flag for every `TrainConfig` field to `parser`, grouped by section.

    Args:
        parser: an `argparse.ArgumentParser`.
        exclude: field names to leave out (a script that sets them itself).

    Returns:
        `{section: argument group}`, so a script can add its own flags (such
        as `--out`) to the "run" group.
    """
    sections = _field_sections()
    hints = typing.get_type_hints(TrainConfig)
    groups = {}
    for field in dataclasses.fields(TrainConfig):
        if field.name in exclude:
            continue
        section, help_text = sections.get(field.name, ("config", ""))
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        group = groups[section]
        annotation = _unwrap_optional(hints[field.name])
        kwargs = dict(dest=field.name, default=field.default, help=help_text or field.name)
        if annotation is bool:
            group.add_argument(flag_name(field.name), action=argparse.BooleanOptionalAction, **kwargs)
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
        ValueError: from `TrainConfig.validate()`, prefixed with the flag of
            the first field the message names.
    """
    values = {}
    for field in dataclasses.fields(TrainConfig):
        if hasattr(args, field.name):
            value = getattr(args, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    try:
        return TrainConfig(**values).validate()
    except ValueError as e:
        named = re.search(r"`(\w+)`", str(e))
        if named and named.group(1) in values:
            raise ValueError(f"argument {flag_name(named.group(1))}: {e}") from None
        raise


def parse_config(parser, argv=None, **overrides):
    """Parses `argv` and returns `(args, config)`; a bad value exits with one line.

    Args:
        parser: a parser set up by `add_config_arguments`.
        argv: the arguments (a script's `main(argv)` passes its own; None
            lets argparse read the command line).
        **overrides: passed to `config_from_args`.
    """
    args = parser.parse_args(argv)
    try:
        return args, config_from_args(args, **overrides)
    except ValueError as e:
        parser.error(str(e))


def add_safe_mode_argument(parser):
    """Adds `--no-safe-mode` (sets `args.safe_mode` False) for scripts that load models."""
    parser.add_argument("--no-safe-mode", dest="safe_mode", action="store_false",
                        help="allow .keras files with Lambda layers (runs code stored in the "
                             "file: only for files you trust)")
