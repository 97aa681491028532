"""SGD with PyTorch's semantics: heavy-ball (or Nesterov) momentum and coupled weight decay."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_seresnet")
class TorchSGD(keras.optimizers.Optimizer):
    """`torch.optim.SGD(momentum=m, weight_decay=wd, nesterov=n)` as a Keras optimizer.

    PyTorch's `weight_decay` is `coupled_weight_decay` here: Keras's
    optimizers name their decoupled decay `weight_decay`.

    For every trainable variable `w` with gradient `g`, each step does what
    PyTorch does (dampening 0):

        g = g + coupled_weight_decay * w  # coupled L2, on every parameter
        buf = momentum * buf + g          # buf starts at zero, so buf_1 = g_1
        w = w - learning_rate * buf                     # nesterov=False
        w = w - learning_rate * (g + momentum * buf)    # nesterov=True

    This differs from `keras.optimizers.SGD(weight_decay=...)` in two ways:
    Keras decays the weights outside the gradient (decoupled, without
    momentum), and Keras's velocity holds `learning_rate * g`, so a change of
    learning rate reaches the old momentum one step late. Here the learning
    rate multiplies the whole buffer, as in PyTorch.

    Args:
        learning_rate: float or schedule. Default 0.1 (the recipe's peak).
        momentum: momentum factor in [0, 1). Default 0.9.
        coupled_weight_decay: coupled L2 factor >= 0 (PyTorch's
            `weight_decay`). Default 5e-4.
        nesterov: Nesterov momentum, as PyTorch's `nesterov=True`. Default
            False.
        name: optimizer name. Default "torch_sgd".
        **kwargs: other `keras.optimizers.Optimizer` arguments (clipnorm,
            `use_ema`, `ema_momentum`, loss_scale_factor, ...). A
            `weight_decay` is the earlier name of `coupled_weight_decay`
            (and its key in the configs of files saved before) and is taken
            as it, never as Keras's decoupled decay.

    Raises:
        ValueError: `momentum` outside [0, 1), a negative
            `coupled_weight_decay`, or `nesterov` not a bool.

    Example:

    >>> optimizer = TorchSGD(learning_rate=0.1, momentum=0.9, coupled_weight_decay=5e-4)
    >>> optimizer.get_config()["coupled_weight_decay"]
    0.0005
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        coupled_weight_decay=5e-4,
        nesterov=False,
        name="torch_sgd",
        **kwargs,
    ):
        if "weight_decay" in kwargs:
            coupled_weight_decay = kwargs.pop("weight_decay")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"Argument `momentum` must be in [0, 1). Received: momentum={momentum}"
            )
        if coupled_weight_decay < 0:
            raise ValueError(
                "Argument `coupled_weight_decay` must be >= 0. "
                f"Received: coupled_weight_decay={coupled_weight_decay}"
            )
        if not isinstance(nesterov, bool):
            raise ValueError(
                f"Argument `nesterov` must be True or False. Received: nesterov={nesterov!r}"
            )
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.coupled_weight_decay = float(coupled_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            # The decay term first: with oneDNN, Grappler's remapper fuses `Add(MatMul, x)`
            # of a one-column kernel into a kernel TensorFlow lacks ("Fusion is not
            # implemented: [BiasAdd,Add]"); this order is not matched (a + b == b + a exactly).
            gradient = ops.add(ops.multiply(variable, self.coupled_weight_decay), gradient)
        # No public lookup of a variable's slot exists; Keras's own optimizers use this one.
        buf = self.momentums[self._get_variable_index(variable)]
        self.assign(buf, ops.add(ops.multiply(buf, self.momentum), gradient))
        step = ops.add(gradient, ops.multiply(buf, self.momentum)) if self.nesterov else buf
        self.assign_sub(variable, ops.multiply(step, learning_rate))

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)  # Keras's decoupled decay, always None here
        config.update(
            {
                "momentum": self.momentum,
                "coupled_weight_decay": self.coupled_weight_decay,
                "nesterov": self.nesterov,
            }
        )
        return config
