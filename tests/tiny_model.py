"""The tiny SE-ResNet most tests build: two stages of one block, SE in the second.

Its graph traces in a few seconds, so tests of training, saving, export and
inference check the same code paths as the recipe's model at a fraction of
the cost. The recipe's own shapes are checked in tests/test_model.py.
"""

TINY_MODEL = dict(widths=(8, 16), blocks=(1, 1), se_stages=(2,))
TINY_MODEL_FLAGS = ["--widths", "8", "16", "--blocks", "1", "1", "--se-stages", "2"]
