"""Exports a trained `.keras` model as a TensorFlow SavedModel for serving.

    python scripts/export.py MODEL.keras serving/seresnet/1

The SavedModel's `serve` endpoint (signature `serving_default`, input
`image`) takes float32 raw pixels [N, 32, 32, 3] in [0, 255] and returns
probabilities [N, 10]. The `.keras` file is copied beside it as
`serving/seresnet/1.keras` unless `--no-keras-file`. The export is then
reloaded and checked against the Keras model's softmax (to 1e-5).
"""

import argparse
import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet.cli import add_safe_mode_argument


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="the .keras file to export")
    parser.add_argument("output", help="SavedModel folder to create (for TF Serving: "
                                       "<base>/<version number>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")
    parser.add_argument("--no-keras-file", dest="save_keras", action="store_false",
                        help="do not write <output>.keras beside the SavedModel")
    add_safe_mode_argument(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
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
