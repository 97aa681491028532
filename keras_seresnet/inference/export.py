"""Exporting a trained model for every place it runs: TF Serving, ONNX Runtime, LiteRT.

`export_model` writes one format and checks it before anyone can use it:

- "saved_model": a TensorFlow SavedModel folder (for TF Serving, a numbered
  version folder such as `serving/seresnet/1`), with two signatures:

  - `serving_default`: input `image`, float32 raw pixels [N, 32, 32, 3] in
    [0, 255], any N; output `probabilities`, float32 [N, num_classes]: the
    softmax of the model's logits.
  - `serve_image_bytes`: input `image_bytes`, string [N], each element the
    bytes of one JPEG, PNG, BMP, GIF or WebP file, decoded, made RGB and
    resized as `predict_dir` does (`keras_seresnet.inference.image_bytes`);
    outputs `probabilities` (float32 [N, num_classes]), `class_id` (int64
    [N]) and `class_name` (string [N]).

  Its `serve` endpoint (for Python: `tf.saved_model.load(path).serve(x)`)
  returns the probabilities as one tensor; TF Serving also lists it as a
  third signature, `serve`, like `serving_default` but with the output key
  `output_0`. A copy of the `.keras` file goes
  inside the folder, as `assets.extra/model.keras` (TF Serving's place for
  files the graph does not load), so the TF Serving base path holds nothing
  but version folders.
- "onnx": a `.onnx` file (ONNX Runtime, browsers with onnxruntime-web).
- "litert": a `.tflite` file (LiteRT, formerly TensorFlow Lite: Android,
  iOS, microcontrollers), float32 or, with `quantize`, with float16 or
  dynamic-range int8 weights.

The ONNX and LiteRT files take the same input (`image`, float32 [N, 32, 32, 3]
raw pixels, any N) and return `probabilities`. Every format computes in
float32, as `predict_dir` runs a model by default: a mixed-precision model
(bfloat16 or float16 compute, float32 weights) is exported from its float32
weights under the float32 policy; the `.keras` copy keeps its own policy.

Every export is written under a temporary name, loaded in a fresh Python
process by its own runtime (`keras_seresnet.inference.runners`: TensorFlow,
ONNX Runtime or LiteRT, without Keras), run on the same images as the Keras
model, and moved into place only if its probabilities agree (to 1e-4 by
default). A failed check, or any failure while writing, leaves nothing new
on disk and keeps any previous export intact.

Example (with a trained model, `best.keras` of a run folder):

    import keras_seresnet
    result = keras_seresnet.export_model("best.keras", "seresnet.onnx", format="onnx")
    result.max_difference < 1e-4  # True
"""

import dataclasses
import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np
from PIL import Image

import keras_seresnet
from keras_seresnet import pretrained
from keras_seresnet.config import check_class_names
from keras_seresnet.errors import InvalidValueError, SeresnetError
from keras_seresnet.files import atomic_path
from keras_seresnet.inference import runners
from keras_seresnet.inference.formats import (
    BYTES_INPUT,
    BYTES_SIGNATURE,
    EXPORT_FORMATS,
    FILE_SUFFIXES,
    FORMAT_NAMES,
    KERAS_COPY,
    OUTPUT,
    PIXELS_INPUT,
    QUANTIZATIONS,
    RUNTIMES,
)
from keras_seresnet.inference.loading import (
    KERAS_SUFFIX,
    ProbabilityModel,
    is_savedmodel_dir,
    load_model,
)
from keras_seresnet.inference.predict import default_class_names

# Largest accepted |probability difference| against the Keras model, by
# `quantize`. Float32 files differ by float rounding only (under 1e-6 on
# CIFAR-10's 10,000 test images); float16 weights moved probabilities by up
# to 2.0e-3 there and int8 weights by up to 1.4e-2 (docs/export.md), so
# each tolerance is a few times what a sound file of its kind gives.
DEFAULT_ATOL = {None: 1e-4, "float16": 5e-3, "dynamic": 5e-2}
# What an export needs besides TensorFlow and Keras: the converter Keras
# calls (ONNX: tf2onnx, which needs onnx) and the runtime that checks the file.
CONVERTERS = {"onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx"))}  # (module, pip package)
VERIFY_IMAGES = 7  # images each check runs (an odd count: no batch size is special)


