"""A training run's folder on disk, written so that a kill at any moment loses nothing.

Layout of a run folder (`--out`):

    config.json        the resolved TrainConfig; written when training starts,
                       a rerun must match it
    history.csv        one row per finished epoch (`epoch` from 0): the
                       format of `keras_seresnet.training.history`
    best.keras         the model of the epoch with the highest per-epoch
                       accuracy (`val_accuracy` with a validation split, else
                       `test_accuracy`)
    final.keras        the model after the last epoch
    results.json       final test accuracy and loss, best epoch; written last, it
                       marks the run finished
    plots/loss.png, plots/accuracy.png, plots/schedules.png
    checkpoint/        only while the run is unfinished:
        state.json         the single source of truth: last finished epoch, the
                           history rows up to it, the best epoch, file names,
                           and the same for the epoch before (`previous`)
        epoch-NNNN.npz     the model's and the optimizer's variables after
                           epoch NNNN (`keras_seresnet.training.checkpoint`;
                           the last two epochs are kept)
        best-NNNN.keras    the best epoch's model

`best.keras` and `final.keras` hold the model only (no optimizer, no compile
state), so plain `keras.models.load_model` opens them without this package.

The entries' names are in `keras_seresnet.training.layout`.

Crash consistency: every file is written through `keras_seresnet.files`
(a temporary name, then `os.replace`). An epoch is committed by replacing
`checkpoint/state.json`, after the files it names are complete; `history.csv`
and `best.keras` are derived from the state and rewritten after each commit
and on every restart; the plots are drawn at the end of the run and on a
restart (`RunFolder.draw_plots` draws them at any time). A kill between any
two writes therefore leaves either the previous or the new state, and a
restart removes files no state names and rewrites the derived ones, so
`history.csv` always has each finished epoch exactly once. A damaged latest
checkpoint (a truncated copy, a full disk) falls back, with a warning, to the
epoch before it, which is kept until the next epoch is committed.

Fault injection (for tests). When the environment variable
`KERAS_SERESNET_FAULT` names a point, the process kills itself with SIGKILL
when it reaches that point (`fault_point`); epochs are zero-based as in
`history.csv`:

    after-step:EPOCH:STEP   after training step STEP (1-based) of epoch EPOCH
    mid-commit:EPOCH        during EPOCH's commit: its checkpoint files are
                            written, `state.json` is not yet replaced
    plots:EPOCH             when the plots are drawn after epoch EPOCH (the
                            last epoch of the run, or of a restart)
    before-results          after `final.keras`, before `results.json`
    signal:EPOCH:STEP       like after-step, but sends SIGTERM (a scheduler's
                            preemption) instead of SIGKILL
    decode                  while the images of a tree are decoded (once per
                            chunk of `data.cifar10`'s progress line)

A point followed by `:SIGINT` or `:SIGTERM` (`decode:SIGINT`,
`after-step:1:1:SIGTERM`) sends that signal there instead of SIGKILL, as
Ctrl-C or a scheduler would; `:SIGINT-in-gc` sends SIGINT from inside a
`gc.callbacks` callback during a collection run there, where Python would
swallow the `KeyboardInterrupt` (JAX's `_xla_gc_callback` is such a callback).
`trace:SIGINT` (or another of these) sends it when Keras first calls
`Model.train_step`, which it does while tracing the training step; it is armed
at the decode point, so the run must decode images (a tree without a cache).
"""

import functools
import gc
import json
import math
import os
import shutil
import signal
import sys
import warnings
import zipfile

import keras

from keras_seresnet import plots
from keras_seresnet.files import atomic_path, write_json
from keras_seresnet.training import checkpoint
from keras_seresnet.training.history import (  # noqa: F401 (also importable from here, as in 0.1.0)
    HISTORY_COLUMNS,
    LEGACY_NAMES,
    VALIDATION_COLUMNS,
    read_history_csv,
    rename_legacy_row,
    rows_to_history,
    with_legacy_names,
    write_history_csv,
)
from keras_seresnet.training.layout import (
    BEST,
    CHECKPOINT,
    CONFIG,
    FINAL,
    HISTORY,
    PLOTS,
    RESULTS,
    RUN_ENTRIES,
    STATE,
    TMP_PREFIX,
)

