"""keras-seresnet: the lightweight SE-ResNet CIFAR-10 recipe in Keras 3.

The data pipeline and the SavedModel export use TensorFlow, so the Keras
backend defaults to "tensorflow" when the package is imported first, and
TensorFlow's oneDNN CPU kernels are turned on (`keras_seresnet.runtime`).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_seresnet.runtime import enable_onednn  # noqa: E402

enable_onednn()  # before TensorFlow starts; see keras_seresnet/runtime.py

from keras_seresnet.config import CIFAR10_CLASSES, TrainConfig  # noqa: E402
from keras_seresnet.data import (  # noqa: E402
    DataError,
    load_cifar10,
    load_unlabelled_pickle,
)
from keras_seresnet.export import export_savedmodel  # noqa: E402
from keras_seresnet.loading import load_model  # noqa: E402
from keras_seresnet.model import (  # noqa: E402
    PARAMETER_BUDGET,
    build_from_config,
    build_seresnet,
)
from keras_seresnet.predict import predict_dir  # noqa: E402
from keras_seresnet.torch_import import load_torch_weights  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CIFAR10_CLASSES",
    "DataError",
    "PARAMETER_BUDGET",
    "TrainConfig",
    "build_from_config",
    "build_seresnet",
    "export_savedmodel",
    "load_cifar10",
    "load_model",
    "load_torch_weights",
    "load_unlabelled_pickle",
    "predict_dir",
]