class ExportCheckError(SeresnetError, ValueError):
    """An export that does not compute what the Keras model computes; the message says how.

    Raised by the checks (`verify_export`, `verify_savedmodel`); from
    `export_model`, nothing was written.
    """


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What `export_model` wrote and how well it agrees with the Keras model.

    Attributes:
        path: the SavedModel folder or the `.onnx` / `.tflite` file (str).
        format: "saved_model", "onnx" or "litert".
        quantize: None, "float16" or "dynamic" (LiteRT only).
        size_bytes: the file's size, or the SavedModel's (its files, without
            the `.keras` copy), in bytes.
        max_difference: the largest |probability difference| from the Keras
            model seen in the fresh-process check (float).
        keras_path: the `.keras` copy inside a SavedModel, or None.

    Example (with a trained `model`):

        result = export_model(model, "serving/seresnet/1")
        result.keras_path  # 'serving/seresnet/1/assets.extra/model.keras'
    """

    path: str
    format: str
    quantize: str | None
    size_bytes: int
    max_difference: float
    keras_path: str | None = None


def export_model(
    model,
    path,
    *,
    format="saved_model",
    quantize=None,
    save_keras=None,
    overwrite=False,
    safe_mode=True,
    class_names=None,
    atol=None,
):
    """Writes `model` in one serving format and checks it in a fresh process.

    Args:
        model: a `keras.Model` returning logits (as `build_seresnet`'s does),
            a name of the package's pretrained weights ("cifar10"), or a
            path to a `.keras` file of one.
        path: what to create: the SavedModel folder (for TF Serving a numbered
            version folder, e.g. `serving/seresnet/1`), or the file, ending in
            `.onnx` or `.tflite`.
        format: "saved_model" (default), "onnx" or "litert".
        quantize: LiteRT only: None (default, float32 weights), "float16"
            (half-size weights) or "dynamic" (int8 weights, about a quarter
            of the size; activations quantised at run time).
        save_keras: write the `.keras` copy inside the SavedModel
            (`assets.extra/model.keras`). Default None: True for
            "saved_model"; the file formats have no place for it.
        overwrite: replace an existing `path` once the new export has passed
            its check. Default False: an existing one raises
            `FileExistsError` before anything is written.
        safe_mode: Keras safe mode when `model` is a `.keras` path (see
            `load_model`). Default True.
        class_names: names of the classes, for the SavedModel's `class_name`
            output: a sequence of strings, one per class. Default None:
            `CIFAR10_CLASSES` for a 10-class model, else "0", "1", ...
        atol: largest accepted |probability difference| from the Keras
            model. Default None: `DEFAULT_ATOL[quantize]` (1e-4 for float32).

    Returns:
        An `ExportResult`.

    Raises:
        FileNotFoundError: `model` is a path that does not exist.
        FileExistsError: `path` exists and `overwrite` is False.
        TypeError: `path` is not a str or `os.PathLike`.
        ImportError: the format's converter or runtime is not installed
            (`pip install keras-seresnet[export]`).
        InvalidValueError: a Keras `model` that does not take one image
            [N, S, S, 3] and return class scores [N, num_classes], or (ONNX)
            that normalises its input other than per channel.
        ExportCheckError: the export fails its check (the message says how;
            nothing is written).
        ValueError: an invalid argument (`format`, `quantize` for another
            format, a file `path` without the format's suffix, `save_keras`
            for a file format, `class_names` of the wrong length) or a
            `model` that is not a Keras model.

    Example (with a trained model, `best.keras` of a run folder):

        export_model("best.keras", "serving/seresnet/1")  # TF Serving, version 1
        export_model("best.keras", "seresnet.onnx", format="onnx")
        export_model("best.keras", "seresnet.tflite", format="litert", quantize="float16")
        # ExportResult(path='seresnet.tflite', format='litert', quantize='float16', ...)
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"Argument `format` must be one of {EXPORT_FORMATS}. Received: format={format!r}"
        )
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"Argument `quantize` must be one of {QUANTIZATIONS}. Received: quantize={quantize!r}"
        )
    if quantize is not None and format != "litert":
        raise ValueError(
            "Argument `quantize` is only for format='litert'. "
            f"Received: quantize={quantize!r} with format={format!r}"
        )
    if save_keras is None:
        save_keras = format == "saved_model"
    if save_keras and format != "saved_model":
        raise ValueError(
            "Argument `save_keras` must be False or None for a file format: only a SavedModel "
            f"folder holds the `.keras` copy. Received: save_keras=True with format={format!r}"
        )
    atol = DEFAULT_ATOL[quantize] if atol is None else atol
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
        raise ValueError(f"Argument `atol` must be a number >= 0. Received: atol={atol!r}")
    path = _output_path(path, format)
    _require_modules(format)
    model = _keras_model(model, safe_mode)
    class_names = _class_names(model, class_names)
    _refuse_existing(path, overwrite)
    with atomic_path(path, directory=format == "saved_model") as tmp:
        if format == "saved_model":
            _write_savedmodel(model, tmp, class_names, save_keras)
        elif format == "onnx":
            _write_onnx(model, tmp)
        else:
            _write_litert(model, tmp, quantize)
        try:
            difference = verify_export(
                tmp, model, format=format, atol=atol, class_names=class_names, name=path
            )
        except ExportCheckError as e:  # `atomic_path` then removes the temporary
            raise ExportCheckError(f"{e} Nothing was written.") from None
        size = export_size_bytes(tmp)
    keras_path = os.path.join(path, KERAS_COPY) if save_keras else None
    return ExportResult(path, format, quantize, size, difference, keras_path)


