"""The recipe's schedules as pure functions: the learning rate and the mixup alpha.

Both are curves over the run, evaluated in one of two units:

- `"epoch"` (the recipe): one value per zero-based epoch `e`, used for every
  step of that epoch. Learning rate: linear warmup
  `base_lr * (e + 1) / warmup_epochs`, then a cosine from `base_lr` towards
  `min_lr` over the remaining epochs (the floor itself would be epoch
  `epochs`, one past the last). Mixup alpha:
  `max(alpha_min, alpha * (1 - e / epochs))`.
- `"step"`: the same curves as functions of the fraction of training done,
  evaluated at every step `s = e * steps_per_epoch + b` of the `T = epochs *
  steps_per_epoch` steps. Learning rate: warmup over `W = warmup_epochs *
  steps_per_epoch` steps, `base_lr * (s + 1) / W`, then the cosine over the
  steps `W .. T - 1`, reaching `min_lr` exactly at the last step. Mixup
  alpha: `max(alpha_min, alpha * (1 - s / T))`, so at each epoch's first
  step it equals the epoch unit's value.

The functions are plain Python (no tensors), so a callback, a tf.data graph
(through a precomputed table) and a test all evaluate the same numbers. The
`check_*` functions validate the arguments with Keras-style errors; the
callbacks call them once when they are built.

Example:

    >>> warmup_cosine_lr(0, epochs=250, base_lr=0.1, min_lr=0.001, warmup_epochs=15)
    0.006666666666666667
"""

import math
import typing
import warnings

from keras_seresnet.config import (  # noqa: F401 (default_warmup_epochs: importable here, as before)
    ScheduleUnit,
    alpha_problem,
    default_warmup_epochs,
    is_integer,
    schedule_problem,
)

UNITS = typing.get_args(ScheduleUnit)  # ("epoch", "step")

# The short-run rule (`hardly_decays`): a run's learning rate decays
# meaningfully when its last epoch trains at no more than this fraction of
# the peak, `base_lr`.
DECAYED_FRACTION = 0.5


def _check(problem, values):
    if problem:
        name, rule = problem
        raise ValueError(f"Argument `{name}` must be {rule}. Received: {name}={values[name]!r}")


def _check_unit(unit):
    if unit not in UNITS:
        raise ValueError(
            f"Argument `unit` must be one of {', '.join(map(repr, UNITS))}. Received: unit={unit!r}"
        )


def check_warmup_cosine(*, epochs, base_lr, min_lr, warmup_epochs, unit):
    """Raises `ValueError` naming the first bad argument of `warmup_cosine_lr` (`config.schedule_problem`)."""
    values = dict(epochs=epochs, base_lr=base_lr, min_lr=min_lr, warmup_epochs=warmup_epochs)
    _check(schedule_problem(**values), values)
    _check_unit(unit)


def check_alpha_decay(*, epochs, alpha, alpha_min, unit):
    """Raises `ValueError` naming the first bad argument of `decayed_mixup_alpha` (`config.alpha_problem`)."""
    if not is_integer(epochs) or epochs < 1:
        _check(("epochs", "a positive integer"), {"epochs": epochs})
    _check_unit(unit)
    values = dict(alpha=alpha, alpha_min=alpha_min)
    _check(alpha_problem(**values), values)


def _position(epoch, step, steps_per_epoch, epochs, unit):
    """`(t, total)`: the epoch and `epochs`, or the global step and the run's steps."""
    if unit == "epoch":
        return epoch, epochs
    return epoch * steps_per_epoch + step, epochs * steps_per_epoch


