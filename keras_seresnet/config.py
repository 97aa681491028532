"""The one configuration dataclass: every hyperparameter of the recipe.

Defaults are the published recipe (`SPEC.md`): SE-ResNet with widths 32-256,
SGD with momentum 0.9 and coupled weight decay 5e-4, batch 128, 250 epochs of
15-epoch linear warmup then cosine decay, torchvision-style color jitter,
pad-4 random crop, horizontal flip, 16x16 cutout and mixup with a decaying
alpha. Scripts only parse command-line flags into a `TrainConfig`; each run
writes the resolved configuration next to its outputs as `config.json`.
"""

import dataclasses
import json
import typing
from typing import Literal, Optional, Tuple

# The recipe's schedule is defined for 250 epochs with 15 warmup epochs; a
# shorter run keeps the same proportion.
RECIPE_EPOCHS = 250
RECIPE_WARMUP_EPOCHS = 15

# The choices of the scale fields (`field_choices()` lists them, the CLI offers them).
Strategy = Literal["default", "mirrored", "multiworker"]
Precision = Literal["off", "mixed_float16", "mixed_bfloat16"]
ScheduleUnit = Literal["epoch", "step"]

# Fields that say how a run executes, not what it computes: a run may be
# resumed with other values (on more devices, with XLA), so they are left out
# of the resume check and of the default run folder's name. Their effect on
# the numbers is float rounding (all-reduce order, XLA fusion); see scale.py.
EXECUTION_FIELDS = ("strategy", "jit", "steps_per_execution")

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


