"""Measuring exports against their Keras model on labelled image files (docs/export.md's figures).

    python -m keras_seresnet.inference.compare MODEL.keras IMAGES EXPORT [EXPORT ...]
    python -m keras_seresnet.inference.compare cifar10 IMAGES EXPORT [EXPORT ...]

IMAGES is a folder of class folders (`<class>/*.jpg`: the `test/` half of a
CIFAR-10 image tree). Every file is read as `predict_dir` reads it (Pillow);
the Keras model and each export (a SavedModel folder, `.onnx` or `.tflite`
file, run by its own runtime through `keras_seresnet.inference.runners`) run
on those pixels, and a SavedModel's `serve_image_bytes` also on the files'
own bytes, decoded in its graph. One line per model gives its size, its
accuracy, the largest |probability difference| from the Keras model and the
share of images whose top class is the Keras model's.

Example (with a trained model, its ONNX export and CIFAR-10's test images):

    rows = compare_exports("final.keras", ["seresnet.onnx"], "cifar10/test")
    rows[1].name, rows[1].max_difference < 1e-4  # ('ONNX seresnet.onnx', True)
"""

import dataclasses
import os
import sys

import numpy as np

from keras_seresnet.config import CIFAR10_CLASSES
from keras_seresnet.data.images import list_images, read_images
from keras_seresnet.inference.formats import (
    BYTES_SIGNATURE,
    FILE_SUFFIXES,
    FORMAT_NAMES,
    OUTPUT,
    PIXELS_SIGNATURE,
)
from keras_seresnet.inference.runners import run_export
from keras_seresnet.pretrained import PRETRAINED, is_pretrained_name


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One model's line of `compare_exports`.

    Attributes:
        name: what ran ("Keras final.keras", "ONNX seresnet.onnx",
            "SavedModel 1 serve_image_bytes", ...).
        size_bytes: the file's (or SavedModel's) size in bytes.
        accuracy: the share of images classified as labelled, in [0, 1].
        max_difference: largest |probability difference| from the Keras
            model; None for the Keras model itself.
        top1_agreement: the share of images whose top class is the Keras
            model's, in [0, 1]; None for the Keras model itself.

    Example:

    >>> Comparison("ONNX m.onnx", 11_250_000, 0.652, 3e-7, 1.0).accuracy
    0.652
    """

    name: str
    size_bytes: int
    accuracy: float
    max_difference: float | None = None
    top1_agreement: float | None = None


def export_format(path):
    """The format of an export by its path: "saved_model" (a folder), "onnx" or "litert".

    Raises:
        ValueError: `path` is neither a folder nor a `.onnx` / `.tflite` file.

    Example:

    >>> export_format("seresnet.tflite")
    'litert'
    """
    if os.path.isdir(path):
        return "saved_model"
    for format, suffix in FILE_SUFFIXES.items():
        if os.fspath(path).endswith(suffix):
            return format
    raise ValueError(
        "Argument `exports` must hold SavedModel folders, .onnx or .tflite files. "
        f"Received: {os.fspath(path)!r}"
    )


def compare_exports(model, exports, directory, *, batch_size=500, safe_mode=True):
    """Runs a Keras model and its exports on a folder of labelled images and compares them.

    Args:
        model: the path of the `.keras` file the exports were made from, or
            a pretrained name (the size reported is its weights file's).
        exports: SavedModel folders, `.onnx` and `.tflite` files.
        directory: a folder of CIFAR-10 class folders (`cat/*.jpg`, ...).
        batch_size: images per call. Default 500.
        safe_mode: Keras safe mode for a `.keras` path. Default True.

    Returns:
        A list of `Comparison`s: the Keras model first, then each export in
        order (a SavedModel gives two: `serving_default` on the pixels and
        `serve_image_bytes` on the files).

    Raises:
        ValueError: a folder under `directory` that is not a class name, no
            images, an unreadable image, or an export of no known format.
    """
    # Keras and TensorFlow start here, after `main` has made the process settings.
    from keras_seresnet.inference.export import export_size_bytes
    from keras_seresnet.inference.loading import ProbabilityModel, check_batch_size, load_model

    check_batch_size(batch_size)
    formats = [export_format(path) for path in exports]
    paths = list_images(directory)
    if not paths:
        raise ValueError(f"No image files under {os.fspath(directory)}.")
    folders = [os.path.basename(os.path.dirname(path)) for path in paths]
    unknown = sorted(set(folders) - set(CIFAR10_CLASSES))
    if unknown:
        raise ValueError(
            f"Argument `directory` must hold CIFAR-10 class folders {CIFAR10_CLASSES}. "
            f"Received folders {unknown} in {os.fspath(directory)}"
        )
    labels = np.array([CIFAR10_CLASSES.index(folder) for folder in folders])
    pixels, _, errors = read_images(paths)
    if errors:
        raise ValueError(f"{len(errors)} unreadable image(s), the first: {errors[0]}")
    reference = ProbabilityModel(load_model(model, safe_mode=safe_mode)).predict(
        pixels, batch_size=batch_size
    )
    rows = [
        Comparison(
            f"Keras {os.path.basename(os.fspath(model))}",
            os.path.getsize(
                PRETRAINED[model].path if is_pretrained_name(model) else os.fspath(model)
            ),
            _accuracy(reference, labels),
        )
    ]
    for path, format in zip(exports, formats):
        encoded = []
        if format == "saved_model":
            for image_path in paths:
                with open(image_path, "rb") as f:
                    encoded.append(f.read())
        outputs = run_export(format, path, pixels, encoded, batch_size=batch_size)
        size = export_size_bytes(path)
        name = f"{FORMAT_NAMES[format]} {os.path.basename(os.path.normpath(path))}"
        signatures = [PIXELS_SIGNATURE] + ([BYTES_SIGNATURE] if encoded else [])
        for signature in signatures:
            probabilities = outputs[f"{signature}/{OUTPUT}"]
            label = f"{name} {signature}" if format == "saved_model" else name
            rows.append(
                Comparison(
                    label,
                    size,
                    _accuracy(probabilities, labels),
                    float(np.abs(probabilities - reference).max()),
                    float(np.mean(probabilities.argmax(-1) == reference.argmax(-1))),
                )
            )
    return rows


def _accuracy(probabilities, labels):
    return float(np.mean(probabilities.argmax(-1) == labels))


def format_table(rows):
    """`compare_exports`'s rows as a Markdown table (str).

    Example:

    >>> print(format_table([Comparison("Keras m.keras", 11_605_498, 0.652)]))
    | model | size | accuracy | max abs probability difference from Keras | same top class as Keras |
    |---|---|---|---|---|
    | Keras m.keras | 11.61 MB | 65.20% | - | - |
    """
    lines = [
        "| model | size | accuracy | max abs probability difference from Keras "
        "| same top class as Keras |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        difference = "-" if row.max_difference is None else f"{row.max_difference:.1e}"
        agreement = "-" if row.top1_agreement is None else f"{row.top1_agreement:.2%}"
        lines.append(
            f"| {row.name} | {row.size_bytes / 1e6:.2f} MB | {row.accuracy:.2%} "
            f"| {difference} | {agreement} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """The command line of the module docstring; returns its exit status (see `cli.run_main`)."""
    from keras_seresnet import cli

    parser = cli.ArgumentParser(
        prog="python -m keras_seresnet.inference.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="the .keras file the exports came from, or a pretrained name (cifar10)",
    )
    parser.add_argument(
        "images", metavar="IMAGES", type=cli.existing_path, help="a folder of class folders"
    )
    parser.add_argument(
        "exports",
        metavar="EXPORT",
        nargs="+",
        type=cli.existing_path,
        help="SavedModel folders, .onnx and .tflite files",
    )
    parser.add_argument("--batch-size", type=cli.positive_int, default=500, help="images per call")
    cli.add_safe_mode_argument(parser)

    def command(args):
        print(
            format_table(
                compare_exports(
                    args.model,
                    args.exports,
                    args.images,
                    batch_size=args.batch_size,
                    safe_mode=args.safe_mode,
                )
            )
        )

    def check(parser, args):
        cli.check_model(parser, "MODEL", args.model)

    return cli.run_main(parser, command, argv, check=check)


if __name__ == "__main__":
    sys.exit(main())
