"""Figures: the confusion matrix of an evaluation.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot, so no
display or global figure state is involved (works headless and in threads).
"""

import numpy as np
from matplotlib.figure import Figure

from keras_seresnet.config import CIFAR10_CLASSES


def plot_confusion_matrix(matrix, class_names=CIFAR10_CLASSES, path=None, *, title=None):
    """Draws a confusion matrix: cells coloured by row share, annotated with counts.

    Args:
        matrix: integer array [C, C]; `matrix[i, j]` counts images of true
            class i predicted as class j.
        class_names: C names, indexed by class. Default `CIFAR10_CLASSES`.
        path: if given, the figure is saved there (format from the suffix,
            e.g. `.png`), at 150 dpi.
        title: figure title. Default "Confusion matrix (N images, accuracy A%)".

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: `matrix` is not square or does not match `class_names`.
    """
    matrix = np.asarray(matrix)
    names = list(class_names)
    if matrix.ndim != 2 or matrix.shape != (len(names), len(names)):
        raise ValueError(
            f"Argument `matrix` must be square [C, C] with C = len(class_names) = {len(names)}. "
            f"Received shape {matrix.shape}"
        )
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    if title is None:
        total = int(matrix.sum())
        accuracy = 100.0 * np.trace(matrix) / max(total, 1)
        title = f"Confusion matrix ({total:,} images, accuracy {accuracy:.2f}%)"

    size = 1.0 + 0.6 * len(names)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            axes.text(
                j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=150)
    return figure
