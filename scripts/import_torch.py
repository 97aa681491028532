"""The `keras-seresnet-import-torch` command without installing the package (keras_seresnet/cli/import_torch.py)."""

import sys

from keras_seresnet.cli.import_torch import main

if __name__ == "__main__":
    sys.exit(main())
