"""The README's quick-start code runs: each Python block, on tiny data, as a user would paste it."""

import dataclasses
import os
import re
import shutil
import types

import pytest

import keras_seresnet

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def block_using(name):
    found = [block for block in python_blocks() if name in block]
    assert len(found) == 1, f"one README block should call {name}; found {len(found)}"
    return found[0]


def package_with(**names):
    """`keras_seresnet` with some names replaced, for a block's `import keras_seresnet`."""
    return types.SimpleNamespace(
        **{**{n: getattr(keras_seresnet, n) for n in keras_seresnet.__all__}, **names}
    )


def run_block(block, package):
    code = block.replace("import keras_seresnet as ks\n", "ks = package\n")
    code = code.replace("import keras_seresnet\n", "keras_seresnet = package\n")
    namespace = {"package": package}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_the_pretrained_quick_start_classifies_a_folder(tmp_path, monkeypatch, tiny_image_tree):
    shutil.copytree(tiny_image_tree / "test", tmp_path / "my_images")
    monkeypatch.chdir(tmp_path)
    namespace = run_block(block_using("predict_dir"), package_with())
    assert len(namespace["records"]) == 10
    assert set(namespace["records"][0]) == {"path", "label", "class_name", "confidence"}
    assert namespace["model"].count_params() == 2_822_922


@pytest.mark.slow
def test_the_own_fit_quick_start_trains(tiny_image_tree):
    class TinyConfig(keras_seresnet.TrainConfig):
        """The block's config at one epoch of a tiny model, so it runs in seconds."""

        @classmethod
        def fast(cls, **changes):
            fast = keras_seresnet.TrainConfig.fast(
                epochs=1, batch_size=4, widths=(8, 16), blocks=(1, 1), se_stages=(2,), **changes
            )
            return cls(**dataclasses.asdict(fast))

    def load_tiny(*args, **kwargs):
        return keras_seresnet.load_cifar10(tiny_image_tree)

    namespace = run_block(
        block_using("model.fit"), package_with(TrainConfig=TinyConfig, load_cifar10=load_tiny)
    )
    assert namespace["model"].optimizer.iterations.numpy() == 20 // 4
