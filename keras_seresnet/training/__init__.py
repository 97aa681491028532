"""Training: optimizer, callbacks, the run folder, the loop (`loop.py`),
distribution (`distribute.py`) and the ablation."""
