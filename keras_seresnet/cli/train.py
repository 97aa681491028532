"""Train the SE-ResNet recipe on CIFAR-10 into a run folder; rerun the same command to resume.

Examples:
    keras-seresnet-train --data-dir ../cifar10                  # the full recipe
    keras-seresnet-train --data-dir ../cifar10 --epochs 2 --limit-train 512 --limit-test 256
    keras-seresnet-train --data-dir ../cifar10 --no-se          # the ablation's Model 5
    keras-seresnet-train --data-dir ../cifar10 --preset fast    # 30 epochs, for a CPU

Every `TrainConfig` field has a flag (see --help); the defaults are the recipe
(`docs/recipe.md`). The run folder (--out, default
saved_models/seresnet-e<epochs>-seed<seed>-<hash>) gets config.json,
history.csv, best.keras, final.keras, results.json and plots/. A killed run
continues where it stopped when the same command is run again.
"""

import sys

from keras_seresnet import cli


def build_parser():
    """The parser of `keras-seresnet-train`: every config flag plus --out, --overwrite, --quiet."""
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    run = cli.add_config_arguments(parser)["run"]
    cli.add_preset_argument(run)
    cli.add_run_folder_arguments(
        run,
        out_help="run folder; default: saved_models/seresnet-e<epochs>-seed<seed>-<config hash>",
        overwrite_help="delete a previous run in --out first",
    )
    return parser


def main(argv=None):
    """The `keras-seresnet-train` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _train, argv, with_config=True)


def _train(args, config):
    from keras_seresnet.training.loop import default_out_dir, train

    out = args.out or default_out_dir(config)
    with cli.resumable_run(out):
        train(config, out, overwrite=args.overwrite, verbose=cli.progress_verbose(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
