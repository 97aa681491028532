import json

import keras
import pytest
from PIL import Image

from benchmarks.inference import (
    classifier_for,
    inference_throughput,
    predict_dir_throughput,
    write_jpeg_folder,
)
from keras_seresnet import build_from_config, build_seresnet
from keras_seresnet.config import TrainConfig
from tests.test_benchmark import TINY, load_script
from tests.tiny_model import TINY_MODEL


def test_inference_measurements_count_every_image(tmp_path):
    write_jpeg_folder(tmp_path / "jpegs", 9)
    with Image.open(tmp_path / "jpegs" / "00008.jpg") as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (32, 32), "RGB")
    keras.utils.set_random_seed(0)
    model = build_seresnet(**TINY_MODEL)
    lines = []
    decode, end_to_end = predict_dir_throughput(
        model, num_images=9, batch_size=4, workers=2, repeats=1, progress=lines.append
    )
    bare = inference_throughput(model, batch_size=4, steps=2, repeats=2)
    assert (decode.name, end_to_end.name, bare.name) == ("decode", "predict-dir", "inference")
    assert "9 images" in lines[0] and "9 images" in lines[1]
    assert len(bare.runs) == 2 and bare.details["batch_size"] == 4
    for result in (decode, end_to_end, bare):
        assert result.images_per_second > 0


def test_inference_runs_the_model_at_the_configs_precision():
    config = TrainConfig.from_dict({**TINY.to_dict(), "mixed_precision": "mixed_bfloat16"})
    result = inference_throughput(config=config, batch_size=2, steps=1, repeats=1, name="bf16")
    assert (result.name, result.details["precision"]) == ("bf16", "mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"
    # What runs is predict_dir's bfloat16 copy of a float32 model, not a float32 one.
    for model in (None, build_from_config(TINY)):
        classifier = classifier_for(model, config)
        assert classifier.precision == "bfloat16"
        compute = {layer.name: layer.compute_dtype for layer in classifier.model.layers}
        assert compute["stem_conv"] == compute["stage1_block1_conv1"] == "bfloat16"
        assert compute["logits"] == "float32"
    assert classifier_for(None, TINY).model.layers[1].compute_dtype == "float32"


@pytest.mark.slow
def test_benchmark_script_inference_subcommands(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    path = str(tmp_path / "tiny.keras")
    build_seresnet(**TINY_MODEL).save(path)
    out = tmp_path / "results.json"
    script = load_script()
    assert (
        script.main(
            [
                "--repeats",
                "1",
                "--json",
                str(out),
                "predict-dir",
                "--jpegs",
                "5",
                "--inference-batch-size",
                "2",
                "--model",
                path,
            ]
        )
        == 0
    )
    assert [r["name"] for r in json.loads(out.read_text())] == ["decode", "predict-dir"]
    assert (
        script.main(
            [
                "--repeats",
                "1",
                "--json",
                str(out),
                "inference",
                "--inference-batch-size",
                "3",
                "--model",
                path,
            ]
        )
        == 0
    )
    (result,) = json.loads(out.read_text())
    assert result["name"] == "inference" and result["details"]["batch_size"] == 3
    assert "inference: " in capsys.readouterr().out
