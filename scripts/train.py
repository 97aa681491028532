"""Train the SE-ResNet recipe on CIFAR-10 into a run folder; rerun the same command to resume.

Examples:
    python scripts/train.py --data-dir ../cifar10                  # the full recipe
    python scripts/train.py --data-dir ../cifar10 --epochs 2 --limit-train 512 --limit-test 256
    python scripts/train.py --data-dir ../cifar10 --no-se          # the ablation's Model 5

Every TrainConfig field has a flag (see --help); the defaults are the recipe.
The run folder (--out, default saved_models/seresnet-e<epochs>-seed<seed>-<hash>)
gets config.json, history.csv, best.keras, final.keras, results.json and
plots/. A killed run continues where it stopped when the same command is run
again.
"""

import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet import cli
from keras_seresnet.training.loop import TrainingDivergedError, default_out_dir, train


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    groups = cli.add_config_arguments(parser)
    run = groups["run"]
    run.add_argument("--out", help="run folder; default: saved_models/seresnet-e<epochs>-seed<seed>-<config hash>")
    run.add_argument("--overwrite", action="store_true", help="delete a previous run in --out first")
    run.add_argument("--quiet", action="store_true", help="no progress bar, only one line per epoch")
    args, config = cli.parse_config(parser, argv)
    out = args.out or default_out_dir(config)
    try:
        train(config, out, overwrite=args.overwrite, verbose=2 if args.quiet else 1)
    except (ValueError, OSError, TrainingDivergedError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume from the last finished epoch ({out}).",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
