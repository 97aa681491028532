"""The `keras-seresnet-export` command without installing the package (keras_seresnet/cli/export.py)."""

import sys

from keras_seresnet.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
