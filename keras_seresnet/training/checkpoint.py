"""Training checkpoints: the values of a model's and its optimizer's variables in one file.

A run folder's per-epoch checkpoint (`checkpoint/epoch-NNNN.npz`) holds what
resuming needs and nothing else: the values of `model.variables` (weights,
BatchNormalization statistics, seed states) and of `model.optimizer.variables`
(iteration count, learning rate, momentum buffers, loss scale), in their
order, as a NumPy `.npz` archive. The architecture is not in it:
`config.json` rebuilds the model, and the same config always creates the same
variables in the same order. Writing one copies the variables out; a
`.keras` file (`model.save`) also serialises the architecture and walks every
layer's attributes, which costs several times as long per epoch (see the
README's Speed section).

Run folders of version 0.1.0 name `.keras` checkpoints in their
`state.json`; `load_checkpoint` reads those too
(`keras_seresnet.compat.load_keras_checkpoint`).

Example:

>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
>>> model.optimizer.build(model.trainable_variables)
>>> save_checkpoint(model, "epoch-0003.npz")
>>> load_checkpoint(model, "epoch-0003.npz")  # into a model of the same config, optimizer built
"""

import keras
import numpy as np

from keras_seresnet import compat
from keras_seresnet.files import atomic_path

SUFFIX = ".npz"
_GROUPS = ("model", "optimizer")


def _variables(model):
    if model.optimizer is None or not model.optimizer.built:
        raise ValueError(
            "Argument `model` must be compiled with a built optimizer (call "
            "`model.optimizer.build(model.trainable_variables)` first). "
            f"Received: model={model.name!r} with optimizer={model.optimizer!r}"
        )
    return {"model": model.variables, "optimizer": model.optimizer.variables}


def save_checkpoint(model, path):
    """Writes the values of `model`'s and its optimizer's variables to `path`, atomically.

    Args:
        model: a compiled model whose optimizer is built.
        path: the `.npz` file to create or replace (`keras_seresnet.files`:
            complete or absent, never half-written).

    Raises:
        ValueError: `path` does not end in `.npz`, or the optimizer is not built.
    """
    if not str(path).endswith(SUFFIX):
        raise ValueError(f"Argument `path` must end in {SUFFIX!r}. Received: path={path!r}")
    arrays = {
        f"{group}_{i:04d}": keras.ops.convert_to_numpy(variable)
        for group, variables in _variables(model).items()
        for i, variable in enumerate(variables)
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_checkpoint(model, path):
    """Assigns a checkpoint's values to `model`'s and its optimizer's variables.

    Args:
        model: a compiled model with a built optimizer, of the config that
            wrote the checkpoint.
        path: a `.npz` file of `save_checkpoint`, or a `.keras` file (run
            folders of 0.1.0).

    Raises:
        ValueError: the checkpoint's variables do not match the model's or the
            optimizer's in number or shape (another config, or a
            `LossScaleOptimizer`'s state for a plain optimizer); nothing is
            assigned then.
    """
    if str(path).endswith(".keras"):
        compat.load_keras_checkpoint(model, path)
        return
    groups = _variables(model)
    with np.load(path, allow_pickle=False) as archive:
        values = {
            group: [
                archive[f"{group}_{i:04d}"]
                for i in range(sum(name.startswith(group + "_") for name in archive.files))
            ]
            for group in _GROUPS
        }
    for group in _GROUPS:
        expected = [tuple(variable.shape) for variable in groups[group]]
        found = [value.shape for value in values[group]]
        if expected != found:
            raise ValueError(
                f"The checkpoint {path} does not fit the model and optimizer: it holds "
                f"{len(found)} {group} variables, the {group} has {len(expected)}"
                + ("" if len(found) != len(expected) else " of other shapes")
                + "."
            )
    for group in _GROUPS:
        for variable, value in zip(groups[group], values[group]):
            variable.assign(value)
