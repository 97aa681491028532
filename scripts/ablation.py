"""The `keras-seresnet-ablation` command without installing the package (keras_seresnet/cli/ablation.py)."""

import sys

from keras_seresnet.cli.ablation import main

if __name__ == "__main__":
    sys.exit(main())
