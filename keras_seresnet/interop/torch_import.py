"""Import the reference PyTorch notebook's weights into the Keras model.

The reference saves `model.state_dict()` with `torch.save`: 131 tensors (PyTorch
layout, OIHW convolutions). Each maps to exactly one weight of `build_seresnet()` by layer name:

    conv1, bn1                                -> stem_conv, stem_bn
    layer{s}.layer.{b-1}.conv1 / bn1 / conv2 / bn2
                                              -> stage{s}_block{b}_conv1 / ...
    layer{s}.layer.{b-1}.se.excitation.0 / .2 -> stage{s}_block{b}_se_squeeze / _se_excite
    layer{s}.layer.{b-1}.connection.0 / .1    -> stage{s}_block{b}_shortcut_conv / _bn
    fc                                        -> logits

Convolution kernels go from PyTorch's [out, in, kh, kw] to Keras's
[kh, kw, in, out], linear weights from [out, in] to [in, out]; BatchNorm's
weight, bias, running_mean and running_var become gamma, beta, moving_mean
and moving_variance. `num_batches_tracked` is read and ignored: with a fixed
momentum (the reference's 0.1) PyTorch does not use it, and Keras has no such
counter.

BatchNorm variance, a difference worth knowing: in training mode both
frameworks normalise with the biased batch variance, so forward outputs and
gradients are the same function. Their moving averages differ: PyTorch
feeds the unbiased batch variance (times n / (n - 1), n = batch * height *
width) into `running_var`, Keras 3 feeds the biased one into
`moving_variance`. Imported statistics are used as they are; only training
continued in Keras accumulates the slightly smaller variance: the new term
is smaller by 1 / n, at the recipe's batch of 128 at most 0.05% (stage 4,
4x4 maps) and 0.0008% in stage 1.

torch is an optional dependency (`pip install keras-seresnet[torch]`), imported
only when `load_torch_weights` runs.
"""

import os
import re
from collections.abc import Mapping

import keras
import numpy as np
from keras import layers

from keras_seresnet.errors import InvalidValueError

_TOP_LEVEL = {"stem_conv": "conv1", "stem_bn": "bn1", "logits": "fc"}
_BLOCK_LAYER = re.compile(
    r"stage(\d+)_block(\d+)_"
    r"(conv1|bn1|conv2|bn2|se_squeeze|se_excite|shortcut_conv|shortcut_bn)$"
)
_BLOCK_PART = {
    "conv1": "conv1",
    "bn1": "bn1",
    "conv2": "conv2",
    "bn2": "bn2",
    "se_squeeze": "se.excitation.0",
    "se_excite": "se.excitation.2",
    "shortcut_conv": "connection.0",
    "shortcut_bn": "connection.1",
}
# Wrappers that prefix every key: nn.DataParallel / DDP, and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Training checkpoints that nest the state_dict under a conventional key.
_NESTING_KEYS = ("state_dict", "model_state_dict")


def torch_prefix(layer_name):
    """The reference's module path for a Keras layer name, or None.

    Args:
        layer_name: a layer name of `build_seresnet()`, e.g.
            "stage3_block2_se_squeeze".

    Returns:
        The PyTorch module path ("layer3.layer.1.se.excitation.0"), or None
        for a name with no counterpart.
    """
    if layer_name in _TOP_LEVEL:
        return _TOP_LEVEL[layer_name]
    match = _BLOCK_LAYER.match(layer_name)
    if match is None:
        return None
    stage, block, part = match.groups()
    return f"layer{stage}.layer.{int(block) - 1}.{_BLOCK_PART[part]}"


def _conv_to_keras(array):
    return np.transpose(array, (2, 3, 1, 0))  # [out, in, kh, kw] -> [kh, kw, in, out]


def _dense_to_keras(array):
    return np.transpose(array)  # [out, in] -> [in, out]


def _identity(array):
    return array


