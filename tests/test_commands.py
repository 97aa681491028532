"""The installed commands and their wrappers in scripts/: entry points, --help, one-line errors.

Each program is run as a user runs it, in a subprocess. The usage mistakes
are found before TensorFlow starts, so most of these subprocesses are fast;
the runtime failures load Keras.
"""

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.tiny_model import TINY_MODEL

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
COMMANDS = {
    "keras-seresnet-train": "train",
    "keras-seresnet-predict": "predict",
    "keras-seresnet-evaluate": "evaluate",
    "keras-seresnet-export": "export",
    "keras-seresnet-ablation": "ablation",
    "keras-seresnet-import-torch": "import_torch",
    "keras-seresnet-plots": "plots",
}


def run(*argv, cwd=ROOT, env=ENV):
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def script(name, *argv):
    return run(os.path.join(ROOT, "scripts", f"{name}.py"), *map(str, argv))


def one_error_line(result, status):
    """The single stderr line of a failed command, after checking its exit status.

    Nothing else may be on stderr: not even TensorFlow's start-up log lines,
    which the commands hide under TF_CPP_MIN_LOG_LEVEL=3 (`runtime.import_tensorflow`).
    """
    assert result.returncode == status, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_pyproject_lists_every_command_and_each_is_a_main_function():
    tomllib = pytest.importorskip("tomllib", reason="the TOML reader of Python 3.11+")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts == {
        command: f"keras_seresnet.cli.{module}:main" for command, module in COMMANDS.items()
    }
    import importlib
    import importlib.util

    for module_name in COMMANDS.values():
        module = importlib.import_module(f"keras_seresnet.cli.{module_name}")
        assert callable(module.main)
        spec = importlib.util.spec_from_file_location(
            f"wrapper_{module_name}", os.path.join(ROOT, "scripts", f"{module_name}.py")
        )
        wrapper = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(wrapper)
        assert wrapper.main is module.main  # the wrapper adds nothing


@pytest.mark.parametrize("name", sorted(COMMANDS.values()))
def test_every_wrapper_answers_help(name):
    result = script(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name}.py")


