"""Shared test setup: TensorFlow backend, quiet logs, one CPU thread pool."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def default_model():
    """The recipe's model with default arguments, built once per session."""
    from keras_seresnet import build_seresnet

    return build_seresnet()
