import json

import keras
import pytest
from PIL import Image

from keras_seresnet import build_seresnet
from keras_seresnet.benchmark import (
    measure_decode,
    measure_inference,
    measure_predict_dir,
    write_jpeg_folder,
)
from tests.test_predict import load_script


def test_inference_measurements_count_every_image(tmp_path):
    folder = write_jpeg_folder(tmp_path / "jpegs", 9)
    with Image.open(tmp_path / "jpegs" / "00008.jpg") as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (32, 32), "RGB")
    keras.utils.set_random_seed(0)
    model = build_seresnet(widths=(8, 16, 16, 16))
    decode = measure_decode(folder, batch_size=4, workers=2)
    end_to_end = measure_predict_dir(folder, model, batch_size=4)
    bare = measure_inference(model, batch_size=4, steps=2)
    assert decode["images"] == end_to_end["images"] == 9 and bare["images"] == 8
    for result in (decode, end_to_end, bare):
        assert result["seconds"] > 0 and result["images_per_second"] > 0


@pytest.mark.slow
def test_benchmark_script_subcommands(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    path = str(tmp_path / "tiny.keras")
    build_seresnet(widths=(8, 16, 16, 16)).save(path)
    script = load_script("benchmark")
    assert script.main(["predict-dir", "--images", "5", "--batch-size", "2", "--model", path]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["decode"]["images"] == result["predict_dir"]["images"] == 5
    assert script.main(["inference", "--steps", "1", "--batch-size", "3", "--model", path]) == 0
    assert json.loads(capsys.readouterr().out)["inference"]["images"] == 3
