"""Predicting folders of image files and arrays of images, and writing CSV.

`iter_predict_dir` streams: while the model runs on batch k, a background
thread decodes batch k+1 (itself with a pool of decoding threads; Pillow
releases the GIL while it decodes), so at most two batches of decoded images
are held at once, whatever the folder's size, and decoding overlaps
inference. `predict_dir` is the same as a list.

The CSV writers write to a temporary file and move it into place only when
every row is written: a failed prediction leaves an existing CSV as it was.
"""

import concurrent.futures
import csv
import os
import warnings

import keras
import numpy as np

from keras_seresnet import pretrained
from keras_seresnet.config import CIFAR10_CLASSES, check_class_names, is_integer
from keras_seresnet.data.images import IMAGE_EXTENSIONS, list_images, read_images
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.files import atomic_path
from keras_seresnet.inference.loading import as_probability_model, check_batch_size

ON_ERROR_CHOICES = ("skip", "raise")
FOLDER_CSV_FIELDS = ("path", "label", "class_name", "confidence")
PICKLE_CSV_FIELDS = ("ID", "Labels")  # the course's submission format
IMAGE_SHAPE = (32, 32, 3)  # what every image becomes, and what the model must take


def iter_predict_dir(
    directory,
    model=pretrained.DEFAULT,
    *,
    batch_size=256,
    recursive=True,
    follow_symlinks=True,
    on_error="skip",
    top_k=None,
    safe_mode=True,
    precision="float32",
    class_names=None,
    workers=None,
    verbose="auto",
):
    """Classifies every image file under a folder, yielding records as batches finish.

    Files are images by extension (jpg, jpeg, png, bmp, gif, webp, in any
    case); other files are ignored. They are read in sorted path order.
    Symbolic links (to files and folders) are followed wherever they lead,
    with a link cycle skipped with a warning; a link to nothing is a broken
    file. `directory` may also be one image file, which gives one record
    (whatever its extension); a file named this way that cannot be read
    raises its `ImageError` (a `ValueError` naming it), whatever `on_error`
    says. Every image, of any size and mode, becomes
    32x32 RGB: greyscale is repeated over the channels, palettes expanded,
    transparency composited over white, animations give their first frame;
    a non-32x32 image is centre-cropped to its largest square and resized to
    32x32 with antialiased bilinear filtering. Images whose header declares
    more than `keras_seresnet.data.images.MAX_PIXELS` (40 million) pixels,
    such as decompression bombs, are refused as broken before they are
    decoded.

    Arguments are checked, the folder listed and the model loaded when the
    function is called; decoding and prediction happen as the records are
    consumed, so a huge folder streams to a file without holding every
    record. With `on_error="raise"`, records of the batches before the first
    broken file are yielded; the model then stops, the rest of the folder is
    still decoded to find every broken file, and the `ValueError` naming all
    of them is raised at the end.

    Args:
        directory: a folder, or one image file (str or `os.PathLike`).
        model: a `keras.Model` returning logits (as `build_seresnet`'s does),
            a name of the package's pretrained weights, a path to a
            `.keras` file, a SavedModel folder written by `export_savedmodel`
            (which returns probabilities), or a `ProbabilityModel`. Default
            "cifar10": the package's pretrained CIFAR-10 weights
            (`build_seresnet(weights="cifar10")`, docs/weights.md). A Keras model must be built, with one input
            of shape (None, 32, 32, 3) (None allowed for any dimension) and
            an output of shape (None, num_classes).
        batch_size: images per model call and per decoding batch. Default 256.
        recursive: also read subfolders. Default True.
        follow_symlinks: follow symbolic links below `directory`. Default
            True; False leaves every link out (one warning says how many).
        on_error: what to do with broken files found in a folder (empty,
            truncated, not really an image, too large, a dangling link).
            "skip" (default): warn
            once per broken file, naming it, and leave it out. "raise":
            raise one `ValueError` naming every broken file.
        top_k: if an integer k, each record also gets `top_k`: the k most
            probable classes. Default None.
        safe_mode: Keras safe mode when `model` is a `.keras` path. Default
            True: a file with a `Lambda` layer is refused; pass False only
            for a file you trust.
        precision: "float32" (default), "bfloat16" or "float16": the
            compute precision of a Keras model (see `ProbabilityModel`);
            probabilities are float32 in every case.
        class_names: names of the model's classes, indexed by label: a
            sequence of strings (not a single string). Default None:
            `CIFAR10_CLASSES` for a model with 10 outputs, else the label
            numbers as strings ("0", "1", ...).
        workers: decoding threads, a positive integer. Default None:
            `min(8, os.cpu_count())`.
        verbose: 1 shows a progress bar, 0 none; "auto" (default) shows it
            when the folder holds more than one batch. The bar counts image
            files read, the skipped broken ones included.

    Yields:
        One dict per readable image, in sorted path order: `path` (str),
        `label` (int class index), `class_name` (str) and `confidence`
        (float, the probability of `label`), plus, with `top_k`, `top_k`: a
        list of k dicts {`label`, `class_name`, `confidence`}, most probable
        first.

    Raises:
        FileNotFoundError: `directory` or a model path does not exist.
        ValueError: no image files under `directory`; a broken file with
            `on_error="raise"`, or a single named file that cannot be read;
            a Keras model that is unbuilt or does not take 32x32 RGB images
            (a model path that holds images says they look swapped); a model
            whose class count differs from `class_names`; an invalid
            argument (`directory` not a str or `os.PathLike`, `class_names`
            a single string, `workers` not a positive integer included).
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise ValueError(
            "Argument `directory` must be the path (str or os.PathLike) of a folder or an "
            "image file; for an array of images use `predict_images`. "
            f"Received: directory of type {type(directory).__name__}"
        )
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(
            f"Argument `on_error` must be one of {ON_ERROR_CHOICES}. Received: on_error={on_error!r}"
        )
    check_batch_size(batch_size)
    _check_verbose(verbose)
    if top_k is not None and (not is_integer(top_k) or top_k < 1):
        raise ValueError(
            f"Argument `top_k` must be None or a positive integer. Received: top_k={top_k!r}"
        )
    if workers is not None and (not is_integer(workers) or workers < 1):
        raise ValueError(
            f"Argument `workers` must be None or a positive integer. Received: workers={workers!r}"
        )
    class_names = check_class_names(class_names)
    paths = _image_paths(directory, recursive, follow_symlinks)
    classifier = as_probability_model(model, safe_mode=safe_mode, precision=precision)
    check_takes_images(classifier)
    if class_names is not None:
        _check_width(classifier.num_classes, class_names, classifier)
    elif classifier.num_classes is not None:
        class_names = default_class_names(classifier.num_classes)
    if class_names is not None:
        _check_top_k(top_k, class_names)
    show = (len(paths) > batch_size) if verbose == "auto" else bool(verbose)
    progbar = keras.utils.Progbar(len(paths), unit_name="file") if show else None
    return _stream(
        directory, paths, classifier, batch_size, on_error, top_k, class_names, workers, progbar
    )


def predict_dir(directory, model=pretrained.DEFAULT, **kwargs):
    """Classifies every image file under a folder (or one image file), as a list.

    `predict_dir(directory, model, **kwargs)` is
    `list(iter_predict_dir(directory, model, **kwargs))`: the same
    arguments, checks and records, gathered in memory.

    Args:
        directory: a folder, or one image file (str or `os.PathLike`).
        model: a `keras.Model`, a pretrained name, a `.keras` path, a
            SavedModel folder or a `ProbabilityModel` (see `iter_predict_dir`).
            Default "cifar10": the package's pretrained weights.
        **kwargs: the keyword arguments of `iter_predict_dir`:
            `batch_size=256`, `recursive=True`, `follow_symlinks=True`,
            `on_error="skip"`, `top_k=None`, `safe_mode=True`,
            `precision="float32"`, `class_names=None`, `workers=None`,
            `verbose="auto"`.

    Returns:
        A list with one record per readable image, in sorted path order (see
        `iter_predict_dir` for the record's keys).

    Raises:
        FileNotFoundError: as `iter_predict_dir`.
        ValueError: as `iter_predict_dir`.
        TypeError: an unknown keyword.

    Example:

        for record in predict_dir("my_photos/"):  # the pretrained CIFAR-10 model
            print(record["path"], record["class_name"], f"{record['confidence']:.0%}")
    """
    return list(iter_predict_dir(directory, model, **kwargs))


def default_class_names(num_classes):
    """`CIFAR10_CLASSES` for 10 classes, else the labels as strings "0", "1", ..."""
    if num_classes == len(CIFAR10_CLASSES):
        return CIFAR10_CLASSES
    return tuple(str(i) for i in range(num_classes))


def _check_verbose(verbose):
    if verbose not in ("auto", 0, 1, True, False):
        raise ValueError(
            f"Argument `verbose` must be 'auto', 0 or 1. Received: verbose={verbose!r}"
        )


def check_images(images):
    """Checks the `images` argument of `predict_images` and `evaluate_model`.

    Args:
        images: array-like [N, 32, 32, 3] of raw RGB pixels in [0, 255],
            integer or float, N >= 1.

    Returns:
        `images` as a NumPy array.

    Raises:
        ValueError: not such an array (a path says to use `predict_dir`).
    """
    if isinstance(images, (str, bytes, os.PathLike)):
        raise ValueError(
            "Argument `images` must be an array [N, 32, 32, 3]; for a folder or an image "
            f"file use `predict_dir`. Received: images={images!r}"
        )
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) == 0:
        raise ValueError(
            "Argument `images` must be an array [N, 32, 32, 3] with N >= 1. "
            f"Received shape {images.shape}"
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(
            "Argument `images` must hold integer or float pixels in [0, 255]. "
            f"Received: images with dtype {images.dtype}"
        )
    return images


def _image_paths(directory, recursive, follow_symlinks):
    if not os.path.exists(directory):
        raise FileNotFoundError(f"No such image folder or file: {os.fspath(directory)}")
    if os.path.isfile(directory):
        return [os.fspath(directory)]
    paths = list_images(directory, recursive=recursive, follow_symlinks=follow_symlinks)
    if not paths:
        where = ", in subfolders too" if recursive else ", not in subfolders (recursive=False)"
        links = "" if follow_symlinks else ", symbolic links left out (follow_symlinks=False)"
        raise InvalidValueError(
            f"No image files under {os.fspath(directory)} (looked for the extensions "
            f"{', '.join(IMAGE_EXTENSIONS)} in any case{where}{links})."
        )
    return paths


def _stream(
    directory, paths, classifier, batch_size, on_error, top_k, class_names, workers, progbar
):
    chunks = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    named_file = paths == [os.fspath(directory)]  # a folder's paths are below it
    broken = []
    with concurrent.futures.ThreadPoolExecutor(1) as prefetch:
        decoding = prefetch.submit(read_images, chunks[0], workers=workers)
        for k in range(len(chunks)):
            images, kept, errors = decoding.result()
            if k + 1 < len(chunks):
                decoding = prefetch.submit(read_images, chunks[k + 1], workers=workers)
            for error in errors:
                if named_file:
                    raise error
                if on_error == "skip":
                    warnings.warn(f"Skipping broken image {error}", stacklevel=2)
            broken.extend(errors)
            if len(kept) and not (on_error == "raise" and broken):
                probabilities = classifier(images)
                if class_names is None:  # a model whose width shows only when called
                    class_names = default_class_names(probabilities.shape[-1])
                    _check_top_k(top_k, class_names)
                _check_width(probabilities.shape[-1], class_names, classifier)
                yield from _records(kept, probabilities, class_names, top_k)
            if progbar is not None:
                progbar.add(len(chunks[k]))
    if broken and on_error == "raise":
        raise InvalidValueError(
            f"{len(broken)} broken image file(s) under {os.fspath(directory)}:\n"
            + "\n".join(f"  {e}" for e in broken)
        )


def predict_images(
    images, model, *, batch_size=256, safe_mode=True, precision="float32", verbose="auto"
):
    """Class probabilities of an array of images.

    Args:
        images: array [N, 32, 32, 3] of raw RGB pixels in [0, 255] (uint8 or
            float), N >= 1.
        model: as in `predict_dir`.
        batch_size: images per model call. Default 256.
        safe_mode: as in `iter_predict_dir`.
        precision: as in `iter_predict_dir`.
        verbose: as in `iter_predict_dir`.

    Returns:
        float32 array [N, num_classes] of probabilities; `argmax(axis=1)`
        gives the labels.

    Raises:
        ValueError: `images` is not [N, 32, 32, 3] with N >= 1 of integer or
            float pixels; `model` as in `iter_predict_dir` (unbuilt, or not
            taking 32x32 RGB images); an invalid `batch_size` or `verbose`.
    """
    images = check_images(images)
    check_batch_size(batch_size)
    _check_verbose(verbose)
    classifier = as_probability_model(model, safe_mode=safe_mode, precision=precision)
    check_takes_images(classifier)
    show = (len(images) > batch_size) if verbose == "auto" else bool(verbose)
    progbar = keras.utils.Progbar(len(images), unit_name="image") if show else None
    return classifier.predict(images, batch_size=batch_size, progbar=progbar)


def check_takes_images(classifier):
    """Raises unless a Keras model maps [N, 32, 32, 3] images to [N, num_classes].

    A SavedModel from `export_savedmodel` is checked by its own signature when
    served; a subclassed Keras model built by a call records no input shape
    and is taken as it is.

    Args:
        classifier: a `ProbabilityModel` (from `as_probability_model`).

    Raises:
        ValueError: the Keras model is unbuilt, does not take one input of
            shape (None, 32, 32, 3) (None allowed for any dimension), or
            does not return one output of shape (None, num_classes).
    """
    if classifier.is_savedmodel:
        return
    model = classifier.model
    expected = (None,) + IMAGE_SHAPE
    if not model.built:
        raise ValueError(
            "Argument `model` must be built (have an input shape) to take images of shape "
            f"{expected}: give it `keras.Input({IMAGE_SHAPE})` or call `model.build"
            f"({expected})`. Received: the unbuilt model {model.name!r}"
        )
    inputs = getattr(model, "inputs", None)
    if inputs is None:
        return
    shapes = [tuple(tensor.shape) for tensor in inputs]
    if (
        len(shapes) != 1
        or len(shapes[0]) != 4
        or any(size not in (None, want) for size, want in zip(shapes[0][1:], IMAGE_SHAPE))
    ):
        received = shapes[0] if len(shapes) == 1 else shapes
        raise InvalidValueError(
            f"Argument `model` must take images of shape {expected} (32x32 RGB, raw pixels "
            f"in [0, 255]). Received: a model with input shape {received}"
        )
    outputs = [tuple(tensor.shape) for tensor in model.outputs]
    if len(outputs) != 1 or len(outputs[0]) != 2:
        received = outputs[0] if len(outputs) == 1 else outputs
        raise InvalidValueError(
            "Argument `model` must return class scores of shape (None, num_classes). "
            f"Received: a model with output shape {received}"
        )


def _check_width(num_classes, class_names, classifier):
    if num_classes is not None and num_classes != len(class_names):
        raise ValueError(
            f"{classifier.source} predicts {num_classes} classes but "
            f"`class_names` has {len(class_names)}; pass matching `class_names`."
        )


def _check_top_k(top_k, class_names):
    if top_k is not None and top_k > len(class_names):
        raise InvalidValueError(
            f"Argument `top_k` must be None or an integer in [1, {len(class_names)}] "
            f"(the number of classes). Received: top_k={top_k!r}"
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

    The file is written under a temporary name and moved onto `path` only
    when every record is written: if `records` raises (a broken image with
    `on_error="raise"`), an existing `path` keeps its contents.

    Args:
        records: iterable of records from `predict_dir`/`iter_predict_dir`
            (consumed as it goes, so a generator streams to disk).
        path: the CSV file to write.

    Returns:
        The number of rows written.
    """
    return _write_csv(
        path,
        FOLDER_CSV_FIELDS,
        ((r["path"], r["label"], r["class_name"], f"{r['confidence']:.6f}") for r in records),
    )


def write_labels_csv(labels, path):
    """Writes labels in the course's format: header `ID,Labels`, row index and class.

    Written like `write_predictions_csv`: complete, or not at all.

    Args:
        labels: integer class indices [N], in the pickle's row order.
        path: the CSV file to write.

    Returns:
        The number of rows written.
    """
    return _write_csv(
        path, PICKLE_CSV_FIELDS, ((i, int(label)) for i, label in enumerate(np.asarray(labels)))
    )


def _write_csv(path, header, rows):
    count = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow(row)
                count += 1
    return count
