"""Shared test setup: TensorFlow backend, quiet logs, one CPU thread pool."""

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture
def no_process_settings(monkeypatch):
    """`runtime.configure_process` records its calls instead of changing this process's settings."""
    from keras_seresnet import runtime

    calls = []
    monkeypatch.setattr(runtime, "configure_process", lambda: calls.append("configured"))
    return calls


@pytest.fixture(scope="session")
def default_model():
    """The recipe's model with default arguments, built once per session."""
    from keras_seresnet import build_seresnet

    return build_seresnet()


@pytest.fixture(scope="session")
def tiny_image_tree(tmp_path_factory):
    """A CIFAR-10-layout PNG tree: `train/<class>/` 2 images, `test/<class>/` 1 image.

    Lossless and seeded, so every loader and process reads the same arrays.
    """
    import numpy as np
    from PIL import Image

    from keras_seresnet import CIFAR10_CLASSES

    root = tmp_path_factory.mktemp("cifar_tree")
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for name in CIFAR10_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def real_cifar10():
    """The real CIFAR-10 JPEG tree (`KERAS_SERESNET_CIFAR10`, or `../cifar10` beside the
    repository); the test skips when it is absent."""
    candidates = [
        os.environ.get("KERAS_SERESNET_CIFAR10"),
        Path(__file__).resolve().parents[1].parent / "cifar10",
    ]
    folder = next((Path(c) for c in candidates if c and (Path(c) / "train").is_dir()), None)
    if folder is None:
        pytest.skip("CIFAR-10 JPEG tree not found (set KERAS_SERESNET_CIFAR10)")
    return folder
