"""Training: `train(config, out_dir)` runs the recipe with `model.fit`, resumably.

One call trains the SE-ResNet a `TrainConfig` describes on CIFAR-10 and fills
a run folder (layout: `keras_seresnet.training.run_folder`). `_train` reads
top to bottom: find where the folder's run stands and repair the folder
(`_resume_point`, the one place where workers agree with the chief), load
the data and hold out a validation split (`_data_splits`), build the model,
claim the folder, build the datasets (`_datasets`) and the callbacks
(`_callbacks`), call `model.fit` once for the remaining epochs (`_fit`), and
write the results (`_results`). Inside `fit` (the loop's own callbacks are in
`keras_seresnet.training.loop_callbacks`), `EpochSeed` seeds each epoch and
sets the training dataset's epoch variable, so the pass Keras starts after
`on_epoch_begin` makes the batches of `(config.seed, epoch)`; callbacks set
the learning rate and the mixup alpha from the epoch number; and
`CommitEpoch` commits the model's and its optimizer's variables
(`keras_seresnet.training.checkpoint`) and the history row to the run folder
at each epoch end. The config's `strategy`, `mixed_precision` and `jit`
choose the devices, the dtype policy and XLA
(`keras_seresnet.training.distribute`); `steps_per_execution` how many
training steps one call of the compiled step runs.

Resuming. Calling `train` again with the same config and folder (the same
command line) continues after the last committed epoch: the model and the
optimizer (momentum buffers, iteration count) come from the checkpoint, the
schedules from the epoch number, the data order and augmentation of epoch `e`
from `(seed, e)`, and the dropout masks from a per-epoch reseeding. A resumed
run therefore trains on exactly what an uninterrupted one would: on CPU the
tests kill runs at named points (`run_folder.fault_point`) and find the
resumed runs' losses and accuracies equal to an uninterrupted run's (rtol
1e-5); GPU kernels may differ in the last bits. A run may be resumed with
another `strategy`, `jit` or `steps_per_execution`, not with another
`mixed_precision`: the folder's config fixes the dtype policy (a
`mixed_float16` checkpoint also holds the loss scale's state).

Why not `keras.callbacks.BackupAndRestore`: it writes the weights and its
epoch counter as two files one after the other (a kill in between resumes
from the wrong epoch), keeps no history rows and cannot restore the data
order of the epoch it resumes at.
"""

import dataclasses
import os
import signal
import tempfile

import keras
import numpy as np

from keras_seresnet import compat
from keras_seresnet.config import (
    EXECUTION_FIELDS,
    ConfigError,
    TrainConfig,
    check_config_type,
    digest,
)
from keras_seresnet.data import cifar10 as data_module
from keras_seresnet.data import pipeline
from keras_seresnet.errors import InvalidValueError, SeresnetError
from keras_seresnet.inference.evaluate import evaluate_model
from keras_seresnet.interrupts import signals_interrupt
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.schedules import warn_if_hardly_decays
from keras_seresnet.training import distribute
from keras_seresnet.training.callbacks import EpochSummary, StopOnNaN, WarmupCosineLearningRate
from keras_seresnet.training.checkpoint import load_checkpoint
from keras_seresnet.training.history import (
    TEST_COLUMNS,
    accuracy_column,
    read_history_csv,
    rows_to_history,
)
from keras_seresnet.training.layout import HISTORY, TENSORBOARD
from keras_seresnet.training.loop_callbacks import (
    CommitEpoch,
    ScaledLearningRate,
    StepFaults,
    TestMetricNames,
)
from keras_seresnet.training.recipe import compile_model, recipe_callbacks
from keras_seresnet.training.records import RunResults
from keras_seresnet.training.run_folder import FAULT_ENV, RunFolder, RunFolderError


