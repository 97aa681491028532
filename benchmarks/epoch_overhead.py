"""The fixed cost per epoch of `train()`, and the host overhead per training step.

Examples:
    python benchmarks/epoch_overhead.py
    python benchmarks/epoch_overhead.py --epochs 2 12 --images 256 128 --steps-per-execution 1 8

Per epoch: `train()` runs a tiny model (`--widths 8 16 16 16`) on a few
synthetic images for a short and a long run; the marginal wall time of one
more epoch, `(T_long - T_short) / (E_long - E_short)`, is compared with the
same for a bare `model.fit` of the same model and datasets (no run folder,
no callbacks): their difference is the fixed cost that `train()` adds to an
epoch beyond training and evaluating (seeding, schedules, commit of the
checkpoint and history, the progress line). Per step: a bare `fit` of many
epochs of the same model at each `--steps-per-execution`; the marginal time
per step at batch size 8 is nearly all host overhead (launching the step,
callbacks), and steps per second shows what `steps_per_execution` buys.

Every figure is the median of `--repeats` runs, side by side in one process;
the CPU model and its features are printed first. Timings on a shared
machine are noisy: compare ratios measured in the same run.
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` and this checkout

from benchmarks import machine  # noqa: E402
from keras_seresnet import runtime  # noqa: E402

runtime.configure_process()  # before Keras and TensorFlow start
runtime.import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_seresnet import TrainConfig  # noqa: E402
from keras_seresnet.data import pipeline  # noqa: E402
from keras_seresnet.models.seresnet import build_from_config  # noqa: E402
from keras_seresnet.training import loop  # noqa: E402


def synthetic_data(train_images, test_images, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        return (
            rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            np.arange(n, dtype=np.int64) % num_classes,
        )

    return split(train_images), split(test_images)


def timed_train(config, data):
    with tempfile.TemporaryDirectory(prefix="epoch-overhead-") as out:
        start = time.perf_counter()
        loop.train(config, os.path.join(out, "run"), data=data, verbose=0)
        return time.perf_counter() - start


def timed_bare_fit(config, data, epochs, steps_per_execution=1):
    """Seconds of one `fit` over `epochs` epochs, after a first epoch that traces the steps."""
    (x_train, y_train), (x_test, y_test) = data
    config = dataclasses.replace(config, steps_per_execution=steps_per_execution)
    keras.utils.set_random_seed(config.seed)
    model = loop.compile_model(build_from_config(config), config)
    train_ds = pipeline.make_train_dataset(x_train, y_train, config, epoch=0)
    eval_ds = pipeline.make_eval_dataset(
        x_test, y_test, batch_size=config.batch_size, num_classes=config.num_classes
    )
    model.fit(train_ds, validation_data=eval_ds, epochs=1, verbose=0, shuffle=False)  # traces
    start = time.perf_counter()
    model.fit(train_ds, validation_data=eval_ds, epochs=epochs, verbose=0, shuffle=False)
    return time.perf_counter() - start


def median(function, repeats):
    return statistics.median(function() for _ in range(repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 16, 16])
    parser.add_argument("--epochs", type=int, nargs=2, default=[2, 12], metavar=("SHORT", "LONG"))
    parser.add_argument(
        "--images", type=int, nargs=2, default=[256, 128], metavar=("TRAIN", "TEST")
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--step-epochs",
        type=int,
        default=4,
        help="epochs of the per-step measurement (batch size 8)",
    )
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    short, long = args.epochs
    if not 1 <= short < long:
        parser.error(f"argument --epochs: SHORT must be in [1, LONG). Received: {short} {long}")

    print(
        f"CPU: {machine.cpu_model()} ({os.cpu_count()} logical cores; "
        f"{machine.describe(machine.detect_features())}); Keras {keras.__version__}"
    )
    data = synthetic_data(*args.images)
    config = TrainConfig(
        widths=tuple(args.widths), batch_size=args.batch_size, warmup_epochs=0, epochs=short
    )

    def marginal(seconds):
        return (seconds(long) - seconds(short)) / (long - short)

    per_train = marginal(
        lambda e: median(
            lambda: timed_train(dataclasses.replace(config, epochs=e), data), args.repeats
        )
    )
    per_fit = marginal(lambda e: median(lambda: timed_bare_fit(config, data, e), args.repeats))
    steps = -(-args.images[0] // args.batch_size)
    print(
        f"Per epoch ({args.images[0]} training images in {steps} steps of {args.batch_size}, "
        f"{args.images[1]} test images), median of {args.repeats}, epochs {short} vs {long}:"
    )
    print(f"  train():         {per_train:.3f} s per additional epoch")
    print(f"  bare model.fit:  {per_fit:.3f} s per additional epoch (training and evaluation)")
    print(f"  fixed cost of train() beyond the epoch: {per_train - per_fit:.3f} s")

    small = TrainConfig(widths=tuple(args.widths), batch_size=8)
    step_data = synthetic_data(args.images[0], 8)
    steps = -(-args.images[0] // 8) * args.step_epochs
    print(f"Per step (batch 8, {steps} steps, bare fit), median of {args.repeats}:")
    baseline = None
    for spe in args.steps_per_execution:
        seconds = median(
            lambda spe=spe: timed_bare_fit(small, step_data, args.step_epochs, spe), args.repeats
        )
        rate = steps / seconds
        baseline = baseline or rate
        print(
            f"  steps_per_execution={spe}: {1000 * seconds / steps:.2f} ms per step, "
            f"{rate:.1f} steps/s ({rate / baseline:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
