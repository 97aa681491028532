"""Run the report's ablation (Models 1-5) from shared initial weights; table and bar chart.

Example (a short budget on a subset, two seeds):
    keras-seresnet-ablation --data-dir ../cifar10 --epochs 10 --limit-train 10000 --seeds 0 1

Models: 1 full recipe, 2 no mixup/cutout, 3 no color jitter, 4 + greyscale (the
report's "without greyscale" is the recipe itself, so this arm adds greyscale
to show its cost), 5 no SE. Every TrainConfig flag except the four switches and
--seed is accepted and applies to all arms. The folder (--out) gets one run
folder per arm and seed, ablation.csv, ablation.md and ablation.png; rerunning
resumes.
"""

import sys

from keras_seresnet import cli

# Set per arm and seed by the ablation itself.
ARM_FIELDS = ("use_se", "mixup_cutout", "color_jitter", "grayscale", "seed")


def build_parser():
    """The parser of `keras-seresnet-ablation`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    run = cli.add_config_arguments(parser, exclude=ARM_FIELDS)["run"]
    run.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per arm and seed")
    run.add_argument(
        "--models",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4, 5],
        choices=range(1, 6),
        help="the arms to run",
    )
    cli.add_run_folder_arguments(
        run,
        out_help="ablation folder; default: saved_models/ablation-e<epochs>-<hash>",
        overwrite_help="restart every arm from scratch",
    )
    return parser


def main(argv=None):
    """The `keras-seresnet-ablation` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _ablation, argv, with_config=True)


def _ablation(args, config):
    from keras_seresnet.training.ablation import default_ablation_dir, run_ablation

    out = args.out or default_ablation_dir(config, args.seeds, args.models)
    with cli.resumable_run(out):
        rows = run_ablation(
            config,
            out,
            seeds=args.seeds,
            models=args.models,
            overwrite=args.overwrite,
            verbose=cli.progress_verbose(args),
        )
    for row in rows:
        print(
            f"Model {row['model']} ({row['name']}): {row['accuracy_mean']:.2f}% "
            f"+- {row['accuracy_std']:.2f} over seeds {row['seeds']}"
        )
    print(f"Table: {out}/ablation.md, {out}/ablation.csv; chart: {out}/ablation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
