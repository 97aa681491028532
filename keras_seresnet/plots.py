"""The report's figures as PNG files: training curves, schedules, the ablation's bars,
and the confusion matrix of an evaluation.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas,
never through `pyplot`, so plotting needs no display, changes no global
matplotlib state and is safe in a training process.

A history is a mapping `{column: [value per epoch]}` with an `epoch` column
(zero-based), as `keras.callbacks.History.history` plus `epoch`, or as
`run_folder.read_history_csv` returns it.
"""

import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_seresnet.config import CIFAR10_CLASSES

PLOT_FILES = {
    "loss": "loss.png",  # training and test loss per epoch
    "accuracy": "accuracy.png",  # test accuracy per epoch
    "schedules": "schedules.png",  # learning rate and mixup alpha per epoch
}


def _figure(width=6.4, height=4.0):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path)
    return path


def _epoch_axis(ax):
    ax.set_xlabel("epoch (zero-based)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _column(history, name):
    return [math.nan if v is None else float(v) for v in history.get(name, [])]


def plot_losses(history, path):
    """Training and test loss per epoch.

    Args:
        history: mapping with `epoch`, `loss` and `val_loss` lists.
        path: the PNG file to write.

    Returns:
        `path`.
    """
    fig = _figure()
    ax = fig.add_subplot()
    epochs = history["epoch"]
    ax.plot(epochs, _column(history, "loss"), label="training loss (mixup, smoothing)")
    ax.plot(epochs, _column(history, "val_loss"), label="test loss (smoothing)")
    _epoch_axis(ax)
    ax.set_ylabel("cross-entropy")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_accuracy(history, path):
    """Test accuracy per epoch in percent, the best epoch marked.

    Args:
        history: mapping with `epoch` and `val_accuracy` (fraction in [0, 1]).
        path: the PNG file to write.

    Returns:
        `path`.
    """
    fig = _figure()
    ax = fig.add_subplot()
    epochs = history["epoch"]
    accuracy = [100.0 * a for a in _column(history, "val_accuracy")]
    ax.plot(epochs, accuracy, label="test accuracy")
    finite = [(a, e) for a, e in zip(accuracy, epochs) if not math.isnan(a)]
    if finite:
        best, best_epoch = max(finite)
        ax.plot([best_epoch], [best], "o", label=f"best {best:.2f}% (epoch {best_epoch})")
        ax.annotate(
            f"final {accuracy[-1]:.2f}%",
            (epochs[-1], accuracy[-1]),
            textcoords="offset points",
            xytext=(-10, -15),
            ha="right",
        )
    _epoch_axis(ax)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_schedules(history, path):
    """Learning rate and mixup alpha per epoch, side by side.

    Args:
        history: mapping with `epoch`, `learning_rate` and `mixup_alpha`
            (NaN where mixup is off).
        path: the PNG file to write.

    Returns:
        `path`.
    """
    fig = _figure(width=10.0)
    lr_ax, alpha_ax = fig.subplots(1, 2)
    epochs = history["epoch"]
    lr_ax.plot(epochs, _column(history, "learning_rate"), ".-", markersize=3)
    lr_ax.set_title("Learning rate (warmup + cosine)")
    _epoch_axis(lr_ax)
    lr_ax.set_ylabel("learning rate")
    alpha = _column(history, "mixup_alpha")
    if any(not math.isnan(a) for a in alpha):
        alpha_ax.plot(epochs, alpha, ".-", markersize=3, color="tab:orange")
    else:
        alpha_ax.text(0.5, 0.5, "mixup off", ha="center", va="center", transform=alpha_ax.transAxes)
    alpha_ax.set_title("Mixup alpha (linear decay, floor)")
    _epoch_axis(alpha_ax)
    alpha_ax.set_ylabel("alpha")
    for ax in (lr_ax, alpha_ax):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_history(history, folder):
    """Writes the three training figures of `PLOT_FILES` into `folder`.

    Args:
        history: mapping with `epoch`, `loss`, `val_loss`, `val_accuracy`,
            `learning_rate`, `mixup_alpha`.
        folder: existing output folder.

    Returns:
        `{name: path}` of the files written.
    """
    writers = {"loss": plot_losses, "accuracy": plot_accuracy, "schedules": plot_schedules}
    return {
        name: writer(history, os.path.join(folder, PLOT_FILES[name]))
        for name, writer in writers.items()
    }


def plot_ablation(rows, path):
    """The ablation's bar chart: mean test accuracy per model, spread across seeds.

    Args:
        rows: sequence of mappings with `model` (int), `name` (str),
            `accuracy_mean` (percent) and `accuracy_std` (percent, 0 for one
            seed), in the order to draw.
        path: the PNG file to write.

    Returns:
        `path`.
    """
    fig = _figure(width=7.5, height=4.5)
    ax = fig.add_subplot()
    labels = [f"{row['model']}: {row['name']}" for row in rows]
    means = [row["accuracy_mean"] for row in rows]
    stds = [row["accuracy_std"] for row in rows]
    bars = ax.bar(range(len(rows)), means, yerr=stds, capsize=4, color="tab:blue")
    ax.bar_label(bars, labels=[f"{m:.2f}" for m in means], padding=3)
    ax.set_xticks(range(len(rows)), labels, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    tops = [m + s for m, s in zip(means, stds)]
    ax.set_ylim(0, max(tops, default=0.0) * 1.1 + 1.0)  # room for the labels
    ax.set_title("Ablation: test accuracy per model")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


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
    figure = _figure(size + 1.5, size)
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
