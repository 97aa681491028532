"""Redraw a run's training plots (loss, test accuracy, schedules) from its history.csv.

The schedules' curves come from the run's config.json (and results.json's
training image count: a step-unit run's schedules at each of its steps).

Example:
    keras-seresnet-plots saved_models/seresnet-e250-seed0-1a2b3c4d
"""

import os
import sys

from keras_seresnet import cli


def build_parser():
    """The parser of `keras-seresnet-plots`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=cli.existing_path, help="a run folder holding history.csv")
    parser.add_argument(
        "--out", type=cli.output_folder, help="folder for the PNG files; default: <run>/plots"
    )
    return parser


def main(argv=None):
    """The `keras-seresnet-plots` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _plots, argv, tensorflow=False)


def _plots(args):
    from keras_seresnet.plots import plot_run
    from keras_seresnet.training.history import read_history_csv
    from keras_seresnet.training.layout import CONFIG, HISTORY, PLOTS, RESULTS
    from keras_seresnet.training.records import read_results

    out = args.out or os.path.join(args.run, PLOTS)
    history = read_history_csv(os.path.join(args.run, HISTORY))
    # A finished run records its training images per epoch, the schedules' steps.
    results = read_results(os.path.join(args.run, RESULTS))
    train_images = None if results is None else results.train_images
    os.makedirs(out, exist_ok=True)
    paths = plot_run(
        history, out, config_file=os.path.join(args.run, CONFIG), train_images=train_images
    )
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
