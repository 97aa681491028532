"""The names of a run folder's entries (what each holds: `run_folder`).

Keras-free, like `history`, so that code which only reads a run folder
(`keras-seresnet-plots`) does not import TensorFlow.
"""

CONFIG = "config.json"
HISTORY = "history.csv"
BEST = "best.keras"
FINAL = "final.keras"
RESULTS = "results.json"
PLOTS = "plots"
CHECKPOINT = "checkpoint"
TENSORBOARD = "tensorboard"  # with TrainConfig.tensorboard
STATE = "state.json"  # inside CHECKPOINT
TMP_PREFIX = ".tmp-"  # files being written (`keras_seresnet.files`)

# The entries this package writes; `--overwrite` removes exactly these.
RUN_ENTRIES = (CONFIG, HISTORY, BEST, FINAL, RESULTS, PLOTS, CHECKPOINT, TENSORBOARD)
