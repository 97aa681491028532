"""Predicting folders of image files and arrays of images, and writing CSV.

`predict_dir` streams: while the model runs on batch k, a background thread
decodes batch k+1 (itself with a pool of decoding threads; Pillow releases the
GIL while it decodes), so at most two batches of decoded images are held at
once, whatever the folder's size, and decoding overlaps inference.
"""

import concurrent.futures
import csv
import os
import warnings

import keras
import numpy as np

from keras_seresnet.config import CIFAR10_CLASSES
from keras_seresnet.data.images import IMAGE_EXTENSIONS, list_images, read_images
from keras_seresnet.inference.loading import ProbabilityModel, _check_batch_size

ON_ERROR_CHOICES = ("skip", "raise")
FOLDER_CSV_FIELDS = ("path", "label", "class_name", "confidence")
PICKLE_CSV_FIELDS = ("ID", "Labels")  # the course's submission format


def iter_predict_dir(
    directory,
    model,
    *,
    batch_size=256,
    recursive=True,
    on_error="skip",
    top_k=None,
    safe_mode=True,
    class_names=CIFAR10_CLASSES,
    workers=None,
    verbose="auto",
):
    """Like `predict_dir`, but yields the records one by one as batches finish.

    Use it to stream a huge folder to a file without holding every record.
    Arguments are checked, the folder listed and the model loaded when it is
    called; decoding and prediction happen as the records are consumed.
    With `on_error="raise"`, records of the batches before the first broken
    file are yielded; the model then stops, the rest of the folder is still
    decoded to find every broken file, and the `ValueError` naming all of
    them is raised at the end. Arguments, records and errors: see
    `predict_dir`.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(
            f"Argument `on_error` must be one of {ON_ERROR_CHOICES}. Received: on_error={on_error!r}"
        )
    _check_batch_size(batch_size)
    if verbose not in ("auto", 0, 1, True, False):
        raise ValueError(
            f"Argument `verbose` must be 'auto', 0 or 1. Received: verbose={verbose!r}"
        )
    paths = list_images(directory, recursive=recursive)
    if not paths:
        raise ValueError(
            f"No image files under {os.fspath(directory)} (looked for the extensions "
            f"{', '.join(IMAGE_EXTENSIONS)} in any case"
            f"{', in subfolders too' if recursive else ', not in subfolders (recursive=False)'})."
        )
    classifier = model if isinstance(model, ProbabilityModel) else ProbabilityModel(
        model, safe_mode=safe_mode
    )
    class_names = tuple(class_names)
    if top_k is not None and (
        not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= len(class_names)
    ):
        raise ValueError(
            f"Argument `top_k` must be None or an integer in [1, {len(class_names)}]. "
            f"Received: top_k={top_k!r}"
        )
    show = (len(paths) > batch_size) if verbose == "auto" else bool(verbose)
    progbar = keras.utils.Progbar(len(paths), unit_name="image") if show else None
    return _stream(directory, paths, classifier, batch_size, on_error, top_k, class_names,
                   workers, progbar)


def _stream(directory, paths, classifier, batch_size, on_error, top_k, class_names, workers,
            progbar):
    chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    broken = []
    with concurrent.futures.ThreadPoolExecutor(1) as prefetch:
        decoding = prefetch.submit(read_images, chunks[0], workers=workers)
        for k in range(len(chunks)):
            images, kept, errors = decoding.result()
            if k + 1 < len(chunks):
                decoding = prefetch.submit(read_images, chunks[k + 1], workers=workers)
            for error in errors:
                if on_error == "skip":
                    warnings.warn(f"Skipping broken image {error}", stacklevel=2)
            broken.extend(errors)
            if len(kept) and not (on_error == "raise" and broken):
                probabilities = classifier(images)
                _check_width(probabilities, class_names, classifier)
                yield from _records(kept, probabilities, class_names, top_k)
            if progbar is not None:
                progbar.add(len(chunks[k]))
    if broken and on_error == "raise":
        raise ValueError(
            f"{len(broken)} broken image file(s) under {os.fspath(directory)}:\n"
            + "\n".join(f"  {e}" for e in broken)
        )


def predict_dir(
    directory,
    model,
    *,
    batch_size=256,
    recursive=True,
    on_error="skip",
    top_k=None,
    safe_mode=True,
    class_names=CIFAR10_CLASSES,
    workers=None,
    verbose="auto",
):
    """Classifies every image file under a folder.

    Files are images by extension (jpg, jpeg, png, bmp, gif, webp, in any
    case); other files are ignored. They are read in sorted path order.
    Symbolic links are followed only when they lead to a file or folder
    inside `directory`; links leading outside are skipped with a warning.
    Every image, of any size and mode, becomes 32x32 RGB: greyscale is
    repeated over the channels, palettes expanded, transparency composited
    over white, animations give their first frame; a non-32x32 image is
    centre-cropped to its largest square and resized to 32x32 with
    antialiased bilinear filtering. Images whose header declares more than
    `keras_seresnet.data.images.MAX_PIXELS` (40 million) pixels, such as
    decompression bombs, are refused as broken before they are decoded.
    Decoding runs in parallel threads, one batch ahead of the model, which
    runs batch by batch.

    Args:
        directory: the folder (str or `os.PathLike`).
        model: a `keras.Model` returning logits (as `build_seresnet`'s does),
            a path to a `.keras` file, or a SavedModel folder written by
            `export_savedmodel` (which returns probabilities).
        batch_size: images per model call and per decoding batch. Default 256.
        recursive: also read subfolders. Default True.
        on_error: what to do with broken files (empty, truncated, not really
            an image, too large). "skip" (default): warn once per broken file,
            naming it, and leave it out. "raise": raise one `ValueError`
            naming every broken file.
        top_k: if an integer k, each record also gets `top_k`: the k most
            probable classes. Default None.
        safe_mode: Keras safe mode when `model` is a `.keras` path. Default
            True: a file with a `Lambda` layer is refused; pass False only
            for a file you trust.
        class_names: names of the model's classes, indexed by label.
            Default `CIFAR10_CLASSES`.
        workers: decoding threads. Default `min(8, os.cpu_count())`.
        verbose: 1 shows a progress bar, 0 none; "auto" (default) shows it
            when the folder holds more than one batch.

    Returns:
        A list with one dict per readable image, in sorted path order:
        `path` (str), `label` (int class index), `class_name` (str) and
        `confidence` (float, the probability of `label`), plus, with
        `top_k`, `top_k`: a list of k dicts {`label`, `class_name`,
        `confidence`}, most probable first.

    Raises:
        FileNotFoundError: `directory` does not exist.
        NotADirectoryError: `directory` is not a folder.
        ValueError: no image files under `directory`; a broken file with
            `on_error="raise"`; an invalid argument.
    """
    return list(
        iter_predict_dir(
            directory,
            model,
            batch_size=batch_size,
            recursive=recursive,
            on_error=on_error,
            top_k=top_k,
            safe_mode=safe_mode,
            class_names=class_names,
            workers=workers,
            verbose=verbose,
        )
    )


def predict_images(images, model, *, batch_size=256, safe_mode=True, verbose="auto"):
    """Class probabilities of an array of images.

    Args:
        images: array [N, 32, 32, 3] of raw RGB pixels in [0, 255] (uint8 or
            float), N >= 1.
        model: as in `predict_dir`.
        batch_size: images per model call. Default 256.
        safe_mode: as in `predict_dir`.
        verbose: as in `predict_dir`.

    Returns:
        float32 array [N, num_classes] of probabilities; `argmax(axis=1)`
        gives the labels.

    Raises:
        ValueError: `images` is not [N, 32, 32, 3] with N >= 1.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) == 0:
        raise ValueError(
            "Argument `images` must be an array [N, 32, 32, 3] with N >= 1. "
            f"Received shape {images.shape}"
        )
    classifier = model if isinstance(model, ProbabilityModel) else ProbabilityModel(
        model, safe_mode=safe_mode
    )
    show = (len(images) > batch_size) if verbose == "auto" else bool(verbose)
    progbar = keras.utils.Progbar(len(images), unit_name="image") if show else None
    return classifier.predict(images, batch_size=batch_size, progbar=progbar)