@dataclasses.dataclass
class TrainConfig:
    """Every hyperparameter of a training run; defaults are the paper's recipe.

    Tuples stay tuples after a JSON round trip. Validation happens in
    `validate()`, which `from_dict` and the training entry point call, so an
    impossible value fails early with a message naming the field.
    """

    # --- data ---
    data_dir: Optional[str] = None  # None: keras.datasets download
    limit_train: Optional[int] = None  # first N training images; None: all
    limit_test: Optional[int] = None  # first N test images; None: all
    val_split: Optional[int] = None  # hold out N training images (stratified) for validation; None: validate on the test set, as the notebook

    # --- model ---
    num_classes: int = 10
    widths: Tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    blocks: Tuple[int, ...] = (2, 2, 2, 2)  # residual blocks per stage
    use_se: bool = True  # False: the ablation's Model 5
    se_stages: Tuple[int, ...] = (3, 4)  # 1-based stages that carry SE
    se_reduction: int = 16  # SE bottleneck = channels / se_reduction
    dropout: float = 0.2  # before the classifier
    bn_momentum: float = 0.9  # Keras convention; PyTorch's momentum 0.1
    bn_epsilon: float = 1e-5  # PyTorch's BatchNorm epsilon
    mean: Tuple[float, ...] = (0.4914, 0.4822, 0.4465)  # per channel, [0, 1]
    std: Tuple[float, ...] = (0.35, 0.35, 0.35)  # per channel, [0, 1]

    # --- optimiser ---
    batch_size: int = 128  # images per step (global, across replicas)
    momentum: float = 0.9  # SGD momentum (PyTorch's, dampening 0)
    weight_decay: float = 5e-4  # coupled L2 added to every gradient
    label_smoothing: float = 0.08  # on the (mixed) one-hot targets

    # --- schedule ---
    epochs: int = RECIPE_EPOCHS
    base_lr: float = 0.1  # peak learning rate, reached at the end of warmup
    min_lr: float = 0.001  # floor of the cosine decay
    warmup_epochs: Optional[int] = None  # None: 15/250 of the run
    schedule_unit: ScheduleUnit = "epoch"  # epoch: the recipe, lr and alpha set per epoch; step: the same curves per step, ending at the floor

    # --- augmentation ---
    color_jitter: bool = True  # False: the ablation's Model 3
    brightness: float = 0.2  # torchvision ColorJitter: factor in [1-b, 1+b]
    contrast: float = 0.2  # factor in [1-c, 1+c], blend with mean grey
    saturation: float = 0.2  # factor in [1-s, 1+s], blend with greyscale
    hue: float = 0.05  # shift in [-h, h] of the full hue circle
    crop_padding: int = 4  # pixels of zero padding before the random crop
    horizontal_flip: bool = True  # flip with probability 0.5
    mixup_cutout: bool = True  # False: the ablation's Model 2
    cutout_size: int = 16  # side of the square, pixels
    mixup_alpha: float = 0.4  # Beta(alpha, alpha) at epoch 0
    mixup_alpha_min: float = 0.1  # floor of the linear alpha decay
    grayscale: bool = False  # True: the ablation's greyscale arm
    grayscale_rate: float = 0.1  # per-image probability when on (torchvision's default)

    # --- run ---
    seed: int = 0  # the one seed for weights, shuffling and augmentation

    # --- scale ---
    strategy: Strategy = "default"  # default: one device; mirrored: all local GPUs; multiworker: the cluster in TF_CONFIG
    mixed_precision: Precision = "off"  # Keras dtype policy; weights, logits and loss stay float32
    steps_per_execution: int = 1  # training steps per call of the compiled step (host overhead vs callback granularity)
    jit: Optional[bool] = None  # XLA for the training step; None: Keras's choice (on with a GPU and no strategy)

    @property
    def resolved_warmup_epochs(self) -> int:
        """Warmup length in epochs: explicit, or 15/250 of `epochs` rounded.

        A run of two or more epochs keeps at least one warmup epoch.
        """
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        scaled = round(self.epochs * RECIPE_WARMUP_EPOCHS / RECIPE_EPOCHS)
        return max(scaled, 1) if self.epochs >= 2 else 0

    def validate(self) -> "TrainConfig":
        """Checks every field; raises `ValueError` naming the first bad one.

        Returns:
            `self`, so calls can be chained.
        """

        def fail(name, rule):
            raise ValueError(
                f"Config field `{name}` must be {rule}. "
                f"Received: {name}={getattr(self, name)!r}"
            )

        for name in ("num_classes", "batch_size", "epochs", "se_reduction", "steps_per_execution"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(name, "a positive integer")
        for name in ("limit_train", "limit_test", "val_split"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                fail(name, "a positive integer or None")
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError(
                "Config fields `widths` and `blocks` must be non-empty and of "
                f"equal length. Received: widths={self.widths!r}, "
                f"blocks={self.blocks!r}"
            )
        if any(not isinstance(w, int) or w < 1 for w in self.widths):
            fail("widths", "positive integers")
        if any(not isinstance(b, int) or b < 1 for b in self.blocks):
            fail("blocks", "positive integers")
        if any(s not in range(1, len(self.widths) + 1) for s in self.se_stages):
            fail("se_stages", f"stage numbers in 1..{len(self.widths)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            fail("mean", "three per-channel values (and so must `std`)")
        if any(s <= 0 for s in self.std):
            fail("std", "positive")
        for name in ("dropout", "bn_momentum", "momentum", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                fail(name, "in [0, 1)")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(name, "in [0, 1]")
        if not 0.0 <= self.hue <= 0.5:
            fail("hue", "in [0, 0.5]")
        if not 0.0 <= self.grayscale_rate <= 1.0:
            fail("grayscale_rate", "in [0, 1]")
        for name in ("bn_epsilon", "base_lr"):
            if not getattr(self, name) > 0:
                fail(name, "positive")
        if not 0 <= self.min_lr <= self.base_lr:
            fail("min_lr", f"in [0, base_lr={self.base_lr}]")
        if self.weight_decay < 0:
            fail("weight_decay", "non-negative")
        if self.warmup_epochs is not None and not (
            isinstance(self.warmup_epochs, int) and 0 <= self.warmup_epochs < self.epochs
        ):
            fail("warmup_epochs", f"an integer in [0, epochs={self.epochs}) or None")
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            fail("crop_padding", "a non-negative integer")
        if not isinstance(self.cutout_size, int) or not 0 <= self.cutout_size <= 32:
            fail("cutout_size", "an integer in [0, 32]")
        if not self.mixup_alpha > 0 or not 0 < self.mixup_alpha_min <= self.mixup_alpha:
            fail("mixup_alpha_min", f"in (0, mixup_alpha={self.mixup_alpha}]")
        if not isinstance(self.seed, int):
            fail("seed", "an integer")
        if self.jit not in (None, True, False):
            fail("jit", "True, False or None")
        for name, choices in field_choices().items():
            if getattr(self, name) not in choices:
                fail(name, "one of " + ", ".join(repr(c) for c in choices))
        return self

    def resume_dict(self) -> dict:
        """`to_dict()` without `EXECUTION_FIELDS`: what a resumed run must match."""
        return {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Builds a validated config; unknown keys raise `ValueError`."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"Unknown config field(s): {', '.join(unknown)}. "
                f"Known fields: {', '.join(fields)}"
            )
        kwargs = {
            k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
        }
        return cls(**kwargs).validate()

    def to_json(self, path: Optional[str] = None) -> str:
        """Returns the config as JSON text, and writes it to `path` if given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str) -> "TrainConfig":
        """Reads a config from JSON text or from a path to a JSON file."""
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as f:
                text = f.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"Config is not valid JSON: {e}") from None
        if not isinstance(values, dict):
            raise ValueError(f"Config JSON must be an object, got {type(values).__name__}")
        return cls.from_dict(values)


def field_choices() -> dict:
    """`{field: allowed values}` of the `TrainConfig` fields typed `Literal[...]`."""
    hints = typing.get_type_hints(TrainConfig)
    return {
        name: typing.get_args(hint)
        for name, hint in hints.items()
        if typing.get_origin(hint) is Literal
    }