def warmup_cosine_lr(
    epoch, step=0, *, steps_per_epoch=1, epochs, base_lr, min_lr, warmup_epochs=None, unit="epoch"
):
    """The learning rate at zero-based `epoch` (and `step` within it, in step units).

    Args:
        epoch: zero-based epoch in [0, epochs).
        step: zero-based step within the epoch in [0, steps_per_epoch); only
            read when `unit == "step"`. Default 0.
        steps_per_epoch: batches per epoch, >= 1; only read when
            `unit == "step"`. Default 1.
        epochs: the run's length in epochs, >= 1.
        base_lr: the peak, > 0, reached at the end of the warmup.
        min_lr: the cosine's floor, in [0, base_lr].
        warmup_epochs: warmup length in [0, epochs), or None for
            `default_warmup_epochs(epochs)`. Default None.
        unit: "epoch" or "step" (module docstring). Default "epoch".

    Returns:
        The learning rate, a Python float.
    """
    warmup = default_warmup_epochs(epochs) if warmup_epochs is None else warmup_epochs
    t, total = _position(epoch, step, steps_per_epoch, epochs, unit)
    warmup_t = warmup if unit == "epoch" else warmup * steps_per_epoch
    if t < warmup_t:
        return base_lr * (t + 1) / warmup_t
    # The epoch unit's cosine would reach the floor at epoch `epochs`; the
    # step unit's reaches it at the last step, `total - 1`.
    span = total - warmup_t if unit == "epoch" else total - 1 - warmup_t
    progress = (t - warmup_t) / span if span > 0 else 1.0
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def decayed_mixup_alpha(
    epoch, step=0, *, steps_per_epoch=1, epochs, alpha, alpha_min, unit="epoch"
):
    """The mixup alpha at zero-based `epoch` (and `step` within it, in step units).

    `max(alpha_min, alpha * (1 - f))` with `f` the fraction of training done
    before the epoch (epoch unit) or the step (step unit).

    Args:
        epoch: zero-based epoch, >= 0 (past the run's end: the floor).
        step: zero-based step within the epoch; only read when
            `unit == "step"`. Default 0.
        steps_per_epoch: batches per epoch, >= 1; only read when
            `unit == "step"`. Default 1.
        epochs: the run's length in epochs, >= 1.
        alpha: the value at the first step, > 0.
        alpha_min: the floor, in (0, alpha].
        unit: "epoch" or "step". Default "epoch".

    Returns:
        The alpha, a Python float.
    """
    t, total = _position(epoch, step, steps_per_epoch, epochs, unit)
    return max(alpha_min, alpha * (1.0 - t / total))


def learning_rate_at(epoch, config, step=0, steps_per_epoch=1):
    """`warmup_cosine_lr` with a `TrainConfig`'s schedule fields (its `schedule_unit`)."""
    return warmup_cosine_lr(
        epoch,
        step,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        base_lr=config.base_lr,
        min_lr=config.min_lr,
        warmup_epochs=config.warmup_epochs,
        unit=config.schedule_unit,
    )


def mixup_alpha_at(epoch, config, step=0, steps_per_epoch=1):
    """`decayed_mixup_alpha` with a `TrainConfig`'s alpha fields (its `schedule_unit`)."""
    return decayed_mixup_alpha(
        epoch,
        step,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        alpha=config.mixup_alpha,
        alpha_min=config.mixup_alpha_min,
        unit=config.schedule_unit,
    )


def hardly_decays(config):
    """Whether a `TrainConfig`'s learning rate never decays meaningfully within its run.

    The rule: in the epoch unit, the last epoch's learning rate
    (`learning_rate_at(config.epochs - 1, config)`) is above
    `DECAYED_FRACTION` (half) of the peak `base_lr`. With the default
    warmup that is a run of 1 to 3 epochs: 2 epochs train at 0.1 (the
    warmup's one epoch), then 0.1 (the cosine's first value). The step
    unit's cosine reaches `min_lr` at the last step of any run: never.
    """
    if config.schedule_unit != "epoch":
        return False
    return learning_rate_at(config.epochs - 1, config) > DECAYED_FRACTION * config.base_lr


def warn_if_hardly_decays(config, stacklevel=1):
    """Warns once (`UserWarning`) when `hardly_decays(config)`, naming the step unit as the remedy.

    Args:
        config: a `TrainConfig`.
        stacklevel: the line the warning names, counted from the caller:
            1 (default) the line that calls this function, 2 its caller's.
    """
    if hardly_decays(config):
        last = learning_rate_at(config.epochs - 1, config)
        warnings.warn(
            f"The learning rate of this {config.epochs}-epoch run hardly decays: with "
            f'schedule_unit="epoch" (the recipe\'s) each epoch trains at one value, the last '
            f"at {last:.4g} (peak {config.base_lr:g}). Pass --schedule-unit step "
            f'(schedule_unit="step") to decay it at every step, down to min_lr at the last one.',
            UserWarning,
            stacklevel=stacklevel + 1,
        )
