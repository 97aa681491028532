import io
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

from keras_seresnet import (
    CIFAR10_CLASSES,
    build_seresnet,
    export_model,
    export_savedmodel,
    load_model,
)
from keras_seresnet.data.images import read_image
from keras_seresnet.inference.export import verify_savedmodel
from keras_seresnet.inference.loading import ProbabilityModel, softmax
from tests.test_predict import load_script
from tests.tiny_model import TINY_MODEL

# Runs in a fresh interpreter: nothing of the exporting process (Keras
# objects, traced functions) can leak into what the SavedModel gives. Like a
# model server, it answers a corrupt file with an error and goes on serving.
FRESH_LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, inputs, outputs, *image_files = sys.argv[1:]
    loaded = tf.saved_model.load(path)
    x = np.load(inputs)
    served = {str(n): loaded.serve(tf.constant(x[:n])).numpy() for n in (1, 5)}
    signature = loaded.signatures["serving_default"]
    by_signature = signature(image=tf.constant(x[:3]))["probabilities"].numpy()
    files = [open(f, "rb").read() for f in image_files]
    by_bytes = loaded.signatures["serve_image_bytes"]
    try:
        by_bytes(image_bytes=tf.constant(files + [b"not an image"]))
        error = None
    except tf.errors.InvalidArgumentError as e:
        error = e.message
    answer = by_bytes(image_bytes=tf.constant(files))
    np.savez(outputs, **served, signature=by_signature,
             bytes_probabilities=answer["probabilities"].numpy(),
             bytes_class_id=answer["class_id"].numpy(),
             bytes_class_name=answer["class_name"].numpy().astype(str))
    print(json.dumps({
        "signatures": sorted(loaded.signatures),
        "inputs": {name: {k: [v.shape.as_list(), v.dtype.name]
                          for k, v in loaded.signatures[name].structured_input_signature[1].items()}
                   for name in ("serving_default", "serve_image_bytes")},
        "outputs": {name: sorted(loaded.signatures[name].structured_outputs)
                    for name in ("serving_default", "serve_image_bytes")},
        "error": error,
    }))
    """
)


def encode(image, format):
    buffer = io.BytesIO()
    image.save(buffer, format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return build_seresnet(**TINY_MODEL)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    path, keras_path = export_savedmodel(tiny, tmp_path_factory.mktemp("export") / "seresnet" / "1")
    return tiny, path, keras_path


@pytest.mark.slow
def test_savedmodel_signatures_in_a_fresh_process(exported, tmp_path):
    model, path, _ = exported
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    files = {  # what each file is, as `read_image` (Pillow) reads it
        "grey.png": Image.fromarray(pixels[..., 0]),
        "cmyk.jpg": Image.fromarray(pixels).convert("CMYK"),
        "rgb.png": Image.fromarray(pixels),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_LOAD,
            path,
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npz"),
            *(str(tmp_path / name) for name in files),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = softmax(model(x, training=False))
    served = np.load(tmp_path / "y.npz")
    for n in (1, 5):
        assert served[str(n)].shape == (n, 10) and served[str(n)].dtype == np.float32
        np.testing.assert_allclose(served[str(n)], expected[:n], atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["signature"], expected[:3], atol=1e-5, rtol=0)
    decoded = np.stack([read_image(tmp_path / name) for name in files]).astype(np.float32)
    by_file = softmax(model(decoded, training=False))
    np.testing.assert_allclose(served["bytes_probabilities"], by_file, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(served["bytes_class_id"], by_file.argmax(-1))
    assert list(served["bytes_class_name"]) == [CIFAR10_CLASSES[i] for i in by_file.argmax(-1)]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["signatures"] == ["serve", "serve_image_bytes", "serving_default"]
    assert report["inputs"] == {
        "serving_default": {"image": [[None, 32, 32, 3], "float32"]},
        "serve_image_bytes": {"image_bytes": [[None], "string"]},
    }
    assert report["outputs"] == {
        "serving_default": ["probabilities"],
        "serve_image_bytes": ["class_id", "class_name", "probabilities"],
    }
    assert "Unknown image file format" in report["error"]


@pytest.mark.slow
def test_keras_file_inside_and_verify(exported):
    model, path, keras_path = exported
    assert keras_path == os.path.join(path, "assets.extra", "model.keras")
    assert os.listdir(os.path.dirname(path)) == ["1"]  # TF Serving's base path: versions only
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(
        load_model(keras_path)(x, training=False), model(x, training=False), atol=1e-6
    )
    assert verify_savedmodel(path, model) <= 1e-5
    served = ProbabilityModel(path)  # a SavedModel path is accepted everywhere
    assert served.is_savedmodel and served.num_classes == 10  # read from its signature
    probabilities = served(x)
    np.testing.assert_allclose(probabilities, softmax(model(x, training=False)), atol=1e-5)


@pytest.mark.slow
def test_export_model_checks_the_savedmodel_in_a_fresh_process(tiny, tmp_path):
    result = export_model(
        tiny, tmp_path / "serving" / "1", class_names=list("abcdefghij"), save_keras=False
    )
    assert (result.path, result.format, result.quantize, result.keras_path) == (
        str(tmp_path / "serving" / "1"),
        "saved_model",
        None,
        None,
    )
    assert 0 <= result.max_difference <= 1e-4
    weights = os.path.getsize(
        tmp_path / "serving" / "1" / "variables" / "variables.data-00000-of-00001"
    )
    assert weights < 1.5 * 4 * tiny.count_params()  # each float32 weight once, not twice
    assert 100_000 < result.size_bytes < 10_000_000
    assert os.listdir(tmp_path / "serving") == ["1"]
    assert "assets.extra" not in os.listdir(tmp_path / "serving" / "1")


@pytest.mark.slow
def test_export_refuses_to_overwrite_unless_asked(exported):
    model, path, _ = exported
    with pytest.raises(FileExistsError, match="overwrite"):
        export_savedmodel(model, path)
    with pytest.raises(FileExistsError, match="overwrite"):
        export_model(model, path)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        export_savedmodel(os.path.join(path, "missing.keras"), path + "_other")
    with pytest.raises(ValueError, match="`model`"):
        export_savedmodel(42, path + "_other")


def test_export_of_a_savedmodel_asks_for_the_keras_file(tmp_path):
    served = tmp_path / "serving" / "1"
    served.mkdir(parents=True)
    (served / "saved_model.pb").write_bytes(b"an earlier export")
    with pytest.raises(
        ValueError,
        match=r"serving.1 is a SavedModel already; export needs the "
        r"trained `\.keras` file, which `export_savedmodel` copies into its "
        r"SavedModel\. Received",
    ):
        export_savedmodel(served, tmp_path / "serving" / "2")
    (tmp_path / "serving" / "1.keras").write_bytes(b"the trained model, as older exports kept it")
    with pytest.raises(ValueError, match=r"SavedModel already.*\(here: .*serving.1\.keras\)"):
        export_savedmodel(str(served) + os.sep, tmp_path / "serving" / "2")
    (served / "assets.extra").mkdir()
    (served / "assets.extra" / "model.keras").write_bytes(b"the trained model")
    with pytest.raises(ValueError, match=r"\(here: .*serving.1.assets\.extra.model\.keras\)"):
        export_model(served, tmp_path / "serving" / "2")

    class Loaded:  # what `load_model` returns for a SavedModel folder
        def serve(self, images):
            return images

    with pytest.raises(
        ValueError,
        match=r"a loaded SavedModel is exported already; export "
        r"needs the trained `\.keras` file",
    ):
        export_savedmodel(Loaded(), tmp_path / "serving" / "2")
    assert sorted(os.listdir(tmp_path / "serving")) == ["1", "1.keras"]  # nothing written


class SaveFails(keras.Model):
    """A model whose `.keras` save fails, as on a full disk."""

    def save(self, *args, **kwargs):
        raise OSError(28, "No space left on device")


@pytest.mark.slow
def test_failed_export_keeps_the_previous_one(exported, tmp_path):
    model, _, _ = exported
    path = tmp_path / "serving" / "1"
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"the previous export")
    failing = SaveFails(model.inputs, model.outputs)
    with pytest.raises(OSError, match="No space left"):
        export_savedmodel(failing, path, overwrite=True)
    assert os.listdir(tmp_path / "serving") == ["1"]  # no temporaries
    assert os.listdir(path) == ["saved_model.pb"]
    assert (path / "saved_model.pb").read_bytes() == b"the previous export"
    export_savedmodel(model, path, overwrite=True)
    assert verify_savedmodel(str(path), model) <= 1e-5
    assert isinstance(load_model(str(path / "assets.extra" / "model.keras")), keras.Model)


@pytest.mark.slow
def test_export_script(exported, tmp_path, capsys):
    _, _, keras_path = exported
    output = tmp_path / "served" / "1"
    assert load_script("export").main([keras_path, str(output), "--no-keras-file"]) == 0
    assert os.listdir(output.parent) == ["1"]
    assert os.path.isfile(output / "saved_model.pb")
    assert not os.path.exists(output / "assets.extra")
    out = capsys.readouterr().out
    assert (
        out.startswith(f"SavedModel: {output} (")
        and "MB; loaded in a fresh process, it matches the Keras probabilities to " in out
    )
    assert load_script("export").main([keras_path, str(output), "--overwrite"]) == 0
    assert capsys.readouterr().out.endswith(
        f"Keras file: {output / 'assets.extra' / 'model.keras'}\n"
    )


def test_a_path_that_is_not_a_path_is_refused_before_anything_is_written(tiny):
    for path in (None, tiny):
        with pytest.raises(
            TypeError,
            match=r"^Argument `path` must be the SavedModel folder to "
            r"create \(str or os.PathLike\). Received: path of type ",
        ):
            export_savedmodel(tiny, path)
    with pytest.raises(TypeError, match=r"^Argument `path` must be the \.onnx file to create"):
        export_model(tiny, None, format="onnx")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(path="m.onnx", format="tflite"),
            r"Argument `format` must be one of \('saved_model', 'onnx', 'litert'\). "
            r"Received: format='tflite'",
        ),
        (
            dict(path="m.onnx", format="onnx", quantize="float16"),
            "Argument `quantize` is only for format='litert'. Received: quantize='float16' with "
            "format='onnx'",
        ),
        (
            dict(path="m.tflite", format="litert", quantize="int4"),
            r"Argument `quantize` must be one of \(None, 'float16', 'dynamic'\)",
        ),
        (
            dict(path="m.onnx", format="onnx", save_keras=True),
            "Argument `save_keras` must be False or None for a file format",
        ),
        (
            dict(path="m.tflite", format="onnx"),
            "Argument `path` must end with .onnx for format='onnx'. Received: path='m.tflite'",
        ),
        (dict(path="m.onnx"), "names a file .* but format='saved_model' writes a folder"),
        (dict(path="out", atol=-1), "Argument `atol` must be a number >= 0. Received: atol=-1"),
        (
            dict(path="out", class_names=["cat", "dog"]),
            "Argument `class_names` must name the model's 10 classes. Received 2 names",
        ),
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_written(
    tiny, tmp_path, monkeypatch, kwargs, message
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        export_model(tiny, **kwargs)
    assert os.listdir(tmp_path) == []


def test_a_missing_runtime_names_the_extra(tiny, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a),
    )
    with pytest.raises(
        ImportError,
        match=r"^Exporting to ONNX needs the package\(s\) "
        r"onnxruntime, not installed here; `pip install "
        r"keras-seresnet\[export\]` installs them\.$",
    ):
        export_model(tiny, tmp_path / "m.onnx", format="onnx")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["{model}", "{tmp}/m.onnx"],
            "argument OUTPUT: '{tmp}/m.onnx' is named like a ONNX file; "
            "add --format onnx (the default format, saved_model, writes a "
            "folder)",
        ),
        (
            ["{model}", "{tmp}/m.onnx", "--format", "litert"],
            "argument OUTPUT: must end with .tflite for --format litert. Received: '{tmp}/m.onnx'",
        ),
        (
            ["{model}", "{tmp}/m.onnx", "--format", "onnx", "--quantize", "float16"],
            "argument --quantize: only for --format litert. Received: --quantize float16 with "
            "--format onnx",
        ),
        (
            ["{model}", "{tmp}/m.tflite", "--format", "litert", "--keras-file"],
            "argument --keras-file: only for --format saved_model",
        ),
        (
            ["{model}", "{tmp}/adir.onnx", "--format", "onnx"],
            "argument OUTPUT: '{tmp}/adir.onnx' is a folder, not a file",
        ),
        (["{model}", "{tmp}/m.tflite", "--format", "tflite"], "argument --format: invalid choice"),
    ],
)
def test_export_script_usage_errors(tmp_path, capsys, no_process_settings, argv, message):
    (tmp_path / "model.keras").write_bytes(b"never opened")
    (tmp_path / "adir.onnx").mkdir()
    with pytest.raises(SystemExit) as exit:
        load_script("export").main(
            [a.format(model=tmp_path / "model.keras", tmp=tmp_path) for a in argv]
        )
    assert exit.value.code == 2 and no_process_settings == []  # before TensorFlow starts
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["adir.onnx", "model.keras"]


def test_export_script_missing_runtime_is_one_line(
    tiny, tmp_path, capsys, monkeypatch, no_process_settings
):
    import importlib.util

    tiny.save(tmp_path / "model.keras")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ai_edge_litert" else find_spec(name, *a),
    )
    status = load_script("export").main(
        [str(tmp_path / "model.keras"), str(tmp_path / "m.tflite"), "--format", "litert"]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert err.endswith(
        ": error: Exporting to LiteRT needs the package(s) ai-edge-litert, not "
        "installed here; `pip install keras-seresnet[export]` installs them.\n"
    )
    assert len(err.splitlines()) == 1
    assert os.listdir(tmp_path) == ["model.keras"]


def test_the_command_checks_its_arguments_without_tensorflow():
    code = (
        "import sys\nfrom keras_seresnet.cli import export\n"
        "try:\n    export.main(['m.keras', 'm.onnx'])\nexcept SystemExit as e:\n"
        "    assert e.code == 2\nprint(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.splitlines()[-1] == "[]", result.stderr
