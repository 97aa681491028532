"""The recipe's parts for a `model.fit` of your own, and examples/fit.py that uses them."""

import importlib.util
import os

import keras
import numpy as np
import pytest

import keras_seresnet as ks
from tests.tiny_model import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(TINY_MODEL, batch_size=4, epochs=3)


def tiny_data(count=8):
    x = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    return x, np.arange(count) % 10


class EpochProbe(keras.callbacks.Callback):
    """Records the dataset's epoch variable and the first image the model trains on, per epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.seen = epoch, []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append((epoch, int(self.epoch.numpy())))


def test_plain_fit_gets_each_epochs_batches_through_the_recipe_callbacks():
    config = ks.TrainConfig(**TINY)
    x, y = tiny_data()
    epoch = ks.make_epoch_variable()
    dataset = ks.make_train_dataset(x, y, config, epoch=epoch)
    model = ks.compile_model(ks.build_from_config(config), config)
    probe = EpochProbe(epoch)
    history = model.fit(
        dataset,
        epochs=3,
        initial_epoch=1,
        verbose=0,
        shuffle=False,
        callbacks=ks.recipe_callbacks(config, epoch) + [probe],
    )
    assert probe.seen == [(1, 1), (2, 2)]  # Keras's epoch reached the dataset before the pass
    assert set(history.history) >= {"loss", "accuracy", "learning_rate", "mixup_alpha"}
    # Each epoch's pass is that epoch's batches: different orders and augmentations.
    first = {}
    for e in (1, 2):
        epoch.assign(e)
        first[e] = next(iter(dataset))[0].numpy()
    assert not np.array_equal(first[1], first[2])


@pytest.mark.parametrize(
    "fields, names",
    [
        ({}, ["EpochSeed", "WarmupCosineLearningRate", "MixupAlphaDecay"]),
        (
            {"mixup_cutout": False, "use_ema": True},
            ["EpochSeed", "WarmupCosineLearningRate", "SwapEMAWeights"],
        ),
    ],
)
def test_recipe_callbacks_follow_the_config(fields, names):
    callbacks = ks.recipe_callbacks(ks.TrainConfig(**fields), ks.make_epoch_variable())
    assert [type(c).__name__ for c in callbacks] == names


def test_compile_model_takes_the_configs_optimizer_and_loss():
    config = ks.TrainConfig.fast(**TINY_MODEL, use_ema=True)
    model = ks.compile_model(ks.build_from_config(config), config)
    optimizer = model.optimizer
    assert isinstance(optimizer, ks.TorchSGD)
    assert (optimizer.nesterov, optimizer.use_ema, optimizer.momentum) == (True, True, 0.9)
    assert model.loss.get_config()["label_smoothing"] == config.label_smoothing


@pytest.mark.parametrize("function", [ks.compile_model, ks.recipe_callbacks])
def test_the_parts_refuse_a_dict_for_a_config(function):
    arguments = (ks.build_seresnet(**TINY_MODEL), {}) if function is ks.compile_model else ({},)
    with pytest.raises(TypeError, match=r"`config` must be a TrainConfig"):
        function(*arguments)


def test_examples_fit_trains_on_a_tiny_tree(tiny_image_tree, capsys):
    spec = importlib.util.spec_from_file_location(
        "example_fit", os.path.join(ROOT, "examples", "fit.py")
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model = example.main(
        [
            "--data-dir",
            str(tiny_image_tree),
            "--epochs",
            "2",
            "--limit-train",
            "16",
            "--limit-test",
            "8",
        ]
    )
    assert model.optimizer.iterations.numpy() == 2 * 1  # 16 images, batch 128: one step an epoch
    assert "test accuracy after 2 epochs:" in capsys.readouterr().out
