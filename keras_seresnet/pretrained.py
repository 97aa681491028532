"""Weights for `build_seresnet(weights=...)`: the package's pretrained ones, or a file of yours.

`weights` is None (a new model, PyTorch's initialisation), a name of
`PRETRAINED`, or the path of a `.weights.h5` file (Keras's weights format,
`model.save_weights`) of a model of the same architecture.

- "cifar10": the recipe's SE-ResNet trained by the package's own command,
  `keras-seresnet-train --preset fast` (30 epochs), on CIFAR-10's 50,000
  training images. Its model card, `docs/weights.md`, gives the command, the
  run's history and its test accuracy. The file ships inside the package and
  its SHA-256 is checked every time it is loaded.

A name fits only the architecture its weights were trained with: the recipe's
`ModelConfig` (other `widths`, `num_classes`, `use_se=False`, ... are refused
before the model is built). The fields that do not change the function the
weights compute at inference (`dropout`, `bn_momentum`, `max_params`) may
differ.

A name also stands for its model wherever the package takes a model:
`load_model("cifar10")`, `predict_dir(folder)` (whose default it is),
`evaluate_model("cifar10", ...)`, `export_model("cifar10", ...)` and the
commands' MODEL argument. A name wins over a file or folder of the same name
in the working directory: write `./cifar10` for the path.

The module imports no Keras, so the commands check a name before TensorFlow
starts.

Example (the package's functions, at its top level):

    model = build_seresnet(weights="cifar10")
    predict_dir("my_images/", model)  # or simply predict_dir("my_images/")
"""

import dataclasses
import hashlib
import os
import warnings

from keras_seresnet.config import ConfigError, ModelConfig
from keras_seresnet.errors import InvalidValueError

WEIGHTS_SUFFIX = ".weights.h5"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")

# Fields that leave the weights' shapes and the inference function unchanged.
_FREE_FIELDS = ("dropout", "bn_momentum", "max_params", "zero_init_residual")


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A weights file shipped with the package.

    Attributes:
        filename: the file's name in `WEIGHTS_DIR`.
        sha256: the file's SHA-256, hex, checked at every load.
        description: one line on what the weights are.
        test_accuracy: the model's accuracy on CIFAR-10's 10,000 test images,
            in [0, 1] (float32, `keras-seresnet-evaluate`; its model card
            has the details).
        test_accuracy_tta: the same with horizontal-flip test-time
            augmentation (`--tta`).
    """

    filename: str
    sha256: str
    description: str
    test_accuracy: float
    test_accuracy_tta: float

    @property
    def path(self) -> str:
        """The file's path inside the installed package."""
        return os.path.join(WEIGHTS_DIR, self.filename)


DEFAULT = "cifar10"  # the model of `predict_dir` and `keras-seresnet-predict` when none is given

PRETRAINED = {
    "cifar10": PretrainedWeights(
        filename="cifar10.weights.h5",
        sha256="0cdff6def98385c397a26c2bdac62d5f0e7b55610a8f8c21df2981b4a1e1aac2",
        description="the recipe's SE-ResNet after `keras-seresnet-train --preset fast` "
        "(30 epochs on CIFAR-10's 50,000 training images); docs/weights.md",
        test_accuracy=0.8962,
        test_accuracy_tta=0.9037,
    ),
}


def is_pretrained_name(value) -> bool:
    """Whether `value` is a name of `PRETRAINED` (not a path).

    >>> is_pretrained_name("cifar10"), is_pretrained_name("cifar10.weights.h5")
    (True, False)
    """
    return isinstance(value, str) and value in PRETRAINED


def sha256_of(path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights(weights, spec):
    """Checks `build_seresnet`'s `weights` against the architecture, before anything is built.

    Args:
        weights: None, a name of `PRETRAINED`, or a `.weights.h5` path.
        spec: the validated `ModelConfig` of the model to build.

    Raises:
        ConfigError: a name with an architecture its weights do not fit
            (naming the first field that differs and its required value).
        FileNotFoundError: a path to no file.
        ValueError: anything else (the message lists the accepted forms).
    """
    if weights is None:
        return
    if is_pretrained_name(weights):
        recipe = ModelConfig()
        for field in dataclasses.fields(ModelConfig):
            if field.name in _FREE_FIELDS:
                continue
            required, received = getattr(recipe, field.name), getattr(spec, field.name)
            if received != required:
                raise ConfigError(
                    f"Argument `weights={weights!r}` fits the recipe's architecture only, "
                    f"with `{field.name}={required!r}`. Received: {field.name}={received!r}",
                    (field.name,),
                )
        return
    if not isinstance(weights, (str, os.PathLike)) or not os.fspath(weights).endswith(
        WEIGHTS_SUFFIX
    ):
        names = ", ".join(repr(name) for name in PRETRAINED)
        raise ValueError(
            f"Argument `weights` must be None, a pretrained name ({names or 'none shipped'}) "
            f"or the path of a `{WEIGHTS_SUFFIX}` file. Received: weights={weights!r}"
        )
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"No such weights file: {os.fspath(weights)}")


def load_weights(model, weights):
    """Loads `weights` (checked by `check_weights`) into the built `model`; None does nothing.

    Raises:
        FileNotFoundError: a pretrained file missing from the installation.
        ValueError: a pretrained file whose SHA-256 is not the registered
            one (a damaged installation), or a weights file that does not
            fit the model (another architecture).
    """
    if weights is None:
        return
    if is_pretrained_name(weights):
        entry = PRETRAINED[weights]
        if not os.path.isfile(entry.path):
            raise FileNotFoundError(
                f"The pretrained weights file {entry.path} is missing. Reinstall keras-seresnet."
            )
        found = sha256_of(entry.path)
        if found != entry.sha256:
            raise InvalidValueError(
                f"The pretrained weights file {entry.path} is damaged: its SHA-256 is {found}, "
                f"not {entry.sha256}. Reinstall keras-seresnet."
            )
        path = entry.path
    else:
        path = os.fspath(weights)
    with warnings.catch_warnings():  # Keras warns per layer, then raises for the whole file
        warnings.simplefilter("ignore", UserWarning)
        try:
            model.load_weights(path)
        except ValueError as e:
            # Keras's message goes on to print the variable's values: keep its first sentences.
            reason = " ".join(str(e).split()).split(" Target variable:")[0]
            raise InvalidValueError(
                f"The weights file {path} does not fit this model: {reason}"
            ) from None
