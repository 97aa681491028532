"""Inference throughput: the bare model, decoding a JPEG folder, and `predict_dir` end to end."""

import os
import tempfile

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
from keras_seresnet.inference.loading import PRECISIONS, ProbabilityModel
from keras_seresnet.inference.predict import predict_dir
from keras_seresnet.models.seresnet import build_from_config
from keras_seresnet.training.distribute import PRECISION_POLICIES


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


def classifier_for(model, config):
    """`model` (default: an untrained float32 model of `config`) at `config`'s precision.

    The precision is `ProbabilityModel`'s (`predict_dir(..., precision=)`):
    a float32 model runs as a copy under `config.mixed_precision`'s policy,
    as a user's trained model does. Untrained weights time the same as
    trained ones.
    """
    config = config or TrainConfig()
    policy = PRECISION_POLICIES[config.mixed_precision]
    precision = next(name for name, value in PRECISIONS.items() if value == policy)
    return ProbabilityModel(
        build_from_config(config) if model is None else model, precision=precision
    )


def prepare_inference(
    model=None,
    *,
    config: TrainConfig | None = None,
    batch_size=256,
    steps=10,
    seed=0,
    name="inference",
) -> Prepared:
    """The bare model's probabilities of a random raw-pixel batch, warmed up, ready to time.

    Args:
        model: a `keras.Model`, `.keras` path or SavedModel folder; None: an
            untrained float32 model built from `config`.
        config: the architecture when `model` is None, and the precision
            the model runs at (`config.mixed_precision`, through
            `ProbabilityModel`'s `precision`). Default `TrainConfig()`
            (float32).
        batch_size: images per call. Default 256.
        steps: calls per timed run. Default 10 (after 2 warm-up calls).
        seed: seed of the random pixels.
        name: the `Result`'s name.

    Returns:
        A `Prepared`.

    Raises:
        ValueError: `batch_size` or `steps` is not a positive integer, or a
            SavedModel is given with a precision other than float32.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("steps", steps)
    classifier = classifier_for(model, config)
    x = np.random.default_rng(seed).uniform(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    for _ in range(2):
        classifier(x)

    def run():
        for _ in range(steps):
            classifier(x)
        return steps * batch_size

    return Prepared(
        name,
        run,
        {
            "batch_size": batch_size,
            "steps": steps,
            "precision": (config or TrainConfig()).mixed_precision,
            "cpus": cpus(),
        },
    )


def inference_throughput(
    model=None,
    *,
    config: TrainConfig | None = None,
    batch_size=256,
    steps=10,
    repeats=3,
    seed=0,
    name="inference",
    progress=None,
) -> Result:
    """Images per second of the bare model (`prepare_inference`).

    Args:
        model, config, batch_size, steps, seed, name: as in `prepare_inference`.
        repeats: timed runs; the `Result` holds their median. Default 3.
        progress: callable for progress lines, or None.
    """
    check_positive_int("repeats", repeats)
    prepared = prepare_inference(
        model, config=config, batch_size=batch_size, steps=steps, seed=seed, name=name
    )
    return measure([prepared], repeats, progress)[0]


def predict_dir_throughput(
    model=None,
    *,
    config: TrainConfig | None = None,
    num_images=2048,
    batch_size=256,
    workers=None,
    repeats=3,
    seed=0,
    progress=None,
) -> list:
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
    classifier = classifier_for(model, config)
    for n in {min(batch_size, num_images), num_images % batch_size or batch_size}:
        classifier(np.zeros((n, 32, 32, 3), np.float32))
    details = {
        "batch_size": batch_size,
        "images": num_images,
        "workers": workers or min(8, os.cpu_count() or 1),
        "cpus": cpus(),
    }
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder, num_images, seed=seed)

        def decode():
            paths = list_images(folder)
            return sum(
                len(read_images(paths[i : i + batch_size], workers=workers)[0])
                for i in range(0, len(paths), batch_size)
            )

        def predict():
            return len(
                predict_dir(
                    folder,
                    classifier,
                    batch_size=batch_size,
                    workers=workers,
                    precision=classifier.precision,
                    verbose=0,
                )
            )

        decode()  # warm the file cache
        decode_rates = time_runs(decode, repeats, progress, "decode")
        predict_rates = time_runs(predict, repeats, progress, "predict_dir")
    return [
        Result.from_runs("decode", decode_rates, details),
        Result.from_runs("predict-dir", predict_rates, details),
    ]
