"""The schedules' earlier home: they live in `keras_seresnet.schedules`, and are importable from here.

They are pure functions of the recipe that the data pipeline, the training
callbacks and the plots all evaluate, so they sit below all three. The names
this module answers for are `keras_seresnet.compat.MOVED_NAMES[__name__]`.
"""

from keras_seresnet import compat

__all__ = sorted(compat.MOVED_NAMES[__name__])


def __getattr__(name):
    """A schedule of `keras_seresnet.schedules` (`compat.moved_name`)."""
    return compat.moved_name(__name__, name)
