"""Statistical parity harness: the package against the PyTorch recipe, K seeds each, same images.

Both sides train on the same real CIFAR-10 images (`load_cifar10` of
`--data-dir` with `--limit-train`/`--limit-test`: the first images of the
canonical order, which interleaves the classes) and are tested on the same
test images after every epoch:

- keras: `keras_seresnet.train(TrainConfig(...), data=...)`, the package's
  loop (tf.data pipeline, callbacks, TorchSGD).
- torch: `benchmarks/parity_torch.py`, run with `--torch-python` (an
  interpreter with torch and torchvision): torchvision's ColorJitter,
  RandomCrop(32, padding=4), RandomHorizontalFlip and Normalize on PIL images,
  cutout and mixup per batch, the recipe's per-epoch schedule, torch's SGD.
  The pixels it gets are the ones the Keras side decoded.

Seeds 0..K-1 on each side (initial weights, order, augmentation; the two
sides' random streams are independent). Prints, for the first and the final
epoch, each side's mean and standard deviation over the seeds and the
difference of the means with its standard error (Welch:
sqrt(sd_keras^2 / K + sd_torch^2 / K)). `--no-color-jitter`,
`--no-mixup-cutout` and `--no-se` switch a component off on both sides at
once, to locate a gap. Results (every run's per-epoch accuracies) go to
`--out` as JSON; a second call with the same `--out` reuses the finished
runs (of the same images, schedule and switches), so an interrupted harness
continues, and `--seeds` can grow later.

Example (the budget of README's table):
    python benchmarks/parity.py --data-dir /work/cifar10 --limit-train 2000 \
        --limit-test 1000 --epochs 3 --seeds 6 --torch-python /work/venv-tv/bin/python
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, os.pardir)
sys.path.insert(0, ROOT)

from benchmarks import machine  # noqa: E402
from keras_seresnet import runtime  # noqa: E402

runtime.configure_process()  # before Keras and TensorFlow start
runtime.import_tensorflow()

from keras_seresnet.config import TrainConfig  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="CIFAR-10 (image tree or python batches)")
    parser.add_argument("--limit-train", type=int, default=2000)
    parser.add_argument("--limit-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--widths", type=int, nargs=4, default=None, help="default: the recipe's")
    parser.add_argument("--seeds", type=int, default=6, help="K: seeds 0..K-1 per side")
    parser.add_argument(
        "--sides", nargs="+", choices=("keras", "torch"), default=("keras", "torch")
    )
    parser.add_argument(
        "--torch-python",
        default=sys.executable,
        help="interpreter with torch and torchvision for the torch side",
    )
    parser.add_argument("--no-color-jitter", action="store_true")
    parser.add_argument("--no-mixup-cutout", action="store_true")
    parser.add_argument("--no-se", action="store_true")
    parser.add_argument("--out", default="parity.json", help="results JSON (reused to continue)")
    return parser.parse_args(argv)


def make_config(args, seed):
    fields = dict(
        epochs=args.epochs,
        warmup_epochs=args.warmup_epochs,
        batch_size=args.batch_size,
        color_jitter=not args.no_color_jitter,
        mixup_cutout=not args.no_mixup_cutout,
        use_se=not args.no_se,
        seed=seed,
        data_dir=os.path.abspath(args.data_dir),
        limit_train=args.limit_train,
        limit_test=args.limit_test,
    )
    if args.widths:
        fields["widths"] = tuple(args.widths)
    return TrainConfig(**fields).validate()


def run_keras(config, data):
    from keras_seresnet.training.loop import train

    with tempfile.TemporaryDirectory(prefix="parity-keras-") as folder:
        result = train(config, folder, data=data, verbose=0)
    return {"test_accuracy": result.history["val_accuracy"], "loss": result.history["loss"]}


def run_torch(config, data_file, torch_python):
    completed = subprocess.run(
        [
            torch_python,
            os.path.join(HERE, "parity_torch.py"),
            "--data",
            data_file,
            "--config",
            config.to_json(),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summarise(runs, epoch_index):
    """`(mean, sd, K)` of the test accuracy at `epoch_index` over finished runs."""
    values = np.array([run["test_accuracy"][epoch_index] for run in runs])
    sd = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), sd, len(values)


def report(results, epochs):
    lines = []
    for label, index in (("first epoch", 0), (f"final (epoch {epochs})", epochs - 1)):
        stats = {
            side: summarise(list(runs.values()), index) for side, runs in results.items() if runs
        }
        parts = [
            f"{side} {100 * m:.2f}% (sd {100 * s:.2f}, K={k})" for side, (m, s, k) in stats.items()
        ]
        line = f"{label}: " + ", ".join(parts)
        if len(stats) == 2:
            (mk, sk, kk), (mt, st, kt) = stats["keras"], stats["torch"]
            se = np.sqrt(sk**2 / kk + st**2 / kt)
            line += f"; keras - torch = {100 * (mk - mt):+.2f} points, SE {100 * se:.2f}"
            if se > 0:
                line += f" ({(mk - mt) / se:+.2f} SE)"
        lines.append(line)
    return lines


def _what_is_measured(arguments):
    """The arguments that change a run's result (not how many seeds, which sides, where)."""
    return {
        k: v for k, v in arguments.items() if k not in ("seeds", "sides", "out", "torch_python")
    }


def main(argv=None):
    args = parse_args(argv)
    print(f"CPU: {machine.cpu_model()} ({machine.describe(machine.detect_features())})")
    results = {"keras": {}, "torch": {}}
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            saved = json.load(f)
        if _what_is_measured(saved.get("args", {})) == _what_is_measured(vars(args)):
            results = saved["results"]
    from keras_seresnet.data.cifar10 import load_cifar10
    from keras_seresnet.files import write_json

    data = load_cifar10(args.data_dir, limit_train=args.limit_train, limit_test=args.limit_test)
    (x_train, y_train), (x_test, y_test) = data
    print(
        f"{len(x_train)} training, {len(x_test)} test images; class counts "
        f"{np.bincount(y_train, minlength=10).tolist()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="parity-") as scratch:
        data_file = os.path.join(scratch, "data.npz")
        np.savez(data_file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        for seed in range(args.seeds):
            for side in args.sides:
                if str(seed) in results[side]:
                    continue
                config = make_config(args, seed)
                run = (
                    run_keras(config, data)
                    if side == "keras"
                    else run_torch(config, data_file, args.torch_python)
                )
                results[side][str(seed)] = run
                write_json(
                    args.out,
                    {
                        "args": vars(args),
                        "config": dataclasses.asdict(make_config(args, 0)),
                        "results": results,
                    },
                )
                accuracies = " ".join(f"{100 * a:.1f}" for a in run["test_accuracy"])
                print(f"{side} seed {seed}: test accuracy per epoch {accuracies}", flush=True)
    for line in report(results, args.epochs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
