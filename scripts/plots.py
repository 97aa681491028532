"""Redraw a run's training plots (loss, test accuracy, schedules) from its history.csv.

Example:
    python scripts/plots.py saved_models/seresnet-e250-seed0-1a2b3c4d
"""

import os
import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet import cli
from keras_seresnet.plots import plot_history
from keras_seresnet.training.run_folder import HISTORY, PLOTS, read_history_csv


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder holding history.csv")
    parser.add_argument("--out", help="folder for the PNG files; default: <run>/plots")
    args = parser.parse_args(argv)
    out = args.out or os.path.join(args.run, PLOTS)
    try:
        history = read_history_csv(os.path.join(args.run, HISTORY))
        os.makedirs(out, exist_ok=True)
        paths = plot_history(history, out)
    except (ValueError, OSError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
