import os

import keras
import pytest

from keras_seresnet import build_seresnet, export_model
from keras_seresnet.inference.compare import (
    Comparison,
    compare_exports,
    export_format,
    format_table,
)
from tests.tiny_model import TINY_MODEL


@pytest.mark.slow
def test_compare_exports_on_labelled_files(tiny_image_tree, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_seresnet(**TINY_MODEL)
    model.save(tmp_path / "model.keras")
    served = export_model(model, tmp_path / "serving" / "1", save_keras=False).path
    onnx = export_model(model, tmp_path / "m.onnx", format="onnx").path
    rows = compare_exports(
        tmp_path / "model.keras", [served, onnx], tiny_image_tree / "test", batch_size=4
    )
    assert [row.name for row in rows] == [
        "Keras model.keras",
        "SavedModel 1 serving_default",
        "SavedModel 1 serve_image_bytes",
        "ONNX m.onnx",
    ]
    assert rows[0].size_bytes == os.path.getsize(tmp_path / "model.keras")
    assert rows[0].max_difference is None and rows[0].top1_agreement is None
    for row in rows[1:]:  # the tree's 32x32 PNGs decode exactly in the graph too
        assert row.max_difference <= 1e-4 and row.top1_agreement == 1.0
        assert row.accuracy == rows[0].accuracy
    assert rows[3].size_bytes == os.path.getsize(onnx)
    table = format_table(rows).splitlines()
    assert len(table) == 6 and table[2].startswith("| Keras model.keras | ")


def test_format_table_and_export_format(tmp_path):
    row = Comparison("LiteRT m.tflite", 2_905_448, 0.6445, 0.0142, 0.9973)
    assert (
        format_table([row]).splitlines()[-1]
        == "| LiteRT m.tflite | 2.91 MB | 64.45% | 1.4e-02 | 99.73% |"
    )
    assert [export_format(p) for p in (tmp_path, "m.onnx", "m.tflite")] == [
        "saved_model",
        "onnx",
        "litert",
    ]
    with pytest.raises(ValueError, match="Received: 'm.keras'"):
        export_format("m.keras")


def test_compare_refuses_folders_that_are_not_classes(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"CIFAR-10 class folders .* Received folders \['photos'\]"
    ):
        compare_exports(tmp_path / "model.keras", [], tmp_path)
