"""The recipe's configuration: one small validated dataclass per concern, and their union.

Each part is the one home of its fields' defaults (the published recipe,
written up in `docs/recipe.md`), their units and their command-line help:

- `DataConfig`: where the images come from and how many are used.
- `ModelConfig`: the SE-ResNet's architecture and input normalisation.
- `AugmentConfig`: colour jitter, crop, flip, cutout, mixup, greyscale.
- `OptimizerConfig`: batch, SGD momentum, weight decay, label smoothing.
- `ScheduleConfig`: epochs and the warmup-cosine learning rate.
- `RunConfig`: the seed.
- `ScaleConfig`: how a run executes (devices, precision, XLA).

`TrainConfig` inherits every part's fields, so it stays flat: flat keyword
arguments (`TrainConfig(base_lr=0.05, epochs=10)`), flat attributes
(`config.base_lr`) and a flat `config.json`. Its properties return the parts
(`config.schedule_config`), and `validate()` runs every part's checks.
Invalid values raise `ConfigError`, a `ValueError` whose `fields` names the
offending fields.

Each field's `dataclasses.field` metadata holds its `"help"` (with the unit)
and its `"group"` (the part's command-line group); `keras_seresnet.cli`
builds the flags from them.

Example:

>>> config = TrainConfig(epochs=10, base_lr=0.05)
>>> config.schedule_config.base_lr
0.05
>>> TrainConfig.from_json(config.to_json()) == config
True
>>> CIFAR10_CLASSES[3], PARAMETER_BUDGET
('cat', 5000000)
"""

import dataclasses
import hashlib
import json
import math
import numbers
import os
import typing
from typing import Literal

from keras_seresnet import compat
from keras_seresnet.errors import SeresnetError
from keras_seresnet.files import write_text

# The recipe's schedule is defined for 250 epochs with 15 warmup epochs; a
# shorter run keeps the same proportion.
RECIPE_EPOCHS = 250
RECIPE_WARMUP_EPOCHS = 15

# The choices of the fields typed `Literal[...]` (`field_choices()` lists them, the CLI offers them).
Strategy = Literal["default", "mirrored", "multiworker"]
Precision = Literal["off", "mixed_float16", "mixed_bfloat16"]
ScheduleUnit = Literal["epoch", "step"]

# The one home of the precision names. A precision has two: training's
# (`TrainConfig.mixed_precision`, `Precision`, flag --mixed-precision) is the
# name of Keras's mixed-precision policy, inference's (the `precision` of
# `ProbabilityModel`, flag --precision) is the compute dtype. Each maps its
# names to the Keras dtype policy a model runs under.
PRECISION_POLICIES = {
    "off": "float32",
    "mixed_float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
}
INFERENCE_PRECISION_POLICIES = {
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}

# Fields that say how a run executes or what it records, not what it
# computes: a run may be resumed with other values (on more devices, with
# XLA, with TensorBoard logs), so they are left out of the resume check and of
# the default run folder's name. Their effect on the numbers is float rounding
# (all-reduce order, XLA fusion).
EXECUTION_FIELDS = ("strategy", "jit", "steps_per_execution", "tensorboard")

# The paper's limit on the parameter count (BatchNorm statistics counted).
PARAMETER_BUDGET = 5_000_000

# The largest seed: NumPy's legacy seeding, which `keras.utils.set_random_seed`
# calls, takes seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def check_class_names(class_names):
    """Checks the `class_names` argument of every function that takes one.

    Args:
        class_names: None, or a sequence (any iterable) of names, one per
            class.

    Returns:
        None for None, else the names as a tuple.

    Raises:
        ValueError: `class_names` is a single `str` or `bytes` (which would
            otherwise be read as one name per character), or not iterable.
    """
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)):
        raise ValueError(
            "Argument `class_names` must be a sequence of names, one per class, not a single "
            f"string. Received: class_names={class_names!r}"
        )
    try:
        return tuple(class_names)
    except TypeError:
        raise ValueError(
            "Argument `class_names` must be a sequence of names, one per class. "
            f"Received: class_names={class_names!r}"
        ) from None


