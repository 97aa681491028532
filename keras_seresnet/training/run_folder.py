"""A training run's folder on disk, written so that a kill at any moment loses nothing.

Layout of a run folder (`--out`):

    config.json        the resolved TrainConfig; written first, a rerun must match it
    history.csv        one row per finished epoch (`HISTORY_COLUMNS`, `epoch` from 0)
    best.keras         the model of the epoch with the highest val_accuracy
    final.keras        the model after the last epoch
    results.json       final test accuracy and loss, best epoch; written last, it
                       marks the run finished
    plots/loss.png, plots/accuracy.png, plots/schedules.png
    checkpoint/        only while the run is unfinished:
        state.json         the single source of truth: last finished epoch, the
                           history rows up to it, the best epoch, file names
        epoch-NNNN.keras   model and optimizer state after epoch NNNN
        best-NNNN.keras    the best epoch's model

`best.keras` and `final.keras` hold the model only (no optimizer, no compile
state), so plain `keras.models.load_model` opens them without this package.

Crash consistency: every file is written to a `.tmp-` name and moved into
place with `os.replace` (atomic on POSIX). An epoch is committed by replacing
`checkpoint/state.json`, after the files it names are complete; `history.csv`,
`best.keras` and the plots are derived from the state and rewritten after
each commit and on every restart. A kill between any two writes therefore
leaves either the previous or the new state, and a restart removes files no
state names and rewrites the derived ones, so `history.csv` always has each
finished epoch exactly once.
"""

import csv
import json
import math
import os
import shutil

import keras

from keras_seresnet import plots

CONFIG = "config.json"
HISTORY = "history.csv"
BEST = "best.keras"
FINAL = "final.keras"
RESULTS = "results.json"
PLOTS = "plots"
CHECKPOINT = "checkpoint"
STATE = "state.json"
TMP_PREFIX = ".tmp-"

# The entries this package writes; `--overwrite` removes exactly these.
RUN_ENTRIES = (CONFIG, HISTORY, BEST, FINAL, RESULTS, PLOTS, CHECKPOINT)

HISTORY_COLUMNS = (
    "epoch",  # zero-based
    "learning_rate",  # used during the epoch
    "mixup_alpha",  # used during the epoch; empty when mixup is off
    "loss",  # training loss on mixed, smoothed targets
    "accuracy",  # training accuracy against the dominant mixed label
    "val_loss",  # test loss (label smoothing included)
    "val_accuracy",  # test accuracy
    "seconds",  # wall time of the epoch, training and evaluation
)


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (another config, not a run folder)."""


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_text_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + os.path.basename(path))
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json_atomic(path, value):
    _write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def save_model_atomic(model, path):
    """Saves `model` to the `.keras` file `path` via a temporary name and `os.replace`."""
    tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + os.path.basename(path))
    model.save(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def _copy_atomic(source, path):
    tmp = os.path.join(os.path.dirname(path), TMP_PREFIX + os.path.basename(path))
    shutil.copyfile(source, tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def inference_model(model):
    """The same layers and weights as a plain functional model without compile state.

    Saving it gives a `.keras` file that loads with `keras.models.load_model`
    without the package's optimizer class, and at half the size (no momentum).
    """
    return keras.Model(model.inputs, model.outputs, name=model.name)


def config_differences(saved, requested, ignore=()):
    """Lists `field: saved -> requested` for every field that differs (dicts), but `ignore`."""
    return [
        f"{name}: {saved.get(name, '<absent>')!r} in the folder, "
        f"{requested.get(name, '<absent>')!r} requested"
        for name in sorted(set(saved) | set(requested))
        if name not in ignore and saved.get(name) != requested.get(name)
    ]


def _format_cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_history_csv(path, rows):
    """Writes history rows (dicts) as CSV: `HISTORY_COLUMNS` first, extra keys after.

    Floats are written with full precision (`repr`); a missing value or NaN
    is an empty cell.
    """
    extra = sorted({key for row in rows for key in row} - set(HISTORY_COLUMNS))
    columns = list(HISTORY_COLUMNS) + extra
    lines = [",".join(columns)]
    lines += [",".join(_format_cell(row.get(c)) for c in columns) for row in rows]
    _write_text_atomic(path, "\n".join(lines) + "\n")


def read_history_csv(path):
    """Reads a `history.csv` into `{column: [values]}` (like `History.history`).

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
    return history


def rows_to_history(rows):
    """History rows (dicts) as `{column: [values]}`; absent values become NaN."""
    columns = list(HISTORY_COLUMNS) + sorted(
        {key for row in rows for key in row} - set(HISTORY_COLUMNS)
    )
    return {
        c: [row.get(c) if row.get(c) is not None else math.nan for row in rows]
        for c in columns
    }


