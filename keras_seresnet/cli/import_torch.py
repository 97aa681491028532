"""Converts a reference PyTorch checkpoint into a Keras model file.

    keras-seresnet-import-torch best_model.pth saved_models/imported.keras
    keras-seresnet-import-torch no_se.pth saved_models/model5.keras --no-se

The checkpoint is a `state_dict` of the reference notebook's model saved with
`torch.save` (read with `torch.load(weights_only=True)`); see
`keras_seresnet.load_torch_weights`. The output loads with
`keras.models.load_model` and takes raw [0, 255] pixels.
"""

import sys

from keras_seresnet import cli


def build_parser():
    """The parser of `keras-seresnet-import-torch`."""
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="PyTorch state_dict file (.pt / .pth)"
    )
    parser.add_argument(
        "output", metavar="OUT.keras", type=cli.output_file, help="Keras model file to write"
    )
    parser.add_argument(
        "--no-se",
        action="store_true",
        help="the checkpoint has no SE blocks (the ablation's Model 5)",
    )
    return parser


def check_arguments(parser, args):
    """Usage errors for swapped or missing arguments and an output without `.keras`."""
    cli.check_order(
        parser,
        ("CHECKPOINT", args.checkpoint),
        ("OUT.keras", args.output),
        looks_like_second=lambda path: path.endswith(".keras"),
    )
    if not args.output.endswith(".keras"):
        parser.error(f"argument OUT.keras: must end with .keras. Received: {args.output!r}")
    cli.check_exists(parser, "CHECKPOINT", args.checkpoint)


def main(argv=None):
    """The `keras-seresnet-import-torch` command; returns its exit status (see `cli.run_main`)."""
    return cli.run_main(build_parser(), _import_torch, argv, check=check_arguments)


def _import_torch(args):
    from keras_seresnet import build_seresnet, load_torch_weights
    from keras_seresnet.files import atomic_path

    model = build_seresnet(use_se=not args.no_se)
    try:
        load_torch_weights(model, args.checkpoint)
    except ImportError as error:  # no PyTorch
        raise cli.CommandError(str(error)) from None
    with atomic_path(args.output) as tmp:
        model.save(tmp)
    print(f"Imported {args.checkpoint} ({model.count_params():,} parameters) into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
