"""The report's figures as PNG files: training curves, schedules, the ablation's bars,
and the confusion matrix of an evaluation.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas,
never through `pyplot`, so plotting needs no display, changes no global
matplotlib state and is safe in a training process. Every file is written
atomically (`keras_seresnet.files.atomic_path`): a reader never sees half a
PNG, and a failed plot leaves the previous file in place.

A history is a mapping `{column: [value per epoch]}` with an `epoch` column
(zero-based), as `keras.callbacks.History.history` plus `epoch`, or as
`keras_seresnet.training.history.read_history_csv` returns it (files of
earlier versions under today's names). The per-epoch evaluation is read from
`test_loss`/`test_accuracy` (the test set, evaluated every epoch as the
reference notebook does) or `val_loss`/`val_accuracy` (a held-out
validation split, or Keras's name for any `validation_data`). On every axis a user reads, epochs count
from 1, as Keras's progress bar does: the history's zero-based epoch `e` is
drawn at `e + 1`, with integer ticks, and any number of epochs (one
included) shows its data.
"""

import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_seresnet import compat, schedules
from keras_seresnet.config import CIFAR10_CLASSES, TrainConfig, check_class_names
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.files import atomic_path

PLOT_FILES = {
    "loss": "loss.png",  # training and test (or validation) loss per epoch
    "accuracy": "accuracy.png",  # test (or validation) accuracy per epoch
    "schedules": "schedules.png",  # learning rate and mixup alpha, both schedule units
}

# Per-epoch evaluation columns, in the order looked for: (prefix, label).
_EVALUATIONS = (("test", "test"), ("val", "validation"))

# Markers keep short histories visible (a single epoch is a single point).
_MARKERS_UP_TO = 50

# Points per epoch of a step-unit curve drawn without the run's steps per epoch.
_CURVE_POINTS = 2000

# A confusion matrix of up to this many classes gets one named tick per class
# and its counts in the cells; a larger one is drawn at this size, by colour
# only, with class-index ticks (thousands of counts and names would be
# unreadable, and slow to draw).
_NAMED_CLASSES = 30


def _figure(width=6.4, height=4.0):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=None):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


def _epochs(history):
    """The history's epochs, 1-based."""
    return [int(e) + 1 for e in history["epoch"]]


def _epoch_axis(ax, epochs):
    """1-based integer epoch ticks; the axis spans at least one epoch either side of a lone point."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        low, high = min(epochs), max(epochs)
        margin = max(0.5, 0.03 * (high - low))
        ax.set_xlim(low - margin, high + margin)


def _column(history, name):
    return [math.nan if v is None else float(v) for v in history.get(name, [])]


def _line(ax, x, y, **kwargs):
    if len(x) <= _MARKERS_UP_TO:
        kwargs.setdefault("marker", "o")
        kwargs.setdefault("markersize", 4)
    return ax.plot(x, y, **kwargs)


def evaluation_columns_and_label(history):
    """`(loss column, accuracy column, label)` of the per-epoch evaluation a history holds.

    `test_*` columns if the history has them, else `val_*`; the label is
    "test" or "validation".

    Raises:
        InvalidValueError: the history has neither.
    """
    for prefix, label in _EVALUATIONS:
        if f"{prefix}_accuracy" in history or f"{prefix}_loss" in history:
            return f"{prefix}_loss", f"{prefix}_accuracy", label
    raise InvalidValueError(
        "Argument `history` must have test_loss/test_accuracy or val_loss/val_accuracy "
        f"columns. Received columns: {sorted(history)}"
    )


def plot_losses(history, path):
    """Writes `loss_figure(history)` to the PNG file `path`; returns `path`."""
    return _save(loss_figure(history), path)


def loss_figure(history):
    """Training and test (or validation) loss per epoch.

    Args:
        history: mapping with `epoch`, `loss` and `test_loss` (or `val_loss`)
            lists.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    loss_column, _, label = evaluation_columns_and_label(history)
    fig = _figure()
    ax = fig.add_subplot()
    epochs = _epochs(history)
    _line(ax, epochs, _column(history, "loss"), label="training loss (mixup, smoothing)")
    _line(ax, epochs, _column(history, loss_column), label=f"{label} loss (smoothing)")
    _epoch_axis(ax, epochs)
    ax.set_ylabel("cross-entropy")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_accuracy(history, path):
    """Writes `accuracy_figure(history)` to the PNG file `path`; returns `path`."""
    return _save(accuracy_figure(history), path)


