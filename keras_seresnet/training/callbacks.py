"""The recipe's callbacks: its schedules, the per-epoch seed, a NaN guard, a summary line.

`EpochSeed` makes each epoch's batches and dropout masks a function of
`(seed, epoch)`: it points the training dataset (`make_train_dataset(...,
epoch=variable)`) at the epoch Keras is starting.
`WarmupCosineLearningRate` and `MixupAlphaDecay` apply the schedules of
`keras_seresnet.schedules` and write the value of each epoch's first
step into the epoch's logs, so `history.history` (and the run folder's
`history.csv`) gets the columns `learning_rate` and `mixup_alpha`. With
`unit="epoch"` (the recipe) the value is set once per epoch; with
`unit="step"` the learning rate is set before every training step from the
epoch, the step and `self.params["steps"]`.

Every callback here is registered serialisable and round-trips through
`get_config`; they use the backend-independent Keras API only, so they work
under any Keras backend. Their defaults are the recipe's, taken from
`TrainConfig`'s defaults.
"""

import math
import random
import time

import keras
import numpy as np

from keras_seresnet import schedules
from keras_seresnet.config import MAX_SEED, TrainConfig, is_integer

# The recipe's numbers, for the defaults below (TrainConfig is their one home).
_RECIPE = TrainConfig()

_VALIDATION_LABELS = ("test", "val")  # EpochSummary's names for Keras's val_* logs


class _SerializableCallback(keras.callbacks.Callback):
    """Base: `get_config()` returns the constructor's arguments, so `from_config` is `cls(**config)`."""

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_epoch(callback, epoch, epochs):
    if not 0 <= epoch < epochs:
        raise ValueError(
            f"{type(callback).__name__} covers epochs 0..{epochs - 1}; fit asked for "
            f"epoch {epoch}. Build the callback with `epochs` equal to the run's length. "
            f"Received: epoch={epoch}, epochs={epochs}"
        )


