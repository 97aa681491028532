"""Predicts a folder of images, or the course's unlabelled pickle, to CSV.

    python scripts/predict.py MODEL INPUT [--output predictions.csv]

MODEL is a `.keras` file or a SavedModel folder (`scripts/export.py`). INPUT
is either a folder of image files or one image file (CSV `path,label,class_name,confidence`,
one row per readable image, sorted by path; broken files are named in
warnings and left out, or with `--on-error raise` fail the run listing them
all) or the course's unlabelled pickle, a dict with b'data' uint8
[N, 32, 32, 3] (CSV `ID,Labels`: row index and class index).
"""

import argparse
import os
import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet.cli import add_safe_mode_argument


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .keras file or a SavedModel folder")
    parser.add_argument("input", help="a folder of images, one image file, or the unlabelled pickle file")
    parser.add_argument("--output", default="predictions.csv", help="CSV file to write")
    parser.add_argument("--batch-size", type=int, default=256, help="images per model call")
    folder = parser.add_argument_group("folder input")
    folder.add_argument("--no-recursive", dest="recursive", action="store_false",
                        help="ignore subfolders")
    folder.add_argument("--on-error", choices=("skip", "raise"), default="skip",
                        help="broken image files: skip with a warning (default) or fail")
    add_safe_mode_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from keras_seresnet.inference.loading import ProbabilityModel
    from keras_seresnet.inference.predict import (
        iter_predict_dir,
        predict_images,
        write_labels_csv,
        write_predictions_csv,
    )

    from keras_seresnet.data.images import IMAGE_EXTENSIONS

    model = ProbabilityModel(args.model, safe_mode=args.safe_mode)
    if os.path.isdir(args.input) or args.input.lower().endswith(IMAGE_EXTENSIONS):
        records = iter_predict_dir(
            args.input, model, batch_size=args.batch_size, recursive=args.recursive,
            on_error=args.on_error, verbose=1,
        )
        count = write_predictions_csv(records, args.output)
    else:
        from keras_seresnet.data.cifar10 import load_unlabelled_pickle

        images = load_unlabelled_pickle(args.input)
        probabilities = predict_images(images, model, batch_size=args.batch_size, verbose=1)
        count = write_labels_csv(probabilities.argmax(axis=1), args.output)
    print(f"Wrote {count:,} predictions to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
