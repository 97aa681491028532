"""Throughput benchmarks of keras_seresnet, beside the package (not installed).

Run them from the repository root, with the package importable
(`pip install -e .`):

    python scripts/benchmark.py speed        # the machine, the PyTorch anchors, our figures
    python -m benchmarks train-step          # the same command line

Modules: `timing` (timed runs, results, synthetic data), `machine` (CPU
model and features, the recommended CPU precision), `flops` (FLOPs counted
from a built model, the machine's matrix-multiply rate), `training`
(pipeline, training step, `train()` end to end), `inference` (bare model,
JPEG decoding, `predict_dir`), `reference` (the PyTorch notebook's model in
four forms) and `cli` (the command line).
"""
