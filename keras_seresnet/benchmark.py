"""Speed measurements: predict_dir (decode + inference), decode alone, bare inference.

Each `measure_*` function returns a dict of plain numbers (JSON-ready) and
warms up before timing, so tracing and first-call costs are excluded.
`scripts/benchmark.py` is the command-line front end.
"""

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from keras_seresnet.images import list_images, read_images


def write_jpeg_folder(folder, count, *, seed=0, quality=90):
    """Writes `count` random 32x32 RGB JPEGs (`00000.jpg`, ...) into `folder`.

    Noise is the worst case for a JPEG decoder (every coefficient is used),
    so decode speeds measured on these are conservative for real photos.

    Returns:
        The folder (str).
    """
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:05d}.jpg"), quality=quality)
    return os.fspath(folder)


def _rate(count, seconds):
    return {"images": int(count), "seconds": round(seconds, 4),
            "images_per_second": round(count / seconds, 1)}


def measure_decode(folder, *, batch_size=256, workers=None):
    """Decode-only speed: list the folder and read every image, batch by batch.

    This is exactly the decoding `predict_dir` does (same listing, same
    `read_images` calls and thread pool), without the model.

    Returns:
        dict: images, seconds, images_per_second, workers.
    """
    paths = list_images(folder)
    read_images(paths[:batch_size], workers=workers)  # warm the file cache
    start = time.perf_counter()
    paths = list_images(folder)
    count = 0
    for i in range(0, len(paths), batch_size):
        images, _, _ = read_images(paths[i:i + batch_size], workers=workers)
        count += len(images)
    result = _rate(count, time.perf_counter() - start)
    result["workers"] = workers or min(8, os.cpu_count() or 1)
    return result


def measure_predict_dir(folder, model, *, batch_size=256, workers=None):
    """End-to-end `predict_dir` speed (listing, decoding, inference, records).

    Args:
        folder: a folder of images (e.g. from `write_jpeg_folder`).
        model: anything `predict_dir` accepts.
        batch_size: images per batch. Default 256.
        workers: decoding threads; default as in `predict_dir`.

    Returns:
        dict: images, seconds, images_per_second.
    """
    from keras_seresnet.loading import ProbabilityModel
    from keras_seresnet.predict import predict_dir

    classifier = ProbabilityModel(model)
    # Trace the model at the shapes the timed run will use: full batches and
    # the last, partial one.
    count = len(list_images(folder))
    for n in {min(batch_size, count), count % batch_size or batch_size}:
        classifier(np.zeros((n, 32, 32, 3), np.float32))
    start = time.perf_counter()
    records = predict_dir(folder, classifier, batch_size=batch_size, workers=workers, verbose=0)
    return _rate(len(records), time.perf_counter() - start)


def measure_inference(model, *, batch_size=256, steps=10, seed=0):
    """Bare model speed: probabilities of random raw-pixel batches, no decoding.

    Args:
        model: anything `ProbabilityModel` accepts.
        batch_size: images per call. Default 256.
        steps: timed calls. Default 10 (after 2 warm-up calls).
        seed: seed of the random pixels.

    Returns:
        dict: images, seconds, images_per_second, batch_size.
    """
    from keras_seresnet.loading import ProbabilityModel

    classifier = ProbabilityModel(model)
    x = np.random.default_rng(seed).uniform(0, 255, (batch_size, 32, 32, 3)).astype(np.float32)
    for _ in range(2):
        classifier(x)
    start = time.perf_counter()
    for _ in range(steps):
        classifier(x)
    result = _rate(steps * batch_size, time.perf_counter() - start)
    result["batch_size"] = batch_size
    return result


def run_predict_dir(args):
    """The `predict-dir` subcommand: decode-only and end-to-end speed on written JPEGs."""
    model = _model(args)
    with tempfile.TemporaryDirectory() as folder:
        write_jpeg_folder(folder, args.images, seed=args.seed)
        decode = measure_decode(folder, batch_size=args.batch_size, workers=args.workers)
        end_to_end = measure_predict_dir(folder, model, batch_size=args.batch_size,
                                         workers=args.workers)
    return {"decode": decode, "predict_dir": end_to_end}


def run_inference(args):
    """The `inference` subcommand: bare model speed on random batches."""
    return {"inference": measure_inference(_model(args), batch_size=args.batch_size,
                                           steps=args.steps, seed=args.seed)}


def _model(args):
    if args.model:
        return args.model
    from keras_seresnet.model import build_seresnet

    return build_seresnet()  # untrained weights time the same as trained ones


def add_subcommands(subparsers):
    """Registers `predict-dir` and `inference` on an argparse subparsers object."""
    common = dict(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    predict = subparsers.add_parser(
        "predict-dir", help="predict_dir img/s (decode + inference) and decode-only img/s",
        **common)
    predict.add_argument("--images", type=int, default=2048, help="32x32 JPEGs to write")
    predict.add_argument("--workers", type=int, default=None,
                         help="decoding threads; None: min(8, cores)")
    inference = subparsers.add_parser(
        "inference", help="bare model img/s on random batches", **common)
    inference.add_argument("--steps", type=int, default=10, help="timed batches")
    for parser, run in ((predict, run_predict_dir), (inference, run_inference)):
        parser.add_argument("--model", default=None,
                            help=".keras file or SavedModel folder; None: an untrained "
                                 "recipe model")
        parser.add_argument("--batch-size", type=int, default=256, help="images per batch")
        parser.add_argument("--seed", type=int, default=0, help="seed of the pixels")
        parser.set_defaults(run=run)
