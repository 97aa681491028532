"""Kept importable from here as in 0.1.0: the schedules live in `keras_seresnet.schedules`.

They are pure functions of the recipe that the data pipeline, the training
callbacks and the plots all evaluate, so they sit below all three.
"""

from keras_seresnet.schedules import (  # noqa: F401
    UNITS,
    check_alpha_decay,
    check_warmup_cosine,
    decayed_mixup_alpha,
    default_warmup_epochs,
    hardly_decays,
    learning_rate_at,
    mixup_alpha_at,
    warmup_cosine_lr,
    warn_if_hardly_decays,
)
