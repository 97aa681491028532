"""The SE-ResNet of the recipe as a Keras functional model.

Built from built-in Keras layers and the package's fused BatchNormalization
(`keras_seresnet.models.layers.BatchNormalization`; pass `batch_norm="keras"` for Keras's own
BatchNormalization, so that a saved `.keras` file needs no package code to
load). The graph is the reference PyTorch model layer for layer:

    raw pixels [0, 255] -> Normalization(mean, std)
    stem: Conv3x3(3 -> 32, bias) -> BN -> ReLU
    stage s = 1..4, block b = 1..2:
        [ZeroPadding2D(1)] Conv3x3(stride) -> BN -> ReLU -> Conv3x3 -> BN
        -> [SE: GAP -> Dense(C/16) -> ReLU -> Dense(C) -> sigmoid -> scale]
        -> add shortcut (identity, or Conv1x1(stride) -> BN) -> ReLU
    head: GAP -> Dropout(0.2) -> Dense(10) logits

Stride-2 convolutions pad one pixel on every side explicitly, as PyTorch's
`padding=1` does; Keras's `padding="same"` would pad only bottom and right and
be a different function (it matters for importing the reference's weights).

Weights are initialised as PyTorch initialises `Conv2d` and `Linear`: uniform
in +-1/sqrt(fan_in) for kernels and biases (the recipe allows either convention;
this one keeps the starting point of the reference).
"""

import collections.abc

import keras
from keras import layers

from keras_seresnet import pretrained
from keras_seresnet.config import ModelConfig, check_config_type
from keras_seresnet.errors import InvalidValueError
from keras_seresnet.models import layers as fused_layers
from keras_seresnet.runtime import speedups_enabled

BATCH_NORMS = {"fused": fused_layers.BatchNormalization, "keras": layers.BatchNormalization}


def _torch_kernel_init():
    # PyTorch's kaiming_uniform_(a=sqrt(5)): bound = 1 / sqrt(fan_in).
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def _torch_bias_init(fan_in):
    bound = fan_in**-0.5
    return keras.initializers.RandomUniform(-bound, bound)


def _float32_if_mixed():
    # Under a mixed float16/bfloat16 policy the input normalisation (raw
    # pixels up to 255, which bfloat16 rounds to a step of 1) and the logits
    # (and so the softmax and the loss) are computed in float32; the stem
    # convolution casts its input once either way. Otherwise the layer
    # follows the global policy (float32, or float64 for exact parity checks).
    if keras.mixed_precision.global_policy().compute_dtype in ("float16", "bfloat16"):
        return "float32"
    return None


def _sequence(value):
    """A non-string iterable (a list, a NumPy array, a generator) as a tuple; anything else as it is."""
    if isinstance(value, collections.abc.Iterable) and not isinstance(value, (str, bytes)):
        return tuple(value)
    return value


def _batch_norm(x, momentum, epsilon, name, batch_norm, synchronized, gamma_initializer="ones"):
    return BATCH_NORMS[batch_norm](
        momentum=momentum,
        epsilon=epsilon,
        synchronized=synchronized,
        gamma_initializer=gamma_initializer,
        name=name,
    )(x)


def _conv(x, filters, kernel_size, strides, name):
    """A bias-free convolution padded like PyTorch's `padding=kernel_size // 2`."""
    pad = kernel_size // 2
    padding = "same"
    if strides != 1 and pad:
        x = layers.ZeroPadding2D(pad, name=name + "_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=_torch_kernel_init(),
        name=name,
    )(x)


def squeeze_excite(x, reduction, name):
    """Squeeze-and-excitation from built-in layers.

    Args:
        x: feature map, [N, H, W, C].
        reduction: the bottleneck is `C // reduction` units.
        name: prefix of every layer name (`..._se`).

    Returns:
        `x` scaled channel-wise by sigmoid gates in (0, 1), [N, H, W, C].
    """
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name=name + "_pool")(x)
    s = layers.Dense(
        channels // reduction,
        activation="relu",
        use_bias=False,
        kernel_initializer=_torch_kernel_init(),
        name=name + "_squeeze",
    )(s)
    s = layers.Dense(
        channels,
        activation="sigmoid",
        use_bias=False,
        kernel_initializer=_torch_kernel_init(),
        name=name + "_excite",
    )(s)
    return layers.Multiply(name=name + "_scale")([x, s])


