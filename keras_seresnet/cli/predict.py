"""Predicts a folder of images, or the course's unlabelled pickle, to CSV.

    keras-seresnet-predict [MODEL] INPUT [--output predictions.csv]

MODEL is a pretrained name (default "cifar10": the package's CIFAR-10
weights, docs/weights.md), a `.keras` file or a SavedModel folder
(`keras-seresnet-export`).
INPUT is either a folder of image files, or one image file (CSV
`path,label,class_name,confidence`, one row per readable image, sorted by
path; broken files are named in warnings and left out, or with
`--on-error raise` fail the run listing them all), or the course's unlabelled
pickle, a dict with b'data' uint8 [N, 32, 32, 3] (CSV `ID,Labels`: row index
and class index).
"""

import argparse
import os
import sys

from keras_seresnet import cli
from keras_seresnet.pretrained import DEFAULT


def build_parser():
    """The parser of `keras-seresnet-predict`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default=DEFAULT,
        help=f"a pretrained name (default: {DEFAULT}, the package's weights), "
        "a .keras file or a SavedModel folder",
    )
    parser.add_argument(
        "input",
        metavar="INPUT",
        type=cli.existing_path,
        help="a folder of images, an image file, or the unlabelled pickle file",
    )
    parser.add_argument(
        "--output", type=cli.output_file, default="predictions.csv", help="CSV file to write"
    )
    parser.add_argument(
        "--batch-size", type=cli.positive_int, default=256, help="images per model call"
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16", "float16"),
        default="float32",
        help="compute dtype of a .keras model (bfloat16 pays on CPUs with bf16 units)",
    )
    folder = parser.add_argument_group("folder input")
    folder.add_argument(
        "--recursive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read the images of subfolders too",
    )
    folder.add_argument(
        "--follow-symlinks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="follow symbolic links (with a guard against cycles)",
    )
    folder.add_argument(
        "--on-error",
        choices=("skip", "raise"),
        default="skip",
        help="broken image files: skip with a warning, or fail",
    )
    cli.add_safe_mode_argument(parser)
    return parser


def check_arguments(parser, args):
    """Usage errors for swapped or missing MODEL and INPUT, and for a model given alone."""
    cli.check_order(
        parser, ("MODEL", args.model), ("INPUT", args.input), looks_like_first=cli.looks_like_model
    )
    # INPUT holds images: there, "cifar10" is a folder of that name, not the weights.
    if cli.looks_like_model_file(args.input):
        parser.error(
            f"argument INPUT: {args.input!r} is a model, not images; give the "
            "images after it (without MODEL the pretrained cifar10 weights are used)"
        )
    cli.check_model(parser, "MODEL", args.model)


def main(argv=None):
    """The `keras-seresnet-predict` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _predict, argv, check=check_arguments)


def _predict(args):
    from keras_seresnet.data.images import IMAGE_EXTENSIONS
    from keras_seresnet.inference.loading import ProbabilityModel
    from keras_seresnet.inference.predict import (
        iter_predict_dir,
        predict_images,
        write_labels_csv,
        write_predictions_csv,
    )

    model = ProbabilityModel(args.model, safe_mode=args.safe_mode, precision=args.precision)
    if os.path.isdir(args.input) or args.input.lower().endswith(IMAGE_EXTENSIONS):
        records = iter_predict_dir(
            args.input,
            model,
            batch_size=args.batch_size,
            recursive=args.recursive,
            follow_symlinks=args.follow_symlinks,
            on_error=args.on_error,
            verbose=1,
        )
        count = write_predictions_csv(records, args.output)
    else:
        from keras_seresnet.data.cifar10 import DataError, load_unlabelled_pickle

        try:
            images = load_unlabelled_pickle(args.input)
        except DataError as e:
            raise cli.CommandError(
                f"INPUT {args.input} is not an image folder or an image file "
                f"({' '.join(IMAGE_EXTENSIONS)}), so it was read as the unlabelled pickle: {e}"
            ) from None
        probabilities = predict_images(images, model, batch_size=args.batch_size, verbose=1)
        count = write_labels_csv(probabilities.argmax(axis=1), args.output)
    print(f"Wrote {count:,} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