class RunFolder:
    """Reads and writes one run folder (see the module docstring for the layout).

    Args:
        path: the folder; created when missing.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.checkpoint_dir = os.path.join(self.path, CHECKPOINT)

    def file(self, name):
        """The path of an entry of the folder (`CONFIG`, `BEST`, ...)."""
        return os.path.join(self.path, name)

    def open(self, config_dict, overwrite=False, ignore=()):
        """Claims the folder for a run of `config_dict` (the resolved config).

        A new or empty folder gets `config.json`. A folder with the same
        config (fields in `ignore` may differ) is left as it is, to be
        resumed or reported as finished; its `config.json` keeps the values
        the run started with.

        Args:
            config_dict: `TrainConfig.to_dict()` of the resolved config.
            overwrite: delete this package's entries (`RUN_ENTRIES`) of a
                previous run first; other files are never touched.
            ignore: field names whose values may differ from the folder's
                (`config.EXECUTION_FIELDS`: devices and XLA).

        Raises:
            RunFolderError: the folder holds a run of another config, or files
                but no `config.json`, and `overwrite` is False. The message
                names the differing fields and the ways out.
        """
        os.makedirs(self.path, exist_ok=True)
        self._remove_tmp(self.path)
        config_path = self.file(CONFIG)
        if overwrite:
            self._remove_run_entries()
        elif os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                saved = json.load(f)
            differences = config_differences(saved, config_dict, ignore)
            if differences:
                raise RunFolderError(
                    f"The run folder {self.path} holds a run with another config "
                    f"({'; '.join(differences)}). Use another output folder "
                    "(--out) for the new run, or --overwrite to delete the old "
                    "one and start over."
                )
            return
        elif os.listdir(self.path):
            raise RunFolderError(
                f"The output folder {self.path} is not empty and holds no {CONFIG}, "
                "so it is not a run folder of this package. Choose another output "
                "folder (--out), or --overwrite to write the run into it anyway "
                "(other files are left alone)."
            )
        _write_json_atomic(config_path, config_dict)

    def _remove_run_entries(self):
        for name in RUN_ENTRIES:
            path = self.file(name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    @staticmethod
    def _remove_tmp(folder):
        for name in os.listdir(folder):
            if name.startswith(TMP_PREFIX):
                os.remove(os.path.join(folder, name))

    def read_results(self):
        """The saved results if the run is finished, else None.

        Also removes a checkpoint left behind by a kill just after the
        results were written.
        """
        path = self.file(RESULTS)
        if not os.path.exists(path):
            return None
        if os.path.isdir(self.checkpoint_dir):
            shutil.rmtree(self.checkpoint_dir)
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def read_state(self):
        """The last committed epoch's state, or None for a run not yet started.

        Removes files of an epoch that was being written when the run was
        killed, and rewrites the derived files from the state.

        Returns:
            None, or a dict: `epoch` (last finished, zero-based), `history`
            (rows of epochs 0..epoch), `model` (checkpoint path, model and
            optimizer), `best_epoch`, `best_val_accuracy`.

        Raises:
            RunFolderError: a file the state names is missing (the folder was
                edited by hand).
        """
        state_path = os.path.join(self.checkpoint_dir, STATE)
        if not os.path.exists(state_path):
            if os.path.isdir(self.checkpoint_dir):
                shutil.rmtree(self.checkpoint_dir)
            return None
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        for key in ("model_file", "best_file"):
            if not os.path.exists(os.path.join(self.checkpoint_dir, state[key])):
                raise RunFolderError(
                    f"The checkpoint of {self.path} names {state[key]}, which is "
                    "missing. Delete the folder's checkpoint/ to start over, or "
                    "use --overwrite."
                )
        self._remove_unreferenced(state)
        self._write_derived(state)
        return dict(state, model=os.path.join(self.checkpoint_dir, state["model_file"]))

    def _remove_unreferenced(self, state):
        keep = {STATE, state["model_file"], state["best_file"]}
        for name in os.listdir(self.checkpoint_dir):
            if name not in keep:
                os.remove(os.path.join(self.checkpoint_dir, name))

    def _write_derived(self, state):
        write_history_csv(self.file(HISTORY), state["history"])
        _copy_atomic(os.path.join(self.checkpoint_dir, state["best_file"]), self.file(BEST))
        os.makedirs(self.file(PLOTS), exist_ok=True)
        plots.plot_history(rows_to_history(state["history"]), self.file(PLOTS))

    def commit_epoch(self, model, row, state=None):
        """Saves a finished epoch: checkpoint, best model, history, plots.

        Args:
            model: the compiled training model after the epoch.
            row: the epoch's history row; `row["epoch"]` is the epoch.
            state: the previous state (`read_state()` or the last
                `commit_epoch()`), None for the first epoch.

        Returns:
            The new state.
        """
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        epoch = row["epoch"]
        model_file = f"epoch-{epoch:04d}.keras"
        save_model_atomic(model, os.path.join(self.checkpoint_dir, model_file))
        best_epoch = state["best_epoch"] if state else None
        best_accuracy = state["best_val_accuracy"] if state else -math.inf
        best_file = state["best_file"] if state else None
        if row["val_accuracy"] > best_accuracy:
            best_epoch, best_accuracy = epoch, row["val_accuracy"]
            best_file = f"best-{epoch:04d}.keras"
            save_model_atomic(
                inference_model(model), os.path.join(self.checkpoint_dir, best_file)
            )
        new_state = {
            "epoch": epoch,
            "model_file": model_file,
            "best_epoch": best_epoch,
            "best_val_accuracy": best_accuracy,
            "best_file": best_file,
            "history": (state["history"] if state else []) + [row],
        }
        _write_json_atomic(os.path.join(self.checkpoint_dir, STATE), new_state)
        self._remove_unreferenced(new_state)
        self._write_derived(new_state)
        return dict(new_state, model=os.path.join(self.checkpoint_dir, model_file))

    def finish(self, model, results):
        """Writes `final.keras` and `results.json`, then drops the checkpoint."""
        save_model_atomic(inference_model(model), self.file(FINAL))
        _write_json_atomic(self.file(RESULTS), results)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
