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
    results.json       final test accuracy and loss, best epoch
                       (`records.RunResults`); written last, it marks the run
                       finished
    plots/loss.png, plots/accuracy.png, plots/schedules.png
    checkpoint/        only while the run is unfinished:
        state.json         the single source of truth (`records.RunState`):
                           the monitored column, the last finished epoch, the
                           history rows up to it, the best epoch, file names,
                           and the same for the epoch before (`previous`)
        epoch-NNNN.npz     the model's and the optimizer's variables after
                           epoch NNNN (`keras_seresnet.training.checkpoint`;
                           the last two epochs are kept)
        best-NNNN.keras    the best epoch's model

`best.keras` and `final.keras` hold the model only (no optimizer, no compile
state), so plain `keras.models.load_model` opens them without this package.

The entries' names are in `keras_seresnet.training.layout`.

Reading and repairing. `read_results`, `read_state` and `check` only read:
they leave every file as it is (files of earlier versions are read through
`keras_seresnet.compat` into today's records). `repair` is the one step
that makes a folder consistent after a kill; `train()` calls it before it
resumes or reports a run.

Crash consistency: every file is written through `keras_seresnet.files`
(a temporary name, then `os.replace`). An epoch is committed by replacing
`checkpoint/state.json`, after the files it names are complete; `history.csv`
and `best.keras` are derived from the state and rewritten after each commit
and by `repair`; the plots are drawn at the end of the run and by `repair`
(`RunFolder.draw_plots` draws them at any time). A kill between any two
writes therefore leaves either the previous or the new state, and `repair`
removes files no state names and rewrites the derived ones, so `history.csv`
always has each finished epoch exactly once. A damaged latest checkpoint (a
truncated copy, a full disk) falls back, with a warning, to the epoch before
it, which is kept until the next epoch is committed.

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
import os
import shutil
import signal
import sys
import warnings
import zipfile

import keras

from keras_seresnet import compat, plots
from keras_seresnet.files import atomic_path, write_json, write_text
from keras_seresnet.training import checkpoint
from keras_seresnet.training.history import rows_to_history, write_history_csv
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
from keras_seresnet.training.records import (
    FIX_OR_OVERWRITE,
    RESTART_CHECKPOINT,
    RunFolderError,
    RunState,
    check_monitor,
    read_json_object,
    read_results,
)

FAULT_ENV = "KERAS_SERESNET_FAULT"


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

    Example:

    >>> folder = RunFolder("saved_models/run")
    >>> folder.read_state() == folder.read_state()  # reading changes nothing
    True
    >>> state = folder.repair()  # the one step that writes: the state to resume from
    """

    def __init__(self, path, monitor="test_accuracy"):
        check_monitor(monitor)
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
        return os.path.exists(os.path.join(self.checkpoint_dir, STATE)) or os.path.exists(
            self.file(RESULTS)
        )

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
            saved = read_json_object(config_path, FIX_OR_OVERWRITE)
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
                f"epoch ({'; '.join(unstarted)}); it is replaced by the new run.",
                stacklevel=2,
            )
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

    def checkpoint_file(self, name):
        """The path of an entry of `checkpoint/` (a `Commit`'s `model_file` or `best_file`)."""
        return os.path.join(self.checkpoint_dir, name)

    def read_results(self):
        """The results of a finished run, or None if the folder holds no `results.json`.

        Reads only; a `results.json` of an earlier version reads as today's
        (`compat.upgrade_results_dict`).

        Returns:
            A `RunResults`, or None.

        Raises:
            RunFolderError: `results.json` is not a valid JSON object of results.
        """
        return read_results(self.file(RESULTS))

    def read_state(self):
        """The last committed epoch's state as `state.json` records it, or None without one.

        Reads only: files the state does not name, a damaged checkpoint and
        stale derived files are `repair`'s business. A `state.json` of an
        earlier version reads as today's (`compat.upgrade_state_dict`).

        Returns:
            A `RunState`, or None.

        Raises:
            RunFolderError: `state.json` is not a valid JSON object of a state.
        """
        path = os.path.join(self.checkpoint_dir, STATE)
        if not os.path.exists(path):
            return None
        values = compat.upgrade_state_dict(read_json_object(path, RESTART_CHECKPOINT), self.monitor)
        try:
            return RunState.from_dict(values)
        except (ValueError, TypeError) as e:
            raise RunFolderError(
                f"{path} holds no state of this package ({e}); {RESTART_CHECKPOINT}"
            ) from None

    def repair(self):
        """Makes the folder what its last commit says, after a kill at any moment.

        The one step that changes a folder it reads; `train()` calls it before
        it resumes or reports a run. It touches only this package's entries:

        - removes the temporary files of writes cut short (`.tmp-*`, in the
          folder and in `plots/`);
        - a finished run (`results.json`): removes the `checkpoint/` that a
          kill just after the results left;
        - no committed epoch (no `state.json`): removes `checkpoint/` (a
          first commit cut short);
        - a damaged latest checkpoint: falls back, with a warning, to the
          epoch before it;
        - rewrites `state.json` when it is not what the state to resume
          from gives (after a fallback, or a file of an earlier version);
        - removes the `checkpoint/` files the state does not name (an epoch
          being committed when the run was killed);
        - rewrites `history.csv` and `best.keras` from the state and draws
          `plots/`.

        A folder that does not exist is left so.

        Returns:
            The `RunState` to resume from (what `read_state()` now returns),
            or None for a finished run or one without a committed epoch.

        Raises:
            RunFolderError: `state.json` is not a valid state, a file it
                names is missing (the folder was edited by hand), or the
                latest checkpoint is damaged and no intact earlier one is
                kept. The message names the file and says what to do;
                nothing is changed then but temporary files.
        """
        if not os.path.isdir(self.path):
            return None
        for folder in (self.path, self.file(PLOTS)):
            if os.path.isdir(folder):
                self._remove_tmp(folder)
        state = None if os.path.exists(self.file(RESULTS)) else self.read_state()
        if state is None:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            return None
        for name in state.commit.files():
            if not os.path.exists(self.checkpoint_file(name)):
                raise RunFolderError(
                    f"The checkpoint of {self.path} names {name}, which is missing. Delete the "
                    "folder's checkpoint/ to start over, or use --overwrite."
                )
        damaged = self._damaged(state.commit)
        if damaged:
            if state.previous is None or self._damaged(state.previous):
                raise RunFolderError(
                    f"The checkpoint file {damaged} is damaged (not a complete zip "
                    "archive) and no intact earlier checkpoint is kept. Delete the "
                    "folder's checkpoint/ to start over, or use --overwrite."
                )
            warnings.warn(
                f"The checkpoint file {damaged} is damaged (not a complete zip archive); "
                f"resuming from the epoch before it (epoch {state.previous.epoch}, zero-based) "
                "instead.",
                stacklevel=2,
            )
            state = state.rolled_back()
        self._write_state(state)
        self._remove_unreferenced(state)
        self._write_derived(state, best_changed=True)
        self.draw_plots(state.history)
        return state

    def _write_state(self, state):
        """Replaces `state.json` with `state`, unless it already holds exactly that."""
        path, text = os.path.join(self.checkpoint_dir, STATE), state.to_json()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    return
        write_text(path, text)

    def _damaged(self, commit):
        """The path of the first of `commit`'s files that is not intact, or None."""
        for name in commit.files():
            if not _intact(self.checkpoint_file(name)):
                return self.checkpoint_file(name)
        return None

    def _remove_unreferenced(self, state):
        keep = {STATE} | state.files()
        for name in os.listdir(self.checkpoint_dir):
            if name not in keep:
                path = self.checkpoint_file(name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def _write_derived(self, state, best_changed):
        write_history_csv(self.file(HISTORY), state.history)
        if best_changed:
            _copy_atomic(self.checkpoint_file(state.commit.best_file), self.file(BEST))

    def draw_plots(self, rows, train_images=None):
        """Draws `plots/` from history rows (a `RunState`'s `history`), the schedules from `config.json`.

        `train_images` (per epoch) gives a step-unit run's schedules at each
        of its steps; None draws them on a fine grid (`plots.plot_run`).
        """
        fault_point("plots", rows[-1].epoch if rows else -1)
        os.makedirs(self.file(PLOTS), exist_ok=True)
        plots.plot_run(
            rows_to_history(rows),
            self.file(PLOTS),
            config_file=self.file(CONFIG),
            train_images=train_images,
        )

    def commit_epoch(self, model, row, state=None):
        """Saves a finished epoch: checkpoint, best model, history (not the plots).

        The epoch before stays in `checkpoint/` until the next commit, as a
        fallback for a damaged checkpoint.

        Args:
            model: the compiled training model after the epoch.
            row: the epoch's `HistoryRow`; its `monitor` column is the
                epoch's accuracy.
            state: the previous `RunState` (`repair()` or the last
                `commit_epoch()`), None for the first epoch.

        Returns:
            The new `RunState`.
        """
        os.makedirs(self.checkpoint_dir, exist_ok=True)
        model_file = f"epoch-{row.epoch:04d}{checkpoint.SUFFIX}"
        checkpoint.save_checkpoint(model, self.checkpoint_file(model_file))
        best_file = None
        if state is None or state.improves(row):
            best_file = f"best-{row.epoch:04d}.keras"
            save_model_atomic(inference_model(model), self.checkpoint_file(best_file))
        fault_point("mid-commit", row.epoch)
        if state is None:
            new_state = RunState.first(self.monitor, row, model_file, best_file)
        else:
            new_state = state.after(row, model_file, best_file)
        write_text(os.path.join(self.checkpoint_dir, STATE), new_state.to_json())
        self._remove_unreferenced(new_state)
        self._write_derived(new_state, best_changed=best_file is not None)
        return new_state

    def finish(self, model, results, rows=None):
        """Draws the plots, writes `final.keras` and `results.json`, then drops the checkpoint.

        Args:
            model: the model after the last epoch.
            results: the `RunResults` that `results.json` gets.
            rows: the `HistoryRow`s of every epoch, for the plots. Default
                None: those of the committed state.
        """
        if rows is None:
            rows = self.read_state().history
        self.draw_plots(rows, results.train_images)
        save_model_atomic(inference_model(model), self.file(FINAL))
        fault_point("before-results")
        write_text(self.file(RESULTS), results.to_json())
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)


def __getattr__(name):
    """The names that moved from here (`keras_seresnet.compat.MOVED_NAMES`)."""
    return compat.moved_name(__name__, name)
