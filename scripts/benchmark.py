"""Measures speed: `predict-dir` (decode + inference, decode only) and `inference`.

    python scripts/benchmark.py predict-dir --images 2048
    python scripts/benchmark.py inference --batch-size 256

Prints one JSON object of the measurements.
"""

import argparse
import json
import sys


def main(argv=None):
    from keras_seresnet.benchmark import add_subcommands

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    print(json.dumps(args.run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
