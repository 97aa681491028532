"""The history of a run: one `HistoryRow` per finished epoch, and its file `history.csv`.

One row per finished epoch; `epoch` is zero-based. Files of earlier
versions read as today's (`keras_seresnet.compat.upgrade_history_columns`),
and the readers also give the per-epoch test columns under their 0.1.0
names `val_loss`/`val_accuracy` (`compat.with_legacy_names`).

Keras-free: `keras-seresnet-plots` reads a history without importing
TensorFlow.

Example:

>>> row = history_row(0, {"loss": 2.3, "accuracy": 0.1, "val_loss": 2.2, "val_accuracy": 0.2},
...                   validation=False)
>>> row.test_accuracy
0.2
>>> write_history_csv("history.csv", [row])
>>> read_history_csv("history.csv")["test_accuracy"]
[0.2]
"""

import csv
import dataclasses
import json
import math
import os

from keras_seresnet import compat
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.files import write_text
from keras_seresnet.training.layout import CONFIG

HISTORY_COLUMNS = (
    "epoch",  # zero-based
    "learning_rate",  # used during the epoch
    "mixup_alpha",  # used during the epoch; empty when mixup is off
    "loss",  # training loss on mixed, smoothed targets
    "accuracy",  # training accuracy against the dominant mixed label
    "test_loss",  # test loss after the epoch (label smoothing included), as the notebook reports
    "test_accuracy",  # test accuracy after the epoch
    "seconds",  # wall time of the epoch, training and evaluation
)
# The per-epoch evaluation's loss and accuracy columns: on the test images,
# or with a validation split (`TrainConfig.val_split`) on the held-out ones.
TEST_COLUMNS = ("test_loss", "test_accuracy")
VALIDATION_COLUMNS = ("val_loss", "val_accuracy")
_COLUMN_ORDER = HISTORY_COLUMNS[:5] + VALIDATION_COLUMNS + HISTORY_COLUMNS[5:]


@dataclasses.dataclass(frozen=True)
class HistoryRow:
    """One finished epoch: a line of `history.csv`, an entry of `state.json`'s `history`.

    The per-epoch evaluation fills one pair: `test_loss`/`test_accuracy`
    (the test images, evaluated every epoch) or `val_loss`/`val_accuracy`
    (a validation split); the other pair is None and is no column.

    Attributes:
        epoch: zero-based.
        learning_rate: used during the epoch; None if not logged.
        mixup_alpha: used during the epoch; None when mixup is off.
        loss: training loss on mixed, smoothed targets.
        accuracy: training accuracy against the dominant mixed label.
        test_loss: test loss after the epoch (label smoothing included), or None.
        test_accuracy: test accuracy after the epoch, in [0, 1], or None.
        val_loss: validation loss after the epoch, or None.
        val_accuracy: validation accuracy after the epoch, in [0, 1], or None.
        seconds: wall time of the epoch, training and evaluation.
        extra: any other logged values (a user's metrics) as
            `((name, value), ...)`, sorted by name.

    Example:

    >>> row = HistoryRow(epoch=0, loss=2.3, accuracy=0.1, test_loss=2.2, test_accuracy=0.2)
    >>> HistoryRow.from_dict(row.to_dict()) == row
    True
    """

    epoch: int
    learning_rate: float | None = None
    mixup_alpha: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    seconds: float | None = None
    extra: tuple[tuple[str, float | None], ...] = ()

    def to_dict(self) -> dict:
        """The row as `{column: value}`, without the evaluation pair it does not have.

        The form of `state.json`'s rows; `extra` becomes columns of their own.
        """
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "extra"
        }
        for pair in (TEST_COLUMNS, VALIDATION_COLUMNS):
            if all(values[column] is None for column in pair):
                for column in pair:
                    del values[column]
        values.update(self.extra)
        return values

    @classmethod
    def from_dict(cls, values) -> "HistoryRow":
        """The row of `{column: value}` (`to_dict`'s form); unknown columns go to `extra`.

        Raises:
            ValueError: `values` has no `epoch`.
        """
        if "epoch" not in values:
            raise ValueError(f"A history row must have an `epoch`. Received: {dict(values)!r}")
        names = {field.name for field in dataclasses.fields(cls)} - {"extra"}
        extra = tuple(sorted((key, value) for key, value in values.items() if key not in names))
        return cls(**{key: value for key, value in values.items() if key in names}, extra=extra)


