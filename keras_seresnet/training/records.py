"""The run folder's JSON records: `RunState` (`checkpoint/state.json`) and `RunResults` (`results.json`).

Frozen dataclasses with fixed fields, each with one `to_json`/`from_json`
(and `to_dict`/`from_dict`, their JSON values). They read and write today's
format only: `RunFolder` passes what older versions wrote through
`keras_seresnet.compat` first, as `read_results` does for a finished run's
`results.json` (what `keras-seresnet-plots` reads without starting Keras).

`monitor` is the history column that chooses the best epoch:
"test_accuracy" (no validation split: the test set is evaluated every epoch,
as the reference notebook does) or "val_accuracy" (`TrainConfig.val_split`).

Keras-free.

Example:

>>> results = RunResults(monitor="val_accuracy", best_epoch=3, best_accuracy=0.61,
...                      test_accuracy=0.6, test_loss=1.1, test_accuracy_tta=0.62,
...                      epochs_trained=5, train_images=45000,
...                      val_images=5000, test_images=10000, parameters=2822922,
...                      train_seconds=120.5, initial_weights=None)
>>> RunResults.from_json(results.to_json()) == results
True
>>> results.to_dict()["best_val_accuracy"]  # also under the name earlier versions wrote
0.61
"""

import dataclasses
import json
import os

from keras_seresnet import compat
from keras_seresnet.errors import SeresnetError
from keras_seresnet.training.history import HistoryRow

MONITORS = ("test_accuracy", "val_accuracy")

# The remedies a damaged record's message ends with.
FIX_OR_OVERWRITE = "fix it, or start again with --overwrite."
RESTART_CHECKPOINT = "delete the folder's checkpoint/ to start over, or use --overwrite."


class RunFolderError(SeresnetError, ValueError):
    """A run folder that cannot be used as asked (another config, not a run folder, damaged)."""


def check_monitor(monitor):
    """Raises `ValueError` unless `monitor` is one of `MONITORS`."""
    if monitor not in MONITORS:
        raise ValueError(
            "Argument `monitor` must be 'test_accuracy' or 'val_accuracy'. "
            f"Received: monitor={monitor!r}"
        )


def _require(values, names, what):
    """`{name: values[name]}` for `names`; other keys of `values` are ignored.

    Raises:
        ValueError: `values` is not a dict or lacks a name; the message names `what`.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{what} must be a JSON object. Received: {type(values).__name__}")
    missing = [name for name in names if name not in values]
    if missing:
        raise ValueError(f"{what} lacks the field(s) {', '.join(missing)}")
    return {name: values[name] for name in names}


def _field_names(cls):
    return [field.name for field in dataclasses.fields(cls)]


def _json_text(values):
    """The JSON text of every file of the run folder: indented, keys sorted, a final newline."""
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


@dataclasses.dataclass(frozen=True)
class Commit:
    """One committed epoch: its checkpoint, and the best epoch up to it.

    Attributes:
        epoch: the committed epoch, zero-based.
        model_file: the `checkpoint/` entry of the model's and optimizer's
            variables after it (`epoch-NNNN.npz`).
        best_epoch: the epoch of the highest `monitor` value so far.
        best_accuracy: that value.
        best_file: the `checkpoint/` entry of that epoch's model
            (`best-NNNN.keras`).

    Example:

    >>> Commit(0, "epoch-0000.npz", 0, 0.25, "best-0000.keras").files()
    ('epoch-0000.npz', 'best-0000.keras')
    """

    epoch: int
    model_file: str
    best_epoch: int
    best_accuracy: float
    best_file: str

    def files(self) -> tuple[str, str]:
        """`(model_file, best_file)`."""
        return self.model_file, self.best_file

    def to_dict(self) -> dict:
        """The JSON object of the commit."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values) -> "Commit":
        """The commit of a `to_dict` object. Raises `ValueError` for a missing field."""
        return cls(**_require(values, _field_names(cls), "A commit of state.json"))