def residual_block(
    x,
    filters,
    strides,
    use_se,
    se_reduction,
    bn_momentum,
    bn_epsilon,
    name,
    *,
    batch_norm="fused",
    synchronized=False,
    zero_init_residual=False,
):
    """One basic residual block: two 3x3 convolutions, optional SE, shortcut.

    Args:
        x: input feature map, [N, H, W, C_in].
        filters: output channels C.
        strides: stride of the first convolution and of the shortcut.
        use_se: apply squeeze-and-excitation after the second BatchNorm.
        se_reduction: SE bottleneck ratio.
        bn_momentum, bn_epsilon: BatchNormalization settings.
        name: prefix of every layer name (`stage3_block1`).
        batch_norm, synchronized: as in `build_seresnet`.
        zero_init_residual: initialise the second BatchNorm's gamma to 0, so
            the residual branch starts at 0 and the block as its shortcut.
            Default False (gamma 1, as PyTorch initialises it).

    Returns:
        Feature map [N, H / strides, W / strides, C].
    """
    norm = dict(
        momentum=bn_momentum, epsilon=bn_epsilon, batch_norm=batch_norm, synchronized=synchronized
    )
    shortcut = x
    y = _conv(x, filters, 3, strides, name + "_conv1")
    y = _batch_norm(y, name=name + "_bn1", **norm)
    y = layers.ReLU(name=name + "_relu1")(y)
    y = _conv(y, filters, 3, 1, name + "_conv2")
    y = _batch_norm(
        y, name=name + "_bn2", gamma_initializer="zeros" if zero_init_residual else "ones", **norm
    )
    if use_se:
        y = squeeze_excite(y, se_reduction, name + "_se")
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(x, filters, 1, strides, name + "_shortcut_conv")
        shortcut = _batch_norm(shortcut, name=name + "_shortcut_bn", **norm)
    y = layers.Add(name=name + "_add")([y, shortcut])
    return layers.ReLU(name=name + "_out")(y)


