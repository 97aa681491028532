"""keras-seresnet: the lightweight SE-ResNet CIFAR-10 recipe in Keras 3.

Importing the package changes nothing in the process: no environment
variables, no TensorFlow or Pillow settings, and not even an import of Keras
or TensorFlow until a name below is first used (PEP 562 lazy attributes).
The process-wide speed settings the scripts make are explicit calls in
`keras_seresnet.runtime`.

Layout (one job per module; the README's "Design" section says why):

- `models/`: the SE-ResNet builder and its layers.
- `data/`: CIFAR-10 sources, image files, augmentation layers, tf.data pipelines.
- `training/`: optimizer, callbacks, run folder, the training loop,
  distribution, the ablation.
- `inference/`: loading, prediction, evaluation, export (SavedModel, ONNX, LiteRT).
- `interop/`: importing PyTorch checkpoints.
- `cli/`: the commands and their flags.
- `pretrained.py` (the shipped weights, `weights/`), `config.py` (the
  recipe's numbers), `schedules.py` (the learning rate and mixup
  alpha curves), `plots.py`, `files.py`, `runtime.py`.

The recipe's parts for a `model.fit` of your own: `make_train_dataset`,
`make_epoch_variable`, `make_eval_dataset`, `compile_model`,
`recipe_callbacks` (`keras_seresnet.training.recipe`; `examples/fit.py`).

Example:

>>> import keras_seresnet
>>> model = keras_seresnet.build_seresnet()
>>> model.count_params()
2822922
"""

import importlib

__version__ = "0.1.0"

# Public name -> module that defines it, imported on first use.
_EXPORTS = {
    "CIFAR10_CLASSES": "keras_seresnet.config",
    "AugmentConfig": "keras_seresnet.config",
    "ConfigError": "keras_seresnet.config",
    "SeresnetError": "keras_seresnet.errors",
    "DataConfig": "keras_seresnet.config",
    "ModelConfig": "keras_seresnet.config",
    "OptimizerConfig": "keras_seresnet.config",
    "PARAMETER_BUDGET": "keras_seresnet.config",
    "RunConfig": "keras_seresnet.config",
    "ScaleConfig": "keras_seresnet.config",
    "ScheduleConfig": "keras_seresnet.config",
    "TrainConfig": "keras_seresnet.config",
    "DataError": "keras_seresnet.data.cifar10",
    "load_cifar10": "keras_seresnet.data.cifar10",
    "load_unlabelled_pickle": "keras_seresnet.data.cifar10",
    "make_epoch_variable": "keras_seresnet.data.pipeline",
    "make_eval_dataset": "keras_seresnet.data.pipeline",
    "make_train_dataset": "keras_seresnet.data.pipeline",
    "export_model": "keras_seresnet.inference.export",
    "export_savedmodel": "keras_seresnet.inference.export",
    "load_model": "keras_seresnet.inference.loading",
    "predict_dir": "keras_seresnet.inference.predict",
    "build_from_config": "keras_seresnet.models.seresnet",
    "build_seresnet": "keras_seresnet.models.seresnet",
    "load_torch_weights": "keras_seresnet.interop.torch_import",
    "EpochSeed": "keras_seresnet.training.callbacks",
    "MixupAlphaDecay": "keras_seresnet.training.callbacks",
    "WarmupCosineLearningRate": "keras_seresnet.training.callbacks",
    "TrainResult": "keras_seresnet.training.loop",
    "train": "keras_seresnet.training.loop",
    "TorchSGD": "keras_seresnet.training.optimizers",
    "compile_model": "keras_seresnet.training.recipe",
    "recipe_callbacks": "keras_seresnet.training.recipe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_seresnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
