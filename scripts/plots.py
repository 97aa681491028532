"""The `keras-seresnet-plots` command without installing the package (keras_seresnet/cli/plots.py)."""

import sys

from keras_seresnet.cli.plots import main

if __name__ == "__main__":
    sys.exit(main())
