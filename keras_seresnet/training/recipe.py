"""The recipe's training parts for a `model.fit` of your own: the compile step and the callbacks.

`train()` is these parts plus a run folder; a script of your own can use them
directly (`examples/fit.py` is one):

    config = TrainConfig.fast()
    (x_train, y_train), (x_test, y_test) = load_cifar10("cifar10/")
    epoch = make_epoch_variable()
    model = compile_model(build_from_config(config), config)
    model.fit(
        make_train_dataset(x_train, y_train, config, epoch=epoch),
        validation_data=make_eval_dataset(x_test, y_test),
        epochs=config.epochs,
        callbacks=recipe_callbacks(config, epoch),
    )

The training dataset draws epoch `e`'s order, augmentations and mixup alphas
when its epoch variable holds `e`; `recipe_callbacks` includes the
`EpochSeed` that sets it as each epoch begins, so every epoch gets new
batches, and a `fit(initial_epoch=k)` continues with epoch `k`'s.
"""

import keras

from keras_seresnet.config import check_config_type
from keras_seresnet.training.callbacks import EpochSeed, MixupAlphaDecay, WarmupCosineLearningRate
from keras_seresnet.training.optimizers import TorchSGD


def compile_model(model, config):
    """Compiles `model` with the recipe's optimizer, loss and metric; returns it.

    `TorchSGD` (PyTorch's momentum and coupled weight decay; Nesterov if
    `config.nesterov`; a moving average of the weights if `config.use_ema`),
    categorical cross-entropy from logits with `config.label_smoothing` on
    the (mixed) one-hot targets, and categorical accuracy named `accuracy`
    (against the dominant label of a mixed target). The learning rate starts
    at `config.base_lr`; `WarmupCosineLearningRate` (in `recipe_callbacks`)
    sets it every epoch or step. XLA as `config.jit` says (None: Keras's
    "auto"); `config.steps_per_execution` training steps per call. Under a
    mixed_float16 policy Keras wraps the optimizer in a `LossScaleOptimizer`.

    Args:
        model: a `keras.Model` returning logits, e.g. `build_from_config(config)`.
        config: a `TrainConfig`.

    Returns:
        `model`, compiled.

    Raises:
        TypeError: `config` is not a `TrainConfig`.

    Example:

    >>> from keras_seresnet import TrainConfig, build_from_config
    >>> config = TrainConfig.fast(widths=(8, 16), blocks=(1, 1), se_stages=(2,))
    >>> model = compile_model(build_from_config(config), config)
    >>> type(model.optimizer).__name__, model.optimizer.nesterov
    ('TorchSGD', True)
    """
    check_config_type(config)
    model.compile(
        optimizer=TorchSGD(
            learning_rate=config.base_lr,
            momentum=config.momentum,
            coupled_weight_decay=config.weight_decay,
            nesterov=config.nesterov,
            use_ema=config.use_ema,
            ema_momentum=config.ema_momentum,
        ),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile="auto" if config.jit is None else config.jit,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def recipe_callbacks(config, epoch=None):
    """The callbacks that make a `model.fit` train as the recipe (or a preset) says.

    In order: `EpochSeed` (each epoch's data and dropout from `(seed,
    epoch)`; it sets `epoch`), `WarmupCosineLearningRate` (the learning
    rate per epoch or per step), `MixupAlphaDecay` (logs the alpha the
    dataset mixes with; only with `config.mixup_cutout`), and
    `keras.callbacks.SwapEMAWeights` (evaluation on the averaged weights;
    only with `config.use_ema`, whose averaged weights `fit` leaves in the
    model at the end). Their logs add the columns `learning_rate` and
    `mixup_alpha` to `fit`'s history.

    Args:
        config: the `TrainConfig` the model was compiled with
            (`compile_model`) and the dataset built with.
        epoch: the int64 `tf.Variable` (`make_epoch_variable()`) that the
            training dataset was built with, or None for a dataset of your
            own (the callbacks then only reseed each epoch).

    Returns:
        A list of `keras.callbacks.Callback`, to pass to `fit` (append your own).

    Raises:
        TypeError: `config` is not a `TrainConfig`.

    Example:

    >>> from keras_seresnet import TrainConfig, make_epoch_variable
    >>> epoch = make_epoch_variable()
    >>> [type(c).__name__ for c in recipe_callbacks(TrainConfig(), epoch)]
    ['EpochSeed', 'WarmupCosineLearningRate', 'MixupAlphaDecay']

    A `model.fit` of one step on eight images, with the fast preset's
    schedule and a tiny model:

    >>> import numpy as np
    >>> from keras_seresnet import build_from_config, make_train_dataset
    >>> config = TrainConfig.fast(epochs=1, batch_size=8, widths=(8, 16), blocks=(1, 1),
    ...                           se_stages=(2,))
    >>> x, y = np.zeros((8, 32, 32, 3), np.uint8), np.arange(8)
    >>> model = compile_model(build_from_config(config), config)
    >>> history = model.fit(make_train_dataset(x, y, config, epoch=epoch), epochs=1,
    ...                     callbacks=recipe_callbacks(config, epoch), shuffle=False, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'learning_rate', 'loss']
    """
    check_config_type(config)
    callbacks = [EpochSeed(config.seed, epoch), WarmupCosineLearningRate.from_train_config(config)]
    if config.mixup_cutout:
        callbacks.append(MixupAlphaDecay.from_train_config(config))
    if config.use_ema:
        callbacks.append(keras.callbacks.SwapEMAWeights())
    return callbacks