def _expected_tensors(model):
    """Maps every reference key to (Keras variable, PyTorch shape, converter).

    Also returns the BatchNorm prefixes (whose `num_batches_tracked` may be
    present) and the layers that hold weights but have no reference
    counterpart.
    """
    expected, batch_norms, unmapped = {}, set(), []
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = torch_prefix(layer.name)
        if prefix is None:
            unmapped.append(layer)
            continue
        if isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            expected[prefix + ".weight"] = (layer.kernel, (cout, cin, kh, kw), _conv_to_keras)
        elif isinstance(layer, layers.Dense):
            cin, cout = layer.kernel.shape
            expected[prefix + ".weight"] = (layer.kernel, (cout, cin), _dense_to_keras)
        elif isinstance(layer, layers.BatchNormalization):
            batch_norms.add(prefix)
            pairs = [("running_mean", layer.moving_mean), ("running_var", layer.moving_variance)]
            if layer.scale:
                pairs.append(("weight", layer.gamma))
            if layer.center:
                pairs.append(("bias", layer.beta))
            for suffix, variable in pairs:
                expected[f"{prefix}.{suffix}"] = (variable, tuple(variable.shape), _identity)
        else:
            unmapped.append(layer)
            continue
        if isinstance(layer, (layers.Conv2D, layers.Dense)) and layer.use_bias:
            expected[prefix + ".bias"] = (layer.bias, tuple(layer.bias.shape), _identity)
    return expected, batch_norms, unmapped


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "load_torch_weights needs PyTorch, an optional dependency of "
            "keras-seresnet. Install it with `pip install keras-seresnet[torch]` "
            "(or `pip install torch`)."
        ) from error
    return torch


