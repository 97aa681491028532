"""Training: `train(config, out_dir)` runs the recipe with `model.fit`, resumably.

One call trains the SE-ResNet a `TrainConfig` describes on CIFAR-10 and fills
a run folder (layout: `keras_seresnet.run_folder`). The loop calls
`model.fit` once per epoch on one training dataset built for the whole run:
before each fit it sets the dataset's epoch variable, so the pass makes the
batches of `(config.seed, epoch)`; callbacks set the learning rate and the
mixup alpha from the epoch number, and after each epoch the model, its
optimizer state and the history are committed to the run folder. The
config's `strategy`, `mixed_precision` and `jit` choose the devices, the
dtype policy and XLA (`keras_seresnet.training.distribute`).

Resuming. Calling `train` again with the same config and folder (the same
command line) continues after the last committed epoch: the model and the
optimizer (momentum buffers, iteration count) come from the checkpoint, the
schedules from the epoch number, the data order and augmentation of epoch `e`
from `(seed, e)`, and the dropout masks from a per-epoch reseeding. A resumed
run therefore trains on exactly what an uninterrupted one would: on CPU a
test finds a SIGKILLed and resumed run's losses and accuracies equal to an
uninterrupted run's (rtol 1e-5); GPU kernels may differ in the last bits.
A run may be resumed with another `strategy` or `jit` (more devices, XLA),
not with another `mixed_precision`: the checkpoint holds the dtype policy.

Why not `keras.callbacks.BackupAndRestore`: it writes the weights and its
epoch counter as two files one after the other (a kill in between resumes
from the wrong epoch), keeps no history rows, cannot restore the data order
of the epoch it resumes at, and deletes its backup when `fit` returns, which
one `fit` per epoch would trigger after every epoch.
"""

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings

import keras
import numpy as np

