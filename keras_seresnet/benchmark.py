"""Throughput benchmarks: images per second of training and of inference.

Training side: the augmented input pipeline and the model's training step.
Inference side: decoding a folder of JPEGs, the bare model, and
`predict_dir` end to end (decode + inference).
Side by side: `fit_throughput` (the whole training path a user runs:
`train()` with its augmented pipeline, mixup, callbacks, forward, backward,
update) and `reference_throughput` (the reference PyTorch notebook's model,
training step and inference, same machine, same process).

Each benchmark warms up first (tracing, XLA compilation), then times several
runs and reports the median, so one slow run on a shared machine does not
decide the figure. All inputs are synthetic and seeded: throughput does not
depend on pixel values. `scripts/benchmark.py` is the command line.

To add a benchmark: write a function here that returns a `Result`, and a
subcommand for it in `scripts/benchmark.py`.
"""

import dataclasses
import os
import statistics
import tempfile
import time
from typing import Callable, List, Optional

import numpy as np

from keras_seresnet.config import TrainConfig
from keras_seresnet.data.images import list_images, read_images


@dataclasses.dataclass
class Result:
    """One benchmark's outcome.

    Attributes:
        name: what was measured ("pipeline", "train-step", ...).
        images_per_second: median over the timed runs.
        runs: images per second of each timed run.
        details: settings that produced the figure (batch size, XLA, ...).
    """

    name: str
    images_per_second: float
    runs: List[float]
    details: dict

    def summary(self) -> str:
        runs = ", ".join(f"{r:,.0f}" for r in self.runs)
        settings = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return (f"{self.name}: {self.images_per_second:,.1f} img/s "
                f"(median of {len(self.runs)} runs: {runs}; {settings})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def time_runs(run: Callable[[], int], repeats: int, progress: Optional[Callable[[str], None]] = None,
              label: str = "run") -> List[float]:
    """Calls `run()` `repeats` times; returns images per second of each call.

    Args:
        run: does the work and returns the number of images it processed,
            or `(images, seconds)` when it times itself (to leave out work
            that is not the benchmark's, such as a teardown).
        repeats: number of timed calls, >= 1.
        progress: called with a line after each call (e.g. `print`); None: quiet.
        label: names the calls in the progress lines.
    """
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"Argument `repeats` must be a positive integer. Received: repeats={repeats}")
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        images = run()
        seconds = time.perf_counter() - start
        if isinstance(images, tuple):
            images, seconds = images
        rates.append(images / seconds)
        if progress:
            progress(f"  {label} {i + 1}/{repeats}: {images:,} images in {seconds:.2f} s "
                     f"= {rates[-1]:,.1f} img/s")
    return rates


def synthetic_cifar(num_images, seed=0, num_classes=10):
    """Seeded random uint8 images [N, 32, 32, 3] and int64 labels [N]."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, num_classes, num_images).astype(np.int64)


def pipeline_throughput(config: Optional[TrainConfig] = None, *, num_images=10_000, repeats=3,
                        jit_compile=True, progress=None) -> Result:
    """Images per second of the full augmented training pipeline.

    Builds `make_train_dataset` on `num_images` synthetic images and times
    whole epochs, iterator creation included (as Keras sees it: it starts a
    new iterator every epoch), after one warm-up epoch that traces and
    compiles.

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
    from keras_seresnet.data.pipeline import make_train_dataset

    config = config or TrainConfig()
    images, labels = synthetic_cifar(num_images, config.seed, config.num_classes)
    dataset = make_train_dataset(images, labels, config, jit_compile=jit_compile)

    def epoch():
        count = 0
        for batch, _ in dataset:
            count += int(batch.shape[0])
        return count

    if progress:
        progress(f"pipeline: warm-up epoch of {num_images:,} images (tracing, XLA compilation)")
    epoch()
    rates = time_runs(epoch, repeats, progress, "epoch")
    return Result("pipeline", statistics.median(rates), rates, {
        "batch_size": config.batch_size, "images": num_images, "xla": jit_compile,
        "color_jitter": config.color_jitter, "mixup_cutout": config.mixup_cutout,
        "cpus": _cpus()})


