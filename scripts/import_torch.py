"""Converts a reference PyTorch checkpoint into a Keras model file.

    python scripts/import_torch.py best_model.pth saved_models/imported.keras
    python scripts/import_torch.py no_se.pth saved_models/model5.keras --no-se

The checkpoint is a `state_dict` of the reference notebook's model saved with
`torch.save` (read with `torch.load(weights_only=True)`); see
`keras_seresnet.load_torch_weights`. The output loads with
`keras.models.load_model` and takes raw [0, 255] pixels.
"""

import argparse
import os
import sys

from keras_seresnet import runtime

runtime.configure_process()  # before Keras and TensorFlow start

from keras_seresnet import build_seresnet, load_torch_weights


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="PyTorch state_dict file (.pt / .pth)")
    parser.add_argument("output", metavar="OUT.keras", help="Keras model file to write")
    parser.add_argument(
        "--no-se",
        action="store_true",
        help="the checkpoint has no SE blocks (the ablation's Model 5)",
    )
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"OUT.keras must end with .keras. Received: {args.output!r}")
    return args


def main(argv=None):
    args = parse_args(argv)
    model = build_seresnet(use_se=not args.no_se)
    try:
        load_torch_weights(model, args.checkpoint)
    except (ImportError, OSError, TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    model.save(args.output)
    print(f"Imported {args.checkpoint} ({model.count_params():,} parameters) into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
