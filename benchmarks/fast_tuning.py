"""How the `fast` preset was chosen: training arms at a reduced budget, scored on a validation split.

Each arm is the recipe with some fields changed (`ARMS`): after `recipe`,
the next five add one change each (through `nesterov` to `ema-0.99`), the
others vary one field of `ema-0.99`, except `no-jitter-no-dropout`, which is
`nesterov` without colour jitter and dropout: the `fast` preset, and the last
two, which add one field to it (`use_ema`, `zero_init_residual`). Every arm trains with
`keras_seresnet.train` on the first `--limit-train` real training images,
holding out `--val-split` of them (stratified, from the seed) to validate on,
for `--epochs` epochs, and is scored by its final validation accuracy (the
test set is not looked at: it is for the final run, once). Each arm's run
folder is `--out/<arm>-seed<S>`, so an interrupted call continues and a
second call only prints the table.

Example (the budget of docs/fast-schedule.md's table):

    python benchmarks/fast_tuning.py --data-dir ../cifar10 --out ../tuning \\
        --mixed-precision mixed_bfloat16

and the larger budget of its second table (45,000 training images):

    python benchmarks/fast_tuning.py --data-dir ../cifar10 --out ../tuning-45k \\
        --mixed-precision mixed_bfloat16 --arms nesterov no-jitter-no-dropout \\
        fast-ema-0.999 fast-zero-init --limit-train 50000 --val-split 5000
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` and this checkout

from benchmarks import machine  # noqa: E402
from keras_seresnet import runtime  # noqa: E402

runtime.configure_process()  # before Keras and TensorFlow start
runtime.import_tensorflow()

from keras_seresnet.config import TrainConfig  # noqa: E402
from keras_seresnet.data.cifar10 import load_cifar10  # noqa: E402
from keras_seresnet.training.loop import train  # noqa: E402

_STEP = {"schedule_unit": "step", "min_lr": 0.0}
_LIGHT = {**_STEP, "mixup_cutout": False}
_SMOOTH = {**_LIGHT, "label_smoothing": 0.2}
_NESTEROV = {**_SMOOTH, "nesterov": True}
_EMA = {**_NESTEROV, "use_ema": True, "ema_momentum": 0.99}
_FAST = {**_NESTEROV, "color_jitter": False, "dropout": 0.0}

# name -> (what it changes, its fields). The five after `recipe` add one change each.
ARMS = {
    "recipe": ("the recipe (schedule scaled to the budget)", {}),
    "step": ("+ learning rate and alpha per step, cosine to 0", _STEP),
    "no-mixup-cutout": ("+ no mixup, no cutout", _LIGHT),
    "smoothing-0.2": ("+ label smoothing 0.2", _SMOOTH),
    "nesterov": ("+ Nesterov momentum", _NESTEROV),
    "ema-0.99": ("+ weight average (EMA 0.99 per step)", _EMA),
    "ema-0.999": ("EMA 0.999 per step", {**_EMA, "ema_momentum": 0.999}),
    "no-color-jitter": ("no colour jitter", {**_EMA, "color_jitter": False}),
    "lr-0.2": ("peak learning rate 0.2", {**_EMA, "base_lr": 0.2}),
    "lr-0.05": ("peak learning rate 0.05", {**_EMA, "base_lr": 0.05}),
    "batch-256": ("batch 256, peak learning rate 0.2", {**_EMA, "batch_size": 256, "base_lr": 0.2}),
    "wd-1e-3": ("weight decay 1e-3", {**_EMA, "weight_decay": 1e-3}),
    "no-jitter-no-dropout": (
        "`nesterov` without colour jitter and dropout (the `fast` preset)",
        _FAST,
    ),
    "fast-ema-0.999": (
        "the `fast` preset with EMA 0.999 per step",
        {**_FAST, "use_ema": True, "ema_momentum": 0.999},
    ),
    "fast-zero-init": (
        "the `fast` preset with each block's last BatchNorm starting at gamma 0",
        {**_FAST, "zero_init_residual": True},
    ),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 (image tree or python batches)")
    parser.add_argument("--out", required=True, help="folder of the arms' run folders")
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=tuple(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit-train", type=int, default=20000)
    parser.add_argument("--val-split", type=int, default=5000)
    parser.add_argument(
        "--limit-test", type=int, default=1000, help="test images train() needs; not scored here"
    )
    parser.add_argument(
        "--mixed-precision", default="off", choices=("off", "mixed_bfloat16", "mixed_float16")
    )
    return parser.parse_args(argv)


def arm_config(args, arm, seed):
    """The `TrainConfig` of one arm at the budget of `args`."""
    return TrainConfig.from_dict(
        {
            **ARMS[arm][1],
            "epochs": args.epochs,
            "seed": seed,
            "data_dir": os.path.abspath(args.data_dir),
            "limit_train": args.limit_train,
            "val_split": args.val_split,
            "limit_test": args.limit_test,
            "mixed_precision": args.mixed_precision,
        }
    )


def main(argv=None):
    args = parse_args(argv)
    features = machine.detect_features()
    print(f"CPU: {machine.cpu_model()}; features: {', '.join(sorted(features or ())) or 'none'}")
    data = load_cifar10(args.data_dir, limit_train=args.limit_train, limit_test=args.limit_test)
    rows = []
    for arm in args.arms:
        for seed in args.seeds:
            config = arm_config(args, arm, seed)
            result = train(
                config, os.path.join(args.out, f"{arm}-seed{seed}"), data=data, verbose=2
            )
            history = result.history
            rows.append(
                (
                    arm,
                    seed,
                    history["val_accuracy"][-1],
                    max(history["val_accuracy"]),
                    history["accuracy"][-1],
                    sum(history["seconds"]) / len(history["seconds"]),
                )
            )
    print(
        f"\n{args.limit_train - args.val_split:,} training images, {args.val_split:,} validation, "
        f"{args.epochs} epochs, {args.mixed_precision}"
    )
    print("| arm | what | seed | val acc (final) | val acc (best) | train acc | s/epoch |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for arm, seed, final, best, train_accuracy, seconds in rows:
        print(
            f"| {arm} | {ARMS[arm][0]} | {seed} | {100 * final:.2f}% | {100 * best:.2f}% | "
            f"{100 * train_accuracy:.2f}% | {seconds:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
