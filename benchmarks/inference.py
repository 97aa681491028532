"""Inference throughput: the bare model, decoding a JPEG folder, and `predict_dir` end to end."""

import os
import tempfile
from typing import Optional

import numpy as np

from benchmarks.timing import (
    Prepared,
    Result,
    check_positive_int,
    cpus,
    measure,
    synthetic_cifar,
    time_runs,
)
from keras_seresnet.config import TrainConfig
from keras_seresnet.data.images import list_images, read_images
from keras_seresnet.inference.loading import ProbabilityModel
from keras_seresnet.inference.predict import predict_dir
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.training.distribute import precision_policy


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


def _classifier(model, config):
    """`ProbabilityModel` of `model`, or of an untrained model of `config` under its dtype policy."""
    if model is None:
        config = config or TrainConfig()
        # Untrained weights time the same as trained ones.
        with precision_policy(config.mixed_precision):
            model = build_from_config(config)
    return ProbabilityModel(model)


def prepare_inference(model=None, *, config: Optional[TrainConfig] = None, batch_size=256,
                      steps=10, seed=0, name="inference") -> Prepared:
    """The bare model's probabilities of a random raw-pixel batch, warmed up, ready to time.

    Args:
        model: a `keras.Model`, `.keras` path or SavedModel folder; None: an
            untrained model built from `config` under `config.mixed_precision`.
        config: the architecture and precision when `model` is None.
            Default `TrainConfig()` (float32).
        batch_size: images per call. Default 256.
        steps: calls per timed run. Default 10 (after 2 warm-up calls).
        seed: seed of the random pixels.
        name: the `Result`'s name.

    Returns:
        A `Prepared`.

    Raises:
        ValueError: `batch_size` or `steps` is not a positive integer.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("steps", steps)
    classifier = _classifier(model, config)
    x = np.random.default_rng(seed).uniform(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    for _ in range(2):
        classifier(x)

    def run():
        for _ in range(steps):
            classifier(x)
        return steps * batch_size

    precision = "given model" if model is not None else (config or TrainConfig()).mixed_precision
    return Prepared(name, run, {
        "batch_size": batch_size, "steps": steps, "precision": precision, "cpus": cpus()})


def inference_throughput(model=None, *, config: Optional[TrainConfig] = None, batch_size=256,
                         steps=10, repeats=3, seed=0, name="inference", progress=None) -> Result:
    """Images per second of the bare model (`prepare_inference`).

    Args:
        model, config, batch_size, steps, seed, name: as in `prepare_inference`.
        repeats: timed runs; the `Result` holds their median. Default 3.
        progress: callable for progress lines, or None.
    """
    check_positive_int("repeats", repeats)
    prepared = prepare_inference(model, config=config, batch_size=batch_size, steps=steps,
                                 seed=seed, name=name)
    return measure([prepared], repeats, progress)[0]


def predict_dir_throughput(model=None, *, config: Optional[TrainConfig] = None, num_images=2048,
                           batch_size=256, workers=None, repeats=3, seed=0, progress=None) -> list:
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
    check_positive_int("num_images", num_images)
    check_positive_int("batch_size", batch_size)
    classifier = _classifier(model, config)
    for n in {min(batch_size, num_images), num_images % batch_size or batch_size}:
        classifier(np.zeros((n, 32, 32, 3), np.float32))
    details = {"batch_size": batch_size, "images": num_images,
               "workers": workers or min(8, os.cpu_count() or 1), "cpus": cpus()}
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder, num_images, seed=seed)

        def decode():
            paths = list_images(folder)
            return sum(len(read_images(paths[i:i + batch_size], workers=workers)[0])
                       for i in range(0, len(paths), batch_size))

        def predict():
            return len(predict_dir(folder, classifier, batch_size=batch_size, workers=workers,
                                   verbose=0))

        decode()  # warm the file cache
        decode_rates = time_runs(decode, repeats, progress, "decode")
        predict_rates = time_runs(predict, repeats, progress, "predict_dir")
    return [Result.from_runs("decode", decode_rates, details),
            Result.from_runs("predict-dir", predict_rates, details)]
