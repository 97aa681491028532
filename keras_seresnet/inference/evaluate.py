"""Evaluating a model on labelled images: accuracy, losses, per-class accuracy.

Both losses are computed from the model's float32 probabilities p (the
softmax of the logits, or a SavedModel's output), with log p floored at the
smallest normal float32 so a zero probability gives a large finite loss:

- `loss`: cross-entropy -log p[y], no label smoothing (the plain test loss).
- `loss_smoothed`: cross-entropy against the smoothed target
  (1 - s) * onehot(y) + s / C, with s = `label_smoothing` (default: the
  recipe's, `TrainConfig.label_smoothing`, 0.08), the loss the recipe trains
  with and reports as its test loss.

Optional horizontal-flip test-time augmentation (TTA) averages the
probabilities of each image and its mirror image; its numbers are reported
separately under `tta`, never mixed with the plain ones.
"""

import json
import numbers

import numpy as np

from keras_seresnet.config import TrainConfig, check_class_names
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.files import write_text
from keras_seresnet.inference.loading import as_probability_model
from keras_seresnet.inference.predict import (
    check_images,
    check_takes_images,
    default_class_names,
    predict_images,
)

RECIPE_LABEL_SMOOTHING = TrainConfig().label_smoothing  # the recipe's, from its one home
_TINY = np.finfo(np.float32).tiny


def confusion_matrix(labels, predictions, num_classes):
    """Counts of (true, predicted) pairs.

    Args:
        labels: integer true classes [N] in [0, num_classes).
        predictions: integer predicted classes [N] in [0, num_classes).
        num_classes: C.

    Returns:
        int64 array [C, C]; entry [i, j] counts true class i predicted as j.
    """
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def scores(probabilities, labels, *, label_smoothing=RECIPE_LABEL_SMOOTHING, class_names=None):
    """The numbers of one evaluation from probabilities and true labels.

    Args:
        probabilities: float array [N, C] (rows sum to 1).
        labels: integer array [N] in [0, C).
        label_smoothing: s of `loss_smoothed`, in [0, 1). Default 0.08.
        class_names: C names for `per_class_accuracy`, a sequence (not a
            single string). Default None: `CIFAR10_CLASSES` for C = 10, else
            "0", "1", ...

    Returns:
        dict: `accuracy` (fraction in [0, 1]), `loss` (mean cross-entropy,
        no smoothing), `loss_smoothed` (with `label_smoothing`),
        `per_class_accuracy` ({name: fraction, or None for a class with no
        images}), `confusion_matrix` (list of C lists of ints).

    Raises:
        ValueError: `class_names` is a single string.
    """
    class_names = check_class_names(class_names)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    labels = np.asarray(labels).astype(np.int64)
    num_classes = probabilities.shape[1]
    if class_names is None:
        class_names = default_class_names(num_classes)
    log_p = np.log(np.maximum(probabilities, _TINY)).astype(np.float64)
    nll = -log_p[np.arange(len(labels)), labels]
    smoothed = (1.0 - label_smoothing) * nll - label_smoothing / num_classes * log_p.sum(axis=1)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, num_classes)
    totals = matrix.sum(axis=1)
    per_class = {
        name: (float(matrix[i, i] / totals[i]) if totals[i] else None)
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "loss": float(nll.mean()),
        "loss_smoothed": float(smoothed.mean()),
        "per_class_accuracy": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_model(
    model,
    images,
    labels,
    *,
    batch_size=256,
    tta=False,
    label_smoothing=RECIPE_LABEL_SMOOTHING,
    class_names=None,
    safe_mode=True,
    precision="float32",
    verbose="auto",
):
    """Evaluates a model on labelled images.

    Args:
        model: a `keras.Model` returning logits, a path to a `.keras` file,
            a SavedModel folder from `export_savedmodel`, or a
            `ProbabilityModel`.
        images: array [N, 32, 32, 3] of raw RGB pixels in [0, 255] (uint8 or
            float), N >= 1.
        labels: integer array [N] of true classes ([N, 1], as
            `keras.datasets` returns them, too).
        batch_size: images per model call. Default 256.
        tta: also evaluate with horizontal-flip test-time augmentation (mean
            of the probabilities of the image and its mirror). Default False.
        label_smoothing: s of `loss_smoothed`. Default 0.08 (the recipe's).
        class_names: names indexed by class, a sequence (not a single
            string). Default None: `CIFAR10_CLASSES` for a model with 10
            outputs, else "0", "1", ...
        safe_mode: Keras safe mode for a `.keras` path. Default True.
        precision: compute precision of a Keras model: "float32" (default),
            "bfloat16" or "float16" (see `ProbabilityModel`).
        verbose: progress bar: 1, 0, or "auto" (more than one batch).

    Returns:
        dict with `num_images`, `label_smoothing`, `model`, the keys of
        `scores` (plain evaluation), and with `tta`, `tta`: the keys of
        `scores` for the flip-averaged probabilities.

    Raises:
        FileNotFoundError: a model path that does not exist.
        InvalidValueError: labels outside [0, num_classes) (the model's
            classes).
        ValueError: `images` not [N, 32, 32, 3] (N >= 1), `labels` not
            integers (one-hot or float labels included), mismatched
            `images`/`labels`, a `label_smoothing` outside [0, 1), a
            `class_names` that is a single string, a Keras model that is
            unbuilt or does not map 32x32 RGB images to class scores
            (`check_takes_images`; checked before the labels and the class
            count), or a model whose class count differs from `class_names`.
    """
    images = check_images(images)
    labels = np.asarray(labels)
    if labels.shape == (len(images), 1):
        labels = labels.reshape(-1)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "Argument `labels` must be integer class indices [N] (or [N, 1]); for one-hot "
            "labels pass `labels.argmax(axis=1)`. Received: labels with shape "
            f"{labels.shape} and dtype {labels.dtype}"
        )
    if len(labels) != len(images):
        raise ValueError(
            "Arguments `images` and `labels` must hold the same number of images; "
            f"received images {images.shape} and labels {labels.shape}"
        )
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(
            "Argument `label_smoothing` must be a number in [0, 1). "
            f"Received: label_smoothing={label_smoothing!r}"
        )
    class_names = check_class_names(class_names)
    classifier = as_probability_model(model, safe_mode=safe_mode, precision=precision)
    check_takes_images(classifier)
    width = classifier.num_classes
    if class_names is not None and width is not None and width != len(class_names):
        raise ValueError(
            f"{classifier.source} predicts {width} classes but "
            f"`class_names` has {len(class_names)}."
        )
    _check_labels(labels, len(class_names) if class_names is not None else width)
    run = dict(batch_size=batch_size, verbose=verbose)
    probabilities = predict_images(images, classifier, **run)
    if class_names is None:
        class_names = default_class_names(probabilities.shape[1])
        _check_labels(labels, len(class_names))
    elif probabilities.shape[1] != len(class_names):
        raise ValueError(
            f"{classifier.source} predicts {probabilities.shape[1]} classes but "
            f"`class_names` has {len(class_names)}."
        )
    results = {
        "model": classifier.source,
        "num_images": int(len(labels)),
        "label_smoothing": float(label_smoothing),
        **scores(probabilities, labels, label_smoothing=label_smoothing, class_names=class_names),
    }
    if tta:
        mirrored = predict_images(images[:, :, ::-1, :], classifier, **run)
        results["tta"] = scores(
            (probabilities + mirrored) / 2.0,
            labels,
            label_smoothing=label_smoothing,
            class_names=class_names,
        )
    return results