def test_help_does_not_start_tensorflow():
    code = (
        "import sys\nfrom keras_seresnet.cli import train\n"
        "try:\n    train.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_python_m_runs_the_command():
    result = run("-m", "keras_seresnet.cli.train", "--help")
    assert result.returncode == 0, result.stderr
    assert "--schedule-unit {epoch,step}" in result.stdout and "--val-split" in result.stdout


def test_flags_and_help_work_from_compiled_files_only(tmp_path):
    # As in an install that ships only .pyc files: nothing can read the source.
    shutil.copytree(
        os.path.join(ROOT, "keras_seresnet"),
        tmp_path / "keras_seresnet",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "compileall", "-b", "-q", str(tmp_path / "keras_seresnet")],
        check=True,
    )
    for folder, _, files in os.walk(tmp_path / "keras_seresnet"):
        for name in files:
            if name.endswith(".py"):
                os.remove(os.path.join(folder, name))
    env = dict(ENV, PYTHONPATH=str(tmp_path))
    result = run("-m", "keras_seresnet.cli.train", "--help", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "hold out N training images" in result.stdout  # a help text from field metadata
    assert "schedule:\n  --epochs EPOCHS" in result.stdout  # a group from field metadata
    code = (
        "import keras_seresnet.cli as cli\nfrom keras_seresnet.cli.train import build_parser\n"
        "assert cli.__file__.endswith('.pyc'), cli.__file__\n"
        "print(cli.parse_config(build_parser(), ['--epochs', '3', '--no-se'])[1].schedule_config)"
    )
    result = run("-c", code, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "ScheduleConfig(epochs=3," in result.stdout


# --- one behaviour for ordinary mistakes ---


@pytest.fixture
def fake_model(tmp_path):
    """A file named like a model; the usage checks never open it."""
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a zip")
    return path


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


def test_train_bad_value(tmp_path):
    line = one_error_line(script("train", "--epochs", "0"), 2)
    assert line.startswith("train.py: error: argument --epochs: Config field `epochs`")


def test_predict_missing_model(tmp_path, image_folder):
    line = one_error_line(script("predict", tmp_path / "nowhere.keras", image_folder), 2)
    assert line.startswith("predict.py: error: argument MODEL: no such file or folder: ")
    assert "nowhere.keras" in line


def test_evaluate_missing_model(tmp_path):
    line = one_error_line(script("evaluate", tmp_path / "nowhere.keras"), 2)
    assert "argument MODEL: no such file or folder" in line and "nowhere.keras" in line


def test_predict_swapped_arguments(fake_model, image_folder):
    line = one_error_line(script("predict", image_folder, fake_model), 2)
    assert line == (
        f"predict.py: error: arguments MODEL and INPUT look swapped (received "
        f"'{image_folder}' then '{fake_model}'); the order is MODEL INPUT "
        "(see predict.py --help)"
    )


def test_export_swapped_arguments(tmp_path, fake_model):
    line = one_error_line(script("export", tmp_path / "serving" / "1", fake_model), 2)
    assert "arguments MODEL and OUTPUT look swapped" in line and "the order is MODEL OUTPUT" in line


def test_export_existing_folder(tmp_path, fake_model):
    (tmp_path / "serving" / "1").mkdir(parents=True)
    line = one_error_line(script("export", fake_model, tmp_path / "serving" / "1"), 2)
    assert "exists; pass --overwrite" in line


@pytest.mark.parametrize(
    "name, argv, message",
    [
        (
            "train",
            ["--out", "{tmp}/afile"],
            "argument --out: '{tmp}/afile' is a file, not a folder",
        ),
        (
            "predict",
            ["{model}", "{tmp}", "--output", "{tmp}/adir"],
            "argument --output: '{tmp}/adir' is a folder, not a file",
        ),
        (
            "predict",
            ["{model}", "{tmp}", "--batch-size", "0"],
            "argument --batch-size: must be an integer >= 1. Received: 0",
        ),
        (
            "evaluate",
            ["{model}", "--data-dir", "{tmp}/nowhere"],
            "argument --data-dir: no such file or folder: '{tmp}/nowhere'",
        ),
        (
            "evaluate",
            ["{model}", "--limit-test", "0"],
            "argument --limit-test: Config field `limit_test` must be a positive integer or None. "
            "Received: limit_test=0",
        ),
        (
            "evaluate",
            ["{model}", "--label-smoothing", "2"],
            "argument --label-smoothing: Config field `label_smoothing` must be in [0, 1). "
            "Received: label_smoothing=2.0",
        ),
        (
            "evaluate",
            ["{model}", "--output-dir", "{tmp}/afile"],
            "argument --output-dir: '{tmp}/afile' is a file, not a folder",
        ),
        ("export", ["{tmp}/adir", "{tmp}/serving/2"], "argument MODEL: '{tmp}/adir' is a folder"),
        (
            "export",
            ["{model}", "{tmp}/afile"],
            "argument OUTPUT: '{tmp}/afile' is a file, not a folder",
        ),
        (
            "plots",
            ["{tmp}", "--out", "{tmp}/afile"],
            "argument --out: '{tmp}/afile' is a file, not a folder",
        ),
    ],
)
def test_unusable_arguments_are_usage_errors_before_any_work(
    tmp_path, fake_model, name, argv, message
):
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    line = one_error_line(
        script(name, *(a.format(tmp=tmp_path, model=fake_model) for a in argv)), 2
    )
    assert line.startswith(f"{name}.py: error: {message.format(tmp=tmp_path)}"), line
    assert sorted(os.listdir(tmp_path)) == ["adir", "afile", "model.keras"]


def test_import_torch_swapped_arguments(tmp_path):
    (tmp_path / "best.pth").write_bytes(b"")
    line = one_error_line(script("import_torch", tmp_path / "out.keras", tmp_path / "best.pth"), 2)
    assert "arguments CHECKPOINT and OUT.keras look swapped" in line
    assert "the order is CHECKPOINT OUT.keras" in line


def test_plots_missing_history(tmp_path):
    line = one_error_line(script("plots", tmp_path), 1)
    assert line.startswith("plots.py: error: ") and "history.csv" in line


def test_plots_draws_a_history_without_starting_tensorflow(tmp_path):
    from keras_seresnet.training.history import write_history_csv

    rows = [
        {
            "epoch": e,
            "learning_rate": 0.1,
            "loss": 2.0 - e,
            "accuracy": 0.2 * e,
            "test_loss": 2.1 - e,
            "test_accuracy": 0.2 * e,
            "seconds": 1.0,
        }
        for e in range(2)
    ]
    write_history_csv(tmp_path / "history.csv", rows)
    code = (
        "import sys\nfrom keras_seresnet.cli import plots\n"
        f"assert plots.main([{str(tmp_path)!r}]) == 0\n"
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
    assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy.png", "loss.png", "schedules.png"]


@pytest.mark.slow  # the program imports Keras before it fails
def test_predict_damaged_model_file(fake_model, image_folder):
    line = one_error_line(script("predict", fake_model, image_folder), 1)
    assert line.startswith("predict.py: error: ") and str(fake_model) in line


@pytest.fixture(scope="module")
def tiny_keras_file(tmp_path_factory):
    import keras

    from keras_seresnet import build_seresnet

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_seresnet(**TINY_MODEL).save(path)
    return path


@pytest.mark.slow  # the program imports Keras before it fails
def test_predict_bad_pickle(tmp_path, tiny_keras_file):
    bad = tmp_path / "unlabelled.pkl"
    bad.write_bytes(pickle.dumps({b"labels": np.zeros(3)}))
    line = one_error_line(
        script("predict", tiny_keras_file, bad, "--output", tmp_path / "out.csv"), 1
    )
    assert line.startswith(
        f"predict.py: error: INPUT {bad} is not an image folder or an image file"
    )
    assert line.endswith(f"pickle: {bad}: no key b'data' (keys: b'labels')")
    assert not (tmp_path / "out.csv").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a pickle\n")
    line = one_error_line(
        script("predict", tiny_keras_file, notes, "--output", tmp_path / "out.csv"), 1
    )
    assert line.startswith(
        f"predict.py: error: INPUT {notes} is not an image folder or an image "
        "file (.jpg .jpeg .png .bmp .gif .webp), so it was read as the unlabelled "
        f"pickle: {notes}: not a readable pickle"
    )
