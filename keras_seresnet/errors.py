"""The package's own errors: failures it can explain, as opposed to bugs.

Every exception the package raises for a reason a user can act on is a
`SeresnetError`: a mistake in what was given (an argument or flag value, a
file or folder the package cannot use, an environment variable) or a
documented failure of the work itself (a run whose loss diverged, an export
that fails its check). Each subclass also keeps a built-in base, `ValueError`
for most, so code that catches `ValueError` catches them as before:

- `InvalidValueError` (`ValueError`): a value the package refuses where no
  type below fits: an argument, an environment variable, a file's content.
- `keras_seresnet.config.ConfigError` (`ValueError`): a configuration value.
- `keras_seresnet.data.cifar10.DataError` (`ValueError`): a data file or folder.
- `keras_seresnet.data.images.ImageError` (`ValueError`): an image file.
- `keras_seresnet.training.records.RunFolderError` (`ValueError`): a run
  folder that cannot be used as asked.
- `keras_seresnet.training.loop.TrainingDivergedError` (`RuntimeError`): the
  loss became NaN or infinite.
- `keras_seresnet.inference.export.ExportCheckError` (`ValueError`): an
  export that does not compute what the Keras model computes.
- `keras_seresnet.cli.CommandError`: a failure a command reports.

The commands (`keras_seresnet.cli.run_main`) print a `SeresnetError` as one
line `prog: error: message` with exit status 1. Any other exception, a
`ValueError` of Keras or TensorFlow included (they raise it for programming
errors too), is a bug and keeps its traceback.

Keras-free and importing nothing of the package, so that any module may use it.

Example:

>>> from keras_seresnet.config import ConfigError
>>> issubclass(ConfigError, SeresnetError) and issubclass(ConfigError, ValueError)
True
"""


class SeresnetError(Exception):
    """Base of the package's errors: a failure it can explain (see the module docstring).

    Catch it to tell what the package reports from a bug.

    Example:

    >>> try:
    ...     raise InvalidValueError("Argument `seeds` must not repeat. Received: seeds=[0, 0]")
    ... except SeresnetError as error:
    ...     print(f"error: {error}")
    error: Argument `seeds` must not repeat. Received: seeds=[0, 0]
    """


class InvalidValueError(SeresnetError, ValueError):
    """A value the package refuses: an argument, an environment variable or a file's content.

    The message names the value, what was received and what would be
    accepted. A `ValueError`, as before the package had its own errors.

    >>> isinstance(InvalidValueError("TF_CONFIG is not valid JSON"), ValueError)
    True
    """