@dataclasses.dataclass(frozen=True)
class RunState:
    """The record of an unfinished run: what `checkpoint/state.json` holds.

    Attributes:
        monitor: "test_accuracy" or "val_accuracy".
        commit: the last committed epoch.
        history: the `HistoryRow`s of epochs 0..`commit.epoch`.
        previous: the commit before, whose files are kept as a fallback for
            a damaged checkpoint; None for the first epoch (and for a state
            of 0.1.0).

    In the file the commit's fields are at the top level, beside `monitor`,
    `history` and `previous`.

    Example:

    >>> state = RunState("test_accuracy", Commit(0, "epoch-0000.npz", 0, 0.25, "best-0000.keras"),
    ...                  (HistoryRow(epoch=0, test_accuracy=0.25),))
    >>> RunState.from_json(state.to_json()) == state
    True
    """

    monitor: str
    commit: Commit
    history: tuple[HistoryRow, ...]
    previous: Commit | None = None

    def __post_init__(self):
        check_monitor(self.monitor)
        object.__setattr__(self, "history", tuple(self.history))

    def files(self) -> set:
        """The `checkpoint/` entries the state names: its commit's, and the previous one's."""
        return set(self.commit.files()) | set(self.previous.files() if self.previous else ())

    def after(self, row, model_file, best_file=None) -> "RunState":
        """The state once `row`'s epoch is committed after this one.

        Args:
            row: the epoch's `HistoryRow`.
            model_file: the epoch's checkpoint entry.
            best_file: the epoch's model entry when the epoch is the new best
                (`improves(row)`), else None.
        """
        commit = dataclasses.replace(self.commit, epoch=row.epoch, model_file=model_file)
        if best_file is not None:
            commit = dataclasses.replace(
                commit,
                best_epoch=row.epoch,
                best_accuracy=getattr(row, self.monitor),
                best_file=best_file,
            )
        return RunState(self.monitor, commit, self.history + (row,), previous=self.commit)

    def improves(self, row) -> bool:
        """Whether `row`'s `monitor` value beats the best so far."""
        return getattr(row, self.monitor) > self.commit.best_accuracy

    def rolled_back(self) -> "RunState":
        """The state as it was after the previous commit (no fallback kept).

        Raises:
            ValueError: there is no previous commit.
        """
        if self.previous is None:
            raise ValueError("The state has no previous commit to roll back to.")
        return RunState(self.monitor, self.previous, self.history[: self.previous.epoch + 1])

    @classmethod
    def first(cls, monitor, row, model_file, best_file) -> "RunState":
        """The state after the first committed epoch, `row` (always the best so far)."""
        return cls(
            monitor,
            Commit(row.epoch, model_file, row.epoch, getattr(row, monitor), best_file),
            (row,),
        )

    def to_dict(self) -> dict:
        """The JSON object of `state.json`."""
        return dict(
            self.commit.to_dict(),
            monitor=self.monitor,
            history=[row.to_dict() for row in self.history],
            previous=self.previous.to_dict() if self.previous else None,
        )

    @classmethod
    def from_dict(cls, values) -> "RunState":
        """The state of a `to_dict` object (today's format; see `compat.upgrade_state_dict`).

        Raises:
            ValueError: a field is missing or `monitor` is not a monitor.
        """
        top = _require(values, ("monitor", "history", "previous"), "state.json")
        return cls(
            top["monitor"],
            Commit.from_dict(values),
            tuple(HistoryRow.from_dict(row) for row in top["history"]),
            Commit.from_dict(top["previous"]) if top["previous"] else None,
        )

    def to_json(self) -> str:
        """The text of `state.json`."""
        return _json_text(self.to_dict())

    @classmethod
    def from_json(cls, text) -> "RunState":
        """The state of `state.json`'s text. Raises `ValueError` (also for invalid JSON)."""
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class RunResults:
    """What a finished run found: `results.json`, written last, marks the run finished.

    Attributes:
        monitor: the column that chose the best epoch, "test_accuracy" or
            "val_accuracy".
        best_epoch: the best epoch, zero-based (`best.keras` is its model).
        best_accuracy: its `monitor` value, in [0, 1].
        test_accuracy: the final model's accuracy on the test images.
        test_loss: the final model's test loss (label smoothing included).
        test_accuracy_tta: the final model's test accuracy in float32 with
            horizontal-flip test-time augmentation (the mean of the
            probabilities of each image and its mirror); None in the
            results of version 0.1.0.
        epochs_trained: epochs in the run (fewer than `epochs` when a
            callback stopped it).
        train_images: images trained on.
        val_images: images held out for validation; None without a split.
        test_images: images of the test set.
        parameters: the model's parameters (BatchNorm statistics included).
        train_seconds: the epochs' wall time, summed.
        initial_weights: the `.keras` file a new run started from, or None.

    `to_dict` also gives `best_accuracy` under the name earlier versions
    wrote: `best_test_accuracy` or `best_val_accuracy` (`"best_" + monitor`).
    """

    monitor: str
    best_epoch: int
    best_accuracy: float
    test_accuracy: float
    test_loss: float
    test_accuracy_tta: float | None
    epochs_trained: int
    train_images: int
    val_images: int | None
    test_images: int
    parameters: int
    train_seconds: float
    initial_weights: str | None

    def __post_init__(self):
        check_monitor(self.monitor)

    def to_dict(self) -> dict:
        """The JSON object of `results.json` (what `TrainResult.results` holds)."""
        return dict(dataclasses.asdict(self), **{f"best_{self.monitor}": self.best_accuracy})

    @classmethod
    def from_dict(cls, values) -> "RunResults":
        """The results of a `to_dict` object (today's format; see `compat.upgrade_results_dict`).

        Raises:
            ValueError: a field is missing or `monitor` is not a monitor.
        """
        return cls(**_require(values, _field_names(cls), "results.json"))

    def to_json(self) -> str:
        """The text of `results.json`."""
        return _json_text(self.to_dict())

    @classmethod
    def from_json(cls, text) -> "RunResults":
        """The results of `results.json`'s text. Raises `ValueError` (also for invalid JSON)."""
        return cls.from_dict(json.loads(text))


def read_json_object(path, remedy):
    """The dict the JSON file `path` holds.

    Raises:
        RunFolderError: the file is not valid JSON or holds no object; the
            one-line message names it and ends with `remedy`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except ValueError as e:  # json.JSONDecodeError, UnicodeDecodeError
        raise RunFolderError(f"{path} is not valid JSON ({e}); {remedy}") from None
    if not isinstance(value, dict):
        raise RunFolderError(
            f"{path} is not a JSON object (it holds a {type(value).__name__}); {remedy}"
        )
    return value


def read_results(path):
    """The `RunResults` of a `results.json` of any version, or None if there is no such file.

    Reads only; a file of an earlier version reads as today's
    (`compat.upgrade_results_dict`).

    Example:

    >>> read_results("no-such-run/results.json") is None
    True

    Raises:
        RunFolderError: the file is not a valid JSON object of results.
    """
    if not os.path.exists(path):
        return None
    values = compat.upgrade_results_dict(read_json_object(path, FIX_OR_OVERWRITE))
    try:
        return RunResults.from_dict(values)
    except (ValueError, TypeError) as e:
        raise RunFolderError(
            f"{path} holds no results of this package ({e}); {FIX_OR_OVERWRITE}"
        ) from None