def _check_labels(labels, num_classes):
    if (
        num_classes is not None
        and len(labels)
        and (labels.min() < 0 or labels.max() >= num_classes)
    ):
        raise InvalidValueError(
            f"Argument `labels` must lie in [0, {num_classes}) (the model's classes). "
            f"Received values from {labels.min()} to {labels.max()}"
        )


def format_results(results):
    """A plain-text table of `evaluate_model`'s results (TTA in its own column)."""
    tta = results.get("tta")
    header = f"{'':<26}{'plain':>10}" + (f"{'flip TTA':>10}" if tta else "")
    lines = [f"{results['model']}: {results['num_images']:,} test images", header]

    def row(name, plain, augmented, fmt):
        text = f"{name:<26}{fmt(plain):>10}"
        return text + (f"{fmt(augmented):>10}" if tta else "")

    percent = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    number = lambda v: f"{v:.4f}"  # noqa: E731
    lines.append(row("accuracy", results["accuracy"], tta and tta["accuracy"], percent))
    lines.append(row("loss (CE)", results["loss"], tta and tta["loss"], number))
    lines.append(
        row(
            f"loss (CE, smooth {results['label_smoothing']:g})",
            results["loss_smoothed"],
            tta and tta["loss_smoothed"],
            number,
        )
    )
    for name, value in results["per_class_accuracy"].items():
        lines.append(row(f"  {name}", value, tta and tta["per_class_accuracy"][name], percent))
    return "\n".join(lines)


def write_results_json(results, path):
    """Writes `evaluate_model`'s results as indented JSON, complete or not at all.

    Keys keep their order (per-class accuracies in class order). On an error
    (a value JSON cannot hold) an existing `path` keeps its contents.
    """
    write_text(path, json.dumps(results, indent=2) + "\n")