def export_savedmodel(
    model, path, *, save_keras=True, overwrite=False, safe_mode=True, class_names=None
):
    """Writes a SavedModel that serves probabilities, with a copy of the `.keras` file inside.

    The SavedModel `export_model(format="saved_model")` writes, without its
    fresh-process check (`verify_savedmodel` checks it in this process).

    Args:
        model: a `keras.Model` returning logits (as `build_seresnet`'s does),
            or a path to a `.keras` file of one.
        path: the SavedModel folder to create. For TF Serving use a numbered
            version folder, e.g. `serving/seresnet/1`.
        save_keras: also write the model as `<path>/assets.extra/model.keras`
            (TF Serving does not load it). Default True.
        overwrite: replace an existing `path`, once the new one is complete.
            Default False: an existing one raises `FileExistsError` before
            anything is written.
        safe_mode: Keras safe mode when `model` is a `.keras` path (see
            `load_model`). Default True.
        class_names: the `class_name` output's names, one per class.
            Default None: `CIFAR10_CLASSES` for 10 classes, else "0", "1", ...

    Returns:
        `(savedmodel_path, keras_path)`: str paths; `keras_path` is None when
        `save_keras` is False.

    Raises:
        FileNotFoundError: `model` is a path that does not exist.
        TypeError: `path` is not a str or `os.PathLike`.
        FileExistsError: `path` exists and `overwrite` is False.
        InvalidValueError: a Keras `model` without one image input
            [N, S, S, 3] or one output of class scores.
        ValueError: `model` is not a Keras model (a SavedModel, as a folder
            or loaded, is refused with a message asking for the `.keras`
            file), or a path that `load_model` refuses; `class_names` of the
            wrong length.

    Example (with a trained model, `best.keras` of a run folder):

        export_savedmodel("best.keras", "serving/seresnet/1")
        # ('serving/seresnet/1', 'serving/seresnet/1/assets.extra/model.keras')
    """
    path = _output_path(path, "saved_model")
    model = _keras_model(model, safe_mode)
    class_names = _class_names(model, class_names)
    _refuse_existing(path, overwrite)
    with atomic_path(path, directory=True) as folder:
        _write_savedmodel(model, folder, class_names, save_keras)
    return path, (os.path.join(path, KERAS_COPY) if save_keras else None)