def default_warmup_epochs(epochs):
    """The recipe's warmup for a run of `epochs`: 15/250 of it, rounded.

    A run of two or more epochs keeps at least one warmup epoch; a one-epoch
    run has none.

    >>> default_warmup_epochs(250), default_warmup_epochs(30), default_warmup_epochs(1)
    (15, 2, 0)
    """
    scaled = round(epochs * RECIPE_WARMUP_EPOCHS / RECIPE_EPOCHS)
    return max(scaled, 1) if epochs >= 2 else 0


def schedule_problem(*, epochs, base_lr, min_lr, warmup_epochs):
    """The first broken rule of the learning-rate schedule, as `(name, rule)`, or None.

    The one home of these rules: `ScheduleConfig` words a problem as a config
    field's, the schedule functions and callbacks as an argument's.
    """
    if not is_integer(epochs) or epochs < 1:
        return "epochs", "a positive integer"
    if not _is_number(base_lr) or not 0 < base_lr < math.inf:
        return "base_lr", "positive"
    if not _is_number(min_lr) or not 0 <= min_lr <= base_lr:
        return "min_lr", f"in [0, base_lr={base_lr}]"
    if warmup_epochs is not None and not (
        is_integer(warmup_epochs) and 0 <= warmup_epochs < epochs
    ):
        return "warmup_epochs", f"an integer in [0, epochs={epochs}) or None"
    return None


def alpha_problem(*, alpha, alpha_min):
    """The first broken rule of the mixup alpha's decay, as `(name, rule)`, or None (see `schedule_problem`)."""
    if not _is_number(alpha) or not alpha > 0:
        return "alpha", "positive"
    if not _is_number(alpha_min) or not 0 < alpha_min <= alpha:
        return "alpha_min", f"in (0, alpha={alpha}]"
    return None


class ConfigError(SeresnetError, ValueError):
    """An invalid configuration value.

    Attributes:
        fields: the names of the offending fields, first the one the message
            is about.

    Example:

    >>> try:
    ...     TrainConfig(epochs=0).validate()
    ... except ConfigError as error:
    ...     print(error.fields, error)
    ('epochs',) Config field `epochs` must be ... Received: epochs=0
    """

    def __init__(self, message, fields):
        super().__init__(message)
        self.fields = tuple(fields)


def _options(group):
    """A `dataclasses.field` factory for the fields of one command-line group."""

    def option(default, help):
        return dataclasses.field(default=default, metadata={"group": group, "help": help})

    return option


def _fail(config, name, rule):
    raise ConfigError(
        f"Config field `{name}` must be {rule}. Received: {name}={getattr(config, name)!r}",
        (name,),
    )


