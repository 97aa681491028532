"""Exports a trained `.keras` model as a TensorFlow SavedModel for serving.

    keras-seresnet-export MODEL.keras serving/seresnet/1

The SavedModel's `serve` endpoint (signature `serving_default`, input
`image`) takes float32 raw pixels [N, 32, 32, 3] in [0, 255] and returns
probabilities [N, 10]. The `.keras` file is copied beside it as
`serving/seresnet/1.keras` unless `--no-keras-file`. The export is then
reloaded and checked against the Keras model's softmax. An existing export
is replaced only with `--overwrite`.
"""

import argparse
import os
import sys

from keras_seresnet import cli


def build_parser():
    """The parser of `keras-seresnet-export`."""
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", metavar="MODEL", help="the .keras file to export")
    parser.add_argument("output", metavar="OUTPUT",
                        help="SavedModel folder to create (for TF Serving: <base>/<version number>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument("--keras-file", dest="save_keras", action=argparse.BooleanOptionalAction,
                        default=True, help="write <output>.keras beside the SavedModel")
    cli.add_safe_mode_argument(parser)
    return parser


def check_arguments(parser, args):
    """Usage errors, before TensorFlow starts: swapped arguments, a missing or folder MODEL, an
    OUTPUT that cannot be written or exists (without --overwrite)."""
    cli.check_order(parser, ("MODEL", args.model), ("OUTPUT", args.output),
                    looks_like_first=lambda path: path.endswith(".keras"))
    cli.check_exists(parser, "MODEL", args.model)
    if os.path.isdir(args.model):
        parser.error(f"argument MODEL: {args.model!r} is a folder (a SavedModel is exported "
                     "already); export needs the trained .keras file, such as the "
                     f"{args.model.rstrip(os.sep)}.keras written beside an export")
    cli.check_output_folder(parser, "OUTPUT", args.output)
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f"argument OUTPUT: {args.output!r} exists; pass --overwrite to replace it, "
                     "or choose another folder")


def main(argv=None):
    """The `keras-seresnet-export` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _export, argv, check=check_arguments)


def _export(args):
    from keras_seresnet.inference.export import export_savedmodel, verify_savedmodel
    from keras_seresnet.inference.loading import load_model

    model = load_model(args.model, safe_mode=args.safe_mode)
    path, keras_path = export_savedmodel(
        model, args.output, save_keras=args.save_keras, overwrite=args.overwrite
    )
    difference = verify_savedmodel(path, model)
    print(f"SavedModel: {path} (serve matches the Keras softmax to {difference:.1e})")
    if keras_path:
        print(f"Keras file: {keras_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