FAULT_ENV = "KERAS_SERESNET_FAULT"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (another config, not a run folder, damaged)."""


def fault_point(point, *where):
    """Kills or signals the process here if `KERAS_SERESNET_FAULT` names this point (a test hook).

    Args:
        point: the point's name ("after-step", "mid-commit", "plots",
            "before-results", "signal", "decode").
        *where: its numbers (epoch, step), joined with ":" after the name.

    The process sends itself SIGKILL (SIGTERM for "signal"), so nothing after
    this point runs: no `finally`, no exit handler. A fault that ends in a
    signal (see the module docstring) sends that signal and returns, so the
    process goes on as its signal handlers say. Without the variable this
    does nothing.
    """
    fault = os.environ.get(FAULT_ENV, "")
    place = ":".join([point, *map(str, where)])
    spot, _, how = fault.rpartition(":")
    if fault == place:
        os.kill(os.getpid(), signal.SIGTERM if point == "signal" else signal.SIGKILL)
    elif how in _SIGNAL_FAULTS and spot == place:
        _send_signal(how)
    elif how in _SIGNAL_FAULTS and spot == "trace" and point == "decode":
        sys.setprofile(functools.partial(_signal_at_train_step, how))


_SIGNAL_FAULTS = ("SIGINT", "SIGTERM", "SIGINT-in-gc")


def _send_signal(how):
    """Sends the signal a fault names (`_SIGNAL_FAULTS`) to this process; Python handles it at once."""
    if how != "SIGINT-in-gc":
        signal.raise_signal(getattr(signal, how))
        return
    sent = []

    def callback(phase, info):
        if not sent:
            sent.append(phase)
            signal.raise_signal(signal.SIGINT)

    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)


def _signal_at_train_step(how, frame, event, arg):
    """A `sys.setprofile` function: the fault's signal at the first call of a `train_step`."""
    if event == "call" and frame.f_code.co_name == "train_step":
        sys.setprofile(None)
        _send_signal(how)


def save_model_atomic(model, path):
    """Saves `model` to the `.keras` file `path` atomically (`keras_seresnet.files`)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def _copy_atomic(source, path):
    with atomic_path(path) as tmp:
        shutil.copyfile(source, tmp)


def inference_model(model):
    """The same layers and weights as a plain functional model without compile state.

    Saving it gives a `.keras` file that loads with `keras.models.load_model`
    without the package's optimizer class, and at half the size (no momentum).
    """
    return keras.Model(model.inputs, model.outputs, name=model.name)


def config_differences(saved, requested, ignore=(), defaults=None):
    """Lists `field: saved -> requested` for every field that differs (dicts), but `ignore`.

    A field absent from `saved` (a folder written before the field existed)
    counts as holding its value in `defaults`, when given.
    """
    defaults = defaults or {}

    def saved_value(name):
        return saved.get(name, defaults.get(name, "<absent>"))

    return [
        f"{name}: {saved_value(name)!r} in the folder, "
        f"{requested.get(name, '<absent>')!r} requested"
        for name in sorted(set(saved) | set(requested))
        if name not in ignore and saved_value(name) != requested.get(name)
    ]


# What to do about a damaged JSON file of the folder.
_FIX_OR_OVERWRITE = "fix it, or start again with --overwrite."
_RESTART_CHECKPOINT = "delete the folder's checkpoint/ to start over, or use --overwrite."


def _read_json(path, remedy):
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
            f"{path} is not a JSON object (it holds a {type(value).__name__}); {remedy}")
    return value


def _intact(path):
    """Whether `path` is a complete zip archive (`.keras`, `.npz`) with intact members."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


