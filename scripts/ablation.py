"""Run the report's ablation (Models 1-5) from shared initial weights; table and bar chart.

Example (a short budget on a subset, two seeds):
    python scripts/ablation.py --data-dir ../cifar10 --epochs 10 --limit-train 10000 --seeds 0 1

Models: 1 full recipe, 2 no mixup/cutout, 3 no color jitter, 4 + greyscale (the
report's "without greyscale" is the recipe itself, so this arm adds greyscale
to show its cost), 5 no SE. Every TrainConfig flag except the four switches is
accepted and applies to all arms. The folder (--out) gets one run folder per
arm and seed, ablation.csv, ablation.md and ablation.png; rerunning resumes.
"""

import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet import cli
from keras_seresnet.training.ablation import default_ablation_dir, run_ablation
from keras_seresnet.training.loop import TrainingDivergedError


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
    groups = cli.add_config_arguments(
        parser, exclude=("use_se", "mixup_cutout", "color_jitter", "grayscale", "seed")
    )
    run = groups["run"] if "run" in groups else parser.add_argument_group("run")
    run.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per arm and seed")
    run.add_argument("--models", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=range(1, 6),
                     help="the arms to run")
    run.add_argument("--out", help="ablation folder; default: saved_models/ablation-e<epochs>-<hash>")
    run.add_argument("--overwrite", action="store_true", help="restart every arm from scratch")
    run.add_argument("--quiet", action="store_true", help="no progress bars, only one line per epoch")
    args, config = cli.parse_config(parser, argv)
    out = args.out or default_ablation_dir(config, args.seeds, args.models)
    try:
        rows = run_ablation(config, out, seeds=args.seeds, models=args.models,
                            overwrite=args.overwrite, verbose=2 if args.quiet else 1)
    except (ValueError, OSError, TrainingDivergedError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to resume ({out}).", file=sys.stderr)
        return 130
    for row in rows:
        print(f"Model {row['model']} ({row['name']}): {row['accuracy_mean']:.2f}% "
              f"+- {row['accuracy_std']:.2f} over seeds {row['seeds']}")
    print(f"Table: {out}/ablation.md, {out}/ablation.csv; chart: {out}/ablation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