def verify_export(
    path, model, *, format="saved_model", atol=1e-4, class_names=None, name=None, seed=0
):
    """Checks an export in a fresh Python process against the Keras model's softmax.

    The process loads `path` with the format's own runtime
    (`keras_seresnet.inference.runners`) and runs it on `VERIFY_IMAGES`
    seeded random images; a SavedModel's `serving_default` gets their
    pixels and its `serve_image_bytes` the same images as PNG files.

    Args:
        path: the SavedModel folder, `.onnx` or `.tflite` file.
        model: the `keras.Model` it was exported from (logits).
        format: "saved_model" (default), "onnx" or "litert".
        atol: largest accepted |probability difference|. Default 1e-4.
        class_names: the names `serve_image_bytes` returns. Default None:
            as `export_model`'s.
        name: the path to name in messages. Default None: `path`.
        seed: seed of the random images. Default 0.

    Returns:
        The largest |probability difference| seen (float).

    Raises:
        ExportCheckError: the fresh process failed (its one-line reason is
            given), or an output differs by more than `atol`, has the
            wrong shape, or names the wrong class.

    Example (`model` the Keras model `seresnet.onnx` was exported from):

        verify_export("seresnet.onnx", model, format="onnx")  # 3.0e-08
    """
    name = os.fspath(path if name is None else name)
    class_names = _class_names(model, class_names)
    pixels = (
        np.random.default_rng(seed)
        .integers(0, 256, (VERIFY_IMAGES,) + tuple(model.inputs[0].shape[1:]))
        .astype(np.float32)
    )
    reference = ProbabilityModel(model)(pixels)
    outputs = _run_in_fresh_process(path, format, pixels, name)
    probabilities = {key: value for key, value in outputs.items() if key.endswith("/" + OUTPUT)}
    worst = 0.0
    for key, value in probabilities.items():
        if value.shape != reference.shape:
            raise ExportCheckError(
                f"The {FORMAT_NAMES[format]} export {name} returns {key} of shape "
                f"{value.shape}; expected {reference.shape}."
            )
        worst = max(worst, float(np.abs(value - reference).max()))
    if worst > atol:
        raise ExportCheckError(
            f"The {FORMAT_NAMES[format]} export {name} differs from the Keras model by "
            f"{worst:.3g} in probability (more than atol={atol:g})."
        )
    if format == "saved_model":
        class_id = outputs[f"{BYTES_SIGNATURE}/class_id"]
        expected_id = np.argmax(outputs[f"{BYTES_SIGNATURE}/{OUTPUT}"], axis=-1)
        expected_names = [class_names[i] for i in expected_id]
        if (
            not np.array_equal(class_id, expected_id)
            or list(outputs[f"{BYTES_SIGNATURE}/class_name"]) != expected_names
        ):
            raise ExportCheckError(
                f"The {BYTES_SIGNATURE} signature of {name} names classes "
                f"{list(outputs[f'{BYTES_SIGNATURE}/class_name'])}; expected {expected_names}."
            )
    return worst


