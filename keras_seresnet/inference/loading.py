"""Loading saved models, and calling any of them the same way.

Two formats are supported, each with its trust rule:

- a `.keras` file (`model.save(...)`, or the copy an export keeps in its
  `assets.extra/model.keras`), loaded with Keras's *safe mode* on by default: a
  file holding a `Lambda` layer (or any other serialized Python code) is
  refused, because loading it would run code stored in the file. A user who
  trusts the file opts in with the explicit argument `safe_mode=False`.
- a TensorFlow SavedModel folder from `export_savedmodel`, loaded with
  `tf.saved_model.load`. Its `serve` endpoint returns probabilities. A
  SavedModel is a TensorFlow graph: loading it runs no Python code, but a
  graph can hold TensorFlow operations that read or write files, so load
  SavedModels only from sources you trust (or use the `.keras` file).

`ProbabilityModel` wraps a `keras.Model` (which returns logits, as
`build_seresnet`'s does), a loaded SavedModel (which returns probabilities) or
a path to either, behind one call: raw pixels in, float32 probabilities out.
Its `precision` runs a Keras model in reduced precision (bfloat16 or
float16 compute, float32 weights, float32 probabilities) on a copy of the
model with that dtype policy; the given model and Keras's global policy are
left as they are.
"""

import os
import zipfile

import keras
import numpy as np

from keras_seresnet import pretrained
from keras_seresnet.config import is_integer
from keras_seresnet.data.images import IMAGE_EXTENSIONS
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.models.seresnet import (
    build_seresnet,  # also registers the layers files name
)

KERAS_SUFFIX = ".keras"
SAVEDMODEL_FILE = "saved_model.pb"
PRECISIONS = {  # `precision` -> the Keras dtype policy a model runs under
    "float32": "float32",
    "bfloat16": "mixed_bfloat16",
    "float16": "mixed_float16",
}


