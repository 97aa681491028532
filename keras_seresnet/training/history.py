"""The `history.csv` of a run folder: its columns, and reading and writing it.

One row per finished epoch; `epoch` is zero-based. Files of earlier
versions read as today's (`keras_seresnet.compat.upgrade_history_columns`),
and the readers also give the per-epoch test columns under their 0.1.0
names `val_loss`/`val_accuracy` (`compat.with_legacy_names`).

Keras-free: `keras-seresnet-plots` reads a history without importing
TensorFlow.
"""

import csv
import json
import math
import os

from keras_seresnet import compat
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


def evaluation_columns(validation):
    """`(loss column, accuracy column)` of the per-epoch evaluation.

    `VALIDATION_COLUMNS` for a run with a validation split (`validation`
    true), else `TEST_COLUMNS`. The accuracy column chooses the best model.
    """
    return VALIDATION_COLUMNS if validation else TEST_COLUMNS


def accuracy_column(validation):
    """The accuracy column of `evaluation_columns(validation)`."""
    return evaluation_columns(validation)[1]


def history_row(epoch, logs, validation):
    """One epoch's history row from Keras's epoch-end `logs`.

    Keras logs the per-epoch evaluation as `val_*`; without a validation
    split (`validation` false) the row calls it `test_*`. Values become
    floats (None stays None), and `mixup_alpha` is None when no callback
    logged it.

    Args:
        epoch: the zero-based epoch.
        logs: the `logs` dict of `on_epoch_end`.
        validation: whether the evaluation is on a validation split.

    Returns:
        A dict with `epoch` and one entry per log.
    """
    row = {"epoch": epoch}
    row.update((key, None if value is None else float(value)) for key, value in logs.items())
    row.setdefault("mixup_alpha", None)
    return row if validation else {dict(zip(VALIDATION_COLUMNS, TEST_COLUMNS)).get(key, key): value
                                   for key, value in row.items()}


def _format_cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _columns(rows):
    present = {key for row in rows for key in row}
    known = [c for c in _COLUMN_ORDER if c in present]
    return known + sorted(present - set(_COLUMN_ORDER))


def write_history_csv(path, rows):
    """Writes history rows (dicts) as CSV: the known columns in order, extra keys after.

    The columns are those the rows hold, in the order of `HISTORY_COLUMNS`
    (the validation columns before the test ones), then any other keys
    sorted. Floats are written with full precision (`repr`); a missing value
    or NaN is an empty cell.
    """
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
        ValueError: the file has no `epoch` column or a cell is not a number.
    """
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "epoch" not in reader.fieldnames:
            raise ValueError(f"{path} is not a history.csv: it has no `epoch` column.")
        history = {name: [] for name in reader.fieldnames}
        for line, row in enumerate(reader, start=2):
            for name, cell in row.items():
                try:
                    value = int(cell) if name == "epoch" else float(cell or "nan")
                except (TypeError, ValueError):
                    raise ValueError(
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
    """History rows (dicts) as `{column: [values]}`; absent values become NaN.

    Includes the 0.1.0 names of the test columns (`compat.with_legacy_names`).
    """
    return compat.with_legacy_names({
        c: [row.get(c) if row.get(c) is not None else math.nan for row in rows]
        for c in _columns(rows)
    })


def __getattr__(name):
    """The names that moved from here to `keras_seresnet.compat` (`compat.MOVED_NAMES`)."""
    return compat.moved_name(__name__, name)
