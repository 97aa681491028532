"""Callbacks of the training loop: the recipe's schedules, a NaN guard, a summary line.

`WarmupCosineLearningRate` and `MixupAlphaDecay` apply the per-epoch formulas
of `keras_seresnet.schedules` at each epoch begin and write the value they used
into the epoch's logs, so `history.history` (and the run folder's
`history.csv`) gets the columns `learning_rate` and `mixup_alpha`. Both are
registered serialisable and round-trip through `get_config`.
"""

import math
import time

import keras

from keras_seresnet.config import RECIPE_EPOCHS, TrainConfig
from keras_seresnet.training.schedules import learning_rate_at, mixup_alpha_at


def _check_epoch(callback, epoch, epochs):
    if not 0 <= epoch < epochs:
        raise ValueError(
            f"{type(callback).__name__} covers epochs 0..{epochs - 1}; fit asked for "
            f"epoch {epoch}. Build the callback with `epochs` equal to the run's length. "
            f"Received: epoch={epoch}, epochs={epochs}"
        )


@keras.saving.register_keras_serializable(package="keras_seresnet")
class WarmupCosineLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate each epoch: linear warmup, then cosine.

    At the begin of zero-based epoch `e` the optimizer's learning rate becomes
    `learning_rate_at(e)`: `base_lr * (e + 1) / warmup` during the warmup, then
    a cosine from `base_lr` down to `min_lr` over the remaining epochs. With
    the defaults this is SPEC's schedule for 250 epochs. The value used is
    written to the epoch's logs as `learning_rate` (a Python float, exactly the
    formula's value; the optimizer holds it as float32).

    Args:
        epochs: length of the run in epochs, >= 1. Default 250.
        base_lr: peak learning rate, > 0. Default 0.1.
        min_lr: floor of the cosine, in [0, base_lr]. Default 0.001.
        warmup_epochs: warmup length in [0, epochs), or None for 15/250 of
            `epochs` (at least one epoch when `epochs >= 2`). Default None.
    """

    def __init__(self, epochs=RECIPE_EPOCHS, base_lr=0.1, min_lr=0.001, warmup_epochs=None):
        super().__init__()
        self.epochs = epochs
        self.base_lr = base_lr
        self.min_lr = min_lr
        self.warmup_epochs = warmup_epochs
        self._schedule = TrainConfig(
            epochs=epochs, base_lr=base_lr, min_lr=min_lr, warmup_epochs=warmup_epochs
        ).validate()
        self.current = None

    @classmethod
    def from_train_config(cls, config):
        """The callback for a `TrainConfig`'s schedule fields."""
        return cls(
            epochs=config.epochs,
            base_lr=config.base_lr,
            min_lr=config.min_lr,
            warmup_epochs=config.warmup_epochs,
        )

    def value_at(self, epoch):
        """The learning rate (float) of zero-based `epoch`."""
        _check_epoch(self, epoch, self.epochs)
        return learning_rate_at(epoch, self._schedule)

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.value_at(epoch)
        self.model.optimizer.learning_rate = self.current

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.current

    def get_config(self):
        return {
            "epochs": self.epochs,
            "base_lr": self.base_lr,
            "min_lr": self.min_lr,
            "warmup_epochs": self.warmup_epochs,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_seresnet")
class MixupAlphaDecay(keras.callbacks.Callback):
    """Assigns the pipeline's mixup-alpha variable each epoch: linear decay with a floor.

    At the begin of zero-based epoch `e` the variable becomes
    `max(alpha_min, alpha * (1 - e / epochs))` (SPEC: `max(0.1, 0.4 (1 - e/250))`).
    The training dataset's mixup reads the variable when each batch is made,
    so the new value reaches the batches of epoch `e`: Keras opens a new
    iterator over the dataset after `on_epoch_begin`. The value is written to
    the epoch's logs as `mixup_alpha`.

    Args:
        alpha_variable: the float32 scalar `tf.Variable` the pipeline reads
            (`keras_seresnet.data.pipeline.make_mixup_alpha()`). Runtime state, so
            not part of `get_config`: a callback rebuilt with `from_config`
            gets its variable by assigning `callback.alpha_variable` before
            `fit`.
        epochs: length of the run in epochs, >= 1. Default 250.
        alpha: alpha at epoch 0, > 0. Default 0.4.
        alpha_min: the floor, in (0, alpha]. Default 0.1.
    """

    def __init__(self, alpha_variable=None, epochs=RECIPE_EPOCHS, alpha=0.4, alpha_min=0.1):
        super().__init__()
        self.alpha_variable = alpha_variable
        self.epochs = epochs
        self.alpha = alpha
        self.alpha_min = alpha_min
        self._schedule = TrainConfig(
            epochs=epochs, mixup_alpha=alpha, mixup_alpha_min=alpha_min
        ).validate()
        self.current = None

    @classmethod
    def from_train_config(cls, config, alpha_variable):
        """The callback for a `TrainConfig`'s alpha fields, driving `alpha_variable`."""
        return cls(
            alpha_variable,
            epochs=config.epochs,
            alpha=config.mixup_alpha,
            alpha_min=config.mixup_alpha_min,
        )

    def value_at(self, epoch):
        """The mixup alpha (float) of zero-based `epoch`."""
        _check_epoch(self, epoch, self.epochs)
        return mixup_alpha_at(epoch, self._schedule)

    def on_train_begin(self, logs=None):
        if self.alpha_variable is None:
            raise ValueError(
                "MixupAlphaDecay has no variable to drive: pass the pipeline's "
                "`alpha_variable` (keras_seresnet.data.pipeline.make_mixup_alpha()). "
                "Received: alpha_variable=None"
            )

    def on_epoch_begin(self, epoch, logs=None):
        self.current = self.value_at(epoch)
        self.alpha_variable.assign(self.current)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["mixup_alpha"] = self.current

    def get_config(self):
        return {"epochs": self.epochs, "alpha": self.alpha, "alpha_min": self.alpha_min}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN` it remembers where it happened:
    after `fit` returns, `message` is None if training stayed finite, or a
    sentence naming the epoch and batch (the caller raises it). The batch's
    loss is Keras's running mean over the epoch, so it turns non-finite at the
    first bad batch and stays so.
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
        self.message = (
            f"The training loss became {float(loss)} in epoch {self.epoch} (zero-based, "
            f"as in history.csv) at batch {batch + 1}{of_steps}; training stopped and "
            "nothing of this epoch was saved. Lower the learning rate (--base-lr) "
            "and start a new run."
        )
        self.model.stop_training = True


class EpochSummary(keras.callbacks.Callback):
    """Prints one line per epoch (lr, alpha, losses, accuracies, time) and logs `seconds`.

    Place it after the schedule callbacks so their `learning_rate` and
    `mixup_alpha` are in the logs it prints, and after a `ProgbarLogger` so
    the bar's last line ends before the summary. It adds the epoch's wall
    time in seconds (training and validation) to the logs as `seconds`.

    Args:
        epochs: the run's length, for the "epoch 3/250" counter.
        print_fn: where lines go. Default `print`.
    """

    def __init__(self, epochs, print_fn=print):
        super().__init__()
        self.epochs = epochs
        self.print_fn = print_fn
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["seconds"] = time.perf_counter() - self._start
        self.print_fn(format_epoch_summary(epoch, self.epochs, logs))


def format_epoch_summary(epoch, epochs, logs):
    """One line: `epoch 3/250: lr 0.02 alpha 0.3952 loss 1.8 acc 0.41 test_loss ... (61.2 s)`.

    `epoch` is zero-based (as in history.csv); the line counts from 1 like
    Keras's progress bar. Keys missing from `logs` are left out.
    """
    parts = [f"epoch {epoch + 1}/{epochs}:"]
    for key, label, fmt in (
        ("learning_rate", "lr", ".5g"),
        ("mixup_alpha", "alpha", ".4f"),
        ("loss", "loss", ".4f"),
        ("accuracy", "acc", ".4f"),
        ("val_loss", "test_loss", ".4f"),
        ("val_accuracy", "test_acc", ".4f"),
    ):
        if key in logs and logs[key] is not None:
            parts.append(f"{label} {float(logs[key]):{fmt}}")
    if "seconds" in logs:
        parts.append(f"({logs['seconds']:.1f} s)")
    return " ".join(parts)