def is_integer(value):
    """Whether `value` is an integer: a Python `int` or a NumPy integer (`np.int64(10)`), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plain(value):
    """`value` as a plain JSON value: NumPy numbers as `int`/`float`, lists as tuples, paths as str.

    Python numbers, booleans and strings are returned as they are (so a
    config's JSON, and the folder names hashed from it, do not change).
    """
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if is_integer(value) and type(value) is not int:
        return int(value)
    if _is_number(value) and type(value) not in (int, float):
        return float(value)
    return value


def _check_positive_ints(config, *names):
    for name in names:
        if not is_integer(getattr(config, name)) or getattr(config, name) < 1:
            _fail(config, name, "a positive integer")


def _check_fractions(config, *names, closed=False):
    """Each field in [0, 1), or [0, 1] with `closed`."""
    for name in names:
        value = getattr(config, name)
        if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
            _fail(config, name, "in [0, 1]" if closed else "in [0, 1)")


def _check_types(config, part):
    """The `bool`, `int` and `float` fields of `part` hold such values, the `Literal` ones a choice."""
    hints = typing.get_type_hints(part)
    for field in dataclasses.fields(part):
        value, hint = getattr(config, field.name), hints[field.name]
        if hint is bool and not isinstance(value, bool):
            _fail(config, field.name, "True or False")
        if hint is int and not is_integer(value):
            _fail(config, field.name, "an integer")
        if hint is float and not _is_number(value):
            _fail(config, field.name, "a number")
        if hint is float and not math.isfinite(value):
            _fail(config, field.name, "a finite number")
        if hint == tuple[int, ...] and not (
            isinstance(value, tuple) and all(is_integer(v) for v in value)
        ):
            _fail(config, field.name, "a tuple (or list) of integers")
        if hint == tuple[float, ...] and not (
            isinstance(value, tuple) and all(_is_number(v) and math.isfinite(v) for v in value)
        ):
            _fail(config, field.name, "a tuple (or list) of finite numbers")
        if hint == (str | None) and not (value is None or isinstance(value, str)):
            _fail(config, field.name, "a path (str or os.PathLike) or None")
    for name, choices in field_choices(part).items():
        if getattr(config, name) not in choices:
            _fail(config, name, "one of " + ", ".join(repr(c) for c in choices))


@dataclasses.dataclass
class _Part:
    """What every configuration part shares: plain field values, dict and JSON conversion.

    On construction NumPy numbers become Python numbers (`np.int64(10)` is
    the integer 10), lists become tuples and `os.PathLike` paths become str,
    so every field holds what its JSON round trip gives back.
    """

    def __post_init__(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, _plain(getattr(self, field.name)))

    def validate(self):
        """Checks every field (each part defines its checks); returns the config.

        Raises:
            ConfigError: a field's value is invalid.
        """
        raise NotImplementedError

    @classmethod
    def of(cls, config):
        """This part of `config` (an instance of it, or a `TrainConfig`), as a new instance.

        >>> ScheduleConfig.of(TrainConfig(epochs=10)).epochs
        10
        """
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict):
        """Builds a validated config from a dict; fields it lacks keep their defaults.

        Raises:
            ConfigError: an unknown key (the message lists the known ones)
                or an invalid value.
        """
        if not isinstance(values, dict):
            raise ConfigError(
                "Argument `values` must be a dict of config fields. "
                f"Received: values of type {type(values).__name__}",
                (),
            )
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"Unknown config field(s): {', '.join(unknown)}. Known fields: {', '.join(names)}",
                unknown,
            )
        return cls(**values).validate()

    def to_json(self, path=None) -> str:
        """Returns the config as JSON text (keys sorted), and writes it to `path` if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path):
        """Reads a validated config from JSON text or from a path to a JSON file.

        Raises:
            ConfigError: the text is not a JSON object of known fields with
                valid values.
            OSError: the file cannot be read.
        """
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"Config is not valid JSON: {e}", ()) from None
        if not isinstance(values, dict):
            raise ConfigError(
                f"Config JSON must be an object. Received: {type(values).__name__}", ()
            )
        return cls.from_dict(values)


_data = _options("data")