def build_seresnet(
    *,
    weights=None,
    batch_norm=None,
    synchronized=False,
    name="seresnet",
    **architecture,
):
    """Builds the recipe's SE-ResNet as a functional `keras.Model`.

    The architecture's arguments are the fields of `ModelConfig`, which
    holds their defaults (the paper's model: 2,818,122 trainable parameters,
    2,822,922 counting BatchNorm moving statistics), their meaning and their
    checks: `num_classes` (10), `widths` ((32, 64, 128, 256)), `blocks`
    ((2, 2, 2, 2)), `use_se` (True; False is the ablation's Model 5),
    `se_stages` ((3, 4)), `se_reduction` (16), `dropout` (0.2),
    `zero_init_residual` (False; True starts each block's second BatchNorm
    at gamma 0, so that every residual block begins as its shortcut),
    `bn_momentum` (0.9, Keras's convention), `bn_epsilon` (1e-5), `mean` and
    `std` (per channel, of pixels scaled to [0, 1], applied inside),
    `max_params` (5,000,000, the paper's budget: a model with more
    parameters, BatchNorm statistics counted, is refused; None lifts it).

    Args:
        weights: None (PyTorch's initialisation, the default), "cifar10"
            (the package's pretrained weights, `keras_seresnet.pretrained`;
            only for the recipe's architecture), or the path of a
            `.weights.h5` file of the same architecture.
        batch_norm: "fused" (`keras_seresnet.models.layers.BatchNormalization`:
            TensorFlow's fused kernel, the same function as Keras's layer) or "keras"
            (`keras.layers.BatchNormalization`). Default None: "fused",
            or "keras" when the environment sets KERAS_SERESNET_SPEEDUPS=0.
        synchronized: BatchNormalization all-reduces its batch statistics
            across the replicas of a `tf.distribute` strategy, so several
            replicas normalise as one device does. Default False. Build the
            model inside the strategy's scope.
        name: the model's name. Default "seresnet".
        **architecture: `ModelConfig` fields; sequences may be lists, tuples
            or NumPy arrays.

    Returns:
        A `keras.Model` mapping float32 raw pixels [N, 32, 32, 3] in [0, 255]
        (NHWC, RGB) to float32 logits [N, num_classes]. It normalises
        internally, so callers never preprocess. Built under a mixed
        precision policy (`keras.mixed_precision.set_global_policy`), its
        layers compute in float16/bfloat16 (BatchNormalization with float32
        statistics) but the input normalisation and the logits layer in
        float32; all variables are float32.

    Raises:
        ConfigError: an unknown or invalid architecture field, or
            `weights="cifar10"` with an architecture the weights do not fit.
        ValueError: a parameter count above `max_params` (the message gives
            both numbers), a bad `batch_norm` or `synchronized`, or a weights
            file that does not fit the model.
        FileNotFoundError: a `weights` path that does not exist.

    Example:

    >>> model = build_seresnet()
    >>> model.count_params()
    2822922
    >>> build_seresnet(widths=(16, 32, 64, 128), use_se=False).output_shape
    (None, 10)
    """
    # The config checks the architecture and holds it as plain Python values
    # (NumPy numbers as int/float), which the layers are given.
    spec = ModelConfig.from_dict({k: _sequence(v) for k, v in architecture.items()})
    if batch_norm is None:
        batch_norm = "fused" if speedups_enabled() else "keras"
    if batch_norm not in BATCH_NORMS:
        raise ValueError(
            "Argument `batch_norm` must be one of 'fused', 'keras', or None. "
            f"Received: batch_norm={batch_norm!r}"
        )
    if not isinstance(synchronized, bool):
        raise ValueError(
            f"Argument `synchronized` must be True or False. "
            f"Received: synchronized={synchronized!r}"
        )
    pretrained.check_weights(weights, spec)
    for stage, width in enumerate(spec.widths, start=1):
        if spec.use_se and stage in spec.se_stages and width // spec.se_reduction < 1:
            raise InvalidValueError(
                f"Argument `se_reduction` leaves no SE units in stage {stage} "
                f"({width} channels). Received: se_reduction={spec.se_reduction}"
            )

    inputs = keras.Input(shape=(32, 32, 3), dtype="float32", name="image")
    x = layers.Normalization(
        mean=[255.0 * m for m in spec.mean],
        variance=[(255.0 * s) ** 2 for s in spec.std],
        dtype=_float32_if_mixed(),
        name="normalize",
    )(inputs)
    x = layers.Conv2D(
        spec.widths[0],
        3,
        padding="same",
        use_bias=True,
        kernel_initializer=_torch_kernel_init(),
        bias_initializer=_torch_bias_init(3 * 3 * 3),
        name="stem_conv",
    )(x)
    x = _batch_norm(x, spec.bn_momentum, spec.bn_epsilon, "stem_bn", batch_norm, synchronized)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (width, num_blocks) in enumerate(zip(spec.widths, spec.blocks), start=1):
        for block in range(1, num_blocks + 1):
            x = residual_block(
                x,
                width,
                strides=2 if stage > 1 and block == 1 else 1,
                use_se=spec.use_se and stage in spec.se_stages,
                se_reduction=spec.se_reduction,
                bn_momentum=spec.bn_momentum,
                bn_epsilon=spec.bn_epsilon,
                name=f"stage{stage}_block{block}",
                batch_norm=batch_norm,
                synchronized=synchronized,
                zero_init_residual=spec.zero_init_residual,
            )
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(spec.dropout, name="head_dropout")(x)
    fan_in = spec.widths[-1]
    outputs = layers.Dense(
        spec.num_classes,
        kernel_initializer=_torch_kernel_init(),
        bias_initializer=_torch_bias_init(fan_in),
        dtype=_float32_if_mixed(),
        name="logits",
    )(x)
    model = keras.Model(inputs, outputs, name=name)

    count = model.count_params()
    if spec.max_params is not None and count > spec.max_params:
        raise InvalidValueError(
            f"The model has {count:,} parameters, above the budget of "
            f"{spec.max_params:,}. Shrink `widths`/`blocks`, or lift the budget deliberately "
            "with a larger `max_params` (command line: --max-params)."
        )
    pretrained.load_weights(model, weights)
    return model


def build_from_config(config, **kwargs):
    """Builds the model a `TrainConfig` (or a `ModelConfig`) describes; kwargs as `build_seresnet`'s.

    Raises:
        TypeError: `config` is not a `TrainConfig` (or a `ModelConfig`).
        ConfigError, ValueError: as `build_seresnet`.

    Example:

    >>> from keras_seresnet import TrainConfig
    >>> build_from_config(TrainConfig(widths=(8, 16), blocks=(1, 1), se_stages=(2,))).name
    'seresnet'
    """
    check_config_type(config, ModelConfig)
    return build_seresnet(**{**ModelConfig.of(config).to_dict(), **kwargs})
