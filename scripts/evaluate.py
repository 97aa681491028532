"""The `keras-seresnet-evaluate` command without installing the package (keras_seresnet/cli/evaluate.py)."""

import sys

from keras_seresnet.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
