"""The benchmark command line: `python scripts/benchmark.py COMMAND` or `python -m benchmarks COMMAND`.

    pipeline      augmented tf.data pipeline
    train-step    the package's compiled training step, cached batch
    inference     bare model, batch 256
    predict-dir   decoding alone, and predict_dir end to end
    fit           train() end to end: pipeline + step + callbacks
    reference     the PyTorch notebook's step and inference, in four forms
    speed         the machine, the four PyTorch forms, our float32 and mixed
                  precision figures (timed in rounds, side by side), every
                  ratio, and the CPU precision to use
    all           every benchmark above, and every ratio

`--cpus N` pins the process to N cores (Linux); `--cpu-features` replaces
the detected CPU features (e.g. `--cpu-features avx2` to see the advice for
a CPU without bfloat16 units).

To add a benchmark: a function in a `benchmarks` module returning a `Result`
(or a list of them), its flags in FLAGS, and an entry in COMMANDS.
"""

import argparse
import importlib.util
import os
import sys
import time

from keras_seresnet.config import TrainConfig, field_choices


def int_at_least(minimum):
    """An argparse type: integers >= `minimum`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)


# Each flag once: (its arguments to `add_argument`). A command lists the flags it reads.
FLAGS = {
    "--images": dict(
        type=positive_int, default=10_000, help="images per pipeline epoch (default 10000)"
    ),
    "--no-xla": dict(action="store_true", help="augment op by op instead of with XLA"),
    "--steps": dict(
        type=positive_int, default=10, help="training steps per timed run (default 10)"
    ),
    "--jit-compile": dict(
        choices=["auto", "true", "false"],
        default="auto",
        help="XLA for the training step (default: Keras's auto)",
    ),
    "--mixed-precision": dict(
        choices=field_choices()["mixed_precision"],
        help="dtype policy of our model (default: the config's, float32); "
        "for speed, the low precision compared with float32 "
        "(default mixed_bfloat16)",
    ),
    "--model": dict(
        help=".keras file or SavedModel folder (default: an untrained model of the "
        "config, which times the same)"
    ),
    "--inference-batch-size": dict(
        type=positive_int, default=256, help="images per model call (default 256)"
    ),
    "--inference-steps": dict(
        type=positive_int, default=10, help="model calls per timed inference run (default 10)"
    ),
    "--jpegs": dict(
        type=positive_int, default=2048, help="32x32 JPEGs written for predict-dir (default 2048)"
    ),
    "--workers": dict(type=positive_int, help="decoding threads (default min(8, cores))"),
    "--fit-images": dict(
        type=positive_int,
        default=2560,
        help="synthetic training images per epoch for fit (default 2560)",
    ),
    "--fit-epochs": dict(
        type=int_at_least(2), default=4, help="epochs of fit; the first is not timed (default 4)"
    ),
    "--reference-steps": dict(
        type=positive_int,
        default=8,
        help="PyTorch steps (and inference calls) per timed run (default 8)",
    ),
    "--reference-forms": dict(
        nargs="+",
        help="PyTorch forms to time (default all: notebook channels-last bf16 bf16-channels-last)",
    ),
}


def _with(config, **changes):
    """`config` with some fields changed (validated)."""
    return type(config).from_dict({**config.to_dict(), **changes})


def _precision(config, args):
    """The dtype policy of our model: the `--mixed-precision` flag's, else the config's."""
    return getattr(args, "mixed_precision", None) or config.mixed_precision


def run_pipeline(config, args):
    from benchmarks.training import pipeline_throughput

    return pipeline_throughput(
        config,
        num_images=args.images,
        repeats=args.repeats,
        jit_compile=not args.no_xla,
        progress=print,
    )


def run_train_step(config, args):
    from benchmarks.training import train_step_throughput

    config = _with(config, mixed_precision=_precision(config, args))
    return train_step_throughput(config, steps=args.steps, repeats=args.repeats, progress=print)


def run_inference(config, args):
    from benchmarks.inference import inference_throughput

    config = _with(config, mixed_precision=_precision(config, args))
    return inference_throughput(
        args.model,
        config=config,
        batch_size=args.inference_batch_size,
        steps=args.inference_steps,
        repeats=args.repeats,
        seed=config.seed,
        progress=print,
    )


def run_predict_dir(config, args):
    from benchmarks.inference import predict_dir_throughput

    config = _with(config, mixed_precision=_precision(config, args))
    return predict_dir_throughput(
        args.model,
        config=config,
        num_images=args.jpegs,
        batch_size=args.inference_batch_size,
        workers=args.workers,
        repeats=args.repeats,
        seed=config.seed,
        progress=print,
    )


def run_fit(config, args):
    from benchmarks.training import fit_throughput

    config = _with(config, mixed_precision=_precision(config, args))
    return fit_throughput(
        config, num_images=args.fit_images, epochs=args.fit_epochs, progress=print
    )


def run_reference(config, args):
    from benchmarks.reference import FORMS, reference_throughput

    unknown = sorted(set(args.reference_forms or ()) - set(FORMS))
    if unknown:
        sys.exit(
            f"argument --reference-forms: unknown {', '.join(unknown)}; choose from "
            f"{', '.join(FORMS)}"
        )
    return reference_throughput(
        config,
        forms=args.reference_forms or tuple(FORMS),
        steps=args.reference_steps,
        repeats=args.repeats,
        batch_size=args.inference_batch_size,
        progress=print,
    )


def run_speed(config, args):
    """The `speed` benchmarks: every PyTorch form, ours in float32 and low precision, `train()`.

    The PyTorch forms, our training step and inference in float32 and in
    `args.low_precision`, and TensorFlow's bare convolution in both dtypes
    (the machine's ceiling) are prepared first, then timed in rounds
    (`measure`), so all share the machine's state alike; `train()` end to end
    follows.
    """
    import keras

    from benchmarks.flops import prepare_convolution
    from benchmarks.inference import prepare_inference
    from benchmarks.timing import measure
    from benchmarks.training import fit_throughput, prepare_train_step

    prepared = []
    if importlib.util.find_spec("torch") is None:
        print("reference: skipped (PyTorch is not installed: pip install torch)")
    else:
        from benchmarks.reference import prepare_reference

        prepared += prepare_reference(
            config, steps=args.reference_steps, batch_size=args.inference_batch_size, progress=print
        )
    low = _with(config, mixed_precision=args.low_precision)
    prepared += [
        prepare_train_step(config, steps=args.steps, progress=print),
        prepare_train_step(
            low, steps=args.steps, name=f"train-step-{args.low_precision}", progress=print
        ),
        prepare_inference(
            config=config,
            batch_size=args.inference_batch_size,
            steps=args.inference_steps,
            seed=config.seed,
        ),
        prepare_inference(
            config=low,
            batch_size=args.inference_batch_size,
            steps=args.inference_steps,
            seed=config.seed,
            name=f"inference-{args.low_precision}",
        ),
        prepare_convolution("float32", batch_size=config.batch_size),
        prepare_convolution(
            keras.DTypePolicy(args.low_precision).compute_dtype, batch_size=config.batch_size
        ),
    ]
    print(f"timing {len(prepared)} benchmarks in {args.repeats} rounds")
    results = measure(prepared, args.repeats, print)
    return results + [
        fit_throughput(config, num_images=args.fit_images, epochs=args.fit_epochs, progress=print)
    ]


# name -> (help, its flags, run it: a Result or a list of them); `all` runs
# every one, in order; `speed` (run_speed) reads SPEED_FLAGS.
COMMANDS = {
    "pipeline": ("augmented training pipeline", ["--images", "--no-xla"], run_pipeline),
    "train-step": (
        "the package's compiled training step on a cached batch",
        ["--steps", "--jit-compile", "--mixed-precision"],
        run_train_step,
    ),
    "inference": (
        "the bare model's probabilities on random batches",
        ["--model", "--inference-batch-size", "--inference-steps", "--mixed-precision"],
        run_inference,
    ),
    "predict-dir": (
        "decoding a JPEG folder alone, and predict_dir end to end",
        ["--model", "--inference-batch-size", "--mixed-precision", "--jpegs", "--workers"],
        run_predict_dir,
    ),
    "fit": (
        "train() end to end on synthetic data: pipeline, mixup, step, callbacks",
        ["--fit-images", "--fit-epochs", "--mixed-precision"],
        run_fit,
    ),
    "reference": (
        "the reference PyTorch notebook's training step and inference, in four forms (needs torch)",
        ["--reference-steps", "--reference-forms", "--inference-batch-size"],
        run_reference,
    ),
}
SPEED_FLAGS = [
    "--reference-steps",
    "--steps",
    "--jit-compile",
    "--mixed-precision",
    "--inference-batch-size",
    "--inference-steps",
    "--fit-images",
    "--fit-epochs",
]
# (numerator, denominator, what the ratio means), printed by `all` and the single commands.
RATIOS = [
    ("pipeline", "train-step", "the pipeline must deliver >= 3x"),
    (
        "fit",
        "reference-train-step",
        "target >= 1.3x; the reference's bare step is an upper bound of its full training",
    ),
    ("train-step", "reference-train-step", "bare training steps"),
    ("inference", "reference-inference", "target >= 1.3x"),
]


def _add_flags(parser, names):
    for name in dict.fromkeys(names):  # each once, in order
        parser.add_argument(name, **FLAGS[name])


def build_parser():
    """The `argparse` parser of the benchmark command line."""
    parser = argparse.ArgumentParser(
        prog="benchmark.py", description="Throughput benchmarks (images per second)."
    )
    _add_common_flags(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)
    subparsers = [commands.add_parser(name, help=text) for name, (text, _, _) in COMMANDS.items()]
    for subparser, (_, flags, _) in zip(subparsers, COMMANDS.values()):
        _add_flags(subparser, flags)
    subparsers.append(commands.add_parser("all", help="every benchmark, and every ratio"))
    _add_flags(subparsers[-1], [flag for _, flags, _ in COMMANDS.values() for flag in flags])
    subparsers.append(
        commands.add_parser(
            "speed",
            help="the machine, the PyTorch reference in four forms, our float32 and mixed "
            "precision figures, side by side",
        )
    )
    _add_flags(subparsers[-1], SPEED_FLAGS)
    for subparser in subparsers:
        _add_common_flags(subparser, defaults=False)
    return parser


def _add_common_flags(parser, defaults):
    """The flags every command reads, accepted before and after the command's name.

    The parser's own get the defaults; a command's leave a flag given before
    the command's name as it is (`argparse.SUPPRESS`).
    """

    def add(name, default=None, **kwargs):
        parser.add_argument(name, default=default if defaults else argparse.SUPPRESS, **kwargs)

    add("--config", help="a TrainConfig JSON file (default: the recipe)")
    add("--batch-size", type=positive_int, help="override the config's batch size (128)")
    add("--repeats", 3, type=positive_int, help="timed runs; the median is reported (default 3)")
    add("--cpus", type=positive_int, help="pin the process to this many CPU cores (Linux)")
    add(
        "--cpu-features",
        help="the CPU's features instead of the detected ones, e.g. 'avx2' or "
        "'avx2,avx512f,avx512_bf16' ('none': none); decides the recommended CPU precision",
    )
    add("--json", help="also write the results to this JSON file")


def _machine(args):
    """`(model line, features, where the features came from)` of this CPU."""
    from benchmarks import machine

    if args.cpu_features is not None:
        return machine.cpu_model(), machine.parse_features(args.cpu_features), "--cpu-features"
    return machine.cpu_model(), machine.detect_features(), "detected"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        machine_info = _machine(args)
    except ValueError as error:
        parser.error(str(error))
    if args.cpus:
        # Before TensorFlow starts: its thread pools size themselves to the cores it sees.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    from keras_seresnet import runtime

    runtime.configure_process()  # before Keras and TensorFlow start
    runtime.import_tensorflow()
    changes = {"batch_size": args.batch_size} if args.batch_size else {}
    if getattr(args, "jit_compile", "auto") != "auto":
        changes["jit"] = args.jit_compile == "true"
    if args.command == "speed":
        # Our float32 figures, then the low precision: --mixed-precision names the latter.
        if args.mixed_precision == "off":
            parser.error(
                "argument --mixed-precision: speed compares float32 with a low "
                "precision; choose mixed_bfloat16 or mixed_float16"
            )
        args.low_precision, args.mixed_precision = args.mixed_precision or "mixed_bfloat16", None
        changes["mixed_precision"] = "off"
    try:
        config = _with(
            TrainConfig.from_json(args.config) if args.config else TrainConfig(), **changes
        )
    except (OSError, ValueError) as error:
        parser.error(f"argument --config: {error}")
    if args.command == "all":
        runners = [run for _, _, run in COMMANDS.values()]
    else:
        runners = [run_speed if args.command == "speed" else COMMANDS[args.command][2]]
    if run_reference in runners and importlib.util.find_spec("torch") is None:
        if args.command == "reference":
            sys.exit("The reference benchmark needs PyTorch: pip install torch")
        print("reference: skipped (PyTorch is not installed: pip install torch)")
        runners.remove(run_reference)
    results = []
    for run in runners:
        outcome = run(config, args)
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    from benchmarks import report
    from keras_seresnet.files import write_json

    print()
    for result in results:
        print(result.summary())
    rates = {r.name: r.images_per_second for r in results}
    if args.command == "speed":
        print()
        print(time.strftime("Date: %Y-%m-%d %H:%M UTC", time.gmtime()))
        print(report.speed_report(rates, config, machine_info, args.low_precision))
    else:
        for line in report.ratio_lines(rates, RATIOS):
            print(line)
    if args.command in ("all", "speed"):
        print(report.flops_line(rates, config))
    if args.json:
        write_json(args.json, [r.to_dict() for r in results])
    return 0
