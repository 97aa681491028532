"""The callbacks `train()` adds to the recipe's (`recipe_callbacks`) and the user's.

- `CommitEpoch`: at each epoch end, commits the epoch to the run folder
  (`RunFolder.commit_epoch`).
- `ScaledLearningRate`: lets a user's callback (`ReduceLROnPlateau`) scale
  the learning rate the schedule sets, instead of being undone by it.
- `TestMetricNames`: the per-epoch test evaluation under the names the run
  prints (`test_loss`, `test_accuracy`) beside Keras's `val_*`, for the
  user's callbacks.
- `StepFaults`: the test hook's per-step fault points (`run_folder.fault_point`).
"""

import math
import os

import keras

from keras_seresnet.compat import LEGACY_NAMES
from keras_seresnet.training.history import evaluation_columns, history_row
from keras_seresnet.training.run_folder import RunFolder, fault_point


@keras.saving.register_keras_serializable(package="keras_seresnet")
class CommitEpoch(keras.callbacks.Callback):
    """At each epoch end, writes the epoch to the run folder (`RunFolder.commit_epoch`).

    Place it after the callbacks that add to the epoch's logs (schedules,
    `EpochSummary`). Keras logs the per-epoch evaluation as `val_*`; without
    a validation split the rows call it `test_*`. An epoch whose losses are
    not finite is not committed: training stops and `error` says why.

    Args:
        path: the run folder.
        validation: whether the evaluation is on a validation split.
        state: the `RunState` to resume from (`RunFolder.repair()`), or
            None. Runtime state, not part of `get_config`; `state` holds the
            latest after each epoch.
        guard: an optional `StopOnNaN`; its message skips the commit.
    """

    def __init__(self, path, validation=False, state=None, guard=None):
        super().__init__()
        self.path = os.fspath(path)
        self.validation = validation
        self.loss_column, accuracy = evaluation_columns(validation)
        self.folder = RunFolder(self.path, monitor=accuracy)
        self.state = state
        self.guard = guard
        self.error = None

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.message:
            return  # a non-finite batch: StopOnNaN stopped training
        row = history_row(epoch, logs or {}, self.validation)
        losses = (row.loss, getattr(row, self.loss_column))
        if not all(value is not None and math.isfinite(value) for value in losses):
            self.error = (
                f"After epoch {epoch} (zero-based) the {self.loss_column.replace('_', ' ')} is "
                f"{losses[1]}: the weights diverged; nothing of this epoch was "
                "saved. Lower the learning rate (--base-lr) and start a new run."
            )
            self.model.stop_training = True
            return
        self.state = self.folder.commit_epoch(self.model, row, self.state)

    def get_config(self):
        return {"path": self.path, "validation": self.validation}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class TestMetricNames(keras.callbacks.Callback):
    """Adds `test_loss` and `test_accuracy` to the epoch's logs, equal to Keras's `val_*`.

    For a run that evaluates on the test set each epoch (no validation
    split): the summary line, `history.csv` and `results.json` call that
    evaluation `test_*`, so a user's callback may monitor either name.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({test: logs[val] for val, test in LEGACY_NAMES.items() if val in logs})


class StepFaults(keras.callbacks.Callback):
    """The test hook's per-step points (`run_folder.fault_point`); only added when asked."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        fault_point("after-step", self.epoch, batch + 1)
        fault_point("signal", self.epoch, batch + 1)


class ScaledLearningRate(keras.callbacks.Callback):
    """Lets other callbacks scale the learning rate that a schedule callback sets.

    The package's schedule sets the learning rate every epoch (or step). A
    callback that changes it at an epoch end (`keras.callbacks.ReduceLROnPlateau`)
    would be undone; wrapped in this, its change becomes a factor: at each
    epoch begin, a learning rate that differs from the one at the previous
    epoch end multiplies the factor by their ratio, and every value the
    schedule sets afterwards is multiplied by the factor. The epoch's
    `learning_rate` log is the rate used at the epoch's start (the
    schedule's value times the factor). The factor starts at 1 in every
    `fit` (a resumed run starts without earlier reductions, as other
    callbacks start without their state). With the factor at 1 the batch
    hooks read nothing (no per-step cost).

    Args:
        schedule: the callback that sets the learning rate
            (`WarmupCosineLearningRate`).
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.factor = 1.0
        self._left = None

    def set_model(self, model):
        super().set_model(model)
        self.schedule.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.schedule.set_params(params)

    def _current(self):
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _scale(self):
        self.model.optimizer.learning_rate = self._current() * self.factor

    def on_train_begin(self, logs=None):
        self.factor, self._left = 1.0, None
        self.schedule.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._left is not None and self._current() != self._left:
            self.factor *= self._current() / self._left
        self.schedule.on_epoch_begin(epoch, logs)
        if self.factor != 1.0:
            self._scale()

    def on_train_batch_begin(self, batch, logs=None):
        if self.factor == 1.0:
            self.schedule.on_train_batch_begin(batch, logs)
            return
        before = self._current()
        self.schedule.on_train_batch_begin(batch, logs)
        if self._current() != before:  # the schedule set a new value
            self._scale()

    def on_train_batch_end(self, batch, logs=None):
        self.schedule.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.schedule.on_epoch_end(epoch, logs)
        self._left = self._current()  # before the callbacks after this one act
        if logs is not None and self.factor != 1.0 and logs.get("learning_rate") is not None:
            logs["learning_rate"] = float(logs["learning_rate"]) * self.factor

    def on_train_end(self, logs=None):
        self.schedule.on_train_end(logs)
