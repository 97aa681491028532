"""Throughput benchmarks (images per second); the logic is keras_seresnet/benchmark.py.

    python scripts/benchmark.py pipeline      # augmented tf.data pipeline
    python scripts/benchmark.py train-step    # compiled training step, cached tensors
    python scripts/benchmark.py all           # both, and their ratio
    python scripts/benchmark.py --cpus 2 all  # pinned to 2 CPU cores (Linux)

To add a benchmark: a function in keras_seresnet/benchmark.py returning a
`Result`, and an entry in COMMANDS below (its arguments and how to call it).
"""

import argparse
import json
import os
import sys


def add_pipeline_arguments(parser):
    parser.add_argument("--images", type=int, default=10_000, help="images per epoch (default 10000)")
    parser.add_argument("--no-xla", action="store_true", help="augment op by op instead of with XLA")


def run_pipeline(benchmark, config, args):
    return benchmark.pipeline_throughput(config, num_images=args.images, repeats=args.repeats,
                                         jit_compile=not args.no_xla, progress=print)


def add_train_step_arguments(parser):
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed run (default 10)")
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                        help="XLA for the training step (default: Keras's auto)")


def run_train_step(benchmark, config, args):
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    return benchmark.train_step_throughput(config, steps=args.steps, repeats=args.repeats,
                                           jit_compile=jit, progress=print)


# name -> (help, add its arguments, run it); `all` runs every one in order.
COMMANDS = {
    "pipeline": ("augmented training pipeline", add_pipeline_arguments, run_pipeline),
    "train-step": ("the model's compiled training step on cached tensors",
                   add_train_step_arguments, run_train_step),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a TrainConfig JSON file (default: the recipe)")
    parser.add_argument("--batch-size", type=int, help="override the config's batch size (128)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs; the median is reported (default 3)")
    parser.add_argument("--cpus", type=int, help="pin the process to this many CPU cores (Linux)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    commands = parser.add_subparsers(dest="command", required=True)
    every = commands.add_parser("all", help="every benchmark, then pipeline / train-step")
    for name, (text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=text))
        add_arguments(every)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.cpus:
        # Before TensorFlow starts: its thread pools size themselves to the cores it sees.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cpus])
    from keras_seresnet import benchmark
    from keras_seresnet.config import TrainConfig

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    if args.batch_size:
        config = TrainConfig.from_dict({**config.to_dict(), "batch_size": args.batch_size})
    names = list(COMMANDS) if args.command == "all" else [args.command]
    results = [COMMANDS[name][2](benchmark, config, args) for name in names]
    print()
    for result in results:
        print(result.summary())
    rates = {r.name: r.images_per_second for r in results}
    if {"pipeline", "train-step"} <= set(rates):
        ratio = rates["pipeline"] / rates["train-step"]
        print(f"pipeline / train-step = {ratio:.1f}x (the pipeline must deliver >= 3x)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([r.to_dict() for r in results], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