@dataclasses.dataclass(kw_only=True)
class DataConfig(_Part):
    """Where the training and test images come from and how many are used.

    Example:

    >>> DataConfig(data_dir="cifar10/", limit_train=5000, val_split=500).validate().val_split
    500
    """

    data_dir: str | None = _data(
        None,
        "CIFAR-10 source: a JPEG tree train/<class>/*.jpg + test/<class>/*.jpg or the "
        "python pickles cifar-10-batches-py; None: the keras.datasets download",
    )
    limit_train: int | None = _data(None, "use only the first N training images; None: all")
    limit_test: int | None = _data(None, "use only the first N test images; None: all")
    val_split: int | None = _data(
        None,
        "hold out N training images (stratified, from the seed) to validate on and choose "
        "the best model; None: validate on the test set, as the reference notebook does",
    )

    def validate(self):
        """Checks the data fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, DataConfig)
        for name in ("limit_train", "limit_test", "val_split"):
            value = getattr(self, name)
            if value is not None and (not is_integer(value) or value < 1):
                _fail(self, name, "a positive integer or None")
        if (
            self.val_split is not None
            and self.limit_train is not None
            and self.val_split >= self.limit_train
        ):
            _fail(
                self,
                "val_split",
                f"smaller than limit_train={self.limit_train} "
                "(some images must remain for training)",
            )
        return self


_model = _options("model")


@dataclasses.dataclass(kw_only=True)
class ModelConfig(_Part):
    """The SE-ResNet's architecture and the normalisation of its input.

    Example:

    >>> ModelConfig(widths=(16, 32), blocks=(1, 1), se_stages=(2,)).validate().widths
    (16, 32)
    """

    num_classes: int = _model(10, "classes of the classifier head")
    widths: tuple[int, ...] = _model((32, 64, 128, 256), "channels per stage")
    blocks: tuple[int, ...] = _model((2, 2, 2, 2), "residual blocks per stage")
    use_se: bool = _model(
        True, "squeeze-and-excitation in the stages --se-stages (off: the ablation's Model 5)"
    )
    se_stages: tuple[int, ...] = _model((3, 4), "1-based stages whose blocks carry SE")
    se_reduction: int = _model(16, "SE bottleneck width = channels / se_reduction")
    dropout: float = _model(0.2, "dropout rate before the classifier, in [0, 1)")
    zero_init_residual: bool = _model(
        False,
        "start the last BatchNorm of each residual branch at gamma 0, so every block "
        "begins as its shortcut (initialisation only)",
    )
    bn_momentum: float = _model(
        0.9, "BatchNorm moving-average momentum, Keras convention (PyTorch's momentum 0.1)"
    )
    bn_epsilon: float = _model(1e-5, "BatchNorm epsilon (PyTorch's default)")
    mean: tuple[float, ...] = _model(
        (0.4914, 0.4822, 0.4465), "per-channel input mean, pixels scaled to [0, 1]"
    )
    std: tuple[float, ...] = _model(
        (0.35, 0.35, 0.35), "per-channel input std, pixels scaled to [0, 1]"
    )
    max_params: int | None = _model(
        PARAMETER_BUDGET,
        "refuse a model with more parameters than this, BatchNorm statistics "
        "counted (the paper's budget); None: no limit",
    )

    def validate(self):
        """Checks the model fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, ModelConfig)
        _check_positive_ints(self, "num_classes", "se_reduction")
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ConfigError(
                "Config fields `widths` and `blocks` must be non-empty and of "
                f"equal length. Received: widths={self.widths!r}, "
                f"blocks={self.blocks!r}",
                ("widths", "blocks"),
            )
        if any(not is_integer(w) or w < 1 for w in self.widths):
            _fail(self, "widths", "positive integers")
        if any(not is_integer(b) or b < 1 for b in self.blocks):
            _fail(self, "blocks", "positive integers")
        if any(s not in range(1, len(self.widths) + 1) for s in self.se_stages):
            _fail(self, "se_stages", f"stage numbers in 1..{len(self.widths)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            _fail(self, "mean", "three per-channel values (and so must `std`)")
        if any(s <= 0 for s in self.std):
            _fail(self, "std", "positive")
        _check_fractions(self, "dropout", "bn_momentum")
        if not self.bn_epsilon > 0:
            _fail(self, "bn_epsilon", "positive")
        if self.max_params is not None and (not is_integer(self.max_params) or self.max_params < 1):
            _fail(self, "max_params", "a positive integer or None")
        return self


_augment = _options("augmentation")


@dataclasses.dataclass(kw_only=True)
class AugmentConfig(_Part):
    """The training images' augmentation, applied in the order of the fields.

    Example:

    >>> AugmentConfig(mixup_cutout=False, grayscale=True).validate().grayscale_rate
    0.1
    """

    color_jitter: bool = _augment(
        True, "torchvision-style colour jitter (off: the ablation's Model 3)"
    )
    brightness: float = _augment(0.2, "brightness factor drawn from [1-b, 1+b]")
    contrast: float = _augment(
        0.2, "contrast factor drawn from [1-c, 1+c], blending with the mean grey"
    )
    saturation: float = _augment(
        0.2, "saturation factor drawn from [1-s, 1+s], blending with the greyscale image"
    )
    hue: float = _augment(0.05, "hue shift drawn from [-h, h], in fractions of the hue circle")
    crop_padding: int = _augment(4, "zero padding before the random 32x32 crop (pixels per side)")
    horizontal_flip: bool = _augment(True, "random horizontal flip with probability 0.5")
    mixup_cutout: bool = _augment(True, "cutout and mixup (off: the ablation's Model 2)")
    cutout_size: int = _augment(16, "side of the cutout square (pixels)")
    mixup_alpha: float = _augment(0.4, "mixup's Beta(alpha, alpha) at the start of training")
    mixup_alpha_min: float = _augment(0.1, "floor of the linear decay of the mixup alpha")
    grayscale: bool = _augment(False, "random greyscale (on: the ablation's greyscale arm)")
    grayscale_rate: float = _augment(0.1, "per-image probability of greyscale when on")

    def validate(self):
        """Checks the augmentation fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, AugmentConfig)
        _check_fractions(
            self, "brightness", "contrast", "saturation", "grayscale_rate", closed=True
        )
        if not 0.0 <= self.hue <= 0.5:
            _fail(self, "hue", "in [0, 0.5]")
        if not is_integer(self.crop_padding) or self.crop_padding < 0:
            _fail(self, "crop_padding", "a non-negative integer")
        if not is_integer(self.cutout_size) or not 0 <= self.cutout_size <= 32:
            _fail(self, "cutout_size", "an integer in [0, 32]")
        problem = alpha_problem(alpha=self.mixup_alpha, alpha_min=self.mixup_alpha_min)
        if problem:
            name, rule = problem
            _fail(self, "mixup_" + name, rule.replace("alpha=", "mixup_alpha="))
        return self


_optimizer = _options("optimiser")


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig(_Part):
    """The SGD optimiser and the loss.

    Example:

    >>> OptimizerConfig(nesterov=True).validate().weight_decay
    0.0005
    """

    batch_size: int = _optimizer(128, "images per step, global across replicas")
    momentum: float = _optimizer(0.9, "SGD momentum (PyTorch's, dampening 0)")
    weight_decay: float = _optimizer(5e-4, "coupled L2 weight decay added to every gradient")
    label_smoothing: float = _optimizer(0.08, "label smoothing of the (mixed) one-hot targets")
    nesterov: bool = _optimizer(False, "Nesterov momentum (PyTorch's SGD(nesterov=True))")
    use_ema: bool = _optimizer(
        False,
        "keep an exponential moving average of the weights (Keras's optimizer "
        "use_ema): each epoch's evaluation, best.keras and final.keras use it. "
        "BatchNorm's moving statistics are not averaged: they stay the live model's",
    )
    ema_momentum: float = _optimizer(
        0.99, "per step, the average keeps this share of itself (use_ema only), in [0, 1)"
    )

    def validate(self):
        """Checks the optimiser fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, OptimizerConfig)
        _check_positive_ints(self, "batch_size")
        _check_fractions(self, "momentum", "label_smoothing", "ema_momentum")
        if self.weight_decay < 0:
            _fail(self, "weight_decay", "non-negative")
        return self