def _read_state_dict(source, torch):
    """The state_dict behind `source`, a path or a mapping, keys unwrapped."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Argument `source` is not an existing file. Received: source={path!r}"
            )
        try:
            # weights_only: tensors and plain containers only, never arbitrary
            # pickled objects; a checkpoint from elsewhere is untrusted code.
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            # Any type: a file that is not a checkpoint (a text file) fails
            # anywhere in torch's unpickler (KeyError, UnpicklingError, ...).
            raise InvalidValueError(
                f"{path} is not a PyTorch checkpoint that loads with "
                f"torch.load(weights_only=True) ({type(error).__name__}: {error})"
            ) from error
        if not isinstance(state, Mapping):
            raise InvalidValueError(
                f"{path} holds a {type(state).__name__}, not a PyTorch state_dict (a mapping "
                "of names to tensors)"
            )
    else:
        state = source
    if not isinstance(state, Mapping):
        raise TypeError(
            "Argument `source` must be a PyTorch state_dict (a mapping of names "
            "to tensors) or the path of one saved with torch.save. Received: "
            f"source of type {type(state).__name__}"
        )
    for key in _NESTING_KEYS:
        if isinstance(state.get(key), Mapping):
            state = state[key]
            break
    for prefix in _WRAPPER_PREFIXES:
        if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _hint(missing, unexpected):
    def se_only(keys):
        return keys and all(".se." in key for key in keys)

    if se_only(missing) and not unexpected:
        return "The checkpoint has no SE blocks: build the model with use_se=False."
    if se_only(unexpected) and not missing:
        return "The checkpoint has SE blocks: build the model with use_se=True."
    return (
        "Build the model with the checkpoint's architecture (the widths, blocks and "
        "SE stages its keys imply)."
    )


def load_torch_weights(model, source):
    """Loads a reference PyTorch checkpoint into a model of `build_seresnet`.

    Every tensor of the checkpoint maps to exactly one Keras weight and every
    Keras weight is set (BatchNorm moving statistics included), or nothing is
    changed and one error lists every problem. `num_batches_tracked` entries
    are accepted and ignored. Keys prefixed by `module.` (DataParallel) or
    `_orig_mod.` (torch.compile), and a state_dict nested under "state_dict"
    or "model_state_dict", are unwrapped.

    The imported model computes the reference's function: raw pixels in
    [0, 255] here give the logits the PyTorch model gives for the
    normalised NCHW image (equal to float32 rounding; see
    `tests/test_torch_parity.py`).

    Args:
        model: a `keras.Model` from `build_seresnet()` / `build_from_config()`
            with the checkpoint's architecture (e.g. `use_se=False` for the
            ablation's Model 5).
        source: a state_dict (mapping of names to `torch.Tensor`), or the path
            (str or os.PathLike) of one saved with `torch.save` (`.pt`,
            `.pth`). Files are read with `torch.load(weights_only=True)`,
            which refuses pickled code.

    Returns:
        `model`, its weights overwritten in place (float tensors of any
        precision are cast to the model's variable dtype).

    Raises:
        ImportError: torch is not installed.
        FileNotFoundError: `source` is a path to no file.
        TypeError: `model` is not a `keras.Model`, or `source` is neither a
            mapping nor a path.
        InvalidValueError: the file does not load with `weights_only=True`
            (the message names it; a file that is not a checkpoint at all,
            such as a text file, fails the same way) or holds no mapping; or
            the checkpoint does not fit the model: the message lists every
            missing, unexpected and mis-shaped key (and non-float values).
        ValueError: `model` has weights outside the reference's layout (it
            is not a model of `build_seresnet`).

    Example (with the reference notebook's checkpoint and PyTorch installed):

        model = load_torch_weights(build_seresnet(), "best_model.pth")
        model.save("imported.keras")  # takes raw [0, 255] pixels
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model from `build_seresnet`. "
            f"Received: model of type {type(model).__name__}"
        )
    torch = _import_torch()
    state = _read_state_dict(source, torch)
    expected, batch_norms, unmapped = _expected_tensors(model)
    if unmapped:
        raise ValueError(
            f"Model {model.name!r} has weights in layers with no counterpart in "
            "the reference's layout: "
            + ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in unmapped)
            + ". load_torch_weights expects a model of build_seresnet()."
        )
    covered = {id(variable) for variable, _, _ in expected.values()}
    uncovered = [w.path for w in model.weights if id(w) not in covered]
    if uncovered:
        raise ValueError(
            f"Model {model.name!r} has weights the reference's layout does not "
            f"set: {', '.join(uncovered)}. load_torch_weights expects a model of "
            "build_seresnet()."
        )
    ignorable = {prefix + ".num_batches_tracked" for prefix in batch_norms}

    missing = [key for key in expected if key not in state]
    unexpected, misshaped, not_float = [], [], []
    for key, value in state.items():
        if key in ignorable:
            continue
        if key not in expected:
            unexpected.append(str(key))
        elif not isinstance(value, torch.Tensor) or not value.is_floating_point():
            kind = f"{type(value).__name__} {getattr(value, 'dtype', '')}".rstrip()
            not_float.append(f"{key} ({kind})")
        elif tuple(value.shape) != expected[key][1]:
            misshaped.append(
                f"{key}: checkpoint {tuple(value.shape)}, model expects {expected[key][1]}"
            )
    if missing or unexpected or misshaped or not_float:
        lines = [
            f"The checkpoint does not fit model {model.name!r} "
            f"({len(state)} entries in the checkpoint, {len(expected)} tensors expected "
            "besides num_batches_tracked). Nothing was loaded."
        ]
        for title, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("mis-shaped keys", misshaped),
            ("values that are not float tensors", not_float),
        ):
            if keys:
                lines.append(f"{len(keys)} {title}:")
                lines.extend("  " + key for key in keys)
        lines.append(_hint(missing, unexpected))
        raise InvalidValueError("\n".join(lines))

    for key, (variable, _, to_keras) in expected.items():
        # float64 holds every float16/bfloat16/float32 value exactly; the
        # assignment rounds once, to the variable's dtype.
        array = state[key].detach().to(device="cpu", dtype=torch.float64).numpy()
        variable.assign(to_keras(array).astype(variable.dtype))
    return model
