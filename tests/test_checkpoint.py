import keras
import numpy as np
import pytest

from keras_seresnet.training.checkpoint import load_checkpoint, save_checkpoint
from keras_seresnet.training.optimizers import TorchSGD


def small_model(loss_scale=False, units=3, seed=0):
    """Dense, BatchNormalization and Dropout: trainable, statistics and seed-state variables."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(units),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.5, seed=seed),
        ]
    )
    optimizer = TorchSGD(learning_rate=0.1, momentum=0.9)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def trained(model, seed=0):
    rng = np.random.default_rng(seed)
    model.fit(
        rng.normal(size=(8, 4)).astype("float32"),
        rng.normal(size=(8, 3)).astype("float32"),
        batch_size=4,
        epochs=2,
        verbose=0,
    )
    return model


def state(model):
    return [v.numpy() for v in model.variables + model.optimizer.variables]


@pytest.mark.parametrize("loss_scale", [False, True], ids=["plain", "loss-scale"])
def test_a_checkpoint_restores_every_variable_of_the_model_and_optimizer(tmp_path, loss_scale):
    source = trained(small_model(loss_scale))
    save_checkpoint(source, tmp_path / "epoch-0001.npz")
    target = small_model(loss_scale, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(state(source), state(target)))
    load_checkpoint(target, tmp_path / "epoch-0001.npz")
    for restored, saved in zip(state(target), state(source), strict=True):
        np.testing.assert_array_equal(restored, saved)
    assert target.optimizer.iterations.numpy() == 4
    # Training on from the checkpoint is training on from the source.
    x = np.ones((4, 4), "float32")
    np.testing.assert_array_equal(
        trained(target, seed=2).predict(x, verbose=0), trained(source, seed=2).predict(x, verbose=0)
    )


def test_a_checkpoint_of_another_optimizer_or_model_is_refused_and_nothing_assigned(tmp_path):
    save_checkpoint(trained(small_model(loss_scale=True)), tmp_path / "scaled.npz")
    save_checkpoint(small_model(units=5), tmp_path / "wider.npz")
    target = small_model()
    before = state(target)
    with pytest.raises(
        ValueError,
        match=r"scaled.npz does not fit .* optimizer variables, the "
        r"optimizer has",
    ):
        load_checkpoint(target, tmp_path / "scaled.npz")
    with pytest.raises(
        ValueError,
        match=r"wider.npz does not fit .* model variables, the model "
        r"has \d+ of other shapes\.$",
    ):
        load_checkpoint(target, tmp_path / "wider.npz")
    for now, then in zip(state(target), before, strict=True):
        np.testing.assert_array_equal(now, then)


def test_a_keras_file_of_an_earlier_version_still_loads(tmp_path):
    source = trained(small_model())
    source.save(tmp_path / "epoch-0001.keras")
    target = small_model(seed=1)
    load_checkpoint(target, tmp_path / "epoch-0001.keras")
    np.testing.assert_array_equal(target.optimizer.iterations.numpy(), 4)
    for restored, saved in zip(target.weights, source.weights, strict=True):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
    trained(small_model(loss_scale=True)).save(tmp_path / "scaled.keras")
    for path, model in [
        (tmp_path / "scaled.keras", small_model()),
        (tmp_path / "epoch-0001.keras", small_model(loss_scale=True)),
    ]:
        with pytest.raises(ValueError) as info:
            load_checkpoint(model, path)
        message = str(info.value)
        assert message.startswith(f"The checkpoint {path} does not fit the model and optimizer: ")
        assert "\n" not in message and "variables" in message


def test_bad_arguments_are_keras_style_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Argument `path` must end in '.npz'. Received: path="):
        save_checkpoint(small_model(), tmp_path / "epoch.keras")
    unbuilt = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    unbuilt.compile(optimizer=TorchSGD(learning_rate=0.1), loss="mse")
    with pytest.raises(
        ValueError, match=r"Argument `model` must be compiled with a built optimizer"
    ):
        save_checkpoint(unbuilt, tmp_path / "epoch.npz")
