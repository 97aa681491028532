"""Throughput benchmarks (images per second): a thin wrapper over `benchmarks.cli`.

    python scripts/benchmark.py speed         # the machine, PyTorch in four forms, ours, ratios
    python scripts/benchmark.py train-step    # the package's compiled training step
    python scripts/benchmark.py all           # every benchmark, and every ratio
    python scripts/benchmark.py --help        # the others: pipeline, inference, predict-dir,
                                              # fit, reference

The benchmarks live in `benchmarks/` beside this folder (not installed with
the package); this script puts the repository root on the import path so
they, the PyTorch reference and this checkout's package are found.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
