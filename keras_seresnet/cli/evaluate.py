"""Evaluates a saved model on the CIFAR-10 test split.

    keras-seresnet-evaluate MODEL [--data-dir DIR] [--limit-test N] [--tta]

MODEL is a pretrained name ("cifar10"), a `.keras` file or a SavedModel
folder, with any number of classes
(named after CIFAR-10's for 10, else "0", "1", ...; a model with fewer classes
than the test labels is refused in one line). Prints accuracy, loss (plain
cross-entropy, and with the recipe's label smoothing, the loss the recipe's
published test loss refers to) and per-class accuracy, and writes
`evaluation.json` and `confusion_matrix.png` (with `--tta`, also
`confusion_matrix_tta.png`; flip TTA numbers are reported separately) into
`--output-dir` (default `./evaluation`).
"""

import os
import sys

from keras_seresnet import cli
from keras_seresnet.config import ConfigError, OptimizerConfig


def build_parser():
    """The parser of `keras-seresnet-evaluate`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a pretrained name (cifar10), a .keras file or a SavedModel folder",
    )
    cli.add_config_arguments(parser, only=("data_dir", "limit_test"))
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--batch-size", type=cli.positive_int, default=256, help="images per model call"
    )
    evaluation.add_argument(
        "--tta", action="store_true", help="also report horizontal-flip test-time augmentation"
    )
    evaluation.add_argument(
        "--label-smoothing",
        type=float,
        default=OptimizerConfig().label_smoothing,
        help="label smoothing of the reported smoothed loss (the recipe's)",
    )
    parser.add_argument(
        "--output-dir",
        type=cli.output_folder,
        default="evaluation",
        help="folder for the JSON and PNGs",
    )
    cli.add_safe_mode_argument(parser)
    return parser


def check_arguments(parser, args):
    """Usage errors, before TensorFlow starts: a missing MODEL or --data-dir; `--limit-test`
    and `--label-smoothing` out of the ranges of their `TrainConfig` fields."""
    cli.check_model(parser, "MODEL", args.model)
    if args.data_dir is not None:
        cli.check_exists(parser, "--data-dir", args.data_dir)
    try:
        cli.config_from_args(args)
    except ConfigError as e:
        parser.error(str(e))


def main(argv=None):
    """The `keras-seresnet-evaluate` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _evaluate, argv, check=check_arguments)


def _evaluate(args):
    from keras_seresnet.data.cifar10 import load_cifar10
    from keras_seresnet.inference.evaluate import evaluate_model, format_results, write_results_json
    from keras_seresnet.plots import plot_confusion_matrix

    # limit_train=1: only the test split is needed; read one training image, not 50,000.
    _, (x_test, y_test) = load_cifar10(args.data_dir, limit_train=1, limit_test=args.limit_test)
    results = evaluate_model(
        args.model,
        x_test,
        y_test,
        batch_size=args.batch_size,
        tta=args.tta,
        label_smoothing=args.label_smoothing,
        safe_mode=args.safe_mode,
        verbose=1,
    )
    print(format_results(results))
    os.makedirs(args.output_dir, exist_ok=True)
    write_results_json(results, os.path.join(args.output_dir, "evaluation.json"))
    # The model's classes, in order: CIFAR-10's names for 10 outputs, else "0", "1", ...
    class_names = list(results["per_class_accuracy"])
    plot_confusion_matrix(
        results["confusion_matrix"],
        class_names,
        path=os.path.join(args.output_dir, "confusion_matrix.png"),
    )
    if args.tta:
        plot_confusion_matrix(
            results["tta"]["confusion_matrix"],
            class_names,
            path=os.path.join(args.output_dir, "confusion_matrix_tta.png"),
            title="Confusion matrix, horizontal-flip TTA",
        )
    print(f"Wrote {args.output_dir}/evaluation.json and the confusion matrix PNG(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
