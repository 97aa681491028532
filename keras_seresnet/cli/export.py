"""Exports a trained `.keras` model for TF Serving, ONNX Runtime or LiteRT, and checks it.

    keras-seresnet-export MODEL.keras serving/seresnet/1
    keras-seresnet-export cifar10 serving/seresnet/1       # the pretrained weights
    keras-seresnet-export MODEL.keras seresnet.onnx --format onnx
    keras-seresnet-export MODEL.keras seresnet.tflite --format litert [--quantize float16]

`--format saved_model` (the default) writes a SavedModel folder whose
`serving_default` signature takes float32 raw pixels [N, 32, 32, 3] in
[0, 255] (input `image`) and returns `probabilities` [N, 10], and whose
`serve_image_bytes` signature takes encoded JPEG/PNG/BMP/GIF files (input
`image_bytes`) and returns `probabilities`, `class_id` and `class_name`. The
`.keras` file is copied inside it, as `assets.extra/model.keras`, unless
`--no-keras-file`. `--format onnx` and `--format litert` write one file
(`.onnx`, `.tflite`) taking `image` and returning `probabilities`.

The export is then loaded in a fresh process by its own runtime and must
agree with the Keras model's probabilities (to 1e-4; quantised LiteRT files
to their own tolerance); if it does not, nothing is written. An existing
export is replaced only with `--overwrite`. docs/export.md has the details.
"""

import argparse
import os
import sys

from keras_seresnet import cli
from keras_seresnet.inference.formats import (  # no TensorFlow: usage errors come before it starts
    EXPORT_FORMATS,
    FILE_SUFFIXES,
    FORMAT_NAMES,
    KERAS_COPY,
    QUANTIZATIONS,
)
from keras_seresnet.pretrained import is_pretrained_name


def build_parser():
    """The parser of `keras-seresnet-export`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "model", metavar="MODEL", help="the .keras file to export, or a pretrained name (cifar10)"
    )
    parser.add_argument(
        "output",
        metavar="OUTPUT",
        help="what to create: the SavedModel folder (for TF Serving: "
        "<base>/<version number>), or the .onnx or .tflite file",
    )
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="saved_model",
        help="saved_model: a folder for TF Serving; onnx: a file for ONNX "
        "Runtime; litert: a .tflite file for LiteRT",
    )
    parser.add_argument(
        "--quantize",
        choices=[q for q in QUANTIZATIONS if q],
        default=None,
        help="litert only: float16 or dynamic-range int8 weights (default: float32)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument(
        "--keras-file",
        dest="save_keras",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="saved_model only: copy the .keras file into the SavedModel, as "
        "OUTPUT/assets.extra/model.keras (default: yes for saved_model)",
    )
    cli.add_safe_mode_argument(parser)
    return parser


def check_arguments(parser, args):
    """Usage errors, before TensorFlow starts: swapped arguments, a missing or folder MODEL, an
    OUTPUT that does not suit the format, cannot be written or exists (without --overwrite), and
    flags of another format."""
    cli.check_order(
        parser,
        ("MODEL", args.model),
        ("OUTPUT", args.output),
        looks_like_first=cli.looks_like_keras_model,
    )
    cli.check_model(parser, "MODEL", args.model)
    if os.path.isdir(args.model) and not is_pretrained_name(args.model):
        parser.error(
            f"argument MODEL: {args.model!r} is a folder (a SavedModel is exported "
            "already); export needs the trained .keras file, such as the "
            f"{os.path.join(args.model.rstrip(os.sep), KERAS_COPY)} "
            "copied into an export"
        )
    suffix = FILE_SUFFIXES.get(args.format)
    if suffix is None:
        named = [f for f, s in FILE_SUFFIXES.items() if args.output.endswith(s)]
        if named:
            parser.error(
                f"argument OUTPUT: {args.output!r} is named like a "
                f"{FORMAT_NAMES[named[0]]} file; add --format {named[0]} (the default "
                "format, saved_model, writes a folder)"
            )
        cli.check_output_folder(parser, "OUTPUT", args.output)
    else:
        if not args.output.endswith(suffix):
            parser.error(
                f"argument OUTPUT: must end with {suffix} for --format {args.format}. "
                f"Received: {args.output!r}"
            )
        try:
            cli.output_file(args.output)
        except argparse.ArgumentTypeError as e:
            parser.error(f"argument OUTPUT: {e}")
    if args.quantize is not None and args.format != "litert":
        parser.error(
            f"argument --quantize: only for --format litert. "
            f"Received: --quantize {args.quantize} with --format {args.format}"
        )
    if args.save_keras and args.format != "saved_model":
        parser.error(
            f"argument --keras-file: only for --format saved_model (a SavedModel folder "
            f"holds the copy). Received: --format {args.format}"
        )
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(
            f"argument OUTPUT: {args.output!r} exists; pass --overwrite to replace it, "
            "or choose another name"
        )


def main(argv=None):
    """The `keras-seresnet-export` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _export, argv, check=check_arguments)


def _export(args):
    from keras_seresnet.inference.export import export_model

    try:
        result = export_model(
            args.model,
            args.output,
            format=args.format,
            quantize=args.quantize,
            save_keras=args.save_keras,
            overwrite=args.overwrite,
            safe_mode=args.safe_mode,
        )
    except ImportError as e:  # an optional runtime or converter is missing
        raise cli.CommandError(str(e)) from None
    name = FORMAT_NAMES[result.format] + (f" ({result.quantize})" if result.quantize else "")
    print(
        f"{name}: {result.path} ({result.size_bytes / 1e6:.2f} MB; loaded in a fresh process, "
        f"it matches the Keras probabilities to {result.max_difference:.1e})"
    )
    if result.keras_path:
        print(f"Keras file: {result.keras_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
