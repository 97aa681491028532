"""Training speed of your own `model.fit` on each Keras backend, side by side.

Examples:
    python benchmarks/backends.py
    python benchmarks/backends.py --backends tensorflow jax --steps 20 --repeats 3

Each backend runs in a process of its own (Keras reads `KERAS_BACKEND` when it
is first imported) and trains what `examples/fit.py` trains: the recipe's
model from `build_from_config`, `compile_model`, the tf.data pipeline of
`make_train_dataset` (crop, flip, colour jitter, cutout and mixup included)
and `recipe_callbacks`, in float32, at the batch size of the recipe, on
seeded synthetic images. The first epoch of `--steps` steps warms up
(tracing, XLA compilation); each of the next `--repeats` epochs is timed, and
the figure is their median, in training images per second. The CPU model
and its features come first; the ratios are to TensorFlow's figure of the
same run. Timings on a shared machine are noisy: compare ratios measured in
one run on an otherwise quiet machine.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks` and this checkout

from benchmarks import machine  # noqa: E402
from benchmarks.timing import Result  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def measure(steps, repeats, batch_size, seed=0):
    """Times `repeats` epochs of `steps` steps after one to warm up, under this process's backend.

    Returns:
        The dict of a `timing.Result` named for the backend: `images_per_second`
        (the median), `runs` (each timed epoch's images per second) and the
        warm-up's seconds in `details`.
    """
    from keras_seresnet import runtime

    runtime.configure_process()  # before Keras and TensorFlow start
    import keras
    import numpy as np

    import keras_seresnet as ks

    config = ks.TrainConfig(batch_size=batch_size, mixed_precision="off", seed=seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (steps * batch_size, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(len(images), dtype=np.int64) % config.num_classes
    model = ks.compile_model(ks.build_from_config(config), config)
    epoch = ks.make_epoch_variable()

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    clock = EpochClock()
    model.fit(
        ks.make_train_dataset(images, labels, config, epoch=epoch),
        epochs=1 + repeats,
        callbacks=[*ks.recipe_callbacks(config, epoch), clock],
        shuffle=False,
        verbose=0,
    )
    runs = [len(images) / seconds for seconds in clock.seconds[1:]]
    details = {"batch_size": batch_size, "warmup_seconds": clock.seconds[0]}
    return Result.from_runs(keras.backend.backend(), runs, details).to_dict()


def run_backend(backend, args):
    """One backend's `measure`, in a fresh process; its dict, or the error it printed."""
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    command = [
        sys.executable,
        __file__,
        "--child",
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--batch-size",
        str(args.batch_size),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return {"name": backend, "error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(results):
    """The table's lines: images per second per backend and the ratio to TensorFlow's."""
    reference = next(
        (r["images_per_second"] for r in results if r["name"] == "tensorflow" and "error" not in r),
        None,
    )
    lines = [f"{'backend':<12}{'img/s':>10}{'vs tensorflow':>15}  runs (img/s), warm-up"]
    for r in results:
        if "error" in r:
            lines.append(f"{r['name']:<12}{'failed':>10}  {' '.join(r['error'])}")
            continue
        ratio = f"{r['images_per_second'] / reference:.2f}x" if reference else "-"
        runs = ", ".join(f"{v:,.0f}" for v in r["runs"])
        lines.append(
            f"{r['name']:<12}{r['images_per_second']:>10,.1f}{ratio:>15}  "
            f"{runs}; {r['details']['warmup_seconds']:.0f} s"
        )
    return lines


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per backend")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("steps", "repeats", "batch_size"):
        if getattr(args, name) < 1:
            build_parser().error(f"argument --{name.replace('_', '-')}: must be at least 1")
    if args.child:
        print(json.dumps(measure(args.steps, args.repeats, args.batch_size)))
        return 0
    features = machine.detect_features()
    print(
        f"CPU: {machine.cpu_model()} ({machine.describe(features)}), "
        f"{len(os.sched_getaffinity(0))} cores; float32, batch {args.batch_size}, "
        f"{args.steps} steps per epoch, median of {args.repeats} epochs after one to warm up"
    )
    results = []
    for backend in args.backends:
        print(f"{backend} ...", flush=True)
        results.append(run_backend(backend, args))
    print("\n".join(report(results)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "cpu": machine.cpu_model(),
                    "features": sorted(features or ()),
                    "batch_size": args.batch_size,
                    "steps": args.steps,
                    "results": results,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
