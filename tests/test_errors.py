"""keras_seresnet.errors: one base for the failures the package explains, built-in bases kept."""

import importlib

import pytest

from keras_seresnet.errors import InvalidValueError, SeresnetError


@pytest.mark.parametrize(
    "module, name, builtin",
    [
        ("keras_seresnet.errors", "InvalidValueError", ValueError),
        ("keras_seresnet.config", "ConfigError", ValueError),
        ("keras_seresnet.data.cifar10", "DataError", ValueError),
        ("keras_seresnet.data.images", "ImageError", ValueError),
        ("keras_seresnet.training.records", "RunFolderError", ValueError),
        ("keras_seresnet.training.loop", "TrainingDivergedError", RuntimeError),
        ("keras_seresnet.inference.export", "ExportCheckError", ValueError),
        ("keras_seresnet.cli", "CommandError", Exception),
    ],
)
def test_every_error_of_the_package_is_a_seresnet_error_and_keeps_its_builtin_base(
    module, name, builtin
):
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, SeresnetError) and issubclass(error, builtin)


def test_the_errors_module_starts_nothing():
    import subprocess
    import sys

    code = (
        "import sys\nimport keras_seresnet.errors, keras_seresnet.config, keras_seresnet.cli\n"
        "print(sorted({'tensorflow', 'keras', 'PIL'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_history_csv_that_is_not_one_is_the_packages_error(tmp_path):
    from keras_seresnet.training.history import read_history_csv

    path = tmp_path / "history.csv"
    path.write_text("step,loss\n0,1.0\n")
    with pytest.raises(InvalidValueError, match="has no `epoch` column"):
        read_history_csv(path)
    path.write_text("epoch,loss\n0,lots\n")
    with pytest.raises(ValueError, match="line 2: column `loss` holds 'lots'"):
        read_history_csv(path)


def test_a_bad_tf_config_is_the_packages_error():
    from keras_seresnet.training.distribute import read_tf_config

    with pytest.raises(InvalidValueError, match="TF_CONFIG is not valid JSON"):
        read_tf_config({"TF_CONFIG": "{cluster"})


def test_bad_ablation_seeds_are_the_packages_error():
    from keras_seresnet import TrainConfig
    from keras_seresnet.training.ablation import run_ablation

    with pytest.raises(InvalidValueError, match=r"must not repeat. Received: seeds=\[0, 0\]"):
        run_ablation(TrainConfig(), "unused", seeds=[0, 0])