def train_step_throughput(config: Optional[TrainConfig] = None, *, steps=10, repeats=3,
                          jit_compile="auto", progress=None) -> Result:
    """Images per second of the model's compiled training step on cached tensors.

    The recipe's model, `TorchSGD` and `CategoricalCrossentropy(from_logits=
    True, label_smoothing)`, trained with `model.fit` on one batch of
    synthetic images and mixed targets repeated from memory, so the input
    pipeline costs nothing. A warm-up fit of 2 steps traces and compiles;
    each timed run is a fit of `steps` steps, timed from its first step to
    the end of its last (here TensorFlow then spends a further ~4 s
    releasing the finished fit's dataset iterator, which a training run
    pays once per epoch, not per step).

    Args:
        config: model, optimiser and batch size. Default `TrainConfig()`
            (batch 128).
        steps: training steps per timed run. Default 10.
        repeats: timed runs. Default 3.
        jit_compile: passed to `model.compile`. Default "auto" (Keras's).
        progress: callable for progress lines, or None.

    Returns:
        A `Result` named "train-step".
    """
    import keras
    import tensorflow as tf

    from keras_seresnet.models.seresnet import build_from_config
    from keras_seresnet.training.optimizers import TorchSGD

    config = config or TrainConfig()
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"Argument `steps` must be a positive integer. Received: steps={steps}")
    keras.utils.set_random_seed(config.seed)
    model = build_from_config(config)
    model.compile(
        optimizer=TorchSGD(config.base_lr, config.momentum, config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        jit_compile=jit_compile,
    )
    images, labels = synthetic_cifar(config.batch_size, config.seed, config.num_classes)
    targets = 0.7 * np.eye(config.num_classes)[labels] + 0.3 * np.eye(config.num_classes)[labels[::-1]]
    batch = (tf.constant(images, tf.float32), tf.constant(targets, tf.float32))
    dataset = tf.data.Dataset.from_tensors(batch).repeat()

    clock = _fit_clock(keras)

    def fit(n):
        model.fit(dataset, steps_per_epoch=n, epochs=1, shuffle=False, verbose=0,
                  callbacks=[clock])
        return n * config.batch_size, clock.seconds

    if progress:
        progress("train-step: warm-up fit of 2 steps (tracing, compilation)")
    fit(2)
    rates = time_runs(lambda: fit(steps), repeats, progress, "run")
    return Result("train-step", statistics.median(rates), rates, {
        "batch_size": config.batch_size, "steps": steps, "xla": model.jit_compile,
        "cpus": _cpus()})


def fit_throughput(config: Optional[TrainConfig] = None, *, num_images=2560, epochs=4,
                   progress=None) -> Result:
    """Images per second of the whole training path, as `scripts/train.py` runs it.

    Calls `keras_seresnet.train` on `num_images` synthetic training
    images (and 128 test images) for `epochs` epochs in a temporary run
    folder: the recipe's tf.data pipeline (colour jitter, crop, flip, cutout,
    mixup with the decaying alpha), the schedule and checkpoint callbacks,
    and `model.fit`'s forward, backward and update. Each epoch is timed from
    its start to the start of its evaluation; the first epoch (tracing and
    compilation) is left out and the median of the others reported.

    Args:
        config: the run's settings. Default `TrainConfig()` (the recipe).
        num_images: training images per epoch. Default 2,560 (20 batches).
        epochs: epochs to run, >= 2. Default 4 (3 timed).
        progress: callable for progress lines, or None.

    Returns:
        A `Result` named "fit".
    """
    import keras

    from keras_seresnet.training.loop import train

    if not isinstance(epochs, int) or epochs < 2:
        raise ValueError(f"Argument `epochs` must be an integer >= 2. Received: epochs={epochs}")
    config = config or TrainConfig()
    config = TrainConfig.from_dict({**config.to_dict(), "epochs": epochs})
    train_images, train_labels = synthetic_cifar(num_images, config.seed, config.num_classes)
    test_images, test_labels = synthetic_cifar(128, config.seed + 1, config.num_classes)
    clock = _epoch_clock(keras, num_images, progress)
    with tempfile.TemporaryDirectory() as folder:
        train(config, folder, data=((train_images, train_labels), (test_images, test_labels)),
              callbacks=[clock], verbose=0)
    rates = [num_images / seconds for seconds in clock.seconds[1:]]
    return Result("fit", statistics.median(rates), rates, {
        "batch_size": config.batch_size, "images": num_images, "timed_epochs": len(rates),
        "cpus": _cpus()})


def _epoch_clock(keras, images_per_epoch, progress):
    """A Keras callback whose `seconds` lists each epoch's training time (to its evaluation)."""

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.done = time.perf_counter(), False

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

        def _stop(self):
            if self.done:
                return
            self.done = True
            self.seconds.append(time.perf_counter() - self.start)
            if progress:
                progress(f"  epoch {len(self.seconds)}: {images_per_epoch:,} images in "
                         f"{self.seconds[-1]:.2f} s = "
                         f"{images_per_epoch / self.seconds[-1]:,.1f} img/s")

    return EpochClock()


def reference_throughput(config: Optional[TrainConfig] = None, *, steps=8, repeats=3,
                         batch_size=256, threads=None, progress=None) -> list:
    """Images per second of the reference PyTorch notebook's training step and inference.

    The model of `reference.torch_seresnet` (the notebook's, from the
    SPEC) on one synthetic batch held in memory: (1) its training step at the
    config's batch size (forward in train mode, label-smoothed cross-entropy
    on mixed targets, backward, SGD with momentum and coupled weight decay),
    the reference's augmentation and data loading left out, so the figure is
    an upper bound of the notebook's full training throughput; (2) inference
    in eval mode under `torch.inference_mode` at `batch_size`. Needs PyTorch.

    Args:
        config: batch size and optimiser. Default `TrainConfig()`.
        steps: steps (or inference calls) per timed run, after 2 warm-up ones.
        repeats: timed runs. Default 3.
        batch_size: inference batch. Default 256.
        threads: `torch.set_num_threads`; default the cores this process may
            use (2 here, as in the notebook's measurement).
        progress: callable for progress lines, or None.

    Returns:
        Two `Result`s, "reference-train-step" and "reference-inference".
    """
    import torch

    from reference.torch_seresnet import ReferenceSEResNet, make_training_step, normalise

    config = config or TrainConfig()
    threads = threads or _cpus()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    model = ReferenceSEResNet(use_se=config.use_se, dropout=config.dropout)
    step = make_training_step(model, lr=config.base_lr, momentum=config.momentum,
                              weight_decay=config.weight_decay,
                              label_smoothing=config.label_smoothing)
    images, labels = synthetic_cifar(config.batch_size, config.seed, config.num_classes)
    eye = np.eye(config.num_classes, dtype=np.float32)
    targets = torch.from_numpy(0.7 * eye[labels] + 0.3 * eye[labels[::-1]])
    x = normalise(images)

    def train_run(n):
        for _ in range(n):
            step(x, targets)
        return n * config.batch_size

    train_run(2)
    train_rates = time_runs(lambda: train_run(steps), repeats, progress, "reference step")
    model.eval()
    x_eval = normalise(synthetic_cifar(batch_size, config.seed)[0])

    def infer_run(n):
        with torch.inference_mode():
            for _ in range(n):
                torch.softmax(model(x_eval), dim=1)
        return n * batch_size

    infer_run(2)
    infer_rates = time_runs(lambda: infer_run(steps), repeats, progress, "reference inference")
    details = {"torch": torch.__version__, "threads": threads, "cpus": _cpus()}
    return [
        Result("reference-train-step", statistics.median(train_rates), train_rates,
               {"batch_size": config.batch_size, "steps": steps, **details}),
        Result("reference-inference", statistics.median(infer_rates), infer_rates,
               {"batch_size": batch_size, "steps": steps, **details}),
    ]


# Multiply-adds counted as 2 FLOP: one forward pass of the recipe's model is
# about 0.28 GFLOP per 32x32 image, a training step about 3x that.
FORWARD_GFLOP_PER_IMAGE = 0.28
TRAIN_GFLOP_PER_IMAGE = 0.83


def matmul_gflops(size=2048, repeats=3):
    """The machine's float32 matrix-multiply rate in GFLOP/s (TensorFlow, all cores).

    Median of `repeats` timings of 4 products of two [size, size] matrices,
    after one warm-up product: a ceiling for the model's convolutions.
    """
    import tensorflow as tf

    a = tf.random.stateless_uniform((size, size), seed=(0, 0))
    b = tf.random.stateless_uniform((size, size), seed=(0, 1))
    tf.matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(4):
            tf.matmul(a, b).numpy()
        rates.append(4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def _fit_clock(keras):
    """A Keras callback whose `seconds` is the time from train begin to train end."""

    class FitClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return FitClock()


def _cpus():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def write_jpeg_folder(folder, count, *, seed=0, quality=90):
    """Writes `count` random 32x32 RGB JPEGs (`00000.jpg`, ...) into `folder`.

    Noise is the worst case for a JPEG decoder (every coefficient is used),
    so decode speeds measured on these are conservative for real photos.

    Returns:
        The folder (str).
    """
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    images, _ = synthetic_cifar(count, seed)
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=quality)
    return os.fspath(folder)


def _default_model(model, config):
    if model is not None:
        return model
    from keras_seresnet.models.seresnet import build_from_config

    # Untrained weights time the same as trained ones.
    return build_from_config(config or TrainConfig())


def inference_throughput(model=None, *, config=None, batch_size=256, steps=10, repeats=3,
                         seed=0, progress=None) -> Result:
    """Images per second of the bare model: probabilities of random raw-pixel batches.

    Args:
        model: a `keras.Model`, `.keras` path or SavedModel folder; None: an
            untrained model built from `config`.
        config: the architecture when `model` is None. Default `TrainConfig()`.
        batch_size: images per call. Default 256.
        steps: calls per timed run. Default 10 (after 2 warm-up calls).
        repeats: timed runs. Default 3.
        seed: seed of the random pixels.
        progress: callable for progress lines, or None.

    Returns:
        A `Result` named "inference".
    """
    from keras_seresnet.inference.loading import ProbabilityModel

    classifier = ProbabilityModel(_default_model(model, config))
    x = np.random.default_rng(seed).uniform(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    for _ in range(2):
        classifier(x)

    def run():
        for _ in range(steps):
            classifier(x)
        return steps * batch_size

    rates = time_runs(run, repeats, progress, "run")
    return Result("inference", statistics.median(rates), rates, {
        "batch_size": batch_size, "steps": steps, "cpus": _cpus()})


def predict_dir_throughput(model=None, *, config=None, num_images=2048, batch_size=256,
                           workers=None, repeats=3, seed=0, progress=None) -> list:
    """Images per second of decoding a JPEG folder, and of `predict_dir` on it.

    Writes `num_images` random 32x32 JPEGs to a temporary folder, then times
    (1) decoding alone, exactly as `predict_dir` decodes (same listing, same
    `read_images` calls and threads), and (2) `predict_dir` end to end
    (listing, decoding one batch ahead of the model, inference, records).
    The model is traced at both batch shapes before timing.

    Args:
        model, config: as in `inference_throughput`.
        num_images: JPEGs to write. Default 2048.
        batch_size: images per batch. Default 256.
        workers: decoding threads; default as in `read_images`.
        repeats: timed runs of each. Default 3.
        seed: seed of the pixels.
        progress: callable for progress lines, or None.

    Returns:
        Two `Result`s, named "decode" and "predict-dir".
    """
    from keras_seresnet.inference.loading import ProbabilityModel
    from keras_seresnet.inference.predict import predict_dir

    classifier = ProbabilityModel(_default_model(model, config))
    for n in {min(batch_size, num_images), num_images % batch_size or batch_size}:
        classifier(np.zeros((n, 32, 32, 3), np.float32))
    details = {"batch_size": batch_size, "images": num_images,
               "workers": workers or min(8, os.cpu_count() or 1), "cpus": _cpus()}
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder, num_images, seed=seed)

        def decode():
            paths = list_images(folder)
            count = 0
            for i in range(0, len(paths), batch_size):
                count += len(read_images(paths[i:i + batch_size], workers=workers)[0])
            return count

        def predict():
            return len(predict_dir(folder, classifier, batch_size=batch_size, workers=workers,
                                   verbose=0))

        decode()  # warm the file cache
        decode_rates = time_runs(decode, repeats, progress, "decode")
        predict_rates = time_runs(predict, repeats, progress, "predict_dir")
    return [Result("decode", statistics.median(decode_rates), decode_rates, details),
            Result("predict-dir", statistics.median(predict_rates), predict_rates, details)]

