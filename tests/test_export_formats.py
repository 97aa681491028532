"""ONNX and LiteRT exports: each file loaded by its own runtime in a fresh process, without TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seresnet import build_seresnet, export_model
from keras_seresnet.inference import runners
from keras_seresnet.inference.export import DEFAULT_ATOL
from keras_seresnet.inference.loading import softmax
from tests.test_predict import load_script
from tests.tiny_model import TINY_MODEL

# Each loads the file with the runtime a phone or browser user has, runs
# batches of 1 and 5, and reports the names, shapes and whether TensorFlow
# was imported along the way.
FRESH_ONNX = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime
    path, inputs, outputs = sys.argv[1:]
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.load(inputs)
    np.savez(outputs, **{str(n): session.run(["probabilities"], {"image": x[:n]})[0]
                         for n in (1, 5)})
    print(json.dumps({
        "inputs": [[i.name, i.shape[1:], i.type] for i in session.get_inputs()],
        "outputs": [[o.name, o.shape[1:]] for o in session.get_outputs()],
        "tensorflow": "tensorflow" in sys.modules,
    }))
    """
)
FRESH_LITERT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    path, inputs, outputs = sys.argv[1:]
    interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serving_default")
    x = np.load(inputs)
    np.savez(outputs, **{str(n): runner(image=x[:n])["probabilities"] for n in (1, 5)})
    print(json.dumps({
        "signatures": interpreter.get_signature_list(),
        "tensorflow": "tensorflow" in sys.modules,
    }))
    """
)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return build_seresnet(**TINY_MODEL)


def run_fresh(script, path, tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npz")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return x, np.load(tmp_path / "y.npz"), json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_onnx_round_trip(tiny, tmp_path):
    result = export_model(tiny, tmp_path / "seresnet.onnx", format="onnx")
    assert (result.format, result.quantize, result.keras_path) == ("onnx", None, None)
    assert result.max_difference <= 1e-4
    assert result.size_bytes == os.path.getsize(tmp_path / "seresnet.onnx")
    assert os.listdir(tmp_path) == ["seresnet.onnx"]
    x, served, report = run_fresh(FRESH_ONNX, result.path, tmp_path)
    assert report == {
        "inputs": [["image", [32, 32, 3], "tensor(float)"]],
        "outputs": [["probabilities", [10]]],
        "tensorflow": False,
    }
    expected = softmax(tiny(x, training=False))
    for n in (1, 5):
        np.testing.assert_allclose(served[str(n)], expected[:n], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_litert_round_trip(tiny, tmp_path):
    result = export_model(tiny, tmp_path / "seresnet.tflite", format="litert")
    assert result.max_difference <= 1e-4 and result.quantize is None
    x, served, report = run_fresh(FRESH_LITERT, result.path, tmp_path)
    assert report == {
        "signatures": {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}},
        "tensorflow": False,
    }
    expected = softmax(tiny(x, training=False))
    for n in (1, 5):
        np.testing.assert_allclose(served[str(n)], expected[:n], atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["float16", "dynamic"])
def test_quantised_litert_is_smaller_and_close(tiny, tmp_path, quantize):
    full = export_model(tiny, tmp_path / "float32.tflite", format="litert")
    small = export_model(tiny, tmp_path / f"{quantize}.tflite", format="litert", quantize=quantize)
    assert small.quantize == quantize and small.size_bytes < full.size_bytes
    assert small.max_difference <= DEFAULT_ATOL[quantize]
    _, served, _ = run_fresh(FRESH_LITERT, small.path, tmp_path)
    assert served["5"].shape == (5, 10)
    np.testing.assert_allclose(served["5"].sum(-1), 1.0, atol=1e-3)


@pytest.mark.slow
def test_a_failed_check_writes_nothing_and_keeps_the_previous_file(tiny, tmp_path):
    path = tmp_path / "seresnet.tflite"
    path.write_bytes(b"the previous export")
    # Int8 weights cannot agree with float32 to 1e-12: the check fails, deterministically.
    with pytest.raises(
        ValueError,
        match=r"^The LiteRT export .*seresnet\.tflite differs from the "
        r"Keras model by \S+ in probability \(more than "
        r"atol=1e-12\)\. Nothing was written\.$",
    ):
        export_model(tiny, path, format="litert", quantize="dynamic", atol=1e-12, overwrite=True)
    assert os.listdir(tmp_path) == ["seresnet.tflite"]  # no temporaries
    assert path.read_bytes() == b"the previous export"


@pytest.mark.slow
def test_export_script_formats(tiny, tmp_path, capsys):
    tiny.save(tmp_path / "model.keras")
    export = load_script("export")
    assert (
        export.main([str(tmp_path / "model.keras"), str(tmp_path / "m.onnx"), "--format", "onnx"])
        == 0
    )
    out = capsys.readouterr().out
    assert (
        out.startswith(f"ONNX: {tmp_path / 'm.onnx'} (0.")
        and "matches the Keras probabilities to " in out
    )
    assert (
        export.main(
            [
                str(tmp_path / "model.keras"),
                str(tmp_path / "m.tflite"),
                "--format",
                "litert",
                "--quantize",
                "float16",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith(f"LiteRT (float16): {tmp_path / 'm.tflite'} (")
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.tflite", "model.keras"]


def test_runner_reports_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.float32))
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            runners.__name__,
            "onnx",
            str(tmp_path / "broken.onnx"),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and "broken.onnx" in result.stderr, result.stderr
    assert not os.path.exists(tmp_path / "y.npz")
    with pytest.raises(ValueError, match="Argument `encoded` is only for format='saved_model'"):
        runners.run_export("onnx", tmp_path / "broken.onnx", np.zeros((1, 32, 32, 3)), [b"x"])


@pytest.mark.slow
def test_a_mixed_precision_model_is_exported_in_float32(tiny, tmp_path):
    from keras_seresnet import load_model
    from keras_seresnet.inference.loading import ProbabilityModel

    # A bfloat16 copy, saved and loaded as a trained model is: its outputs
    # come back as a list of one, and its layers compute in bfloat16.
    ProbabilityModel(tiny, precision="bfloat16").model.save(tmp_path / "mixed.keras")
    for format, name in (("saved_model", "1"), ("onnx", "m.onnx"), ("litert", "m.tflite")):
        result = export_model(tmp_path / "mixed.keras", tmp_path / name, format=format)
        assert result.max_difference <= 1e-4, format  # against the float32 Keras model
    copy = load_model(tmp_path / "1" / "assets.extra" / "model.keras")
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in copy.layers}
