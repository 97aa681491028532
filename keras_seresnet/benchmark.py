"""Throughput benchmarks: images per second of the input pipeline and the training step.

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
import time
from typing import Callable, List, Optional

import numpy as np

from keras_seresnet.config import TrainConfig


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
        run: does the work and returns the number of images it processed.
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
    from keras_seresnet.pipeline import make_train_dataset

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
    each timed run is a fit of `steps` steps.

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

    from keras_seresnet.model import build_from_config
    from keras_seresnet.optimizers import TorchSGD

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

    def fit(n):
        model.fit(dataset, steps_per_epoch=n, epochs=1, shuffle=False, verbose=0)
        return n * config.batch_size

    if progress:
        progress("train-step: warm-up fit of 2 steps (tracing, compilation)")
    fit(2)
    rates = time_runs(lambda: fit(steps), repeats, progress, "run")
    return Result("train-step", statistics.median(rates), rates, {
        "batch_size": config.batch_size, "steps": steps, "xla": model.jit_compile,
        "cpus": _cpus()})


def _cpus():
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()
