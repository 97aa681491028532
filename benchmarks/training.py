"""Training throughput: the augmented input pipeline, the training step, and `train()` end to end.

The training step is the package's own: the model of `build_from_config`,
compiled by `keras_seresnet.training.loop.compile_model` (optimizer, loss,
metric, XLA and every other compile setting of a real run) under the
config's dtype policy, so what is timed is what `train()` runs.
"""

import tempfile
import time

import keras
import tensorflow as tf

from benchmarks.timing import (
    Prepared,
    Result,
    check_positive_int,
    cpus,
    measure,
    mixed_targets,
    synthetic_cifar,
    time_runs,
)
from keras_seresnet.config import TrainConfig
from keras_seresnet.data.pipeline import make_train_dataset
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.training.distribute import precision_policy
from keras_seresnet.training.loop import compile_model, train


class FitClock(keras.callbacks.Callback):
    """`seconds`: the time from the start of a `fit` call's training to its end."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self.start


class EpochClock(keras.callbacks.Callback):
    """`seconds`: each epoch's training time, from its start to its evaluation (or its end).

    Args:
        images_per_epoch: used in the progress lines.
        progress: called with a line after each epoch; None: quiet.
    """

    def __init__(self, images_per_epoch, progress=None):
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.progress = progress
        self.seconds = []
        self.running = False

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.running = time.perf_counter(), True

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def _stop(self):
        if not self.running:
            return
        self.running = False
        self.seconds.append(time.perf_counter() - self.start)
        if self.progress:
            self.progress(
                f"  epoch {len(self.seconds)}: {self.images_per_epoch:,} images in "
                f"{self.seconds[-1]:.2f} s = "
                f"{self.images_per_epoch / self.seconds[-1]:,.1f} img/s"
            )


def pipeline_throughput(
    config: TrainConfig | None = None,
    *,
    num_images=10_000,
    repeats=3,
    jit_compile=True,
    progress=None,
) -> Result:
    """Images per second of the full augmented training pipeline.

    Builds `make_train_dataset` on `num_images` synthetic images and times
    whole epochs, iterator creation included (as Keras sees it), after one
    warm-up epoch that traces and compiles.

    Args:
        config: the run's settings (batch size, augmentation switches).
            Default: the recipe, `TrainConfig()`.
        num_images: images per epoch. Default 10,000.
        repeats: timed epochs. Default 3.
        jit_compile: XLA for the augmentations, as in `make_train_dataset`.
        progress: callable for progress lines, or None.

    Returns:
        A `Result` named "pipeline".
    """
    config = config or TrainConfig()
    check_positive_int("num_images", num_images)
    images, labels = synthetic_cifar(num_images, config.seed, config.num_classes)
    dataset = make_train_dataset(images, labels, config, jit_compile=jit_compile)

    def epoch():
        return sum(int(batch.shape[0]) for batch, _ in dataset)

    if progress:
        progress(f"pipeline: warm-up epoch of {num_images:,} images (tracing, XLA compilation)")
    epoch()
    rates = time_runs(epoch, repeats, progress, "epoch")
    return Result.from_runs(
        "pipeline",
        rates,
        {
            "batch_size": config.batch_size,
            "images": num_images,
            "xla": jit_compile,
            "color_jitter": config.color_jitter,
            "mixup_cutout": config.mixup_cutout,
            "cpus": cpus(),
        },
    )


def prepare_train_step(
    config: TrainConfig | None = None, *, steps=10, name="train-step", progress=None
) -> Prepared:
    """The package's compiled training step on a cached batch, warmed up, ready to time.

    The model of `build_from_config(config)`, compiled by `compile_model`
    under `config.mixed_precision`, fitted with `model.fit` on one batch of
    synthetic images and mixed targets repeated from memory, so the input
    pipeline costs nothing. A warm-up fit of 2 steps traces and compiles;
    each timed run is a fit of `steps` steps, timed from its first step to
    the end of its last (not the release of its dataset iterator after).

    Args:
        config: model, optimizer, batch size, `mixed_precision` and `jit`.
            Default `TrainConfig()` (the recipe: batch 128, float32).
        steps: training steps per timed run, >= 1. Default 10.
        name: the `Result`'s name.
        progress: callable for progress lines, or None.

    Returns:
        A `Prepared` (details: batch size, steps, precision, XLA as Keras
        resolved it, cores).

    Raises:
        ValueError: `steps` is not a positive integer.
    """
    config = config or TrainConfig()
    check_positive_int("steps", steps)
    keras.utils.set_random_seed(config.seed)
    with precision_policy(config.mixed_precision):
        model = compile_model(build_from_config(config), config)
    images, labels = synthetic_cifar(config.batch_size, config.seed, config.num_classes)
    batch = (
        tf.constant(images, tf.float32),
        tf.constant(mixed_targets(labels, config.num_classes)),
    )
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    clock = FitClock()

    def fit(n):
        model.fit(dataset, steps_per_epoch=n, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
        return n * config.batch_size, clock.seconds

    if progress:
        progress(
            f"{name}: warm-up fit of 2 steps (tracing, compilation), "
            f"precision {config.mixed_precision}"
        )
    fit(2)
    return Prepared(
        name,
        lambda: fit(steps),
        {
            "batch_size": config.batch_size,
            "steps": steps,
            "precision": config.mixed_precision,
            "xla": model.jit_compile,
            "cpus": cpus(),
        },
    )


def train_step_throughput(
    config: TrainConfig | None = None, *, steps=10, repeats=3, name="train-step", progress=None
) -> Result:
    """Images per second of the package's compiled training step (`prepare_train_step`).

    Args:
        config, steps, name, progress: as in `prepare_train_step`.
        repeats: timed runs; the `Result` holds their median. Default 3.

    Raises:
        ValueError: `steps` or `repeats` is not a positive integer.
    """
    check_positive_int("repeats", repeats)
    prepared = prepare_train_step(config, steps=steps, name=name, progress=progress)
    return measure([prepared], repeats, progress)[0]


def fit_throughput(
    config: TrainConfig | None = None, *, num_images=2560, epochs=4, progress=None
) -> Result:
    """Images per second of the whole training path, as `scripts/train.py` runs it.

    Calls `keras_seresnet.train` on `num_images` synthetic training images
    (and 128 test images) for `epochs` epochs in a temporary run folder: the
    recipe's tf.data pipeline (colour jitter, crop, flip, cutout, mixup), the
    schedule and checkpoint callbacks, and `model.fit`'s step. Each epoch is
    timed from its start to the start of its evaluation; the first epoch
    (tracing and compilation) is left out and the median of the others
    reported.

    Args:
        config: the run's settings. Default `TrainConfig()` (the recipe).
        num_images: training images per epoch. Default 2,560 (20 batches).
        epochs: epochs to run, >= 2. Default 4 (3 timed).
        progress: callable for progress lines, or None.

    Returns:
        A `Result` named "fit".

    Raises:
        ValueError: `epochs` is not an integer >= 2.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ValueError(f"Argument `epochs` must be an integer >= 2. Received: epochs={epochs!r}")
    check_positive_int("num_images", num_images)
    config = TrainConfig.from_dict({**(config or TrainConfig()).to_dict(), "epochs": epochs})
    train_images, train_labels = synthetic_cifar(num_images, config.seed, config.num_classes)
    test_images, test_labels = synthetic_cifar(128, config.seed + 1, config.num_classes)
    clock = EpochClock(num_images, progress)
    with tempfile.TemporaryDirectory() as folder:
        train(
            config,
            folder,
            data=((train_images, train_labels), (test_images, test_labels)),
            callbacks=[clock],
            verbose=0,
        )
    rates = [num_images / seconds for seconds in clock.seconds[1:]]
    return Result.from_runs(
        "fit",
        rates,
        {
            "batch_size": config.batch_size,
            "images": num_images,
            "timed_epochs": len(rates),
            "precision": config.mixed_precision,
            "cpus": cpus(),
        },
    )
