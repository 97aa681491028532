import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_seresnet import build_seresnet, export_savedmodel, load_model
from keras_seresnet.inference.export import verify_savedmodel
from keras_seresnet.inference.loading import ProbabilityModel, softmax
from tests.test_predict import load_script
from tests.tiny_model import TINY_MODEL

# Runs in a fresh interpreter: nothing of the exporting process (Keras
# objects, traced functions) can leak into what the SavedModel gives.
FRESH_LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, inputs, outputs = sys.argv[1:4]
    loaded = tf.saved_model.load(path)
    x = np.load(inputs)
    served = {str(n): loaded.serve(tf.constant(x[:n])).numpy() for n in (1, 5)}
    signature = loaded.signatures["serving_default"]
    by_signature = signature(image=tf.constant(x[:3]))
    np.savez(outputs, **served, signature=by_signature["output_0"].numpy())
    print(json.dumps({
        "inputs": {k: [v.shape.as_list(), v.dtype.name]
                   for k, v in signature.structured_input_signature[1].items()},
        "outputs": sorted(signature.structured_outputs),
    }))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_seresnet(**TINY_MODEL)
    path, keras_path = export_savedmodel(model, tmp_path_factory.mktemp("export") / "seresnet" / "1")
    return model, path, keras_path


@pytest.mark.slow
def test_savedmodel_serves_the_softmax_in_a_fresh_process(exported, tmp_path):
    model, path, _ = exported
    x = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_LOAD, path, str(tmp_path / "x.npy"), str(tmp_path / "y.npz")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = softmax(model(x, training=False))
    served = np.load(tmp_path / "y.npz")
    for n in (1, 5):
        assert served[str(n)].shape == (n, 10) and served[str(n)].dtype == np.float32
        np.testing.assert_allclose(served[str(n)], expected[:n], atol=1e-5, rtol=0)
    np.testing.assert_allclose(served["signature"], expected[:3], atol=1e-5, rtol=0)
    signature = json.loads(result.stdout.strip().splitlines()[-1])
    assert signature == {"inputs": {"image": [[None, 32, 32, 3], "float32"]},
                         "outputs": ["output_0"]}


@pytest.mark.slow
def test_keras_file_beside_and_verify(exported):
    model, path, keras_path = exported
    assert keras_path == path + ".keras" and os.path.isfile(keras_path)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(load_model(keras_path)(x, training=False),
                               model(x, training=False), atol=1e-6)
    assert verify_savedmodel(path, model) <= 1e-5
    served = ProbabilityModel(path)  # a SavedModel path is accepted everywhere
    assert served.is_savedmodel and served.num_classes == 10  # read from its signature
    probabilities = served(x)
    np.testing.assert_allclose(probabilities, softmax(model(x, training=False)), atol=1e-5)


@pytest.mark.slow
def test_export_refuses_to_overwrite_unless_asked(exported):
    model, path, _ = exported
    with pytest.raises(FileExistsError, match="overwrite"):
        export_savedmodel(model, path)
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        export_savedmodel(os.path.join(path, "missing.keras"), path + "_other")
    with pytest.raises(ValueError, match="`model`"):
        export_savedmodel(42, path + "_other")


def test_export_of_a_savedmodel_asks_for_the_keras_file(tmp_path):
    served = tmp_path / "serving" / "1"
    served.mkdir(parents=True)
    (served / "saved_model.pb").write_bytes(b"an earlier export")
    with pytest.raises(ValueError, match=r"serving.1 is a SavedModel already; export needs the "
                       r"trained `\.keras` file, which `export_savedmodel` writes beside its "
                       r"SavedModel\. Received"):
        export_savedmodel(served, tmp_path / "serving" / "2")
    (tmp_path / "serving" / "1.keras").write_bytes(b"the trained model")
    with pytest.raises(ValueError, match=r"SavedModel already.*\(here: .*serving.1\.keras\)"):
        export_savedmodel(str(served) + os.sep, tmp_path / "serving" / "2")

    class Loaded:  # what `load_model` returns for a SavedModel folder
        def serve(self, images):
            return images

    with pytest.raises(ValueError, match=r"a loaded SavedModel is exported already; export "
                       r"needs the trained `\.keras` file"):
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
    (tmp_path / "serving" / "1.keras").write_bytes(b"the previous model")
    failing = SaveFails(model.inputs, model.outputs)
    with pytest.raises(OSError, match="No space left"):
        export_savedmodel(failing, path, overwrite=True)
    assert sorted(os.listdir(tmp_path / "serving")) == ["1", "1.keras"]  # no temporaries
    assert os.listdir(path) == ["saved_model.pb"]
    assert (path / "saved_model.pb").read_bytes() == b"the previous export"
    assert (tmp_path / "serving" / "1.keras").read_bytes() == b"the previous model"
    export_savedmodel(model, path, overwrite=True)
    assert verify_savedmodel(str(path), model) <= 1e-5
    assert isinstance(load_model(str(path) + ".keras"), keras.Model)


@pytest.mark.slow
def test_export_script(exported, tmp_path, capsys):
    _, _, keras_path = exported
    output = tmp_path / "served" / "1"
    assert load_script("export").main([keras_path, str(output), "--no-keras-file"]) == 0
    assert os.path.isfile(output / "saved_model.pb")
    assert not os.path.exists(str(output) + ".keras")
    assert "matches the Keras softmax" in capsys.readouterr().out


def test_a_path_that_is_not_a_path_is_refused_before_anything_is_written():
    model = build_seresnet(**TINY_MODEL)
    for path in (None, model):
        with pytest.raises(TypeError, match=r"^Argument `path` must be the SavedModel folder to "
                                            r"create \(str or os.PathLike\). Received: path of type "):
            export_savedmodel(model, path)