class RunFolder:
    """Reads and writes one run folder (see the module docstring for the layout).

    Args:
        path: the folder; created by `open` (not before).
        monitor: the history column that chooses the best model:
            "test_accuracy" (default; no validation split) or "val_accuracy".
    """

    def __init__(self, path, monitor="test_accuracy"):
        if monitor not in ("test_accuracy", "val_accuracy"):
            raise ValueError("Argument `monitor` must be 'test_accuracy' or 'val_accuracy'. "
                             f"Received: monitor={monitor!r}")
        self.path = os.fspath(path)
        self.monitor = monitor
        self.checkpoint_dir = os.path.join(self.path, CHECKPOINT)

    def file(self, name):
        """The path of an entry of the folder (`CONFIG`, `BEST`, ...)."""
        return os.path.join(self.path, name)

    def check(self, config_dict, overwrite=False, ignore=(), defaults=None):
        """Checks, writing nothing, that `open` would accept the folder for `config_dict`.

        Args and Raises: as `open`. A missing folder is accepted.
        """
        self._unstarted_differences(config_dict, overwrite, ignore, defaults)

    def _started(self):
        """Whether the folder's run has finished an epoch (a committed state, or results)."""
        return (os.path.exists(os.path.join(self.checkpoint_dir, STATE))
                or os.path.exists(self.file(RESULTS)))

    def _unstarted_differences(self, config_dict, overwrite, ignore, defaults):
        """`check`'s work. Returns how the config of a run that finished no epoch
        differs from `config_dict` (empty when it does not, or there is none)."""
        config_path = self.file(CONFIG)
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunFolderError(
                f"The output folder {self.path} is a file, not a folder. Choose another "
                "output folder (--out)."
            )
        if overwrite or not os.path.isdir(self.path):
            return []
        if os.path.exists(config_path):
            saved = _read_json(config_path, _FIX_OR_OVERWRITE)
            differences = config_differences(saved, config_dict, ignore, defaults)
            if differences and not self._started():
                return differences
            if differences:
                raise RunFolderError(
                    f"The run folder {self.path} holds a run with another config "
                    f"({'; '.join(differences)}). Use another output folder "
                    "(--out) for the new run, or --overwrite to delete the old "
                    "one and start over."
                )
        elif [name for name in os.listdir(self.path) if not name.startswith(TMP_PREFIX)]:
            raise RunFolderError(
                f"The output folder {self.path} is not empty and holds no {CONFIG}, "
                "so it is not a run folder of this package. Choose another output "
                "folder (--out), or --overwrite to write the run into it anyway "
                "(other files are left alone)."
            )
        return []

    def open(self, config_dict, overwrite=False, ignore=(), defaults=None):
        """Claims the folder for a run of `config_dict` (the resolved config).

        A new or empty folder is created and gets `config.json`. A folder
        with the same config (fields in `ignore` may differ) is left as it
        is, to be resumed or reported as finished; its `config.json` keeps
        the values the run started with. A folder of another config whose run
        finished no epoch (stopped or failed in its first) has nothing to
        lose: it is taken for the new run, with a warning naming the
        differences. Call it when training really
        starts (after the data loaded), so that a command failing before
        leaves no folder behind; `check` tells earlier whether it would
        succeed.

        Args:
            config_dict: `TrainConfig.to_dict()` of the resolved config.
            overwrite: delete this package's entries (`RUN_ENTRIES`) of a
                previous run first; other files are never touched.
            ignore: field names whose values may differ from the folder's
                (`config.EXECUTION_FIELDS`: devices and XLA).
            defaults: `TrainConfig().to_dict()`: the value of a field that
                a folder's older `config.json` lacks.

        Raises:
            RunFolderError: the path is a file (whatever `overwrite` says),
                or the folder holds a run of another config that
                finished an epoch, files but no `config.json`, or a `config.json` that is not a valid
                JSON object, and `overwrite` is False. The message names the
                differing fields (or the file) and the ways out.
        """
        unstarted = self._unstarted_differences(config_dict, overwrite, ignore, defaults)
        os.makedirs(self.path, exist_ok=True)
        self._remove_tmp(self.path)
        if unstarted:
            warnings.warn(
                f"The run folder {self.path} held a run of another config that finished no "
                f"epoch ({'; '.join(unstarted)}); it is replaced by the new run.", stacklevel=2)
        if overwrite or unstarted:
            self._remove_run_entries()
        if not os.path.exists(self.file(CONFIG)):
            write_json(self.file(CONFIG), config_dict)

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
            path = os.path.join(folder, name)
            if name.startswith(TMP_PREFIX):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def read_results(self):
        """The saved results if the run is finished, else None.

        Also removes a checkpoint left behind by a kill just after the
        results were written.

        Raises:
            RunFolderError: `results.json` is not a valid JSON object.
        """
        path = self.file(RESULTS)
        if not os.path.exists(path):
            return None
        results = _read_json(path, _FIX_OR_OVERWRITE)
        if os.path.isdir(self.checkpoint_dir):
            shutil.rmtree(self.checkpoint_dir)
        return results

    def read_state(self):
        """The last committed epoch's state, or None for a run not yet started.

        Removes files of an epoch that was being written when the run was
        killed, and rewrites the derived files (history, best model, plots)
        from the state. A state written by an earlier version (per-epoch test
        columns named `val_*`, `best_val_accuracy`) is read as a new one.

        Returns:
            None, or a dict: `epoch` (last finished, zero-based), `history`
            (rows of epochs 0..epoch), `model` (checkpoint path, model and
            optimizer), `best_epoch`, `best_accuracy` (of `monitor`),
            `previous` (the same fields of the epoch before, or None).

        Raises:
            RunFolderError: `state.json` is not a valid JSON object, a file
                the state names is missing (the folder was edited by hand), or
                the latest checkpoint is damaged and no intact earlier one is
                kept. The message names the file and says what to do.
        """
        state_path = os.path.join(self.checkpoint_dir, STATE)
        if not os.path.exists(state_path):
            if os.path.isdir(self.checkpoint_dir):
                shutil.rmtree(self.checkpoint_dir)
            return None
        state = self._upgrade(_read_json(state_path, _RESTART_CHECKPOINT))
        for key in ("model_file", "best_file"):
            if not os.path.exists(os.path.join(self.checkpoint_dir, state[key])):
                raise RunFolderError(
                    f"The checkpoint of {self.path} names {state[key]}, which is "
                    "missing. Delete the folder's checkpoint/ to start over, or "
                    "use --overwrite."
                )
        damaged = self._damaged(state)
        if damaged:
            previous = state.get("previous")
            if previous is None or self._damaged(previous):
                raise RunFolderError(
                    f"The checkpoint file {damaged} is damaged (not a complete zip "
                    "archive) and no intact earlier checkpoint is kept. Delete the "
                    "folder's checkpoint/ to start over, or use --overwrite."
                )
            warnings.warn(
                f"The checkpoint file {damaged} is damaged (not a complete zip "
                f"archive); resuming from the epoch before it (epoch {previous['epoch']}, "
                "zero-based) instead.", stacklevel=2)
            state = dict(previous, history=state["history"][: previous["epoch"] + 1], previous=None)
        self._remove_unreferenced(state)
        self._write_derived(state, best_changed=True)
        self.draw_plots(state["history"])
        return dict(state, model=os.path.join(self.checkpoint_dir, state["model_file"]))

    def _upgrade(self, state):
        """A state.json of an earlier version in today's form (same meaning)."""
        if "best_accuracy" not in state:
            state = dict(state, best_accuracy=state.pop("best_val_accuracy"), previous=None)
            if self.monitor == "test_accuracy":
                state["history"] = [rename_legacy_row(row) for row in state["history"]]
        return state

    def _damaged(self, state):
        for key in ("model_file", "best_file"):
            path = os.path.join(self.checkpoint_dir, state[key])
            if not _intact(path):
                return path
        return None

    def _remove_unreferenced(self, state):
        keep = {STATE, state["model_file"], state["best_file"]}
        if state.get("previous"):
            keep |= {state["previous"]["model_file"], state["previous"]["best_file"]}
        for name in os.listdir(self.checkpoint_dir):
            if name not in keep:
                path = os.path.join(self.checkpoint_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def _write_derived(self, state, best_changed):
        write_history_csv(self.file(HISTORY), state["history"])
        if best_changed:
            _copy_atomic(os.path.join(self.checkpoint_dir, state["best_file"]), self.file(BEST))

    def draw_plots(self, rows):
        """Draws `plots/` from history rows (a state's `history`)."""
        fault_point("plots", rows[-1]["epoch"] if rows else -1)
        os.makedirs(self.file(PLOTS), exist_ok=True)
        plots.plot_history(rows_to_history(rows), self.file(PLOTS))

    def commit_epoch(self, model, row, state=None):
        """Saves a finished epoch: checkpoint, best model, history (not the plots).

        The epoch before stays in `checkpoint/` until the next commit, as a
        fallback for a damaged checkpoint.

        Args:
            model: the compiled training model after the epoch.
            row: the epoch's history row; `row["epoch"]` is the epoch, and
                `row[monitor]` its accuracy.
            state: the previous state (`read_state()` or the last
                `commit_epoch()`), None for the first epoch.

        Returns:
            The new state.
        """
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        epoch = row["epoch"]
        model_file = f"epoch-{epoch:04d}{checkpoint.SUFFIX}"
        checkpoint.save_checkpoint(model, os.path.join(self.checkpoint_dir, model_file))
        best_epoch = state["best_epoch"] if state else None
        best_accuracy = state["best_accuracy"] if state else -math.inf
        best_file = state["best_file"] if state else None
        best_changed = row[self.monitor] > best_accuracy
        if best_changed:
            best_epoch, best_accuracy = epoch, row[self.monitor]
            best_file = f"best-{epoch:04d}.keras"
            save_model_atomic(
                inference_model(model), os.path.join(self.checkpoint_dir, best_file)
            )
        fault_point("mid-commit", epoch)
        previous = None
        if state:
            previous = {key: state[key] for key in
                        ("epoch", "model_file", "best_epoch", "best_accuracy", "best_file")}
        new_state = {
            "epoch": epoch,
            "model_file": model_file,
            "best_epoch": best_epoch,
            "best_accuracy": best_accuracy,
            "best_file": best_file,
            "history": (state["history"] if state else []) + [row],
            "previous": previous,
        }
        write_json(os.path.join(self.checkpoint_dir, STATE), new_state)
        self._remove_unreferenced(new_state)
        self._write_derived(new_state, best_changed)
        return dict(new_state, model=os.path.join(self.checkpoint_dir, model_file))

    def finish(self, model, results, rows=None):
        """Draws the plots, writes `final.keras` and `results.json`, then drops the checkpoint.

        Args:
            model: the model after the last epoch.
            results: the dict `results.json` gets.
            rows: the history rows of every epoch, for the plots. Default
                None: those of the committed state.
        """
        if rows is None:
            rows = _read_json(os.path.join(self.checkpoint_dir, STATE), _RESTART_CHECKPOINT)["history"]
        self.draw_plots(rows)
        save_model_atomic(inference_model(model), self.file(FINAL))
        fault_point("before-results")
        write_json(self.file(RESULTS), results)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