class TrainingDivergedError(SeresnetError, RuntimeError):
    """The loss became NaN or infinite; the message says where and what to do."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        out_dir: the run folder; None on a worker that is not the chief
            (it wrote nothing that stays).
        history: `{column: [value per epoch]}` of every epoch of the run
            (resumed ones included), the columns of `history.csv`; without
            a validation split also under the old names `val_loss` and
            `val_accuracy` (`compat.with_legacy_names`).
        run_results: the typed `RunResults` of `results.json`; None on a
            worker that is not the chief.
        results: (property) `run_results.to_dict()`, the contents of
            `results.json`, or `{}` without results: `test_accuracy` and
            `test_loss` (final model), `test_accuracy_tta` (final model,
            float32, with horizontal-flip test-time augmentation),
            `monitor`, `best_epoch` (zero-based), `best_accuracy` (also as
            `best_test_accuracy` or `best_val_accuracy`), `epochs_trained`,
            `train_images`, `val_images`, `test_images`, `parameters`,
            `train_seconds`, `initial_weights`.

    Example:

    >>> TrainResult("saved_models/run", history={}).results  # a run without results
    {}

    After a run (`train`): `result.run_results.test_accuracy ==
    result.results["test_accuracy"]`.
    """

    out_dir: str
    history: dict
    run_results: RunResults | None = None

    @property
    def results(self) -> dict:
        """The contents of `results.json` as a dict (a new one each time); `{}` without results."""
        return {} if self.run_results is None else self.run_results.to_dict()


def resolve_config(config):
    """A validated copy with the warmup length explicit and `data_dir` absolute.

    This is what `config.json` holds, so a rerun from another working
    directory or with the warmup spelled out still matches.
    """
    config.validate()
    data_dir = config.data_dir
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    return dataclasses.replace(
        config, warmup_epochs=config.resolved_warmup_epochs, data_dir=data_dir
    ).validate()


def default_out_dir(config, root="saved_models"):
    """A run folder name that is a function of the config: `root/seresnet-e250-seed0-<hash>`.

    The same command line gives the same folder, so rerunning it resumes; any
    other config (an ablation switch, a limit) gives another folder. The
    execution fields (`strategy`, `jit`) do not count: a run started on one
    device can be resumed on several.
    """
    return os.path.join(
        root,
        f"seresnet-e{config.epochs}-seed{config.seed}-"
        f"{digest(resolve_config(config).resume_dict())}",
    )


def copy_matching_weights(source, target):
    """Copies every layer's weights from `source` to the same-named layer of `target`.

    Layers present in both with identically shaped weights are copied
    (BatchNorm moving statistics included). This gives ablation arms one
    starting point even when an arm has fewer layers (no SE).

    Args:
        source: a `keras.Model`, or the path of a `.keras` file.
        target: the `keras.Model` to change in place.

    Returns:
        `(copied, not_found)`: names of the target's layers with weights that
        were copied, and of those with no matching layer in `source`.

    Raises:
        InvalidValueError: no layer matched (a file of another model).
    """
    if not isinstance(source, keras.Model):
        source = keras.models.load_model(source, compile=False)
    by_name = {layer.name: layer for layer in source.layers}
    copied, not_found = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        match = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if match is None or [tuple(w.shape) for w in match.weights] != shapes:
            not_found.append(layer.name)
            continue
        layer.set_weights(match.get_weights())
        copied.append(layer.name)
    if not copied:
        raise InvalidValueError(
            f"No layer of the initial weights matches the model ({len(not_found)} "
            "layers with weights, none found with equal shapes). Received: "
            f"initial_weights={source.name!r}"
        )
    return copied, not_found


def _config_fingerprint(config):
    """48 bits of the hash of what a run must match, exact as a float64."""
    return int(digest(config.resume_dict(), chars=12), 16)


def _agree_with_chief(strategy, config, finished, start):
    """The chief's `(finished, start)`; raises on every worker if any has another config."""
    own = _config_fingerprint(config)
    chief_finished, chief_start, chief_config = distribute.broadcast_from_chief(
        strategy, [finished, start, own]
    )
    if not distribute.all_workers(strategy, chief_config == own):
        raise InvalidValueError(
            "The workers of this multi-worker run were started with different configs "
            f"(this is {distribute.describe_worker(strategy)}). Start every worker with the "
            "same command line; only TF_CONFIG's task index differs."
        )
    return bool(chief_finished), int(chief_start)