@keras.saving.register_keras_serializable(package="keras_seresnet")
class WarmupCosineLearningRate(_SerializableCallback):
    """Sets the optimizer's learning rate: linear warmup, then cosine.

    With `unit="epoch"` the learning rate of zero-based epoch `e` is set when
    the epoch begins: `base_lr * (e + 1) / warmup` during the warmup, then a
    cosine from `base_lr` towards `min_lr` over the remaining epochs. With
    `unit="step"` the same curve is evaluated before every training step
    (`on_train_batch_begin`) as a function of the fraction of training done,
    reaching `min_lr` at the run's last step; the number of steps per epoch
    is `self.params["steps"]`, which `fit` sets from the dataset's
    cardinality. With `steps_per_execution > 1` Keras calls the hook once per
    execution, so each execution's steps share its first step's value.
    Formulas: `keras_seresnet.schedules.warmup_cosine_lr`.

    The value of each epoch's first step is written to the epoch's logs as
    `learning_rate` (a Python float, exactly the formula's value; the
    optimizer holds it as float32).

    Args:
        epochs: length of the run in epochs, >= 1. Default 250.
        base_lr: peak learning rate, > 0. Default 0.1.
        min_lr: floor of the cosine, in [0, base_lr]. Default 0.001.
        warmup_epochs: warmup length in [0, epochs), or None for 15/250 of
            `epochs` (at least one epoch when `epochs >= 2`). Default None.
        unit: "epoch" or "step". Default "epoch".

    Raises:
        ValueError: an argument out of range (the message names it), or at
            fit time an epoch outside [0, epochs), or `unit="step"` with a
            dataset of unknown length.

    Example:

    >>> callback = WarmupCosineLearningRate(epochs=10, base_lr=0.1, min_lr=0.0, warmup_epochs=2)
    >>> [round(callback.value_at(epoch), 4) for epoch in (0, 1, 2, 9)]
    [0.05, 0.1, 0.1, 0.0038]

    In a run: `model.fit(..., callbacks=[WarmupCosineLearningRate.from_train_config(config)])`.
    """

    def __init__(
        self,
        epochs=_RECIPE.epochs,
        base_lr=_RECIPE.base_lr,
        min_lr=_RECIPE.min_lr,
        warmup_epochs=_RECIPE.warmup_epochs,
        unit=_RECIPE.schedule_unit,
    ):
        super().__init__()
        schedules.check_warmup_cosine(
            epochs=epochs, base_lr=base_lr, min_lr=min_lr, warmup_epochs=warmup_epochs, unit=unit
        )
        self.epochs = int(epochs)  # np.int64(10) too, saved as 10
        self.base_lr = base_lr
        self.min_lr = min_lr
        self.warmup_epochs = None if warmup_epochs is None else int(warmup_epochs)
        self.unit = unit
        self.current = None
        self._epoch = None
        self._steps = 1

    @classmethod
    def from_train_config(cls, config):
        """The callback for a `TrainConfig`'s schedule fields."""
        return cls(
            epochs=config.epochs,
            base_lr=config.base_lr,
            min_lr=config.min_lr,
            warmup_epochs=config.warmup_epochs,
            unit=config.schedule_unit,
        )

    def value_at(self, epoch, step=0, steps_per_epoch=1):
        """The learning rate (float) of zero-based `epoch` and, in step units, `step`."""
        _check_epoch(self, epoch, self.epochs)
        if self.unit == "step" and not 0 <= step < steps_per_epoch:
            raise ValueError(
                f"Argument `step` must be in [0, steps_per_epoch={steps_per_epoch}). "
                f"Received: step={step}"
            )
        return schedules.warmup_cosine_lr(
            epoch,
            step,
            steps_per_epoch=steps_per_epoch,
            epochs=self.epochs,
            base_lr=self.base_lr,
            min_lr=self.min_lr,
            warmup_epochs=self.warmup_epochs,
            unit=self.unit,
        )

    def _steps_per_epoch(self):
        if self.unit == "epoch":
            return 1
        steps = self.params.get("steps") if self.params else None
        if not steps:
            raise ValueError(
                "WarmupCosineLearningRate(unit='step') needs the number of steps per "
                "epoch: fit on a dataset of known length (or pass `steps_per_epoch` to "
                f"fit). Received: steps={steps!r}"
            )
        return steps

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._steps = epoch, self._steps_per_epoch()
        self.current = self.value_at(epoch, 0, self._steps)
        self.model.optimizer.learning_rate = self.current

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit == "step" and batch > 0:  # step 0 was set when the epoch began
            self.model.optimizer.learning_rate = self.value_at(self._epoch, batch, self._steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.current

    def get_config(self):
        return {
            "epochs": self.epochs,
            "base_lr": self.base_lr,
            "min_lr": self.min_lr,
            "warmup_epochs": self.warmup_epochs,
            "unit": self.unit,
        }


@keras.saving.register_keras_serializable(package="keras_seresnet")
class MixupAlphaDecay(_SerializableCallback):
    """Logs the mixup alpha of each epoch (linear decay to a floor), and assigns it to a variable if given.

    At the begin of zero-based epoch `e` the alpha is
    `max(alpha_min, alpha * (1 - e / epochs))`, the value of the epoch's
    first step in either unit (`schedules.decayed_mixup_alpha`, the function
    the training dataset's own alpha table is made of); the epoch's logs get
    it as `mixup_alpha`.

    The package's training dataset (`make_train_dataset(..., epoch=...)`)
    mixes every batch with the schedule's alpha for its epoch and index
    itself: a variable assigned by a callback would reach whichever batch the
    prefetching pipeline happens to be making. The callback's variable is for
    a pipeline of your own that reads one (`make_mixup_alpha`), as
    `make_train_dataset(..., mixup_alpha=variable)` without an epoch does.

    Args:
        alpha_variable: None (only log), or a float32 scalar variable (a
            `tf.Variable` from `make_mixup_alpha()`, or a `keras.Variable`)
            to assign each epoch's alpha to. Runtime state, so not part of
            `get_config`.
        epochs: length of the run in epochs, >= 1. Default 250.
        alpha: alpha at the first step, > 0. Default 0.4.
        alpha_min: the floor, in (0, alpha]. Default 0.1.
        unit: "epoch" or "step": the schedule's unit, recorded in the config
            (the logged first-step values are the same in both). Default
            "epoch".

    Raises:
        ValueError: an argument out of range.

    Example:

    >>> callback = MixupAlphaDecay(epochs=10)
    >>> callback.value_at(5)
    0.2
    """

    def __init__(
        self,
        alpha_variable=None,
        epochs=_RECIPE.epochs,
        alpha=_RECIPE.mixup_alpha,
        alpha_min=_RECIPE.mixup_alpha_min,
        unit=_RECIPE.schedule_unit,
    ):
        super().__init__()
        schedules.check_alpha_decay(epochs=epochs, alpha=alpha, alpha_min=alpha_min, unit=unit)
        self.alpha_variable = alpha_variable
        self.epochs = int(epochs)  # np.int64(10) too, saved as 10
        self.alpha = alpha
        self.alpha_min = alpha_min
        self.unit = unit
        self.current = None

    @classmethod
    def from_train_config(cls, config, alpha_variable=None):
        """The callback for a `TrainConfig`'s alpha fields (and `alpha_variable`, if given)."""
        return cls(
            alpha_variable,
            epochs=config.epochs,
            alpha=config.mixup_alpha,
            alpha_min=config.mixup_alpha_min,
            unit=config.schedule_unit,
        )

    def value_at(self, epoch, step=0, steps_per_epoch=1):
        """The mixup alpha (float) of zero-based `epoch` and, in step units, `step`."""
        _check_epoch(self, epoch, self.epochs)
        return schedules.decayed_mixup_alpha(
            epoch,
            step,
            steps_per_epoch=steps_per_epoch,
            epochs=self.epochs,
            alpha=self.alpha,
            alpha_min=self.alpha_min,
            unit=self.unit,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.value_at(epoch)
        if self.alpha_variable is not None:
            self.alpha_variable.assign(self.current)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["mixup_alpha"] = self.current

    def get_config(self):
        return {
            "epochs": self.epochs,
            "alpha": self.alpha,
            "alpha_min": self.alpha_min,
            "unit": self.unit,
        }


def epoch_seed(seed, epoch):
    """The seed of one epoch's data order, augmentation and dropout, in [0, 2**31).

    A function of `(seed, epoch)` only, so a resumed epoch sees the same
    random numbers as in an uninterrupted run. Uses NumPy's `SeedSequence`,
    which gives statistically independent streams for nearby inputs.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]) & 0x7FFFFFFF


def _seed_epoch(model, seed, epoch):
    """Reseeds Python, NumPy and the model's dropout for `epoch`.

    Not TensorFlow's global seed: `tf.random.set_seed` clears TensorFlow's
    kernel caches, so every epoch would instantiate the training step and
    the pipeline's functions again (seconds per epoch), and nothing in
    training draws from it (the pipeline is stateless from `(seed, epoch)`).
    """
    value = epoch_seed(seed, epoch)
    random.seed(value)
    np.random.seed(value)
    # Dropout draws from a SeedGenerator whose state a `.keras` file does not
    # keep; setting it per epoch makes the masks a function of (seed, epoch).
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        state.assign(np.array([epoch_seed(value, index), 0], "uint32"))


@keras.saving.register_keras_serializable(package="keras_seresnet")
class EpochSeed(_SerializableCallback):
    """At each epoch begin, reseeds the epoch and points the training dataset at it.

    Seeds Python's and NumPy's generators with `epoch_seed(seed, e)`, sets
    the model's dropout seed states from `(seed, e)`, and assigns `e` to the
    training dataset's epoch variable. `model.fit` (Keras 3, without
    `steps_per_epoch`) opens a new iterator over a finite dataset after
    `on_epoch_begin`, so the pass it makes is epoch `e`'s batches: a new
    order and new augmentations every epoch, the same ones in a resumed run
    (`fit(initial_epoch=...)`) as in an uninterrupted one.

    Args:
        seed: the run's seed (`TrainConfig.seed`), an integer in
            [0, 2**32 - 1].
        epoch_variable: the int64 `tf.Variable` of `make_epoch_variable()`
            that `make_train_dataset(..., epoch=...)` reads, or None (only
            reseed). Runtime state, so not part of `get_config`.

    Raises:
        ValueError: `seed` is not an integer in range.

    Example (what `model.fit` makes it do when epoch 3 begins):

    >>> from keras_seresnet import make_epoch_variable
    >>> epoch = make_epoch_variable()
    >>> callback = EpochSeed(seed=0, epoch_variable=epoch)
    >>> callback.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    >>> callback.on_epoch_begin(3)
    >>> int(epoch.numpy())
    3

    In a run: `model.fit(make_train_dataset(x, y, config, epoch=epoch),
    epochs=config.epochs, callbacks=[EpochSeed(config.seed, epoch)])`.
    """

    def __init__(self, seed=_RECIPE.seed, epoch_variable=None):
        super().__init__()
        if not is_integer(seed) or not 0 <= seed <= MAX_SEED:
            raise ValueError(
                f"Argument `seed` must be an integer in [0, {MAX_SEED}]. Received: seed={seed!r}"
            )
        self.seed = int(seed)
        self.epoch_variable = epoch_variable

    def on_epoch_begin(self, epoch, logs=None):
        _seed_epoch(self.model, self.seed, epoch)
        if self.epoch_variable is not None:
            self.epoch_variable.assign(epoch)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class StopOnNaN(_SerializableCallback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN` it remembers where it happened:
    after `fit` returns, `message` is None if training stayed finite, or a
    sentence naming the epoch (1-based, as Keras's progress bar counts) and
    the batch (the caller raises it). The batch's loss is Keras's running
    mean over the epoch, so it turns non-finite at the first bad batch and
    stays so.
    """

    def __init__(self):
        super().__init__()
        self.epoch = None
        self.message = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        steps = self.params.get("steps")
        of_steps = f"/{steps}" if steps else ""
        epochs = self.params.get("epochs")
        of_epochs = f"/{epochs}" if epochs else ""
        self.message = (
            f"The training loss became {float(loss)} in epoch {self.epoch + 1}{of_epochs} "
            f"at batch {batch + 1}{of_steps}; training stopped and nothing of this epoch "
            "was saved. Lower the learning rate (--base-lr) and start a new run."
        )
        self.model.stop_training = True

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="keras_seresnet")
class EpochSummary(_SerializableCallback):
    """Prints one line per epoch (lr, alpha, losses, accuracies, time) and logs `seconds`.

    Place it after the schedule callbacks so their `learning_rate` and
    `mixup_alpha` are in the logs it prints, and after a `ProgbarLogger` so
    the bar's last line ends before the summary. It adds the epoch's wall
    time in seconds (training and validation) to the logs as `seconds`.
    Epochs are counted from 1, as Keras's progress bar does.

    Args:
        epochs: the run's length, >= 1, for the "epoch 3/250" counter.
        print_fn: where lines go. Default `print`. Not part of `get_config`.
        validation_label: the name printed for Keras's `val_*` logs: "test"
            when the test set is evaluated each epoch (the reference
            notebook's practice), "val" for a held-out validation split.
            Default "test".

    Raises:
        ValueError: `epochs` is not a positive integer, or `validation_label`
            is not "test" or "val".
    """

    def __init__(self, epochs, print_fn=print, validation_label="test"):
        super().__init__()
        if not is_integer(epochs) or epochs < 1:
            raise ValueError(
                f"Argument `epochs` must be a positive integer. Received: epochs={epochs!r}"
            )
        if validation_label not in _VALIDATION_LABELS:
            raise ValueError(
                "Argument `validation_label` must be one of 'test', 'val'. "
                f"Received: validation_label={validation_label!r}"
            )
        self.epochs = int(epochs)  # np.int64(10) too, saved as 10
        self.print_fn = print_fn
        self.validation_label = validation_label
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["seconds"] = time.perf_counter() - self._start
        self.print_fn(
            format_epoch_summary(epoch, self.epochs, logs, validation_label=self.validation_label)
        )

    def get_config(self):
        return {"epochs": self.epochs, "validation_label": self.validation_label}


