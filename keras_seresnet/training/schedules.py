"""The recipe's per-epoch schedules as pure functions of the epoch.

The callbacks of the training loop evaluate these once per epoch; tests check
them against SPEC's formulas written out independently.
"""

import math

from keras_seresnet.config import TrainConfig


def learning_rate_at(epoch: int, config: TrainConfig) -> float:
    """The recipe's learning rate for a zero-based epoch (pure Python).

    Linear warmup to `base_lr` over the warmup epochs, `lr = base_lr * (e + 1)
    / warmup`, then cosine decay from `base_lr` to `min_lr` over the remaining
    epochs. With the defaults this is SPEC's formula exactly:
    `e < 15: 0.1 (e+1)/15; else 0.001 + 0.5 (0.1 - 0.001)(1 + cos(pi (e-15)/235))`.
    """
    warmup = config.resolved_warmup_epochs
    if epoch < warmup:
        return config.base_lr * (epoch + 1) / warmup
    decay_epochs = config.epochs - warmup
    progress = (epoch - warmup) / decay_epochs
    return config.min_lr + 0.5 * (config.base_lr - config.min_lr) * (
        1.0 + math.cos(math.pi * progress)
    )


def mixup_alpha_at(epoch: int, config: TrainConfig) -> float:
    """The recipe's mixup alpha for a zero-based epoch (pure Python).

    `max(alpha_min, alpha * (1 - e / epochs))`: SPEC's
    `max(0.1, 0.4 (1 - e/250))` scaled to the run's length.
    """
    return max(
        config.mixup_alpha_min, config.mixup_alpha * (1.0 - epoch / config.epochs)
    )
