"""The shipped pretrained weights: the file, loading by name, the refusals, the default model."""

import fnmatch
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_seresnet import (
    ConfigError,
    ModelConfig,
    build_seresnet,
    load_model,
    predict_dir,
    pretrained,
)
from keras_seresnet.config import CIFAR10_CLASSES
from keras_seresnet.data.images import list_images
from tests.test_commands import script  # a script of scripts/ in a subprocess, as a user runs it

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
ENTRY = pretrained.PRETRAINED[pretrained.DEFAULT]


@pytest.fixture(scope="module")
def cifar10_model():
    return build_seresnet(weights="cifar10")


def test_the_shipped_file_has_its_registered_sha256():
    assert os.path.isfile(ENTRY.path)
    assert pretrained.sha256_of(ENTRY.path) == ENTRY.sha256
    assert ENTRY.path.startswith(pretrained.WEIGHTS_DIR)


def test_the_file_is_declared_package_data():
    tomllib = pytest.importorskip("tomllib", reason="the TOML reader of Python 3.11+")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["keras_seresnet"]
    relative = os.path.relpath(ENTRY.path, os.path.join(ROOT, "keras_seresnet"))
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data)


def test_a_name_loads_the_file_into_the_recipes_model(cifar10_model):
    model = build_seresnet()
    model.load_weights(ENTRY.path)
    for expected, actual in zip(model.get_weights(), cifar10_model.get_weights()):
        np.testing.assert_array_equal(actual, expected)