def verify_savedmodel(path, model, *, batch_sizes=(1, 7), atol=1e-5, seed=0):
    """Checks, in this process, that a SavedModel's `serve` gives the Keras model's softmax.

    Loads `path` with `tf.saved_model.load` and compares its `serve` outputs
    with the softmax of `model`'s logits on random raw-pixel batches.
    (`export_model` checks in a fresh process instead: `verify_export`.)

    Args:
        path: the SavedModel folder.
        model: the `keras.Model` it was exported from (logits).
        batch_sizes: the batch sizes to try. Default (1, 7).
        atol: largest accepted absolute difference. Default 1e-5.
        seed: seed of the random pixels. Default 0.

    Returns:
        The largest absolute difference seen (float).

    Raises:
        ExportCheckError: a difference above `atol` (the message gives it).

    Example (`model` the Keras model the SavedModel was exported from):

        verify_savedmodel("serving/seresnet/1", model)  # 2.9802322e-08
    """
    served = ProbabilityModel(path)
    reference = ProbabilityModel(model)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in batch_sizes:
        x = rng.uniform(0, 255, (n,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
        worst = max(worst, float(np.abs(served(x) - reference(x)).max()))
    if worst > atol:
        raise ExportCheckError(
            f"SavedModel {path} differs from the Keras model by {worst:.3g} "
            f"(more than atol={atol:g})."
        )
    return worst


def _output_path(path, format):
    if not isinstance(path, (str, os.PathLike)):
        what = "SavedModel folder" if format == "saved_model" else f"{FILE_SUFFIXES[format]} file"
        raise TypeError(
            f"Argument `path` must be the {what} to create (str or os.PathLike). "
            f"Received: path of type {type(path).__name__}"
        )
    path = os.path.normpath(os.fspath(path))
    suffix = FILE_SUFFIXES.get(format)
    if suffix and not path.endswith(suffix):
        raise ValueError(
            f"Argument `path` must end with {suffix} for format={format!r}. Received: path={path!r}"
        )
    if not suffix and path.endswith(tuple(FILE_SUFFIXES.values())):
        raise ValueError(
            f"Argument `path` names a file ({path!r}) but format='saved_model' writes a folder; "
            "pass format='onnx' or 'litert' for a file."
        )
    return path


def _require_modules(format):
    needed = CONVERTERS.get(format, ()) + (RUNTIMES[format],)
    missing = [package for module, package in needed if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(
            f"Exporting to {FORMAT_NAMES[format]} needs the package(s) {', '.join(missing)}, "
            "not installed here; `pip install keras-seresnet[export]` installs them."
        )


def _refuse_existing(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (scripts: --overwrite) to replace it."
        )


def _keras_model(model, safe_mode):
    """`model`, or the `.keras` file it names, as a Keras model taking [N, S, S, 3] images."""
    if isinstance(model, (str, os.PathLike)):
        if is_savedmodel_dir(model) and not pretrained.is_pretrained_name(model):
            source = os.fspath(model)
            copies = [os.path.join(source, KERAS_COPY), os.path.normpath(source) + KERAS_SUFFIX]
            found = next((f" (here: {c})" for c in copies if os.path.isfile(c)), "")
            raise ValueError(
                "Argument `model` must be a keras.Model or a path to a `.keras` file: "
                f"{source} is a SavedModel already; export needs the trained `.keras` "
                f"file, which `export_savedmodel` copies into its SavedModel{found}. "
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
    shapes = [tuple(i.shape) for i in model.inputs]
    if (
        len(shapes) != 1
        or len(shapes[0]) != 4
        or shapes[0][3] != 3
        or (shapes[0][1] is None or shapes[0][1] != shapes[0][2])
    ):
        raise InvalidValueError(
            "Argument `model` must take one square RGB image input [N, S, S, 3], such as "
            f"[N, 32, 32, 3]. Received a model with inputs {shapes}"
        )
    outputs = [tuple(o.shape) for o in model.outputs]
    if len(outputs) != 1 or len(outputs[0]) != 2:
        raise InvalidValueError(
            "Argument `model` must return one output of class scores [N, num_classes]. "
            f"Received a model with outputs {outputs}"
        )
    return model


def _class_names(model, class_names):
    width = int(model.outputs[0].shape[-1])
    class_names = check_class_names(class_names) or default_class_names(width)
    if len(class_names) != width:
        raise ValueError(
            f"Argument `class_names` must name the model's {width} classes. "
            f"Received {len(class_names)} names: class_names={class_names!r}"
        )
    return tuple(str(n) for n in class_names)


def _pixel_spec(model):
    return keras.InputSpec(
        shape=(None,) + tuple(model.inputs[0].shape[1:]), dtype="float32", name=PIXELS_INPUT
    )


def _write_savedmodel(model, folder, class_names, save_keras):
    import tensorflow as tf  # the SavedModel and its image decoding are TensorFlow's

    from keras_seresnet.inference.image_bytes import decode_image_bytes

    served = _probability_model(model)
    size = int(served.inputs[0].shape[1])

    def serve(images):
        return served(images, training=False)[OUTPUT]

    def serving_default(images):
        return served(images, training=False)

    def serve_image_bytes(image_bytes):
        scores = serve(decode_image_bytes(image_bytes, size=size))
        class_id = tf.argmax(scores, axis=-1)
        return {
            OUTPUT: scores,
            "class_id": class_id,
            "class_name": tf.gather(tf.constant(class_names), class_id),
        }

    # No `archive.track(served)`: `add_endpoint` tracks the variables the
    # endpoints use, and tracking the model as well would store every weight
    # twice (Keras 3.15), doubling the folder. The model has no lookup tables
    # or other assets that only `track` would keep.
    archive = keras.export.ExportArchive()
    # `serve` returns one tensor, for Python callers (`ProbabilityModel`);
    # `serving_default` names its output, for TF Serving's JSON.
    archive.add_endpoint("serve", serve, input_signature=[_pixel_spec(served)])
    archive.add_endpoint("serving_default", serving_default, input_signature=[_pixel_spec(served)])
    archive.add_endpoint(
        BYTES_SIGNATURE,
        serve_image_bytes,
        input_signature=[tf.TensorSpec(shape=(None,), dtype=tf.string, name=BYTES_INPUT)],
    )
    archive.write_out(folder, verbose=False)
    if save_keras:
        keras_file = os.path.join(folder, KERAS_COPY)
        os.makedirs(os.path.dirname(keras_file), exist_ok=True)
        model.save(keras_file)  # the model as trained, its dtype policy included


def _probability_model(model):
    """What every format serves: a functional model, input `image` -> {"probabilities": ...}.

    Its layers compute in float32 (a mixed-precision `model` is copied under
    the float32 policy with the same weights, as `ProbabilityModel` and so
    `predict_dir` run it by default), and the logits are softmaxed in float32.
    """
    model = ProbabilityModel(model).model
    image = keras.Input(shape=tuple(model.inputs[0].shape[1:]), dtype="float32", name=PIXELS_INPUT)
    (logits,) = keras.tree.flatten(model(image))  # a loaded model returns a list of one output
    scores = keras.layers.Softmax(dtype="float32", name=OUTPUT)(logits)
    return keras.Model(image, {OUTPUT: scores}, name=f"{model.name}_probabilities")


def _write_onnx(model, path):
    model = _probability_model(_normalization_as_rescaling(model))
    with warnings.catch_warnings():
        # Keras's tf2onnx set-up asks NumPy for `np.object`, which warns.
        warnings.filterwarnings("ignore", message=r"In the future `np\.object`")
        model.export(path, format="onnx", verbose=False, input_signature=[_pixel_spec(model)])


def _normalization_as_rescaling(model):
    """A copy of `model` whose `Normalization` layers are the equal `Rescaling` layers.

    tf2onnx 1.17 turns the tensors a traced function captures (a
    `Normalization` layer's mean and variance, computed when it is built)
    into ONNX graph inputs without their values, and the file then asks
    every caller for them. A `Rescaling` computes its constants inside the
    traced function, so they are stored in the file. `Normalization` is
    per-channel affine, so its scale and offset are read by calling it on
    zeros and ones; a layer that normalises over other axes is refused.

    Raises:
        InvalidValueError: a `Normalization` layer whose statistics are not
            per channel.
    """

    def clone(layer):
        if not isinstance(layer, keras.layers.Normalization):
            return layer.__class__.from_config(layer.get_config())
        channels = int(layer.input.shape[-1])
        probe = np.stack([np.zeros(channels), np.ones(channels)]).astype("float32")
        probe = probe.reshape((2,) + (1,) * (len(layer.input.shape) - 2) + (channels,))
        values = keras.ops.convert_to_numpy(layer(probe))
        if values.shape != probe.shape:
            raise InvalidValueError(
                "Argument `model` must normalise its input per channel for the ONNX export. "
                f"Received: Normalization layer {layer.name!r} with axis={layer.axis}"
            )
        offset = values[0].reshape(-1)
        return keras.layers.Rescaling(
            scale=(values[1].reshape(-1) - offset).tolist(),
            offset=offset.tolist(),
            name=layer.name,
            dtype=layer.dtype_policy,
        )

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Normalization):
            copy.get_layer(layer.name).set_weights(layer.get_weights())
    return copy


def _write_litert(model, path, quantize):
    converter_settings = {}
    if quantize is not None:
        import tensorflow as tf  # the converter's settings are TensorFlow Lite's

        converter_settings["optimizations"] = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter_settings["target_spec"] = {"supported_types": [tf.float16]}
    model = _probability_model(model)
    model.export(
        path,
        format="litert",
        verbose=False,
        input_signature=[_pixel_spec(model)],
        **converter_settings,
    )


def _run_in_fresh_process(path, format, pixels, name):
    """`runners.run_export` in a new interpreter; its outputs, or an `ExportCheckError` with its reason."""
    runtime = RUNTIMES[format][1]
    with tempfile.TemporaryDirectory(prefix="keras-seresnet-check-") as scratch:
        pixels_file = os.path.join(scratch, "pixels.npy")
        outputs_file = os.path.join(scratch, "outputs.npz")
        np.save(pixels_file, pixels)
        image_files = []
        if format == "saved_model":
            for i, image in enumerate(pixels.astype(np.uint8)):
                image_files.append(os.path.join(scratch, f"{i}.png"))
                Image.fromarray(image).save(image_files[-1])
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(keras_seresnet.__file__)))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")  # the child's own log level only
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                runners.__name__,
                format,
                os.fspath(path),
                pixels_file,
                outputs_file,
                *image_files,
            ],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            if result.returncode < 0:
                reason = f"the process was ended by signal {-result.returncode}"
            else:
                reason = lines[-1] if lines else f"exit status {result.returncode}"
            raise ExportCheckError(
                f"The {FORMAT_NAMES[format]} export {name} failed its check in a fresh "
                f"{runtime} process: {reason}."
            )
        with np.load(outputs_file) as outputs:
            return dict(outputs)


def export_size_bytes(path):
    """The size in bytes of an exported file, or of a SavedModel without its `.keras` copy.

    Example:

    >>> import pathlib
    >>> pathlib.Path("seresnet.onnx").write_bytes(bytes(1000))
    1000
    >>> export_size_bytes("seresnet.onnx")
    1000
    """
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _, files in os.walk(path):
        if os.path.relpath(folder, path).split(os.sep)[0] == os.path.dirname(KERAS_COPY):
            continue
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total
