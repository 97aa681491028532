"""Throughput benchmarks (images per second); the logic is keras_seresnet/benchmark.py.

    python scripts/benchmark.py pipeline      # augmented tf.data pipeline
    python scripts/benchmark.py train-step    # compiled training step, cached tensors
    python scripts/benchmark.py inference     # bare model, batch 256
    python scripts/benchmark.py predict-dir   # decode only, and predict_dir end to end
    python scripts/benchmark.py fit           # train() end to end: pipeline + step
    python scripts/benchmark.py reference     # the PyTorch notebook's step and inference
    python scripts/benchmark.py speed         # fit, train-step, inference and reference
                                              # side by side, with the ratios
    python scripts/benchmark.py all           # every one, and every ratio
    python scripts/benchmark.py --cpus 2 all  # pinned to 2 CPU cores (Linux)

To add a benchmark: a function in keras_seresnet/benchmark.py returning a
`Result`, and an entry in COMMANDS below (its arguments and how to call it).
"""

import argparse
import importlib.util
import json
import os
import sys


def add_argument(parser, flag, **kwargs):
    """Adds a flag once: `all` collects the flags of several subcommands."""
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **kwargs)


def add_pipeline_arguments(parser):
    add_argument(parser, "--images", type=int, default=10_000, help="images per epoch (default 10000)")
    add_argument(parser, "--no-xla", action="store_true", help="augment op by op instead of with XLA")


def run_pipeline(benchmark, config, args):
    return benchmark.pipeline_throughput(config, num_images=args.images, repeats=args.repeats,
                                         jit_compile=not args.no_xla, progress=print)


def add_train_step_arguments(parser):
    add_argument(parser, "--steps", type=int, default=10,
                 help="training steps per timed run (default 10)")
    add_argument(parser, "--jit-compile", choices=["auto", "true", "false"], default="auto",
                 help="XLA for the training step (default: Keras's auto)")


def run_train_step(benchmark, config, args):
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    return benchmark.train_step_throughput(config, steps=args.steps, repeats=args.repeats,
                                           jit_compile=jit, progress=print)


def add_inference_arguments(parser):
    add_argument(parser, "--model", help=".keras file or SavedModel folder (default: an "
                 "untrained model of the config, which times the same)")
    add_argument(parser, "--inference-batch-size", type=int, default=256,
                 help="images per model call (default 256)")


def run_inference(benchmark, config, args):
    return benchmark.inference_throughput(args.model, config=config,
                                          batch_size=args.inference_batch_size,
                                          repeats=args.repeats, seed=config.seed,
                                          progress=print)


def add_predict_dir_arguments(parser):
    add_inference_arguments(parser)
    add_argument(parser, "--jpegs", type=int, default=2048,
                 help="32x32 JPEGs written for predict-dir (default 2048)")
    add_argument(parser, "--workers", type=int, help="decoding threads (default min(8, cores))")


def run_predict_dir(benchmark, config, args):
    return benchmark.predict_dir_throughput(
        args.model, config=config, num_images=args.jpegs, batch_size=args.inference_batch_size,
        workers=args.workers, repeats=args.repeats, seed=config.seed, progress=print)


def add_fit_arguments(parser):
    add_argument(parser, "--fit-images", type=int, default=2560,
                 help="synthetic training images per epoch for fit (default 2560)")
    add_argument(parser, "--fit-epochs", type=int, default=4,
                 help="epochs of fit; the first is not timed (default 4)")


def run_fit(benchmark, config, args):
    return benchmark.fit_throughput(config, num_images=args.fit_images, epochs=args.fit_epochs,
                                    progress=print)


def add_reference_arguments(parser):
    add_argument(parser, "--reference-steps", type=int, default=8,
                 help="PyTorch steps (and inference calls) per timed run (default 8)")
    add_argument(parser, "--inference-batch-size", type=int, default=256,
                 help="images per model call (default 256)")


def run_reference(benchmark, config, args):
    return benchmark.reference_throughput(config, steps=args.reference_steps,
                                          repeats=args.repeats,
                                          batch_size=args.inference_batch_size, progress=print)


# name -> (help, add its arguments, run it: a Result or a list of them);
# `all` runs every one in order, `speed` those of SPEED.
COMMANDS = {
    "pipeline": ("augmented training pipeline", add_pipeline_arguments, run_pipeline),
    "train-step": ("the model's compiled training step on cached tensors",
                   add_train_step_arguments, run_train_step),
    "inference": ("the bare model's probabilities on random batches",
                  add_inference_arguments, run_inference),
    "predict-dir": ("decoding a JPEG folder alone, and predict_dir end to end",
                    add_predict_dir_arguments, run_predict_dir),
    "fit": ("train() end to end on synthetic data: pipeline, mixup, step, callbacks",
            add_fit_arguments, run_fit),
    "reference": ("the reference PyTorch notebook's training step and inference (needs torch)",
                  add_reference_arguments, run_reference),
}
SPEED = ["fit", "train-step", "inference", "reference"]
# (numerator, denominator, what the ratio means)
RATIOS = [
    ("pipeline", "train-step", "the pipeline must deliver >= 3x"),
    ("fit", "reference-train-step", "target >= 1.3x; the reference's bare step is an upper "
     "bound of its full training"),
    ("train-step", "reference-train-step", "bare training steps"),
    ("inference", "reference-inference", "target >= 1.3x"),
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="a TrainConfig JSON file (default: the recipe)")
    parser.add_argument("--batch-size", type=int, help="override the config's batch size (128)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs; the median is reported (default 3)")
    parser.add_argument("--cpus", type=int, help="pin the process to this many CPU cores (Linux)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    commands = parser.add_subparsers(dest="command", required=True)
    every = commands.add_parser("all", help="every benchmark, and every ratio")
    speed = commands.add_parser("speed", help="fit, train-step, inference and reference, "
                                "side by side, and the speed ratios")
    for name, (text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=text))
        add_arguments(every)
        if name in SPEED:
            add_arguments(speed)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.cpus:
        # Before TensorFlow starts: its thread pools size themselves to the cores it sees.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cpus])
    from keras_seresnet import runtime

    runtime.configure_process()  # before Keras and TensorFlow start
    from keras_seresnet import benchmark
    from keras_seresnet.config import TrainConfig

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    if args.batch_size:
        config = TrainConfig.from_dict({**config.to_dict(), "batch_size": args.batch_size})
    names = list({"all": COMMANDS, "speed": SPEED}.get(args.command, [args.command]))
    results = []
    if "reference" in names and importlib.util.find_spec("torch") is None:
        if args.command == "reference":
            sys.exit("The reference benchmark needs PyTorch: pip install torch")
        print("reference: skipped (PyTorch is not installed: pip install torch)")
        names.remove("reference")
    for name in names:
        outcome = COMMANDS[name][2](benchmark, config, args)
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    print()
    for result in results:
        print(result.summary())
    rates = {r.name: r.images_per_second for r in results}
    for numerator, denominator, meaning in RATIOS:
        if {numerator, denominator} <= set(rates):
            print(f"{numerator} / {denominator} = {rates[numerator] / rates[denominator]:.2f}x "
                  f"({meaning})")
    if args.command in ("all", "speed"):
        gflops = benchmark.matmul_gflops()
        print(f"matrix multiply: {gflops:.0f} GFLOP/s; fit reaches "
              f"{rates['fit'] * benchmark.TRAIN_GFLOP_PER_IMAGE:.0f} GFLOP/s, inference "
              f"{rates['inference'] * benchmark.FORWARD_GFLOP_PER_IMAGE:.0f} GFLOP/s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([r.to_dict() for r in results], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