def _training_model(config, checkpoint, initial_weights, say, strategy):
    """The compiled model with a built optimizer: new, or holding `checkpoint`'s state (a path, or None).

    Called inside the run's dtype policy. Every worker creates the same
    variables in the same order inside the strategy's scope (under
    MultiWorkerMirroredStrategy each creation is a collective op); the
    checkpoint or the initial weights are loaded into them after, outside the
    scope, and with several workers the chief's values go to all (only the
    chief has the checkpoint).
    """
    with strategy.scope():
        # Several replicas normalise with the global batch's statistics.
        model = compile_model(
            build_from_config(config, synchronized=strategy.num_replicas_in_sync > 1), config
        )
        model.optimizer.build(model.trainable_variables)
    if checkpoint is not None:
        _load_checkpoint(model, checkpoint)
    elif initial_weights is not None:
        copied, not_found = copy_matching_weights(initial_weights, model)
        say(
            f"Initial weights: {len(copied)} layers copied"
            + (
                f", {len(not_found)} not in the source ({', '.join(not_found)})"
                if not_found
                else ""
            )
        )
    if config.strategy == "multiworker":
        distribute.copy_variables_from_chief(strategy, model.variables + model.optimizer.variables)
    return model


def _load_checkpoint(model, path):
    """Loads a checkpoint's weights and optimizer state (momentum, iterations, loss scale)."""
    try:
        load_checkpoint(model, path)
    except ValueError as e:
        raise RunFolderError(
            f"{e} Delete the folder's checkpoint/ to start over, or use --overwrite."
        ) from None


def check_labels(config, data):
    """Raises `ConfigError` naming `num_classes` unless every label of `data` is below it.

    Called once the data is loaded, before anything is written, so that a
    `num_classes` too small for the data fails before a run folder exists.

    Args:
        config: the `TrainConfig`.
        data: `((x_train, y_train), (x_test, y_test))`, as `train` takes it.
    """
    largest = max((int(np.max(y)) for _, y in data if len(y)), default=-1)
    if largest >= config.num_classes:
        raise ConfigError(
            f"Config field `num_classes` must be greater than the data's largest label "
            f"({largest}). Received: num_classes={config.num_classes!r}",
            ("num_classes",),
        )


def check_data(config, data):
    """The `data` argument of `train`, checked before anything is written.

    Args:
        config: the `TrainConfig`.
        data: `((x_train, y_train), (x_test, y_test))`: images [N, 32, 32, 3]
            (uint8 or float, N >= 1) and integer labels [N] (or [N, 1], as
            `keras.datasets` returns them).

    Returns:
        The same structure of NumPy arrays, the labels int64 [N].

    Raises:
        ValueError: `data` is not two pairs of arrays, or an array has the
            wrong shape or dtype or a negative label (the message names
            `x_train`, `y_train`, `x_test` or `y_test`).
        ConfigError: a label that `num_classes` does not cover (`check_labels`).
    """
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError(
            "Argument `data` must be None or ((x_train, y_train), (x_test, y_test)). "
            f"Received: data of type {type(data).__name__}"
        ) from None
    checked = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = pipeline.check_arrays(x, y, names=(f"x_{split}", f"y_{split}"))
        if x.shape[1:] != (32, 32, 3):
            raise ValueError(
                f"Argument `x_{split}` must be images [N, 32, 32, 3] (the model's "
                f"input). Received: x_{split} with shape {x.shape}"
            )
        checked.append((x, y))
    check_labels(config, checked)
    return tuple(checked)


LEGACY_NAMES_BY_TEST = {test: val for val, test in compat.LEGACY_NAMES.items()}


def logged_metrics(config):
    """The names in every epoch's logs of a `train()` run, which a user's callback may monitor.

    `loss`, `accuracy`, `learning_rate`, `seconds`, `mixup_alpha` (with
    mixup), and the per-epoch evaluation: `val_loss`, `val_accuracy`, and,
    without a validation split (the evaluation is on the test set),
    `test_loss` and `test_accuracy` too.
    """
    names = ["loss", "accuracy", "learning_rate", "seconds", "val_loss", "val_accuracy"]
    if config.mixup_cutout:
        names.append("mixup_alpha")
    if config.val_split is None:
        names += ["test_loss", "test_accuracy"]
    return tuple(names)


