"""Every upgrade of an earlier version's files, folder names and import paths, in one place.

Version 0.1.0 (commit 4373dac) and the versions after it wrote run folders in
older formats. The run folder's readers pass what they read through this
module, which returns today's format, so the rest of the package knows one
format:

- `checkpoint/state.json`: `upgrade_state_dict` (0.1.0: `best_val_accuracy`
  for the best test accuracy, per-epoch test columns named `val_*`, no
  fallback epoch; later: no `monitor`).
- `results.json`: `upgrade_results_dict` (no `monitor` and `best_accuracy`;
  the best accuracy under `best_test_accuracy` or `best_val_accuracy`).
- `history.csv`: `upgrade_history_columns` (0.1.0: the test columns named
  `val_*`), and `with_legacy_names`, the old names of the test columns for
  code written against 0.1.0.
- `checkpoint/epoch-NNNN.keras`: `load_keras_checkpoint` (0.1.0's per-epoch
  checkpoints, whole `.keras` files).
- `config.json` and the folder names hashed from it: `CONFIG_FIELDS_OF_0_1_0`
  and `config_dict_of_0_1_0`.
- Import paths: `MOVED_NAMES`, the public names importable from the modules
  that held them before, and `RENAMED_NAMES`, the earlier names of public
  names renamed in their module; each of those modules answers for them with
  `moved_name` in its `__getattr__`.

Keras-free and importing nothing of the package, so that any module may use
it (`keras-seresnet-plots` reads histories without TensorFlow).

Example:

>>> upgrade_results_dict({"test_accuracy": 0.9, "best_test_accuracy": 0.91})["best_accuracy"]
0.91
"""

import importlib
import warnings

# --- config.json and the folder names hashed from it ---

# The fields of `TrainConfig` in version 0.1.0 (its `config.json`:
# tests/data/config-0.1.0.json). Frozen: a field added later is any other.
CONFIG_FIELDS_OF_0_1_0 = frozenset(
    (
        "base_lr",
        "batch_size",
        "blocks",
        "bn_epsilon",
        "bn_momentum",
        "brightness",
        "color_jitter",
        "contrast",
        "crop_padding",
        "cutout_size",
        "data_dir",
        "dropout",
        "epochs",
        "grayscale",
        "grayscale_rate",
        "horizontal_flip",
        "hue",
        "jit",
        "label_smoothing",
        "limit_test",
        "limit_train",
        "mean",
        "min_lr",
        "mixed_precision",
        "mixup_alpha",
        "mixup_alpha_min",
        "mixup_cutout",
        "momentum",
        "num_classes",
        "saturation",
        "se_reduction",
        "se_stages",
        "seed",
        "std",
        "strategy",
        "use_se",
        "warmup_epochs",
        "weight_decay",
        "widths",
    )
)


def config_dict_of_0_1_0(values, defaults):
    """A config dict without the fields added after 0.1.0 that hold their defaults.

    For a config that leaves the newer fields alone this is the dict version
    0.1.0 wrote, so the folder names hashed from it (the default run and
    ablation folders) stay those of 0.1.0, and such folders resume.

    Args:
        values: `TrainConfig.to_dict()`.
        defaults: `TrainConfig().to_dict()`.

    Returns:
        A new dict.

    Example:

    >>> config_dict_of_0_1_0({"epochs": 3, "val_split": None}, {"epochs": 250, "val_split": None})
    {'epochs': 3}
    """
    return {
        name: value
        for name, value in values.items()
        if name in CONFIG_FIELDS_OF_0_1_0 or value != defaults[name]
    }


# --- history.csv and the history rows of state.json ---

# Version 0.1.0 evaluated the test set after every epoch and called those
# columns `val_loss` and `val_accuracy`: {old name: today's name}.
LEGACY_NAMES = {"val_loss": "test_loss", "val_accuracy": "test_accuracy"}


def rename_legacy_row(row):
    """A history row (dict) of version 0.1.0 with today's names of the test columns.

    >>> rename_legacy_row({"epoch": 0, "val_accuracy": 0.5})
    {'epoch': 0, 'test_accuracy': 0.5}
    """
    return {LEGACY_NAMES.get(key, key): value for key, value in row.items()}


def with_legacy_names(history):
    """Adds the old names `val_loss`/`val_accuracy` for the per-epoch test columns.

    A history of a run without a validation split has `test_loss` and
    `test_accuracy`; code written for 0.1.0 reads them as `val_loss` and
    `val_accuracy`, which this adds (the same lists) when the history has no
    validation columns. Returns `history`, changed in place.

    >>> with_legacy_names({"test_accuracy": [0.5]})
    {'test_accuracy': [0.5], 'val_accuracy': [0.5]}
    """
    for old, new in LEGACY_NAMES.items():
        if new in history and old not in history:
            history[old] = history[new]
    return history


def upgrade_history_columns(history, validation):
    """The columns of a `history.csv` of any version, under today's names and the old ones.

    Args:
        history: `{column: [values]}` as the file holds them.
        validation: whether the run folder's config has a validation split.
            A file of 0.1.0 (none had one) names its test columns `val_*`,
            like a validation run of today; without a split they are renamed.

    Returns:
        A new dict with today's columns, plus `with_legacy_names`.

    >>> upgrade_history_columns({"epoch": [0], "val_accuracy": [0.5]}, validation=False)
    {'epoch': [0], 'test_accuracy': [0.5], 'val_accuracy': [0.5]}
    """
    if not validation and "test_accuracy" not in history:
        history = rename_legacy_row(history)
    return with_legacy_names(dict(history))