def evaluation_columns(validation):
    """`(loss column, accuracy column)` of the per-epoch evaluation.

    `VALIDATION_COLUMNS` for a run with a validation split (`validation`
    true), else `TEST_COLUMNS`. The accuracy column chooses the best model.

    >>> evaluation_columns(validation=False)
    ('test_loss', 'test_accuracy')
    """
    return VALIDATION_COLUMNS if validation else TEST_COLUMNS


def accuracy_column(validation):
    """The accuracy column of `evaluation_columns(validation)`.

    >>> accuracy_column(validation=True)
    'val_accuracy'
    """
    return evaluation_columns(validation)[1]


def history_row(epoch, logs, validation):
    """One epoch's `HistoryRow` from Keras's epoch-end `logs`.

    Keras logs the per-epoch evaluation as `val_*`; without a validation
    split (`validation` false) the row calls it `test_*`. Values become
    floats (None stays None); what no callback logged is None.

    Args:
        epoch: the zero-based epoch.
        logs: the `logs` dict of `on_epoch_end`.
        validation: whether the evaluation is on a validation split.

    Returns:
        A `HistoryRow`; logs it has no field for go to `extra`.

    Example:

    >>> history_row(3, {"loss": 1.5, "val_accuracy": 0.5}, validation=False).test_accuracy
    0.5
    """
    names = {} if validation else dict(zip(VALIDATION_COLUMNS, TEST_COLUMNS))
    values = {
        names.get(key, key): None if value is None else float(value) for key, value in logs.items()
    }
    return HistoryRow.from_dict(dict(values, epoch=epoch))


def _as_dict(row):
    return row.to_dict() if isinstance(row, HistoryRow) else dict(row)


def _format_cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _columns(rows):
    present = {key for row in rows for key in row}
    known = [c for c in _COLUMN_ORDER if c in present]
    return known + sorted(present - set(_COLUMN_ORDER))


def write_history_csv(path, rows):
    """Writes history rows as CSV: the known columns in order, extra ones after.

    Args:
        path: the file to create or replace (atomically).
        rows: `HistoryRow`s, or dicts `{column: value}`.

    The columns are those the rows hold, in the order of `HISTORY_COLUMNS`
    (the validation columns before the test ones), then any other columns
    sorted. Floats are written with full precision (`repr`); a missing value
    or NaN is an empty cell.
    """
    rows = [_as_dict(row) for row in rows]
    columns = _columns(rows) if rows else list(HISTORY_COLUMNS)
    lines = [",".join(columns)]
    lines += [",".join(_format_cell(row.get(c)) for c in columns) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def read_history_csv(path):
    """Reads a `history.csv` into `{column: [values]}` (like `History.history`).

    A file of any version reads as today's
    (`compat.upgrade_history_columns`): without a validation split the
    per-epoch test columns are `test_loss` and `test_accuracy`, and also
    `val_loss`/`val_accuracy`, their 0.1.0 names.

    Returns:
        A dict of lists, one entry per row: `epoch` as int, every other column
        as float (an empty cell becomes NaN).

    Raises:
        FileNotFoundError: `path` does not exist.
        InvalidValueError: the file has no `epoch` column or a cell is not
            a number.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise InvalidValueError(f"{path} is not a history.csv: it has no `epoch` column.")
        history = {name: [] for name in reader.fieldnames}
        for line, row in enumerate(reader, start=2):
            for name, cell in row.items():
                try:
                    value = int(cell) if name == "epoch" else float(cell or "nan")
                except (TypeError, ValueError):
                    raise InvalidValueError(
                        f"{path}, line {line}: column `{name}` holds {cell!r}, not a number."
                    ) from None
                history[name].append(value)
    return compat.upgrade_history_columns(history, validation=_is_validation_run(path))


def _is_validation_run(history_path):
    """Whether the run folder of `history_path` was trained with a validation split."""
    config_path = os.path.join(os.path.dirname(os.fspath(history_path)), CONFIG)
    try:
        with open(config_path, encoding="utf-8") as f:
            return bool(json.load(f).get("val_split"))
    except (OSError, ValueError):
        return False


def rows_to_history(rows):
    """History rows (`HistoryRow`s or dicts) as `{column: [values]}`; absent values become NaN.

    Includes the 0.1.0 names of the test columns (`compat.with_legacy_names`).
    """
    rows = [_as_dict(row) for row in rows]
    return compat.with_legacy_names(
        {
            c: [row.get(c) if row.get(c) is not None else math.nan for row in rows]
            for c in _columns(rows)
        }
    )


def __getattr__(name):
    """The names that moved from here to `keras_seresnet.compat` (`compat.MOVED_NAMES`)."""
    return compat.moved_name(__name__, name)