def _check_callbacks(callbacks, config):
    """`train`'s `callbacks` as a list (None is none, a single callback a list of one), their `monitor`s checked."""
    if callbacks is None:
        items = []
    elif isinstance(callbacks, keras.callbacks.Callback):
        items = [callbacks]
    else:
        items = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for item in items:
        if not isinstance(item, keras.callbacks.Callback):
            raise TypeError(
                "Argument `callbacks` must be a list of keras.callbacks.Callback instances. "
                f"Received: {'an item' if item is not callbacks else 'callbacks'} of type "
                f"{type(item).__name__}"
            )
        monitor = getattr(item, "monitor", None)
        if isinstance(monitor, str) and monitor not in logged_metrics(config):
            hint = (
                " (with a validation split the test set is evaluated once, at the end)"
                if monitor.startswith("test_")
                else ""
            )
            raise ValueError(
                f"Argument `callbacks`: {type(item).__name__} monitors {monitor!r}, which this "
                f"run does not log{hint}; it logs {', '.join(logged_metrics(config))}. "
                f"Received: monitor={monitor!r}"
            )
        if monitor in TEST_COLUMNS and getattr(item, "mode", None) == "auto":
            # Keras infers "auto" from its own metric names only, and would fail after epoch 1.
            raise ValueError(
                f"Argument `callbacks`: {type(item).__name__} monitors {monitor!r} with "
                f"mode='auto', which Keras resolves for its own names only: pass "
                f"mode={'max' if monitor.endswith('accuracy') else 'min'!r} (or monitor "
                f"{LEGACY_NAMES_BY_TEST[monitor]!r}). Received: mode='auto'"
            )
    return items


def _check_arguments(config, out_dir, initial_weights):
    """Raises for a `train` argument of the wrong type, or initial weights that do not exist."""
    check_config_type(config)
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(
            "Argument `out_dir` must be a folder path (str or os.PathLike). "
            f"Received: out_dir of type {type(out_dir).__name__}"
        )
    if initial_weights is None or isinstance(initial_weights, keras.Model):
        return
    if not isinstance(initial_weights, (str, os.PathLike)):
        raise TypeError(
            "Argument `initial_weights` must be None, a keras.Model or the path of a `.keras` "
            f"file. Received: initial_weights of type {type(initial_weights).__name__}"
        )
    if not os.path.isfile(initial_weights):
        raise FileNotFoundError(
            "Argument `initial_weights` must be an existing `.keras` file. "
            f"Received: initial_weights={os.fspath(initial_weights)!r}"
        )