def _check_width(probabilities, class_names, classifier):
    if probabilities.shape[-1] != len(class_names):
        raise ValueError(
            f"{classifier.source} predicts {probabilities.shape[-1]} classes but "
            f"`class_names` has {len(class_names)}; pass matching `class_names`."
        )


def _records(paths, probabilities, class_names, top_k):
    labels = probabilities.argmax(axis=1)
    for path, label, p in zip(paths, labels, probabilities):
        record = {
            "path": path,
            "label": int(label),
            "class_name": class_names[label],
            "confidence": float(p[label]),
        }
        if top_k is not None:
            # A stable sort on -p keeps ties in class order, the same as argmax.
            order = np.argsort(-p, kind="stable")[:top_k]
            record["top_k"] = [
                {"label": int(i), "class_name": class_names[i], "confidence": float(p[i])}
                for i in order
            ]
        yield record


def write_predictions_csv(records, path):
    """Writes folder predictions as CSV `path,label,class_name,confidence`.

    Args:
        records: iterable of records from `predict_dir`/`iter_predict_dir`
            (consumed as it goes, so a generator streams to disk).
        path: the CSV file to write.

    Returns:
        The number of rows written.
    """
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(FOLDER_CSV_FIELDS)
        for record in records:
            writer.writerow(
                [record["path"], record["label"], record["class_name"], f"{record['confidence']:.6f}"]
            )
            count += 1
    return count


def write_labels_csv(labels, path):
    """Writes labels in the course's format: header `ID,Labels`, row index and class.

    Args:
        labels: integer class indices [N], in the pickle's row order.
        path: the CSV file to write.

    Returns:
        The number of rows written.
    """
    labels = np.asarray(labels)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PICKLE_CSV_FIELDS)
        writer.writerows((i, int(label)) for i, label in enumerate(labels))
    return len(labels)
