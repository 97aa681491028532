import math

import numpy as np
from matplotlib.image import imread

from keras_seresnet.plots import PLOT_FILES, plot_ablation, plot_history


def history(epochs=5, alpha=True):
    return {
        "epoch": list(range(epochs)),
        "learning_rate": [0.1 * (e + 1) / epochs for e in range(epochs)],
        "mixup_alpha": [0.4 - 0.05 * e if alpha else math.nan for e in range(epochs)],
        "loss": [2.0 - 0.1 * e for e in range(epochs)],
        "val_loss": [1.9 - 0.1 * e for e in range(epochs)],
        "val_accuracy": [0.3 + 0.1 * e for e in range(epochs)],
    }


def test_history_plots_are_real_pngs_and_need_no_display(tmp_path):
    paths = plot_history(history(), tmp_path)
    assert sorted(paths) == sorted(PLOT_FILES)
    for path in paths.values():
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 500
        assert np.ptp(image) > 0.5  # something was drawn


def test_schedules_plot_handles_mixup_off_and_a_single_epoch(tmp_path):
    paths = plot_history(history(epochs=1, alpha=False), tmp_path)
    assert all(imread(p).size for p in paths.values())


def test_ablation_chart(tmp_path):
    rows = [
        {"model": 1, "name": "full recipe", "accuracy_mean": 95.4, "accuracy_std": 0.1},
        {"model": 5, "name": "no SE", "accuracy_mean": 94.9, "accuracy_std": 0.0},
    ]
    image = imread(plot_ablation(rows, tmp_path / "ablation.png"))
    assert image.shape[1] >= 700