def validation_split(y, count, seed):
    """Splits indices of labels `y` into training and a stratified validation hold-out.

    Each class gives `count` images in proportion to its share of `y`
    (largest remainders round), drawn by a NumPy generator seeded with
    `seed`: the same `(y, count, seed)` always gives the same split.

    Args:
        y: integer labels [N].
        count: validation images, in [1, N).
        seed: int, the run's seed.

    Returns:
        `(train_indices, val_indices)`: sorted int64 arrays that partition
        `range(N)`.

    Raises:
        InvalidValueError: `count` is not in [1, N).
    """
    y = np.asarray(y)
    if not isinstance(count, (int, np.integer)) or not 1 <= count < len(y):
        raise InvalidValueError(
            f"Argument `val_split` must be an integer in [1, {len(y)}) (the training "
            f"images loaded). Received: val_split={count!r}"
        )
    rng = np.random.default_rng([seed, 0x76616C])  # "val": a stream of its own
    members = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    share = count * np.array([len(m) for m in members]) / len(y)
    take = np.floor(share).astype(int)
    take[np.argsort(take - share, kind="stable")[: count - take.sum()]] += 1
    val = np.sort(np.concatenate([m[:k] for m, k in zip(members, take)])).astype(np.int64)
    return np.setdiff1d(np.arange(len(y), dtype=np.int64), val), val


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped training; the committed epochs are kept.

    Calling `train` again with the same config and folder (the same command)
    resumes after the last committed epoch.
    """


def _training_interrupted(signum):
    """The error of a signal that arrives in `train` (`interrupts.signals_interrupt`)."""
    return TrainingInterrupted(
        f"Training stopped by {signal.Signals(signum).name}. Run the same command (train() with "
        "the same config and folder) again to resume after the last finished epoch."
    )


def _epochs(count):
    return f"{count} epoch" + ("" if count == 1 else "s")


def _finished_message(out_dir, results):
    best = "best validation" if results.monitor == "val_accuracy" else "best"
    tta = results.test_accuracy_tta
    with_tta = "" if tta is None else f" ({100 * tta:.2f}% with flip TTA)"
    return (
        f"test accuracy {100 * results.test_accuracy:.2f}%{with_tta}, test loss "
        f"{results.test_loss:.4f} (final model, {_epochs(results.epochs_trained)}); "
        f"{best} {100 * results.best_accuracy:.2f}% at epoch {results.best_epoch + 1}/"
        f"{results.epochs_trained}. Run folder: {out_dir}"
    )


def train(
    config,
    out_dir,
    *,
    data=None,
    initial_weights=None,
    callbacks=(),
    overwrite=False,
    verbose=1,
):
    """Trains the recipe's model on CIFAR-10 into a run folder, resuming if possible.

    A new folder starts a run; a folder with the same config resumes it
    after its last finished epoch; a finished run is reported, not retrained.
    The folder is created only once the data is loaded and the model built,
    so a command that fails before (a mistyped data folder, labels that
    `num_classes` does not cover) leaves nothing.
    Each epoch prints Keras's progress bar (verbose=1) and one summary line
    (lr, alpha, losses, accuracies, seconds); the end prints the test
    accuracy and loss, which `results.json` keeps.

    One `model.fit` covers the run (`initial_epoch` = the first epoch not
    done). Without `config.val_split` the model is evaluated on the test set
    after every epoch, as the reference notebook reports it (history columns
    `test_loss`, `test_accuracy`; the best model has the best test
    accuracy). With `config.val_split = N`, N training images (stratified,
    from `config.seed`: `validation_split`) are held out and evaluated after
    every epoch instead (`val_loss`, `val_accuracy`; the best model is chosen
    on them), and the test set is evaluated once, with the final model.

    Ctrl-C (SIGINT) and SIGTERM (a scheduler's preemption) stop training in
    any phase, with `TrainingInterrupted` (a `KeyboardInterrupt`), the
    committed epochs kept, even where Python would swallow the interrupt
    (`keras_seresnet.interrupts.signals_interrupt`).

    A config whose learning rate never decays meaningfully within the run
    (`schedules.hardly_decays`: in the epoch unit, the last epoch above half
    the peak, such as any run of 1 to 3 epochs with the default warmup) gets
    one `UserWarning` first, naming the step unit.

    Args:
        config: the `TrainConfig`; validated and resolved (`resolve_config`).
        out_dir: the run folder (created when training starts).
        data: optional `((x_train, y_train), (x_test, y_test))`: uint8
            [N, 32, 32, 3] images and int labels [N] (or [N, 1], as
            `keras.datasets` returns them) in [0, num_classes), used
            as given instead of loading `config.data_dir` (the ablation loads
            once for all arms). The config's data fields are still recorded.
        initial_weights: optional `keras.Model` or `.keras` path whose
            same-named layers initialise a new run (`copy_matching_weights`);
            ignored when resuming.
        callbacks: extra Keras callbacks (a list; None or one callback are
            accepted too), called after the package's own,
            as in `model.fit`: `on_train_begin`/`on_train_end` once per
            call, so `EarlyStopping` stops the run (it is then finished,
            with fewer epochs). A learning-rate change they make (e.g.
            `ReduceLROnPlateau`) scales the schedule from the next epoch on
            (`ScaledLearningRate`). Their own state is not checkpointed: a
            resumed run starts them afresh. A callback's `monitor` may name
            any of `logged_metrics(config)`: the run's own names
            (`test_accuracy`, `test_loss`, or `val_*` with a validation split)
            and Keras's `val_*`; another name is refused before training.
        overwrite: delete a previous run in `out_dir` first, even one of
            another config.
        verbose: 0 silent, 1 progress bar and summary lines, 2 summary lines
            only. Default 1.

    With `config.strategy == "multiworker"` every worker calls `train` with
    the same arguments (TF_CONFIG tells them apart), as the first thing its
    process does with TensorFlow. The chief writes `out_dir`, the others a
    temporary folder deleted at the end; a resumed run continues from the
    chief's checkpoint on every worker.

    Returns:
        A `TrainResult` (folder, history of every epoch, results).

    Raises:
        TypeError: `config` is not a `TrainConfig`, `out_dir` not a path,
            `initial_weights` neither a model nor a path, or `callbacks` not
            Keras callbacks.
        ValueError: a callback's `monitor` names no logged metric.
        FileNotFoundError: `initial_weights` is a path to no file.
        ConfigError: an invalid config (the message names the field; also a
            `num_classes` not above every label of the data).
        ValueError: `data` not two pairs of images [N, 32, 32, 3] and
            integer labels (checked before the run folder is created).
        InvalidValueError: a `val_split` not below the training images, a
            bad TF_CONFIG, `jit` across several CPU devices, initial
            weights of another model, or workers started with different
            configs.
        RunFolderError: `out_dir` is a file, or holds a run of another config, or other
            files (use another folder or `overwrite=True`), or its
            checkpoint is damaged with no earlier one to fall back to.
        TrainingDivergedError: the loss became NaN or infinite; the epoch and
            batch are named, the last good checkpoint is kept.
        TrainingInterrupted: SIGINT or SIGTERM arrived; rerun to resume.

    Example (with CIFAR-10 in `cifar10/`; the same call again resumes):

        result = train(TrainConfig.fast(data_dir="cifar10/"), "saved_models/fast")
        result.run_results.test_accuracy  # the final model's, also in results.json
    """
    _check_arguments(config, out_dir, initial_weights)
    config = resolve_config(config)
    callbacks = _check_callbacks(callbacks, config)
    warn_if_hardly_decays(config, stacklevel=2)  # names the caller of train()
    # First of all: a MultiWorkerMirroredStrategy can only be set up before
    # TensorFlow runs anything in the process.
    strategy = distribute.make_strategy(config.strategy)
    distribute.check_xla(strategy, config.jit)
    say = print if verbose else (lambda *args, **kwargs: None)
    arguments = dict(
        data=data,
        initial_weights=initial_weights,
        callbacks=callbacks,
        overwrite=overwrite,
        verbose=verbose,
        say=say,
    )
    with (
        distribute.precision_policy(config.mixed_precision),
        signals_interrupt(_training_interrupted),
    ):
        if distribute.is_chief(strategy):
            return _train(config, out_dir, strategy, **arguments)
        say(
            f"This is {distribute.describe_worker(strategy)}, not the chief: the chief writes "
            "the run folder, this worker a temporary folder that is deleted at the end."
        )
        with tempfile.TemporaryDirectory(prefix="seresnet-worker-") as scratch:
            return dataclasses.replace(_train(config, scratch, strategy, **arguments), out_dir=None)


def _train(config, out_dir, strategy, *, data, initial_weights, callbacks, overwrite, verbose, say):
    validation = config.val_split is not None
    folder = RunFolder(out_dir, monitor=accuracy_column(validation))
    finished, results, state, start = _resume_point(folder, config, overwrite, strategy)
    if finished:
        return _report_finished(folder, results, say)
    splits = _data_splits(config, data)
    keras.utils.set_random_seed(config.seed)
    checkpoint = None if state is None else folder.checkpoint_file(state.commit.model_file)
    model = _training_model(config, checkpoint, initial_weights, say, strategy)
    # Training really starts: only now the folder and its config.json exist.
    folder.open(
        config.to_dict(),
        overwrite=overwrite,
        ignore=EXECUTION_FIELDS,
        defaults=TrainConfig().to_dict(),
    )
    _announce(config, out_dir, splits, start, say)
    train_ds, eval_ds, epoch_variable = _datasets(config, splits, start)
    guard = StopOnNaN()
    committer = CommitEpoch(out_dir, validation, state, guard)
    callback_list = _callbacks(
        config, model, train_ds, epoch_variable, guard, committer, callbacks, verbose, say
    )
    if start < config.epochs:
        _fit(model, train_ds, eval_ds, callback_list, start, config, verbose)
    if guard.message or committer.error:
        raise TrainingDivergedError(guard.message or committer.error)
    if committer.state is None:  # a worker of a run whose epochs the chief had all committed
        return TrainResult(out_dir, {})
    last_epoch = committer.state.commit.epoch
    if model.stop_training and last_epoch < config.epochs - 1:
        say(f"A callback stopped training after epoch {last_epoch + 1}.")
    results = _results(config, model, committer.state, splits, initial_weights)
    folder.finish(model, results, committer.state.history)
    say(f"Finished: {_finished_message(out_dir, results)}")
    say("Files: config.json, history.csv, best.keras, final.keras, results.json, plots/")
    return TrainResult(out_dir, rows_to_history(committer.state.history), results)


def _resume_point(folder, config, overwrite, strategy):
    """`(finished, results, state, start)`: where the folder's run stands.

    A finished run gives its `RunResults` (None on a worker whose chief
    reports the run finished); an unfinished one the `RunState` to resume
    (None for a new run) and its next epoch. Checks the folder against the
    config first (writing nothing), then repairs it (`RunFolder.repair`).
    With several workers everyone takes the chief's answer.
    """
    folder.check(
        config.to_dict(),
        overwrite=overwrite,
        ignore=EXECUTION_FIELDS,
        defaults=TrainConfig().to_dict(),
    )
    results = state = None
    if not overwrite:
        results = folder.read_results()
        state = folder.repair()
    finished = results is not None
    start = 0 if state is None else state.commit.epoch + 1
    if config.strategy == "multiworker":
        finished, start = _agree_with_chief(strategy, config, finished, start)
    return finished, results, state, start


def _report_finished(folder, results, say):
    if results is None:
        return TrainResult(folder.path, {})
    say(f"The run is already finished: {_finished_message(folder.path, results)}")
    say("To train again, pass --overwrite or another --out.")
    return TrainResult(folder.path, read_history_csv(folder.file(HISTORY)), results)


def _data_splits(config, data):
    """`{"train": (x, y), "eval": (x, y), "test": (x, y)}`; `eval` is the per-epoch evaluation set."""
    if data is None:
        data = data_module.load_cifar10(
            config.data_dir, limit_train=config.limit_train, limit_test=config.limit_test
        )
    (x_train, y_train), test = check_data(config, data)
    if config.val_split is None:
        return {"train": (x_train, y_train), "eval": test, "test": test}
    train_indices, val_indices = validation_split(y_train, config.val_split, config.seed)
    return {
        "train": (x_train[train_indices], y_train[train_indices]),
        "eval": (x_train[val_indices], y_train[val_indices]),
        "test": test,
    }


def _announce(config, out_dir, splits, start, say):
    images = f"{len(splits['train'][0])} training, "
    if config.val_split is not None:
        images += f"{len(splits['eval'][0])} validation, "
    images += f"{len(splits['test'][0])} test images"
    if start == 0:
        say(f"Starting a run of {_epochs(config.epochs)} in {out_dir} ({images}).")
    elif start < config.epochs:
        done = "epoch 1 is" if start == 1 else f"epochs 1-{start} are"
        say(f"Resuming the run in {out_dir} at epoch {start + 1}/{config.epochs} ({done} done).")
    else:
        say(f"All {config.epochs} epochs of {out_dir} are done; writing the final files.")


def _eval_dataset(config, images):
    return distribute.data_sharded(
        pipeline.make_eval_dataset(
            *images, batch_size=config.batch_size, num_classes=config.num_classes
        )
    )


def _datasets(config, splits, start):
    """The training dataset (one for the run, its pass chosen by an epoch variable) and the per-epoch evaluation one."""
    # The epoch variable belongs to the host's input pipeline, outside the strategy's scope.
    epoch_variable = pipeline.make_epoch_variable(start)
    train_ds = distribute.data_sharded(
        pipeline.make_train_dataset(*splits["train"], config, epoch=epoch_variable)
    )
    return train_ds, _eval_dataset(config, splits["eval"]), epoch_variable


def _callbacks(config, model, train_ds, epoch_variable, guard, committer, extra, verbose, say):
    """One list for the run: the recipe's, NaN guard, progress, summary, commit, then the user's.

    The recipe's learning rate is wrapped in `ScaledLearningRate`, so a
    user's callback that lowers it (`ReduceLROnPlateau`) scales the schedule.
    """
    own = [
        ScaledLearningRate(callback) if isinstance(callback, WarmupCosineLearningRate) else callback
        for callback in recipe_callbacks(config, epoch_variable)
    ]
    own.append(guard)
    if verbose == 1:
        # Before the summary, so the bar's last line ends before the summary's.
        own.append(keras.callbacks.ProgbarLogger())
    own.append(
        EpochSummary(
            config.epochs,
            print_fn=say,
            validation_label="val" if config.val_split is not None else "test",
        )
    )
    own.append(committer)
    if config.val_split is None:
        own.append(TestMetricNames())
    if config.tensorboard:
        own.append(keras.callbacks.TensorBoard(log_dir=os.path.join(committer.path, TENSORBOARD)))
    if os.environ.get(FAULT_ENV, "").startswith(("after-step:", "signal:")):
        own.append(StepFaults())
    return keras.callbacks.CallbackList(
        own + list(extra),
        add_history=True,
        model=model,
        verbose=verbose,
        epochs=config.epochs,
        steps=int(train_ds.cardinality()),
    )


def _fit(model, train_ds, eval_ds, callback_list, start, config, verbose):
    model.fit(
        train_ds,
        validation_data=eval_ds,
        initial_epoch=start,
        epochs=config.epochs,
        callbacks=callback_list,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, by (seed, epoch)
    )


def _results(config, model, state, splits, initial_weights):
    """The `RunResults` of a run whose last epoch `state` commits."""
    last = state.history[-1]
    if config.val_split is None:
        test_accuracy, test_loss = last.test_accuracy, last.test_loss
    else:
        test = model.evaluate(_eval_dataset(config, splits["test"]), verbose=0, return_dict=True)
        test_accuracy, test_loss = float(test["accuracy"]), float(test["loss"])
    return RunResults(
        monitor=state.monitor,
        best_epoch=state.commit.best_epoch,
        best_accuracy=state.commit.best_accuracy,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        test_accuracy_tta=_flip_tta_accuracy(config, model, splits["test"]),
        epochs_trained=last.epoch + 1,
        train_images=int(len(splits["train"][0])),
        val_images=None if config.val_split is None else int(len(splits["eval"][0])),
        test_images=int(len(splits["test"][0])),
        parameters=int(model.count_params()),
        train_seconds=sum(row.seconds or 0.0 for row in state.history),
        initial_weights=(
            None
            if initial_weights is None or isinstance(initial_weights, keras.Model)
            else os.fspath(initial_weights)
        ),
    )


def _flip_tta_accuracy(config, model, test_split):
    """The test accuracy of `model`'s weights with flip TTA, in float32 on one device.

    Computed on a float32 copy built outside the run's strategy: a model
    placed by a tf.distribute strategy predicts batch by batch per replica.
    """
    with distribute.precision_policy("off"):
        copy = build_from_config(config)
    copy.set_weights(model.get_weights())
    return evaluate_model(copy, *test_split, tta=True, verbose=0)["tta"]["accuracy"]


def __getattr__(name):
    """The names that moved from here (`keras_seresnet.compat.MOVED_NAMES`)."""
    return compat.moved_name(__name__, name)