_schedule = _options("schedule")


@dataclasses.dataclass(kw_only=True)
class ScheduleConfig(_Part):
    """Training length and the learning rate's linear warmup and cosine decay.

    Example:

    >>> ScheduleConfig(epochs=30).validate().resolved_warmup_epochs  # 15/250 of the run
    2
    """

    epochs: int = _schedule(RECIPE_EPOCHS, "passes over the training images")
    base_lr: float = _schedule(0.1, "peak learning rate, reached at the end of the warmup")
    min_lr: float = _schedule(0.001, "floor of the cosine decay of the learning rate")
    warmup_epochs: int | None = _schedule(
        None,
        f"linear warmup length (epochs); None: {RECIPE_WARMUP_EPOCHS}/{RECIPE_EPOCHS} of the run",
    )
    schedule_unit: ScheduleUnit = _schedule(
        "epoch",
        "epoch: the recipe, learning rate and mixup alpha set once per epoch; step: "
        "the same curves evaluated per step, ending at the floor",
    )

    @property
    def resolved_warmup_epochs(self) -> int:
        """Warmup length in epochs: explicit, or `default_warmup_epochs(epochs)`."""
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return default_warmup_epochs(self.epochs)

    def validate(self):
        """Checks the schedule fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, ScheduleConfig)
        problem = schedule_problem(
            epochs=self.epochs,
            base_lr=self.base_lr,
            min_lr=self.min_lr,
            warmup_epochs=self.warmup_epochs,
        )
        if problem:
            _fail(self, *problem)
        return self


_run = _options("run")


@dataclasses.dataclass(kw_only=True)
class RunConfig(_Part):
    """What makes a run reproducible, and what it records besides its run folder's files.

    Example:

    >>> RunConfig(seed=7, tensorboard=True).validate().seed
    7
    """

    seed: int = _run(0, "the one seed of the weights, the data order and the augmentation")
    tensorboard: bool = _run(
        False, "write TensorBoard logs (per epoch) into the run folder's tensorboard/"
    )

    def validate(self):
        """Checks the seed (an integer in [0, `MAX_SEED`]); returns `self`. Raises `ConfigError`."""
        _check_types(self, RunConfig)
        if not 0 <= self.seed <= MAX_SEED:
            _fail(self, "seed", f"in [0, {MAX_SEED}]")
        return self


_scale = _options("scale")


@dataclasses.dataclass(kw_only=True)
class ScaleConfig(_Part):
    """How a run executes: devices, precision, compilation.

    All but `mixed_precision` are `EXECUTION_FIELDS`: a resumed run may change them.

    Example:

    >>> PRECISION_POLICIES[ScaleConfig(mixed_precision="mixed_bfloat16").validate().mixed_precision]
    'mixed_bfloat16'
    """

    strategy: Strategy = _scale(
        "default",
        "default: one device; mirrored: all local GPUs; multiworker: the cluster in TF_CONFIG",
    )
    mixed_precision: Precision = _scale(
        "off", "Keras dtype policy of the layers; weights, logits and loss stay float32"
    )
    steps_per_execution: int = _scale(
        1, "training steps per call of the compiled step (less host overhead, coarser callbacks)"
    )
    jit: bool | None = _scale(
        None,
        "XLA compilation of the training step; None: Keras's choice (on with a GPU and "
        "no strategy)",
    )

    def validate(self):
        """Checks the scale fields; returns `self`. Raises `ConfigError`."""
        _check_types(self, ScaleConfig)
        _check_positive_ints(self, "steps_per_execution")
        if self.jit is not None and not isinstance(self.jit, bool):
            _fail(self, "jit", "True, False or None")
        return self


# The parts in the order of `TrainConfig`'s fields and of the command-line groups.
PARTS = (
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    AugmentConfig,
    RunConfig,
    ScaleConfig,
)


# Named departures from the recipe, as field values (`TrainConfig.preset`,
# `keras-seresnet-train --preset`). "fast": the same SE-ResNet trained in 30
# epochs instead of 250, for a 2-core CPU (docs/fast-schedule.md: how each
# value was chosen, and what it reaches).
PRESETS = {
    "recipe": {},
    "fast": {
        "epochs": 30,
        "schedule_unit": "step",
        "min_lr": 0.0,
        "mixup_cutout": False,
        "label_smoothing": 0.2,
        "nesterov": True,
        "color_jitter": False,
        "dropout": 0.0,
    },
}


# A dataclass collects the fields of its last base first: the bases are
# `PARTS` reversed, so the fields come in `PARTS` order.
@dataclasses.dataclass(kw_only=True)
class TrainConfig(
    ScaleConfig, RunConfig, AugmentConfig, ScheduleConfig, OptimizerConfig, ModelConfig, DataConfig
):
    """Every hyperparameter of a training run; defaults are the recipe (`docs/recipe.md`).

    The fields are those of the parts (`PARTS`), flat. Tuples stay tuples
    after a JSON round trip. Validation happens in `validate()`, which
    `from_dict` and the training entry point call, so an impossible value
    fails early with a message naming the field.

    Example:

    >>> config = TrainConfig(epochs=30, use_se=False).validate()
    >>> config.model_config.use_se, config.resolved_warmup_epochs
    (False, 2)
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    """

    @classmethod
    def preset(cls, name, **fields) -> "TrainConfig":
        """The validated config of a named preset (`PRESETS`), `fields` overriding it.

        Args:
            name: "recipe" (the defaults) or "fast" (30 epochs, for a CPU).
            **fields: config fields that win over the preset's.

        Raises:
            ConfigError: an unknown preset name or an invalid field.

        >>> TrainConfig.preset("fast", seed=1).epochs
        30
        """
        if name not in PRESETS:
            raise ConfigError(
                f"Argument `name` must be one of {', '.join(map(repr, PRESETS))}. "
                f"Received: name={name!r}",
                (),
            )
        return cls.from_dict({**PRESETS[name], **fields})

    @classmethod
    def fast(cls, **fields) -> "TrainConfig":
        """`TrainConfig.preset("fast", **fields)`: the 30-epoch schedule of the pretrained weights.

        >>> TrainConfig.fast().label_smoothing
        0.2
        """
        return cls.preset("fast", **fields)

    @classmethod
    def from_parts(cls, *parts, **fields) -> "TrainConfig":
        """A validated config of the given parts' fields, `fields` and defaults for the rest.

        >>> TrainConfig.from_parts(ScheduleConfig(epochs=10), seed=3).epochs
        10
        """
        values = {}
        for part in parts:
            if not isinstance(part, PARTS):
                raise ConfigError(
                    "Arguments of `from_parts` must be configuration parts "
                    f"({', '.join(p.__name__ for p in PARTS)}). Received: {part!r}",
                    (),
                )
            values.update(part.to_dict())
        values.update(fields)
        return cls.from_dict(values)

    @property
    def data_config(self) -> DataConfig:
        """The `DataConfig` of this config's data fields."""
        return DataConfig.of(self)

    @property
    def model_config(self) -> ModelConfig:
        """The `ModelConfig` of this config's model fields."""
        return ModelConfig.of(self)

    @property
    def augment_config(self) -> AugmentConfig:
        """The `AugmentConfig` of this config's augmentation fields."""
        return AugmentConfig.of(self)

    @property
    def optimizer_config(self) -> OptimizerConfig:
        """The `OptimizerConfig` of this config's optimiser fields."""
        return OptimizerConfig.of(self)

    @property
    def schedule_config(self) -> ScheduleConfig:
        """The `ScheduleConfig` of this config's schedule fields."""
        return ScheduleConfig.of(self)

    @property
    def run_config(self) -> RunConfig:
        """The `RunConfig` of this config's run fields."""
        return RunConfig.of(self)

    @property
    def scale_config(self) -> ScaleConfig:
        """The `ScaleConfig` of this config's scale fields."""
        return ScaleConfig.of(self)

    def validate(self) -> "TrainConfig":
        """Checks every part's fields; raises `ConfigError` naming the first bad one.

        Every rule relating two fields lies within one part (`warmup_epochs`
        below `epochs`, `min_lr` at most `base_lr`, `val_split` below
        `limit_train`, `se_stages` within the stages of `widths`).

        Returns:
            `self`, so calls can be chained.
        """
        for part in PARTS:
            part.validate(self)
        return self

    def compatible_dict(self) -> dict:
        """`to_dict()` without the fields of `FIELDS_ADDED_AFTER_0_1_0` that hold their defaults.

        For a config that leaves those fields alone this is the `to_dict()` of
        version 0.1.0 (`compat.config_dict_of_0_1_0`), so the folder names
        hashed from it (the default ablation folder; through `resume_dict()`
        the default run folder) stay those of 0.1.0.

        >>> "val_split" in TrainConfig().compatible_dict()
        False
        >>> TrainConfig(val_split=5000).compatible_dict()["val_split"]
        5000
        """
        return compat.config_dict_of_0_1_0(self.to_dict(), type(self)().to_dict())

    def resume_dict(self) -> dict:
        """What a resumed run must match: `compatible_dict()` without `EXECUTION_FIELDS`."""
        return {k: v for k, v in self.compatible_dict().items() if k not in EXECUTION_FIELDS}


