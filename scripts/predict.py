"""The `keras-seresnet-predict` command without installing the package (keras_seresnet/cli/predict.py)."""

import sys

from keras_seresnet.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