from keras_seresnet.data import cifar10 as data_module
from keras_seresnet.data import pipeline
from keras_seresnet.training import distribute as scale
from keras_seresnet.training.callbacks import (
    EpochSummary,
    MixupAlphaDecay,
    StopOnNaN,
    WarmupCosineLearningRate,
)
from keras_seresnet.config import EXECUTION_FIELDS
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.training.optimizers import TorchSGD
from keras_seresnet.training.run_folder import (
    HISTORY,
    RunFolder,
    RunFolderError,
    read_history_csv,
    rows_to_history,
)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to do."""


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        out_dir: the run folder; None on a worker that is not the chief
            (it wrote nothing that stays).
        history: `{column: [value per epoch]}` of every epoch of the run
            (resumed ones included), the columns of `history.csv`.
        results: the contents of `results.json`: `test_accuracy` and
            `test_loss` (final model), `best_epoch`, `best_test_accuracy`,
            `epochs_trained`, `train_images`, `test_images`, `parameters`,
            `train_seconds`, `initial_weights`.
    """

    out_dir: str
    history: dict
    results: dict


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
    text = json.dumps(resolve_config(config).resume_dict(), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return os.path.join(root, f"seresnet-e{config.epochs}-seed{config.seed}-{digest}")


def epoch_seed(seed, epoch):
    """The seed of one epoch's data order, augmentation and dropout, in [0, 2**31).

    A function of `(seed, epoch)` only, so a resumed epoch sees the same
    random numbers as in an uninterrupted run. Uses NumPy's `SeedSequence`,
    which gives statistically independent streams for nearby inputs.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]) & 0x7FFFFFFF


def _seed_epoch(model, seed, epoch):
    """Reseeds Python, NumPy, TensorFlow and the model's dropout for `epoch`."""
    keras.utils.set_random_seed(epoch_seed(seed, epoch))
    # Dropout draws from a SeedGenerator whose state a `.keras` file does not
    # keep; setting it per epoch makes the masks a function of (seed, epoch).
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    for index, state in enumerate(states):
        state.assign(np.array([epoch_seed(epoch_seed(seed, epoch), index), 0], "uint32"))


def compile_model(model, config):
    """Compiles `model` with the recipe's optimizer, loss and metric.

    TorchSGD (momentum, coupled weight decay as PyTorch), categorical
    cross-entropy from logits with label smoothing on the (mixed) one-hot
    targets, and categorical accuracy named `accuracy` (against the dominant
    label of a mixed target). The learning rate is set each epoch by
    `WarmupCosineLearningRate`. XLA as `config.jit` says (None: Keras's
    "auto"). Under a mixed_float16 policy Keras wraps the optimizer in a
    `LossScaleOptimizer` (dynamic loss scaling).
    """
    model.compile(
        optimizer=TorchSGD(
            learning_rate=config.base_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        ),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile="auto" if config.jit is None else config.jit,
    )
    return model


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
        ValueError: no layer matched (a file of another model).
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
        raise ValueError(
            f"No layer of the initial weights matches the model ({len(not_found)} "
            "layers with weights, none found with equal shapes). Received: "
            f"initial_weights={source.name!r}"
        )
    return copied, not_found


def _config_fingerprint(config):
    """48 bits of the hash of what a run must match, exact as a float64."""
    text = json.dumps(config.resume_dict(), sort_keys=True)
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def _agree_with_chief(strategy, config, finished, start):
    """The chief's `(finished, start)`; raises on every worker if any has another config."""
    own = _config_fingerprint(config)
    chief_finished, chief_start, chief_config = scale.broadcast_from_chief(
        strategy, [finished, start, own])
    if not scale.all_workers(strategy, chief_config == own):
        raise ValueError(
            "The workers of this multi-worker run were started with different configs "
            f"(this is {scale.describe_worker(strategy)}). Start every worker with the "
            "same command line; only TF_CONFIG's task index differs."
        )
    return bool(chief_finished), int(chief_start)


def _training_model(config, state, initial_weights, say, strategy):
    """The compiled model with a built optimizer: new, or holding the checkpoint's state.

    Called inside the run's dtype policy. Every worker creates the same
    variables in the same order inside the strategy's scope (under
    MultiWorkerMirroredStrategy each creation is a collective op); the
    checkpoint or the initial weights are loaded into them after, outside the
    scope, and with several workers the chief's values go to all (only the
    chief has the checkpoint).
    """
    with strategy.scope():
        # Several replicas normalise with the global batch's statistics.
        model = compile_model(build_from_config(
            config, synchronized=strategy.num_replicas_in_sync > 1), config)
        model.optimizer.build(model.trainable_variables)
    if state is not None:
        _load_checkpoint(model, state["model"])
    elif initial_weights is not None:
        copied, not_found = copy_matching_weights(initial_weights, model)
        say(
            f"Initial weights: {len(copied)} layers copied"
            + (f", {len(not_found)} not in the source ({', '.join(not_found)})" if not_found else "")
        )
    if config.strategy == "multiworker":
        scale.copy_variables_from_chief(strategy, model.variables + model.optimizer.variables)
    return model


def _load_checkpoint(model, path):
    """Loads a checkpoint's weights and optimizer state (momentum, iterations, loss scale)."""
    # Keras only warns when the optimizer's variables do not match (e.g. a
    # LossScaleOptimizer's checkpoint into a plain one) and keeps fresh ones;
    # resuming with lost momentum would silently change the run.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Skipping variable loading")
        try:
            model.load_weights(path)
        except UserWarning as e:
            raise RunFolderError(
                f"The checkpoint {path} does not fit the model and optimizer of this "
                f"config: {e} Delete the folder's checkpoint/ to start over, or use --overwrite."
            ) from None


def _history_row(epoch, logs):
    row = {"epoch": epoch}
    for key, value in logs.items():
        row[key] = None if value is None else float(value)
    row.setdefault("mixup_alpha", None)
    return row


def _finished_message(out_dir, results):
    return (
        f"test accuracy {100 * results['test_accuracy']:.2f}%, test loss "
        f"{results['test_loss']:.4f} (final model, {results['epochs_trained']} epochs); "
        f"best {100 * results['best_test_accuracy']:.2f}% at epoch {results['best_epoch']}. "
        f"Run folder: {out_dir}"
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
    Each epoch prints Keras's progress bar (verbose=1) and one summary line
    (lr, alpha, losses, accuracies, seconds); the end prints the test
    accuracy and loss, which `results.json` keeps.

    Args:
        config: the `TrainConfig`; validated and resolved (`resolve_config`).
        out_dir: the run folder (created if missing).
        data: optional `((x_train, y_train), (x_test, y_test))`: uint8
            [N, 32, 32, 3] images and int labels in [0, num_classes), used
            as given instead of loading `config.data_dir` (the ablation loads
            once for all arms). The config's data fields are still recorded.
        initial_weights: optional `keras.Model` or `.keras` path whose
            same-named layers initialise a new run (`copy_matching_weights`);
            ignored when resuming.
        callbacks: extra Keras callbacks, called after the package's own.
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
        ValueError: an invalid config (the message names the field), a bad
            TF_CONFIG, or workers started with different configs.
        RunFolderError: `out_dir` holds a run of another config, or other
            files (use another folder or `overwrite=True`).
        TrainingDivergedError: the loss became NaN or infinite; the epoch and
            batch are named, the last good checkpoint is kept.
    """
    config = resolve_config(config)
    # First of all: a MultiWorkerMirroredStrategy can only be set up before
    # TensorFlow runs anything in the process.
    strategy = scale.make_strategy(config.strategy)
    scale.check_xla(strategy, config.jit)
    say = print if verbose else (lambda *args, **kwargs: None)
    arguments = dict(data=data, initial_weights=initial_weights, callbacks=callbacks,
                     overwrite=overwrite, verbose=verbose, say=say)
    with scale.precision_policy(config.mixed_precision):
        if scale.is_chief(strategy):
            return _train(config, out_dir, strategy, **arguments)
        say(f"This is {scale.describe_worker(strategy)}, not the chief: the chief writes "
            "the run folder, this worker a temporary folder that is deleted at the end.")
        with tempfile.TemporaryDirectory(prefix="seresnet-worker-") as scratch:
            return dataclasses.replace(_train(config, scratch, strategy, **arguments), out_dir=None)


def _train(config, out_dir, strategy, *, data, initial_weights, callbacks, overwrite, verbose, say):
    folder = RunFolder(out_dir)
    folder.open(config.to_dict(), overwrite=overwrite, ignore=EXECUTION_FIELDS)
    results = folder.read_results()
    state = folder.read_state() if results is None else None
    start = 0 if state is None else state["epoch"] + 1
    finished = results is not None
    if config.strategy == "multiworker":
        finished, start = _agree_with_chief(strategy, config, finished, start)
    if finished:
        if results is None:  # a worker of a run that the chief reports finished
            return TrainResult(out_dir, {}, {})
        say(f"The run is already finished: {_finished_message(out_dir, results)}")
        say("To train again, pass --overwrite or another --out.")
        return TrainResult(out_dir, read_history_csv(folder.file(HISTORY)), results)

    if data is None:
        data = data_module.load_cifar10(
            config.data_dir, limit_train=config.limit_train, limit_test=config.limit_test
        )
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(config.seed)
    model = _training_model(config, state, initial_weights, say, strategy)
    if start == 0:
        say(f"Starting a run of {config.epochs} epochs in {out_dir} "
            f"({len(x_train)} training, {len(x_test)} test images).")
    elif start < config.epochs:
        say(f"Resuming the run in {out_dir} at epoch {start + 1}/{config.epochs} "
            f"(epochs 1-{start} are done).")
    else:
        say(f"All {config.epochs} epochs of {out_dir} are done; writing the final files.")

    # The pipeline's variables belong to the host, outside the strategy's scope.
    alpha = pipeline.make_mixup_alpha(config.mixup_alpha)
    epoch_variable = pipeline.make_epoch_variable(start)
    train_ds = scale.data_sharded(pipeline.make_train_dataset(
        x_train, y_train, config, alpha, epoch=epoch_variable))
    eval_ds = scale.data_sharded(pipeline.make_eval_dataset(
        x_test, y_test, batch_size=config.batch_size, num_classes=config.num_classes))
    guard = StopOnNaN()
    own = [guard, WarmupCosineLearningRate.from_train_config(config)]
    if config.mixup_cutout:
        own.append(MixupAlphaDecay.from_train_config(config, alpha))
    if verbose == 1:
        # Before the summary, so the bar's last line ends before the summary's.
        own.append(keras.callbacks.ProgbarLogger())
    own.append(EpochSummary(config.epochs, print_fn=say))
    # One list for the whole run, told the run's length, so the progress bar
    # counts "Epoch 3/250" across the per-epoch fits.
    callback_list = keras.callbacks.CallbackList(
        own + list(callbacks),
        add_history=True,
        model=model,
        verbose=verbose,
        epochs=config.epochs,
        steps=int(train_ds.cardinality()),
    )
    for epoch in range(start, config.epochs):
        _seed_epoch(model, config.seed, epoch)
        epoch_variable.assign(epoch)  # the pass fit starts makes this epoch's batches
        history = model.fit(
            train_ds,
            validation_data=eval_ds,
            initial_epoch=epoch,
            epochs=epoch + 1,
            callbacks=callback_list,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles, by (seed, epoch)
        )
        if guard.message:
            raise TrainingDivergedError(guard.message)
        row = _history_row(epoch, {k: v[-1] for k, v in history.history.items()})
        if not all(math.isfinite(row[k]) for k in ("loss", "val_loss")):
            raise TrainingDivergedError(
                f"After epoch {epoch} (zero-based) the test loss is {row['val_loss']}: "
                "the weights diverged; nothing of this epoch was saved. Lower the "
                "learning rate (--base-lr) and start a new run."
            )
        state = folder.commit_epoch(model, row, state)
        if model.stop_training:
            say(f"A callback stopped training after epoch {epoch + 1}.")
            break

    if state is None:  # a worker of a run whose epochs the chief had all committed
        return TrainResult(out_dir, {}, {})
    last = state["history"][-1]
    results = {
        "test_accuracy": last["val_accuracy"],
        "test_loss": last["val_loss"],
        "epochs_trained": last["epoch"] + 1,
        "best_epoch": state["best_epoch"],
        "best_test_accuracy": state["best_val_accuracy"],
        "train_images": int(len(x_train)),
        "test_images": int(len(x_test)),
        "parameters": int(model.count_params()),
        "train_seconds": sum(row.get("seconds") or 0.0 for row in state["history"]),
        "initial_weights": (
            None if initial_weights is None or isinstance(initial_weights, keras.Model)
            else os.fspath(initial_weights)
        ),
    }
    folder.finish(model, results)
    say(f"Finished: {_finished_message(out_dir, results)}")
    say("Files: config.json, history.csv, best.keras, final.keras, results.json, plots/")
    return TrainResult(out_dir, rows_to_history(state["history"]), results)