def format_epoch_summary(epoch, epochs, logs, *, validation_label="test"):
    """One line: `epoch 3/250: lr 0.02 alpha 0.3952 loss 1.8 acc 0.41 test_loss ... (61.2 s)`.

    `epoch` is zero-based (as Keras passes it); the line counts from 1 like
    Keras's progress bar. Keras's `val_loss`/`val_accuracy` are printed as
    `<validation_label>_loss`/`_acc`; logs that already carry `test_*` or
    `val_*` names under either spelling are printed too. Keys missing from
    `logs` are left out.
    """
    parts = [f"epoch {epoch + 1}/{epochs}:"]
    fields = [
        ("learning_rate", "lr", ".5g"),
        ("mixup_alpha", "alpha", ".4f"),
        ("loss", "loss", ".4f"),
        ("accuracy", "acc", ".4f"),
        ("val_loss", f"{validation_label}_loss", ".4f"),
        ("val_accuracy", f"{validation_label}_acc", ".4f"),
        ("test_loss", "test_loss", ".4f"),
        ("test_accuracy", "test_acc", ".4f"),
    ]
    printed = set()
    for key, label, fmt in fields:
        if label not in printed and logs.get(key) is not None:
            parts.append(f"{label} {float(logs[key]):{fmt}}")
            printed.add(label)
    if "seconds" in logs:
        parts.append(f"({logs['seconds']:.1f} s)")
    return " ".join(parts)