def is_savedmodel_dir(path):
    """True when `path` is a folder holding a TensorFlow SavedModel."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, SAVEDMODEL_FILE))


def load_model(path, *, safe_mode=True):
    """Loads a pretrained model by name, a `.keras` file or a SavedModel folder.

    Args:
        path: a name of the package's pretrained weights ("cifar10": the
            recipe's SE-ResNet with `build_seresnet(weights="cifar10")`; a
            name wins over a file of that name, write "./cifar10" for the
            file), a `.keras` file, or a folder holding `saved_model.pb` (as
            written by `export_savedmodel`).
        safe_mode: for `.keras` files, Keras's safe mode. Default True: a file
            that holds a `Lambda` layer or other serialized Python code is
            refused with a `ValueError`, because loading it would run that
            code. Pass `safe_mode=False` only for a file you trust. (Keras
            ignores it once `keras.config.enable_unsafe_deserialization()`
            was called in the process.) Ignored for SavedModels, which hold
            TensorFlow graphs, not Python code (see the module docstring for
            their trust rule).

    Returns:
        A `keras.Model` (for a name or a `.keras` file; it returns logits if
        it was built by `build_seresnet`) or the object `tf.saved_model.load`
        returns (call its `serve` endpoint: float32 [N, 32, 32, 3] raw pixels
        in [0, 255] -> float32 probabilities [N, num_classes]).

    Raises:
        FileNotFoundError: `path` does not exist.
        TypeError: `path` is not a str or `os.PathLike` (a model needs no loading).
        ValueError: `path` is neither a `.keras` file nor a SavedModel folder,
            is a corrupt file, or is refused by safe mode (the message says
            how to opt in); a damaged pretrained weights file.

    Example:

        model = load_model("cifar10")  # the package's pretrained weights
        model = load_model("saved_models/my-run/best.keras")
    """
    if not isinstance(safe_mode, bool):
        raise ValueError(
            f"Argument `safe_mode` must be True or False. Received: safe_mode={safe_mode!r}"
        )
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "Argument `path` must be the path (str or os.PathLike) of a `.keras` file or a "
            f"SavedModel folder. Received: path of type {type(path).__name__}"
        )
    if pretrained.is_pretrained_name(path):
        return build_seresnet(weights=path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file or folder: {path}")
    if os.path.isdir(path):
        if not is_savedmodel_dir(path):
            raise InvalidValueError(
                f"Folder {path} is not a TensorFlow SavedModel (it has no "
                f"{SAVEDMODEL_FILE}). Expected a `.keras` file or a folder written "
                f"by `export_savedmodel`.{_looks_like_images(path)}"
            )
        return _load_savedmodel(path)
    if not path.endswith(KERAS_SUFFIX):
        raise InvalidValueError(
            f"Unsupported model file {path}: expected a `{KERAS_SUFFIX}` file or a "
            "SavedModel folder (legacy .h5 and weights-only files are not accepted)."
            f"{_looks_like_images(path)}"
        )
    # Keras's safe mode refuses what would run code or read files on loading
    # (Lambda layers, TFSMLayer, TorchModuleWrapper, a vocabulary file). Not
    # covered: after `keras.config.enable_unsafe_deserialization()` anywhere in
    # the process, Keras loads such files even with `safe_mode=True`.
    try:
        return keras.models.load_model(path, safe_mode=safe_mode)
    except (ValueError, OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise InvalidValueError(
            f"Cannot load model file {path}: {' '.join(str(e).split())}"
        ) from None


def _looks_like_images(path):
    """A hint for a model argument that is an image or a folder of images."""
    if os.path.isdir(path):
        with os.scandir(path) as entries:
            images = any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
    else:
        images = path.lower().endswith(IMAGE_EXTENSIONS)
    if not images:
        return ""
    # Neutral about the order: callers take the model first (the scripts,
    # `export_savedmodel`, `evaluate_model`) or second (`predict_dir`).
    return (
        " It looks like image data, not a model: were the images and the model "
        "given in each other's places?"
    )


def _load_savedmodel(path):
    import tensorflow as tf  # only here: SavedModel loading is TensorFlow's

    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise InvalidValueError(f"Cannot load SavedModel {path}: {e}") from None
    if not hasattr(loaded, "serve"):
        raise InvalidValueError(
            f"SavedModel {path} has no `serve` endpoint; expected a folder written "
            "by `export_savedmodel`."
        )
    return loaded


def softmax(logits):
    """Softmax over the last axis in float32 (numerically stable).

    Args:
        logits: float array [N, C].

    Returns:
        float32 array [N, C]; rows sum to 1.
    """
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _outputs_probabilities(model):
    """Whether a Keras model already ends in a softmax (a user's own model)."""
    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax


class ProbabilityModel:
    """Any supported model as one call: raw pixels -> class probabilities.

    Args:
        model: a `keras.Model` that returns logits (as `build_seresnet`'s
            does; a model whose last layer already applies softmax is
            detected and not softmaxed twice), a loaded SavedModel from
            `export_savedmodel` (its `serve` returns probabilities), or a
            path to a `.keras` file or SavedModel folder (see `load_model`).
        safe_mode: passed to `load_model` when `model` is a path. Default
            True; `safe_mode=False` deliberately allows `.keras` files with
            `Lambda` layers.
        precision: the compute precision of a Keras model: "float32"
            (default), "bfloat16" or "float16" (Keras's `mixed_bfloat16` /
            `mixed_float16` policies: float32 weights, low-precision
            arithmetic; it pays on hardware with such units, GPUs and CPUs
            with AMX or AVX512-BF16, and is slower where it is emulated).
            The input normalisation and the logits stay float32, as in a
            model trained under that policy. A model already under the
            requested policy is used as it is; otherwise a copy is made. SavedModels run as exported, so only
            "float32" is accepted for them.

    Attributes:
        model: the Keras model or loaded SavedModel.
        source: a short description for messages ("a keras.Model", a path).
        is_savedmodel: True for a SavedModel.
        precision: the `precision` argument.
        num_classes: the width of the model's output (int), or None when
            it cannot be read before a call (an object with a `serve` method
            but no signatures).
    """

    def __init__(self, model, *, safe_mode=True, precision="float32"):
        if precision not in PRECISIONS:
            raise ValueError(
                f"Argument `precision` must be one of {tuple(PRECISIONS)}. "
                f"Received: precision={precision!r}"
            )
        self.source = "a keras.Model"
        if isinstance(model, (str, os.PathLike)):
            self.source = os.fspath(model)
            model = load_model(model, safe_mode=safe_mode)
        if isinstance(model, keras.Model):
            self.is_savedmodel = False
            self._returns_probabilities = _outputs_probabilities(model)
            model = _under_policy(model, PRECISIONS[precision])
        elif hasattr(model, "serve"):
            if precision != "float32":
                raise InvalidValueError(
                    f"Argument `precision` must be 'float32' for a SavedModel ({self.source} "
                    "runs at the precision it was exported with). "
                    f"Received: precision={precision!r}"
                )
            self.is_savedmodel = True
            self._returns_probabilities = True
            if self.source == "a keras.Model":
                self.source = "a loaded SavedModel"
        else:
            raise ValueError(
                "Argument `model` must be a keras.Model, a path to a `.keras` file, a "
                "SavedModel folder, or a loaded SavedModel with a `serve` endpoint. "
                f"Received: model={model!r}"
            )
        self.model = model
        self.precision = precision
        self.num_classes = _output_width(model)

    def __call__(self, images):
        """Class probabilities of one batch.

        Args:
            images: array [N, 32, 32, 3], raw RGB pixels in [0, 255] (uint8
                or float); N >= 1.

        Returns:
            float32 array [N, num_classes] whose rows sum to 1.

        Raises:
            ValueError: `images` is not a 4-D batch; a SavedModel's `serve`
                does not return probabilities (rows not summing to 1), so it
                was not made by `export_savedmodel`.
        """
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(
                "Argument `images` must be a batch [N, 32, 32, 3] of raw RGB pixels. "
                f"Received shape {x.shape}"
            )
        if self.is_savedmodel:
            probabilities = np.asarray(self.model.serve(x), dtype=np.float32)
            sums = probabilities.sum(axis=-1)
            if probabilities.ndim != 2 or not np.allclose(sums, 1.0, atol=1e-3):
                raise InvalidValueError(
                    f"The `serve` endpoint of {self.source} does not return class "
                    "probabilities (its rows do not sum to 1); expected a SavedModel "
                    "written by `export_savedmodel`."
                )
            return probabilities
        outputs = self.model.predict_on_batch(x)
        if self._returns_probabilities:
            return np.asarray(outputs, dtype=np.float32)
        return softmax(outputs)

    def predict(self, images, *, batch_size=256, progbar=None):
        """Class probabilities of many images, batch by batch.

        Args:
            images: array [N, 32, 32, 3], raw RGB pixels in [0, 255].
            batch_size: images per model call. Default 256.
            progbar: an optional `keras.utils.Progbar` advanced per batch.

        Returns:
            float32 array [N, num_classes].
        """
        check_batch_size(batch_size)
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            outputs.append(self(batch))
            if progbar is not None:
                progbar.add(len(batch))
        if not outputs:
            raise InvalidValueError("No images to predict: received an empty array.")
        return np.concatenate(outputs)


def as_probability_model(model, *, safe_mode=True, precision="float32"):
    """`model` as a `ProbabilityModel` at `precision` (itself if it already is one)."""
    if isinstance(model, ProbabilityModel):
        if model.precision == precision:
            return model
        rewrapped = ProbabilityModel(model.model, precision=precision)
        rewrapped.source = model.source
        return rewrapped
    return ProbabilityModel(model, safe_mode=safe_mode, precision=precision)


def _under_policy(model, policy):
    """`model`, or a copy with the same weights whose layers run under `policy`.

    Under a mixed policy the `Normalization` layers (raw pixels up to 255,
    which bfloat16 rounds to a step of 1) and the model's output layers (the
    logits) stay float32, as `build_seresnet` builds them under that policy;
    every other layer computes in the low precision.
    """
    float32_layers = set()
    if keras.DTypePolicy(policy).compute_dtype != "float32":
        float32_layers = set(getattr(model, "output_names", None) or [model.layers[-1].name])
        float32_layers.update(
            layer.name for layer in model.layers if isinstance(layer, keras.layers.Normalization)
        )

    def policy_of(layer):
        return "float32" if layer.name in float32_layers else policy

    if all(
        layer.dtype_policy.name == policy_of(layer)
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ):
        return model

    def with_policy(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": policy_of(layer)})

    copy = keras.models.clone_model(model, clone_function=with_policy)
    copy.set_weights(model.get_weights())
    return copy


def _output_width(model):
    if isinstance(model, keras.Model):
        try:
            return int(model.outputs[0].shape[-1])
        except (AttributeError, IndexError, TypeError, ValueError):
            return None  # a subclassed model that has not been called
    signature = getattr(model, "signatures", {}).get("serving_default")
    if signature is None:
        return None
    specs = list(signature.structured_outputs.values())
    width = specs[0].shape[-1] if len(specs) == 1 else None
    return None if width is None else int(width)


def check_batch_size(batch_size):
    """Raises a Keras-style `ValueError` unless `batch_size` is a positive integer (NumPy's too)."""
    if not is_integer(batch_size) or batch_size < 1:
        raise ValueError(
            f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
