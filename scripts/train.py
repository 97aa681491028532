"""The `keras-seresnet-train` command without installing the package (keras_seresnet/cli/train.py)."""

import sys

from keras_seresnet.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