@pytest.mark.slow
def test_a_fresh_process_predicts_what_this_one_does(tmp_path, cifar10_model):
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent("""
        import numpy as np
        from keras_seresnet import build_seresnet
        model = build_seresnet(weights="cifar10")
        np.save("y.npy", model.predict(np.load("x.npy"), verbose=0))
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), cifar10_model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("widths", (16, 32, 64, 128)),
        ("num_classes", 100),
        ("use_se", False),
    ],
)
def test_a_name_refuses_another_architecture_in_one_line(field, value):
    with pytest.raises(ConfigError) as info:
        build_seresnet(weights="cifar10", **{field: value})
    required = getattr(ModelConfig(), field)
    assert str(info.value) == (
        "Argument `weights='cifar10'` fits the recipe's architecture only, with "
        f"`{field}={required!r}`. Received: {field}={value!r}"
    )


def test_fields_that_do_not_change_inference_are_free():
    model = build_seresnet(
        weights="cifar10", dropout=0.5, bn_momentum=0.01, zero_init_residual=True
    )
    assert model.get_layer("head_dropout").rate == 0.5
    assert np.any(model.get_layer("stage1_block1_bn2").gamma.numpy() != 0)  # loaded over the zeros


@pytest.fixture
def installed_copy(tmp_path, monkeypatch):
    """The weights folder copied to `tmp_path`, standing in for the installed one."""
    folder = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS_DIR, folder)
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(folder))
    return folder / ENTRY.filename


def test_a_damaged_file_is_refused_naming_both_hashes(installed_copy):
    data = bytearray(installed_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    installed_copy.write_bytes(bytes(data))
    with pytest.raises(
        ValueError,
        match=r"is damaged: its SHA-256 is [0-9a-f]{64}, not "
        f"{ENTRY.sha256}. Reinstall keras-seresnet.",
    ):
        build_seresnet(weights="cifar10")


def test_a_missing_file_is_refused(installed_copy):
    installed_copy.unlink()
    with pytest.raises(FileNotFoundError, match=r"is missing. Reinstall keras-seresnet."):
        load_model("cifar10")


def test_load_model_takes_a_name_before_a_file_of_that_name(tmp_path, monkeypatch, cifar10_model):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cifar10").mkdir()  # a folder of that name is not what "cifar10" means
    model = load_model("cifar10")
    for expected, actual in zip(cifar10_model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(actual, expected)
    with pytest.raises(ValueError, match=r"Folder \./cifar10 is not a TensorFlow SavedModel"):
        load_model("./cifar10")


def test_predict_dir_without_a_model_uses_the_pretrained_weights(tiny_image_tree, cifar10_model):
    folder = tiny_image_tree / "test"
    default = predict_dir(folder)
    assert default == predict_dir(folder, cifar10_model)
    assert len(default) == len(CIFAR10_CLASSES)
    assert {record["class_name"] for record in default} <= set(CIFAR10_CLASSES)


def test_the_registered_accuracies_are_the_model_cards():
    with open(os.path.join(ROOT, "docs", "weights.md"), encoding="utf-8") as f:
        card = f.read()
    assert f"{ENTRY.sha256}" in card
    assert f"{ENTRY.test_accuracy:.2%}" in card and f"{ENTRY.test_accuracy_tta:.2%}" in card


@pytest.mark.slow
def test_predict_dir_on_the_real_test_images_gives_the_model_cards_accuracy(real_cifar10):
    records = predict_dir(real_cifar10 / "test", batch_size=500, verbose=0)
    truth = [
        CIFAR10_CLASSES.index(os.path.basename(os.path.dirname(record["path"])))
        for record in records
    ]
    assert len(records) == len(list_images(real_cifar10 / "test")) == 10_000
    accuracy = np.mean([record["label"] for record in records] == np.array(truth))
    # The same decoder (Pillow) and model as the model card's evaluation; another batch size
    # may round a near tie the other way: one image in 10,000.
    assert accuracy == pytest.approx(ENTRY.test_accuracy, abs=1e-4)


# --- the commands take the name ---


@pytest.mark.slow
def test_predict_command_without_a_model_uses_the_pretrained_weights(tmp_path, tiny_image_tree):
    folder = tiny_image_tree / "test"
    result = script("predict", folder, "--output", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "p.csv").read_text().splitlines()
    expected = predict_dir(folder)
    assert rows[0] == "path,label,class_name,confidence" and len(rows) == 1 + len(expected)
    assert [row.split(",")[2] for row in rows[1:]] == [r["class_name"] for r in expected]


def test_predict_command_with_a_model_alone_asks_for_the_images(
    tmp_path, no_process_settings, capsys
):
    from keras_seresnet.cli import predict

    (tmp_path / "best.keras").write_bytes(b"never opened")
    with pytest.raises(SystemExit) as exit:
        predict.main([str(tmp_path / "best.keras")])
    assert exit.value.code == 2 and no_process_settings == []
    assert (
        f"argument INPUT: '{tmp_path}/best.keras' is a model, not images; give the images after it"
    ) in capsys.readouterr().err


def test_predict_command_takes_an_image_folder_named_like_the_weights(
    tmp_path, monkeypatch, tiny_image_tree
):
    from keras_seresnet.cli import predict

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_image_tree / "test", tmp_path / "cifar10")
    parser = predict.build_parser()
    args = parser.parse_args(["cifar10"])
    predict.check_arguments(parser, args)  # INPUT is never a model name: no usage error
    assert (args.model, args.input) == ("cifar10", "cifar10")


@pytest.mark.parametrize(
    "command, argv",
    [
        ("predict", ["cifar10", "{images}"]),
        ("evaluate", ["cifar10", "--data-dir", "{images}"]),
        ("export", ["cifar10", "{tmp}/seresnet.onnx", "--format", "onnx"]),
    ],
)
def test_the_commands_accept_the_name_as_model(tmp_path, tiny_image_tree, command, argv):
    import importlib

    from keras_seresnet import cli

    module = importlib.import_module(f"keras_seresnet.cli.{command}")
    parser = module.build_parser()
    args = parser.parse_args([a.format(images=tiny_image_tree, tmp=tmp_path) for a in argv])
    module.check_arguments(parser, args)  # no usage error: the name is not a missing file
    assert args.model == "cifar10" and cli.looks_like_model(args.model)


@pytest.mark.slow
def test_evaluate_command_takes_the_name(tmp_path, tiny_image_tree):
    result = script(
        "evaluate",
        "cifar10",
        "--data-dir",
        tiny_image_tree,
        "--output-dir",
        tmp_path / "evaluation",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout
    assert (tmp_path / "evaluation" / "evaluation.json").is_file()


def test_compare_takes_the_name_and_reports_the_weights_file(tiny_image_tree):
    from keras_seresnet.inference.compare import compare_exports

    (row,) = compare_exports("cifar10", [], tiny_image_tree / "test")
    assert row.name == "Keras cifar10" and row.size_bytes == os.path.getsize(ENTRY.path)
    assert 0.0 <= row.accuracy <= 1.0
