import keras
import numpy as np
import pytest

from keras_seresnet.training.optimizers import TorchSGD


def torch_style_reference(w0, grads, lrs, momentum, weight_decay):
    """PyTorch's SGD step by hand (torch/optim/sgd.py, dampening 0)."""
    w, buf = w0.copy(), None
    for g, lr in zip(grads, lrs):
        d = g + weight_decay * w
        buf = d.copy() if buf is None else momentum * buf + d
        w = w - lr * buf
    return w


def test_steps_match_hand_computed_pytorch_update_with_changing_lr():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype("float64")
    grads = [rng.normal(size=(3, 4)) for _ in range(4)]
    lrs = [0.1, 0.1, 0.05, 0.2]  # the learning rate changes between steps
    var = keras.Variable(w0, dtype="float64")
    opt = TorchSGD(learning_rate=lrs[0], momentum=0.9, coupled_weight_decay=5e-4)
    for g, lr in zip(grads, lrs):
        opt.learning_rate = lr
        opt.apply_gradients([(keras.ops.convert_to_tensor(g, "float64"), var)])
    expected = torch_style_reference(w0, grads, lrs, 0.9, 5e-4)
    # Keras keeps the learning rate in a float32 variable (0.1 -> 0.1 + 1.5e-9),
    # so float64 weights agree to float32's resolution, not further.
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-7, atol=1e-7)
    # Keras's own SGD with (decoupled) weight_decay is a different update.
    keras_var = keras.Variable(w0, dtype="float64")
    keras_opt = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
    for g, lr in zip(grads, lrs):
        keras_opt.learning_rate = lr
        keras_opt.apply_gradients([(keras.ops.convert_to_tensor(g, "float64"), keras_var)])
    assert np.abs(keras_var.numpy() - expected).max() > 1e-4


def test_weight_decay_reaches_parameters_with_zero_gradient():
    var = keras.Variable(np.ones(5, "float32"))
    opt = TorchSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=5e-4)
    opt.apply_gradients([(keras.ops.zeros(5), var)])
    np.testing.assert_allclose(var.numpy(), 1 - 0.1 * 5e-4, rtol=1e-6)


def test_config_round_trip_keeps_coupled_decay():
    opt = TorchSGD(learning_rate=0.05, momentum=0.8, coupled_weight_decay=1e-3)
    config = opt.get_config()
    assert config["coupled_weight_decay"] == 1e-3 and config["momentum"] == 0.8
    assert "weight_decay" not in config
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(clone, TorchSGD)
    assert (clone.momentum, clone.coupled_weight_decay) == (0.8, 1e-3)
    assert clone.weight_decay is None  # Keras's decoupled decay stays off


# `keras.optimizers.serialize(TorchSGD(...))` as the versions before the rename
# to `coupled_weight_decay` saved it (in `.keras` files and checkpoints).
OLD_SERIALIZED = {
    "module": "keras_seresnet.training.optimizers",
    "class_name": "TorchSGD",
    "registered_name": "keras_seresnet>TorchSGD",
    "config": {
        "name": "torch_sgd",
        "learning_rate": 0.05000000074505806,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "loss_scale_factor": None,
        "gradient_accumulation_steps": None,
        "momentum": 0.8,
        "weight_decay": 0.001,
        "nesterov": False,
    },
}


def test_a_config_saved_under_the_old_key_loads_as_the_coupled_decay():
    opt = keras.optimizers.deserialize(OLD_SERIALIZED)
    assert isinstance(opt, TorchSGD)
    assert (opt.momentum, opt.coupled_weight_decay, opt.weight_decay) == (0.8, 1e-3, None)
    assert TorchSGD.from_config(OLD_SERIALIZED["config"]).get_config() == opt.get_config()
    var = keras.Variable(np.ones(5, "float32"))
    opt.apply_gradients([(keras.ops.zeros(5), var)])
    np.testing.assert_allclose(var.numpy(), 1 - 0.05 * 1e-3, rtol=1e-6)  # decayed once, coupled


def test_the_earlier_argument_name_still_sets_the_coupled_decay():
    assert TorchSGD(weight_decay=1e-3).coupled_weight_decay == 1e-3
    assert TorchSGD(weight_decay=1e-3).weight_decay is None


@pytest.mark.parametrize(
    "kwargs", [{"momentum": 1.0}, {"momentum": -0.1}, {"coupled_weight_decay": -1.0}]
)
def test_invalid_arguments_are_named(kwargs):
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=rf"`{name}`.*{name}={value}"):
        TorchSGD(**kwargs)


def torch_nesterov_reference(w0, grads, lr, momentum, weight_decay):
    """PyTorch's SGD(nesterov=True) step by hand (torch/optim/sgd.py, dampening 0)."""
    w, buf = w0.copy(), None
    for g in grads:
        d = g + weight_decay * w
        buf = d.copy() if buf is None else momentum * buf + d
        w = w - lr * (d + momentum * buf)
    return w


def test_nesterov_steps_match_hand_computed_pytorch_update():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(4)]
    var = keras.Variable(w0, dtype="float64")
    opt = TorchSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=5e-4, nesterov=True)
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g, "float64"), var)])
    expected = torch_nesterov_reference(w0, grads, 0.1, 0.9, 5e-4)
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-7, atol=1e-7)
    assert np.abs(var.numpy() - torch_style_reference(w0, grads, [0.1] * 4, 0.9, 5e-4)).max() > 1e-3


def test_nesterov_and_ema_round_trip_through_the_config():
    opt = TorchSGD(nesterov=True, use_ema=True, ema_momentum=0.95)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert (clone.nesterov, clone.use_ema, clone.ema_momentum) == (True, True, 0.95)


def test_nesterov_must_be_a_bool():
    with pytest.raises(ValueError, match=r"`nesterov` must be True or False. Received: nesterov=1"):
        TorchSGD(nesterov=1)