# --- checkpoint/state.json ---


def upgrade_state_dict(state, monitor):
    """A `checkpoint/state.json` dict of any version in today's format (`RunState.from_dict`).

    Version 0.1.0 wrote the best accuracy (of the test set: it had no
    validation split) as `best_val_accuracy`, named the history rows' test
    columns `val_*` and kept no epoch to fall back to. Later versions did not
    write `monitor`.

    Args:
        state: the dict the file holds.
        monitor: the run folder's monitored column, for a file without one.

    Returns:
        A new dict (or `state` itself when it is of today's format).

    >>> upgrade_state_dict({"best_val_accuracy": 0.5, "history": []}, "test_accuracy")["best_accuracy"]
    0.5
    """
    if "best_accuracy" not in state and "best_val_accuracy" in state:
        state = dict(
            state,
            best_accuracy=state["best_val_accuracy"],
            previous=None,
            history=[rename_legacy_row(row) for row in state.get("history", [])],
        )
        del state["best_val_accuracy"]
    return state if "monitor" in state else dict(state, monitor=monitor)


# --- results.json ---


def upgrade_results_dict(results):
    """A `results.json` dict of any version in today's format (`RunResults.from_dict`).

    Earlier versions wrote no `monitor` and `best_accuracy`: the best
    epoch's accuracy is under `best_val_accuracy` after a run with a
    validation split, else under `best_test_accuracy`; no `val_images`
    without a split, and no `test_accuracy_tta`.

    Args:
        results: the dict the file holds.

    Returns:
        A new dict (or `results` itself when it is of today's format).
    """
    if "monitor" in results and "test_accuracy_tta" in results:
        return results
    upgraded = dict(results)
    upgraded.setdefault("test_accuracy_tta", None)
    if "monitor" not in results:
        monitor = "val_accuracy" if "best_val_accuracy" in results else "test_accuracy"
        upgraded["monitor"] = monitor
        if f"best_{monitor}" in results:
            upgraded["best_accuracy"] = results[f"best_{monitor}"]
        upgraded.setdefault("val_images", None)
    return upgraded


# --- checkpoint/epoch-NNNN.keras ---


def load_keras_checkpoint(model, path):
    """Loads a per-epoch checkpoint of 0.1.0, a whole `.keras` file, into a compiled model.

    Args:
        model: a compiled model with a built optimizer, of the config that
            wrote the checkpoint.
        path: the `.keras` file.

    Raises:
        ValueError: the file's variables do not fit the model or its
            optimizer; the one-line message names the file.
    """
    # Keras only warns when the optimizer's variables do not match (e.g. a
    # LossScaleOptimizer's checkpoint into a plain one) and keeps fresh ones;
    # resuming with lost momentum would silently change the run. The other
    # way round it raises, with a message of several lines.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Skipping variable loading")
        try:
            model.load_weights(path)
        except (UserWarning, ValueError) as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            reason = next((line for line in lines if "Skipping" in line), lines[0] if lines else "")
            raise ValueError(
                f"The checkpoint {path} does not fit the model and optimizer: {reason}"
            ) from None


# --- import paths ---

_SCHEDULES = (
    "UNITS",
    "check_alpha_decay",
    "check_warmup_cosine",
    "decayed_mixup_alpha",
    "default_warmup_epochs",
    "learning_rate_at",
    "mixup_alpha_at",
    "warmup_cosine_lr",
)
_HISTORY = (
    "HISTORY_COLUMNS",
    "VALIDATION_COLUMNS",
    "read_history_csv",
    "rows_to_history",
    "write_history_csv",
)
_LEGACY = ("LEGACY_NAMES", "rename_legacy_row", "with_legacy_names")

# Public names that moved, by the module users imported them from:
# {that module: {name: the module that defines it now}}.
MOVED_NAMES = {
    "keras_seresnet.training.history": dict.fromkeys(_LEGACY, __name__),
    "keras_seresnet.training.loop": {"epoch_seed": "keras_seresnet.training.callbacks"},
    "keras_seresnet.training.run_folder": {
        **dict.fromkeys(_HISTORY, "keras_seresnet.training.history"),
        **dict.fromkeys(_LEGACY, __name__),
    },
    "keras_seresnet.training.schedules": dict.fromkeys(_SCHEDULES, "keras_seresnet.schedules"),
}


# Public names renamed in the module that defines them: {module: {old name: new name}}.
RENAMED_NAMES = {
    "keras_seresnet.plots": {"evaluation_columns": "evaluation_columns_and_label"},
}


def moved_name(module, name):
    """The object a moved or renamed public name stands for: the `__getattr__` of such a module.

    Args:
        module: the `__name__` of the module asked for `name`.
        name: the attribute asked for.

    Raises:
        AttributeError: `name` is not a name that moved from `module`
            (`MOVED_NAMES`) or was renamed in it (`RENAMED_NAMES`), as for
            any missing module attribute.

    >>> moved_name("keras_seresnet.training.schedules", "learning_rate_at").__module__
    'keras_seresnet.schedules'
    """
    home = MOVED_NAMES.get(module, {}).get(name)
    if home is not None:
        return getattr(importlib.import_module(home), name)
    new_name = RENAMED_NAMES.get(module, {}).get(name)
    if new_name is not None:
        return getattr(importlib.import_module(module), new_name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
