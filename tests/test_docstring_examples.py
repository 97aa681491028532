"""The `>>>` examples of the package's docstrings run and show what they print (doctest).

One test per module, so a failure names the module. The examples are fast:
tiny inputs, no data files, no training beyond a step or two; each module's
examples run in a fresh temporary folder, where any file they write goes.
Examples that need data, a trained model or a long run are written as
plain indented code blocks without `>>>`, which doctest skips.
"""

import doctest
import importlib
import pkgutil

import pytest

import keras_seresnet

MODULES = ["keras_seresnet"] + sorted(
    info.name for info in pkgutil.walk_packages(keras_seresnet.__path__, "keras_seresnet.")
)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Public constants have no docstring of their own: `keras_seresnet.config`'s example shows them.
CONSTANTS = ("CIFAR10_CLASSES", "PARAMETER_BUDGET")


@pytest.mark.parametrize("name", [n for n in keras_seresnet.__all__ if n not in CONSTANTS])
def test_every_public_name_has_an_example(name):
    assert "Example" in (getattr(keras_seresnet, name).__doc__ or ""), name


def test_the_public_constants_are_in_their_modules_example():
    from keras_seresnet import config

    example = config.__doc__.split("Example:")[1]
    assert all(name in example for name in CONSTANTS)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