# The fields version 0.1.0 did not have (`compat.CONFIG_FIELDS_OF_0_1_0`):
# `compatible_dict()` leaves each out while it holds its default.
FIELDS_ADDED_AFTER_0_1_0 = tuple(
    field.name
    for field in dataclasses.fields(TrainConfig)
    if field.name not in compat.CONFIG_FIELDS_OF_0_1_0
)


def check_config_type(config, config_class=None):
    """Raises unless `config` is a `config_class` instance, for the functions that take a config.

    Args:
        config: the argument.
        config_class: the part the function needs. Default `TrainConfig`.

    Raises:
        TypeError: naming `TrainConfig.from_dict` for a dict.
    """
    if not isinstance(config, config_class or TrainConfig):
        raise TypeError(
            "Argument `config` must be a TrainConfig (for a dict use `TrainConfig.from_dict`). "
            f"Received: config of type {type(config).__name__}"
        )


def digest(value, chars=8) -> str:
    """The first `chars` hex digits of the SHA-256 of `value` as key-sorted JSON.

    The one hash of the package's folder names and config fingerprints
    (`default_out_dir`, the ablation folder, the multi-worker config check).
    """
    text = json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:chars]


def field_choices(config_class=TrainConfig) -> dict:
    """`{field: allowed values}` of the fields typed `Literal[...]` of a config class.

    Args:
        config_class: `TrainConfig` (default) or one of its parts.
    """
    hints = typing.get_type_hints(config_class)
    return {
        f.name: typing.get_args(hints[f.name])
        for f in dataclasses.fields(config_class)
        if typing.get_origin(hints[f.name]) is Literal
    }


def field_help(field) -> str:
    """The command-line help of a config field (a `dataclasses.Field`)."""
    return field.metadata["help"]


def field_group(field) -> str:
    """The command-line group of a config field (a `dataclasses.Field`)."""
    return field.metadata["group"]
