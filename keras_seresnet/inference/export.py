"""Exporting a trained model as a TensorFlow SavedModel for serving.

`export_savedmodel` writes, with `keras.export.ExportArchive`, a SavedModel
whose `serve` endpoint (also its `serving_default` signature, the one TF
Serving calls) takes float32 raw pixels [N, 32, 32, 3] in [0, 255], any N,
and returns float32 class probabilities [N, num_classes]: the model's logits
cast to float32 and softmaxed, so a mixed-precision model serves float32
probabilities too. Signature input name: `image`; output name: `output_0`.
The `.keras` file is written beside it, for Keras users and for fine-tuning.

Both are written under temporary names and moved into place only when both
are complete, so a failed export (a full disk, an interrupted command) leaves
no half-written folder and keeps any previous export intact.
"""

import os

import keras
import numpy as np

from keras_seresnet.files import atomic_path
from keras_seresnet.inference.loading import (
    KERAS_SUFFIX,
    ProbabilityModel,
    is_savedmodel_dir,
    load_model,
)

SERVING_INPUT_NAME = "image"  # the `serving_default` signature's input key
SERVING_OUTPUT_NAME = "output_0"  # its output key (ExportArchive's default)


def export_savedmodel(model, path, *, save_keras=True, overwrite=False, safe_mode=True):
    """Writes a SavedModel that serves probabilities, and the `.keras` file beside it.

    Args:
        model: a `keras.Model` returning logits (as `build_seresnet`'s does),
            or a path to a `.keras` file of one.
        path: the SavedModel folder to create. For TF Serving use a numbered
            version folder, e.g. `serving/seresnet/1`.
        save_keras: also write the model as `<path>.keras` beside the folder
            (e.g. `serving/seresnet/1.keras`; TF Serving ignores it). Default True.
        overwrite: replace an existing `path` (and `.keras` file), once the
            new ones are complete. Default False: an existing one raises
            `FileExistsError` before anything is written.
        safe_mode: Keras safe mode when `model` is a `.keras` path (see
            `load_model`). Default True.

    Returns:
        `(savedmodel_path, keras_path)`: str paths; `keras_path` is None when
        `save_keras` is False.

    Raises:
        FileNotFoundError: `model` is a path that does not exist.
        TypeError: `path` is not a str or `os.PathLike`.
        FileExistsError: `path` or the `.keras` file exists and `overwrite`
            is False.
        ValueError: `model` is not a Keras model with one 4-D image input
            (a SavedModel, as a folder or loaded, is refused with a message
            asking for the `.keras` file), or a path that `load_model` refuses.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "Argument `path` must be the SavedModel folder to create (str or os.PathLike). "
            f"Received: path of type {type(path).__name__}"
        )
    if isinstance(model, (str, os.PathLike)):
        if is_savedmodel_dir(model):
            source = os.fspath(model)
            beside = os.path.normpath(source) + KERAS_SUFFIX
            found = f" (here: {beside})" if os.path.isfile(beside) else ""
            raise ValueError(
                "Argument `model` must be a keras.Model or a path to a `.keras` file: "
                f"{source} is a SavedModel already; export needs the trained `.keras` "
                f"file, which `export_savedmodel` writes beside its SavedModel{found}. "
                f"Received: model={source!r}"
            )
        model = load_model(model, safe_mode=safe_mode)
    if not isinstance(model, keras.Model) and hasattr(model, "serve"):  # a loaded SavedModel
        raise ValueError(
            "Argument `model` must be a keras.Model or a path to a `.keras` file: a loaded "
            "SavedModel is exported already; export needs the trained `.keras` file. "
            f"Received: model={model!r}"
        )
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Argument `model` must be a keras.Model or a path to a `.keras` file. "
            f"Received: model={model!r}"
        )
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(
            "Argument `model` must take one image input [N, H, W, C]. "
            f"Received a model with inputs {[tuple(i.shape) for i in model.inputs]}"
        )
    path = os.path.normpath(os.fspath(path))
    keras_path = path + KERAS_SUFFIX if save_keras else None
    for target in filter(None, (path, keras_path)):
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(
                f"{target} already exists; pass overwrite=True (scripts: "
                "--overwrite) to replace it."
            )

    def serve(images):
        logits = model(images, training=False)
        return keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            keras.InputSpec(
                shape=(None,) + tuple(model.inputs[0].shape[1:]),
                dtype="float32",
                name=SERVING_INPUT_NAME,
            )
        ],
    )
    with atomic_path(path, directory=True) as folder:
        archive.write_out(folder, verbose=False)
        if keras_path:
            with atomic_path(keras_path) as keras_file:
                model.save(keras_file)
    return path, keras_path


def verify_savedmodel(path, model, *, batch_sizes=(1, 7), atol=1e-5, seed=0):
    """Checks that a SavedModel serves the Keras model's softmax.

    Loads `path` with `tf.saved_model.load` and compares its `serve` outputs
    with the softmax of `model`'s logits on random raw-pixel batches.

    Args:
        path: the SavedModel folder.
        model: the `keras.Model` it was exported from (logits).
        batch_sizes: the batch sizes to try. Default (1, 7).
        atol: largest accepted absolute difference. Default 1e-5.
        seed: seed of the random pixels. Default 0.

    Returns:
        The largest absolute difference seen (float).

    Raises:
        ValueError: a difference above `atol` (the message gives it).
    """
    served = ProbabilityModel(path)
    reference = ProbabilityModel(model)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in batch_sizes:
        x = rng.uniform(0, 255, (n,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
        worst = max(worst, float(np.abs(served(x) - reference(x)).max()))
    if worst > atol:
        raise ValueError(
            f"SavedModel {path} differs from the Keras model by {worst:.3g} "
            f"(more than atol={atol:g})."
        )
    return worst
