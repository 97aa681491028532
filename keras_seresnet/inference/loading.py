"""Loading saved models, and calling any of them the same way.

Two formats are supported, each with its trust rule:

- a `.keras` file (`model.save(...)`, or the file `export_savedmodel` writes
  beside the SavedModel), loaded with Keras's *safe mode* on by default: a
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
"""

import os

import keras
import numpy as np

# Keras lets a process-wide `keras.config.enable_unsafe_deserialization()`
# override an explicit `load_model(..., safe_mode=True)`. Its scope (pinned
# keras 3.15.1; no public equivalent) lets this module's `safe_mode` win.
from keras.src.saving.serialization_lib import SafeModeScope

from keras_seresnet.runtime import fuse_batch_norm

KERAS_SUFFIX = ".keras"
SAVEDMODEL_FILE = "saved_model.pb"


def is_savedmodel_dir(path):
    """True when `path` is a folder holding a TensorFlow SavedModel."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, SAVEDMODEL_FILE))


def load_model(path, *, safe_mode=True):
    """Loads a `.keras` file or a SavedModel folder.

    Args:
        path: a `.keras` file, or a folder holding `saved_model.pb` (as
            written by `export_savedmodel`).
        safe_mode: for `.keras` files, Keras's safe mode. Default True: a file
            that holds a `Lambda` layer or other serialized Python code is
            refused with a `ValueError`, because loading it would run that
            code. Pass `safe_mode=False` only for a file you trust. This holds
            even if `keras.config.enable_unsafe_deserialization()` was called
            elsewhere in the process. Ignored
            for SavedModels, which hold TensorFlow graphs, not Python code
            (see the module docstring for their trust rule).

    Returns:
        A `keras.Model` (from a `.keras` file; it returns logits if it was
        built by `build_seresnet`) or the object `tf.saved_model.load`
        returns (call its `serve` endpoint: float32 [N, 32, 32, 3] raw pixels
        in [0, 255] -> float32 probabilities [N, num_classes]).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is neither a `.keras` file nor a SavedModel folder,
            is a corrupt file, or is refused by safe mode (the message says
            how to opt in).
    """
    if not isinstance(safe_mode, bool):
        raise ValueError(
            f"Argument `safe_mode` must be True or False. Received: safe_mode={safe_mode!r}"
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such model file or folder: {path}")
    if os.path.isdir(path):
        if not is_savedmodel_dir(path):
            raise ValueError(
                f"Folder {path} is not a TensorFlow SavedModel (it has no "
                f"{SAVEDMODEL_FILE}). Expected a `.keras` file or a folder written "
                "by `export_savedmodel`."
            )
        return _load_savedmodel(path)
    if not path.endswith(KERAS_SUFFIX):
        raise ValueError(
            f"Unsupported model file {path}: expected a `{KERAS_SUFFIX}` file or a "
            "SavedModel folder (legacy .h5 and weights-only files are not accepted)."
        )
    try:
        with SafeModeScope(safe_mode):
            return fuse_batch_norm(keras.models.load_model(path, safe_mode=safe_mode))
    except ValueError as e:
        if "safe_mode" in str(e):
            raise ValueError(
                f"Refused to load {path}: it holds a `Lambda` layer or other "
                "serialized Python code, which would run on this machine when "
                "loaded (Keras safe mode). If you trust the file's source, opt in "
                "deliberately with `safe_mode=False` (scripts: `--no-safe-mode`). "
                f"Keras said: {e}"
            ) from None
        raise ValueError(f"Cannot load model file {path}: {e}") from None
    except (OSError, KeyError) as e:  # not a zip, or a zip without a model
        raise ValueError(f"Cannot load model file {path}: {e}") from None


def _load_savedmodel(path):
    import tensorflow as tf  # only here: SavedModel loading is TensorFlow's

    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise ValueError(f"Cannot load SavedModel {path}: {e}") from None
    if not hasattr(loaded, "serve"):
        raise ValueError(
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

    Attributes:
        model: the Keras model or loaded SavedModel.
        source: a short description for messages ("a keras.Model", a path).
        is_savedmodel: True for a SavedModel.
    """

    def __init__(self, model, *, safe_mode=True):
        self.source = "a keras.Model"
        if isinstance(model, (str, os.PathLike)):
            self.source = os.fspath(model)
            model = load_model(model, safe_mode=safe_mode)
        if isinstance(model, keras.Model):
            self.is_savedmodel = False
            self._returns_probabilities = _outputs_probabilities(model)
        elif hasattr(model, "serve"):
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

    def __call__(self, images):
        """Class probabilities of one batch.

        Args:
            images: array [N, 32, 32, 3], raw RGB pixels in [0, 255] (uint8
                or float); N >= 1.

        Returns:
            float32 array [N, num_classes] whose rows sum to 1.

        Raises:
            ValueError: a SavedModel's `serve` does not return probabilities
                (rows not summing to 1), so it was not made by
                `export_savedmodel`.
        """
        x = np.asarray(images, dtype=np.float32)
        if self.is_savedmodel:
            probabilities = np.asarray(self.model.serve(x), dtype=np.float32)
            sums = probabilities.sum(axis=-1)
            if probabilities.ndim != 2 or not np.allclose(sums, 1.0, atol=1e-3):
                raise ValueError(
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
        _check_batch_size(batch_size)
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            outputs.append(self(batch))
            if progbar is not None:
                progbar.add(len(batch))
        if not outputs:
            raise ValueError("No images to predict: received an empty array.")
        return np.concatenate(outputs)


def _check_batch_size(batch_size):
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(
            f"Argument `batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