def accuracy_figure(history):
    """Test (or validation) accuracy per epoch in percent, the best epoch marked.

    Args:
        history: mapping with `epoch` and `test_accuracy` (or
            `val_accuracy`), fractions in [0, 1].

    Returns:
        A `matplotlib.figure.Figure`.
    """
    _, accuracy_column, label = evaluation_columns_and_label(history)
    fig = _figure()
    ax = fig.add_subplot()
    epochs = _epochs(history)
    accuracy = [100.0 * a for a in _column(history, accuracy_column)]
    _line(ax, epochs, accuracy, label=f"{label} accuracy")
    finite = [(a, -e) for a, e in zip(accuracy, epochs) if not math.isnan(a)]
    if finite:
        best, best_epoch = max(finite)  # the first epoch of the best accuracy
        best_epoch = -best_epoch
        ax.plot(
            [best_epoch],
            [best],
            "o",
            color="tab:red",
            label=f"best {best:.2f}% (epoch {best_epoch})",
        )
        ax.annotate(
            f"final {accuracy[-1]:.2f}%",
            (epochs[-1], accuracy[-1]),
            textcoords="offset points",
            xytext=(-10, -15),
            ha="right",
        )
    _epoch_axis(ax, epochs)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{label.capitalize()} accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def _schedule_curves(config, steps_per_epoch):
    """`{unit: (x, lr, alpha)}` of both units over the whole run, x in 1-based epochs."""
    per_epoch = steps_per_epoch or max(1, _CURVE_POINTS // config.epochs)
    total = config.epochs * per_epoch
    # At most about _CURVE_POINTS points per curve, the last step included.
    stride = -(-total // _CURVE_POINTS)
    lr_args = dict(
        epochs=config.epochs,
        base_lr=config.base_lr,
        min_lr=config.min_lr,
        warmup_epochs=config.warmup_epochs,
    )
    alpha_args = dict(
        epochs=config.epochs, alpha=config.mixup_alpha, alpha_min=config.mixup_alpha_min
    )
    curves = {}
    for unit, steps in (("epoch", 1), ("step", per_epoch)):
        points = (
            range(config.epochs)
            if unit == "epoch"
            else sorted({*range(0, total, stride), total - 1})
        )
        located = [divmod(s, steps) for s in points]
        x = [1 + s / steps for s in points]
        lr = [
            schedules.warmup_cosine_lr(e, b, steps_per_epoch=steps, unit=unit, **lr_args)
            for e, b in located
        ]
        alpha = [
            schedules.decayed_mixup_alpha(e, b, steps_per_epoch=steps, unit=unit, **alpha_args)
            for e, b in located
        ]
        # Each value holds until the next point; the last one until the run's end.
        curves[unit] = (x + [1 + config.epochs], lr + lr[-1:], alpha + alpha[-1:])
    return curves


def plot_schedules(history, path, *, config=None, steps_per_epoch=None):
    """Writes `schedules_figure(...)` to the PNG file `path`; returns `path`."""
    return _save(schedules_figure(history, config=config, steps_per_epoch=steps_per_epoch), path)


def schedules_figure(history, *, config=None, steps_per_epoch=None):
    """Learning rate and mixup alpha, side by side.

    The history's per-epoch values (the value of each epoch's first step)
    are drawn as points. With `config`, both schedule units' curves over the
    whole run are drawn too, the run's own unit (`config.schedule_unit`) as a
    solid line, the other dashed: the epoch unit is a staircase, one value
    per epoch; the step unit changes every step and reaches the learning
    rate's floor at the last step.

    Args:
        history: mapping with `epoch`, `learning_rate` and `mixup_alpha`
            (NaN or missing where mixup is off).
        path: the PNG file to write.
        config: the run's `TrainConfig` (schedule and mixup fields), or None
            to draw the history only. Default None.
        steps_per_epoch: batches per epoch, for the step unit's curve; None:
            a fine grid (the curve's shape does not depend on it). Default
            None.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    fig = _figure(width=10.0)
    lr_ax, alpha_ax = fig.subplots(1, 2)
    epochs = _epochs(history)
    alpha = _column(history, "mixup_alpha")
    mixup = any(not math.isnan(a) for a in alpha) or (config is not None and config.mixup_cutout)
    if config is not None:
        own = config.schedule_unit
        for unit, (x, lr, alpha_curve) in _schedule_curves(config, steps_per_epoch).items():
            style = dict(
                linewidth=1.8 if unit == own else 1.0,
                linestyle="-" if unit == own else "--",
                drawstyle="steps-post",
                label=f"{unit} unit" + (" (this run)" if unit == own else ""),
            )
            lr_ax.plot(x, lr, color="tab:blue" if unit == own else "tab:gray", **style)
            if mixup:
                alpha_ax.plot(
                    x, alpha_curve, color="tab:orange" if unit == own else "tab:gray", **style
                )
    # With the curves drawn, the logged values are points on them.
    logged = dict(
        linestyle="-" if config is None else "none",
        marker="o",
        markersize=4,
        label="logged (first step of each epoch)",
    )
    lr_ax.plot(epochs, _column(history, "learning_rate"), color="tab:blue", **logged)
    lr_ax.set_title("Learning rate (warmup + cosine)")
    lr_ax.set_ylabel("learning rate")
    if mixup:
        alpha_ax.plot(epochs, alpha, color="tab:orange", **logged)
    else:
        alpha_ax.text(0.5, 0.5, "mixup off", ha="center", va="center", transform=alpha_ax.transAxes)
    alpha_ax.set_title("Mixup alpha (linear decay, floor)")
    alpha_ax.set_ylabel("alpha")
    span = epochs + ([1, config.epochs + 1] if config is not None else [])
    for ax in (lr_ax, alpha_ax):
        _epoch_axis(ax, span)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    return fig


def plot_history(history, folder, *, config=None, steps_per_epoch=None):
    """Writes the three training figures of `PLOT_FILES` into `folder`.

    Args:
        history: mapping with `epoch`, `loss`, `test_loss` and
            `test_accuracy` (or `val_loss` and `val_accuracy`),
            `learning_rate`, `mixup_alpha`.
        folder: the output folder (created if missing).
        config: the run's `TrainConfig`, for the schedules' curves
            (`plot_schedules`). Default None: the logged values only.
        steps_per_epoch: batches per epoch, for the step unit's curve.
            Default None.

    Returns:
        `{name: path}` of the files written.
    """
    figures = history_figures(history, config=config, steps_per_epoch=steps_per_epoch)
    return {
        name: _save(figure, os.path.join(folder, PLOT_FILES[name]))
        for name, figure in figures.items()
    }


def plot_run(history, folder, *, config_file, train_images=None):
    """Writes a run's training figures: `plot_history` with the run's schedules.

    The schedules' curves come from the run's configuration, so a run in the
    step unit shows its learning rate and mixup alpha at every step, not only
    the logged value of each epoch's first step.

    Args:
        history: as for `plot_history`.
        folder: the output folder (created if missing).
        config_file: path of the run's `config.json` (`TrainConfig.to_json`);
            if no such file exists, the logged values only are drawn.
        train_images: training images per epoch (`results.json`'s
            `train_images`): the step unit's curve then has one point per
            batch, ceil(train_images / batch_size) per epoch, as the training
            pipeline makes them. Default None: a fine grid of the same curve.

    Returns:
        `{name: path}` of the files written.

    Raises:
        ConfigError: `config_file` is not a valid configuration.
    """
    config = TrainConfig.from_json(config_file) if os.path.exists(config_file) else None
    steps_per_epoch = None
    if config is not None and train_images:
        steps_per_epoch = -(-train_images // config.batch_size)
    return plot_history(history, folder, config=config, steps_per_epoch=steps_per_epoch)


def history_figures(history, *, config=None, steps_per_epoch=None):
    """`{name: Figure}` of the three training figures, keyed as `PLOT_FILES`."""
    return {
        "loss": loss_figure(history),
        "accuracy": accuracy_figure(history),
        "schedules": schedules_figure(history, config=config, steps_per_epoch=steps_per_epoch),
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
        class_names: C names, indexed by class (a sequence, not a single
            string). Default `CIFAR10_CLASSES`.
        path: if given, the figure is saved there (format from the suffix,
            e.g. `.png`), at 150 dpi.
        title: figure title. Default "Confusion matrix (N images, accuracy A%)".

    Any number of classes is drawn. Up to 30 classes, each tick is named
    and each cell shows its count; above that, the figure keeps the size of
    30 classes and shows the colours only, with class-index ticks.

    Returns:
        The `matplotlib.figure.Figure`.

    Raises:
        ValueError: `matrix` is not square or does not match `class_names`,
            or `class_names` is a single string (`check_class_names`).
    """
    matrix = np.asarray(matrix)
    names = list(check_class_names(class_names))
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

    named = len(names) <= _NAMED_CLASSES
    size = 1.0 + 0.6 * min(len(names), _NAMED_CLASSES)
    figure = _figure(size + 1.5, size)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    index = "" if named else " (index)"
    axes.set_xlabel(f"predicted class{index}")
    axes.set_ylabel(f"true class{index}")
    axes.set_title(title)
    if named:
        ticks = np.arange(len(names))
        axes.set_xticks(ticks, names, rotation=45, ha="right")
        axes.set_yticks(ticks, names)
        for i, j in np.ndindex(matrix.shape):
            axes.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share[i, j] > 0.5 else "black",
            )
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if path is not None:
        _save(figure, path, dpi=150)
    else:
        figure.tight_layout()
    return figure


def __getattr__(name):
    """The names renamed here (`keras_seresnet.compat.RENAMED_NAMES`)."""
    return compat.moved_name(__name__, name)
