import json
import os
import re

import keras
import numpy as np
import pytest
from PIL import Image

from keras_seresnet import CIFAR10_CLASSES, build_seresnet
from keras_seresnet.inference.evaluate import (
    confusion_matrix,
    evaluate_model,
    format_results,
    scores,
    write_results_json,
)
from keras_seresnet.inference.loading import softmax
from keras_seresnet.plots import plot_confusion_matrix
from tests.test_predict import load_script
from tests.tiny_model import TINY_MODEL

NAMES = ("a", "b", "c")


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return build_seresnet(**TINY_MODEL)


def test_scores_match_keras_losses_and_hand_counts():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
    y = np.array([0, 1, 1, 0])
    result = scores(p, y, label_smoothing=0.08, class_names=NAMES)
    assert result["accuracy"] == 0.5
    np.testing.assert_allclose(result["loss"], -np.mean(np.log([0.7, 0.8, 0.3, 0.2])), rtol=1e-6)
    onehot = keras.ops.one_hot(y, 3)
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.08)
    np.testing.assert_allclose(
        result["loss_smoothed"], float(smoothed(onehot, np.log(p))), rtol=1e-5
    )
    assert result["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert result["per_class_accuracy"] == {"a": 0.5, "b": 0.5, "c": None}


def test_zero_probability_gives_a_finite_loss():
    result = scores(np.array([[1.0, 0.0, 0.0]], np.float32), np.array([1]), class_names=NAMES)
    assert np.isfinite(result["loss"]) and result["loss"] > 80


def test_confusion_matrix_counts_pairs():
    matrix = confusion_matrix([0, 0, 2, 2, 2], [0, 1, 2, 2, 0], 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 0, 0], [1, 0, 2]])


def test_evaluate_model_plain_and_flip_tta(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 6)
    results = evaluate_model(tiny_model, x, y, batch_size=4, tta=True, verbose=0)
    plain = softmax(tiny_model(x.astype("float32"), training=False))
    mirror = softmax(tiny_model(x[:, :, ::-1].astype("float32"), training=False))
    expected_plain = scores(plain, y)
    expected_tta = scores((plain + mirror) / 2, y)
    assert results["num_images"] == 6 and results["label_smoothing"] == 0.08
    for key in ("accuracy", "loss", "loss_smoothed"):
        np.testing.assert_allclose(results[key], expected_plain[key], rtol=1e-5)
        np.testing.assert_allclose(results["tta"][key], expected_tta[key], rtol=1e-5)
    assert results["tta"]["loss"] != results["loss"]  # the mirror really was evaluated
    text = format_results(results)
    assert "flip TTA" in text and "loss (CE, smooth 0.08)" in text and "airplane" in text
    write_results_json(results, tmp_path / "r.json")
    assert '"tta"' in (tmp_path / "r.json").read_text()


def test_failed_results_json_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "evaluation.json"
    path.write_text('{"accuracy": 0.9}\n')
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_results_json({"accuracy": 0.5, "model": object()}, path)
    assert path.read_text() == '{"accuracy": 0.9}\n'
    assert os.listdir(tmp_path) == ["evaluation.json"]


def test_class_names_and_label_range_follow_the_models_width():
    keras.utils.set_random_seed(0)
    three = build_seresnet(**TINY_MODEL, num_classes=3)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    results = evaluate_model(three, x, np.array([0, 1, 2, 1]), verbose=0)
    assert list(results["per_class_accuracy"]) == ["0", "1", "2"]
    assert np.array(results["confusion_matrix"]).shape == (3, 3)
    with pytest.raises(ValueError, match=r"`labels`.*\[0, 3\)"):
        evaluate_model(three, x, np.array([0, 1, 2, 3]), verbose=0)
    named = evaluate_model(three, x, np.array([0, 1, 2, 1]), class_names=NAMES, verbose=0)
    assert list(named["per_class_accuracy"]) == list(NAMES)


def test_symmetric_images_give_identical_tta(tiny_model):
    half = np.random.default_rng(1).integers(0, 256, (3, 32, 16, 3), dtype=np.uint8)
    x = np.concatenate([half, half[:, :, ::-1]], axis=2)  # mirror-symmetric
    results = evaluate_model(tiny_model, x, np.array([0, 1, 2]), tta=True, verbose=0)
    np.testing.assert_allclose(results["tta"]["loss"], results["loss"], rtol=1e-5)


def test_evaluate_model_rejects_bad_inputs(tiny_model):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="same number"):
        evaluate_model(tiny_model, x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"`labels`.*\[0, 10\)"):
        evaluate_model(tiny_model, x, np.array([1, 10]))
    with pytest.raises(ValueError, match="`label_smoothing`"):
        evaluate_model(tiny_model, x, np.array([1, 2]), label_smoothing=1.0)


def test_class_names_must_not_be_a_single_string(tiny_model):
    message = re.escape(
        "Argument `class_names` must be a sequence of names, one per class, "
        "not a single string. Received: class_names='abc'"
    )
    with pytest.raises(ValueError, match=message):
        scores(np.full((2, 3), 1 / 3, np.float32), np.array([0, 1]), class_names="abc")
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        evaluate_model(tiny_model, x, np.array([0, 1]), class_names="abc", verbose=0)
    # Ten characters for the ten classes: read name by name, it would be accepted.
    with pytest.raises(
        ValueError, match=r"not a single string\. Received: class_names=b'abcdefghij'"
    ):
        evaluate_model(tiny_model, x, np.array([0, 1]), class_names=b"abcdefghij", verbose=0)


def test_evaluate_model_checks_the_model_takes_images_first():
    mnist = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    wrong_input = (
        r"^Argument `model` must take images of shape \(None, 32, 32, 3\) .*"
        r"Received: a model with input shape \(None, 28, 28, 1\)$"
    )
    x = np.zeros((2, 32, 32, 3), np.uint8)
    # Before the class count (10 outputs, 3 names) and the label range are compared with it.
    for labels, names in (
        (np.array([0, 1]), None),
        (np.array([0, 1]), NAMES),
        (np.array([0, 11]), None),
    ):
        with pytest.raises(ValueError, match=wrong_input):
            evaluate_model(mnist, x, labels, class_names=names, verbose=0)
    unbuilt = keras.Sequential([keras.layers.Dense(10)], name="dense_only")
    with pytest.raises(ValueError, match=r"^Argument `model` must be built .*'dense_only'$"):
        evaluate_model(unbuilt, x, np.array([0, 5]), class_names=NAMES, verbose=0)


def test_plot_confusion_matrix_writes_png(tmp_path):
    path = tmp_path / "cm.png"
    figure = plot_confusion_matrix([[3, 1, 0], [0, 2, 2], [1, 0, 5]], NAMES, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "71.43%" in figure.axes[0].get_title()  # 10 of 14 on the diagonal
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((3, 2)), NAMES)


def image_tree(root, classes=3):
    """A CIFAR-10-layout tree under `root`: 1 training image, 6 test images of the first `classes` classes."""
    rng = np.random.default_rng(2)
    for split, count in (("train", 1), ("test", 6)):
        for i in range(count):
            folder = root / split / CIFAR10_CLASSES[i % classes]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{i}.png"
            )
    return root


def test_evaluate_script_on_an_image_tree(tiny_model, tmp_path, capsys):
    image_tree(tmp_path / "data")
    model_path = str(tmp_path / "tiny.keras")
    tiny_model.save(model_path)
    output = tmp_path / "report"
    assert (
        load_script("evaluate").main(
            [
                model_path,
                "--data-dir",
                str(tmp_path / "data"),
                "--limit-test",
                "4",
                "--tta",
                "--output-dir",
                str(output),
            ]
        )
        == 0
    )
    results = json.loads((output / "evaluation.json").read_text())
    assert results["num_images"] == 4 and 0.0 <= results["tta"]["accuracy"] <= 1.0
    assert sum(map(sum, results["confusion_matrix"])) == 4
    for png in ("confusion_matrix.png", "confusion_matrix_tta.png"):
        assert (output / png).read_bytes()[:4] == b"\x89PNG"
    assert "loss (CE, smooth 0.08)" in capsys.readouterr().out


@pytest.mark.parametrize("num_classes", [3, 12])
def test_evaluate_script_works_end_to_end_for_any_class_count(tmp_path, capsys, num_classes):
    keras.utils.set_random_seed(0)
    model_path = str(tmp_path / "model.keras")
    build_seresnet(**TINY_MODEL, num_classes=num_classes).save(model_path)
    output = tmp_path / "report"
    assert (
        load_script("evaluate").main(
            [
                model_path,
                "--data-dir",
                str(image_tree(tmp_path / "data")),
                "--tta",
                "--output-dir",
                str(output),
            ]
        )
        == 0
    ), capsys.readouterr().err
    names = [str(i) for i in range(num_classes)]
    results = json.loads((output / "evaluation.json").read_text())
    assert list(results["per_class_accuracy"]) == names
    assert np.array(results["confusion_matrix"]).shape == (num_classes, num_classes)
    for png in ("confusion_matrix.png", "confusion_matrix_tta.png"):
        assert (output / png).read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr()
    assert f"  {names[-1]} " in printed.out and printed.err == ""


def test_evaluate_script_refuses_a_model_with_fewer_classes_than_the_labels_in_one_line(
    tmp_path, capsys
):
    keras.utils.set_random_seed(0)
    model_path = str(tmp_path / "model.keras")
    build_seresnet(**TINY_MODEL, num_classes=2).save(model_path)
    output = tmp_path / "report"
    assert (
        load_script("evaluate").main(
            [
                model_path,
                "--data-dir",
                str(image_tree(tmp_path / "data")),
                "--output-dir",
                str(output),
            ]
        )
        == 1
    )
    printed = capsys.readouterr()
    [line] = printed.err.splitlines()
    assert line.endswith(
        ": error: Argument `labels` must lie in [0, 2) (the model's classes). "
        "Received values from 0 to 2"
    )
    assert not output.exists()


def test_a_confusion_matrix_of_many_classes_stays_drawable(tmp_path):
    many = 100
    matrix = np.random.default_rng(0).integers(0, 5, (many, many))
    names = [f"class {i}" for i in range(many)]
    figure = plot_confusion_matrix(matrix, names, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    width, height = figure.get_size_inches()
    assert width <= 25 and height <= 25  # not one 0.6-inch cell per class
    assert len(figure.axes[0].texts) == 0  # counts in 10,000 cells would be unreadable
    few = plot_confusion_matrix(np.eye(12, dtype=int), [str(i) for i in range(12)])
    assert len(few.axes[0].texts) == 144  # a matrix of a few classes keeps its counts


def test_labels_of_shape_n_1_evaluate_as_labels_of_shape_n(tiny_model):
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    flat = evaluate_model(tiny_model, x, np.array([0, 1, 2]), batch_size=np.int64(2), verbose=0)
    column = evaluate_model(tiny_model, x, np.array([[0], [1], [2]]), verbose=0)
    assert column["accuracy"] == flat["accuracy"] and column["loss"] == pytest.approx(flat["loss"])


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0.0, 1.5]),
        np.array([0.0, 1.0]),
        np.eye(10, dtype=np.int64)[[0, 1]],
        np.array(["0", "1"]),
    ],
)
def test_float_one_hot_and_string_labels_are_refused(tiny_model, labels):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(
        ValueError,
        match=r"^Argument `labels` must be integer class indices \[N\] "
        r"\(or \[N, 1\]\); for one-hot labels pass "
        r"`labels.argmax\(axis=1\)`. Received: labels with shape",
    ):
        evaluate_model(tiny_model, x, labels, verbose=0)


@pytest.mark.parametrize("label_smoothing", [None, "0.1"])
def test_a_label_smoothing_that_is_not_a_number_is_refused(tiny_model, label_smoothing):
    x = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(
        ValueError,
        match=r"^Argument `label_smoothing` must be a number in \[0, 1\). "
        rf"Received: label_smoothing={label_smoothing!r}$",
    ):
        evaluate_model(tiny_model, x, np.array([0, 1]), label_smoothing=label_smoothing)


def test_images_and_model_given_in_each_others_places_are_refused(tiny_model):
    with pytest.raises(
        ValueError,
        match=r"^Argument `images` must be an array \[N, 32, 32, 3\] "
        r"with N >= 1. Received shape \(\)$",
    ):
        evaluate_model(np.zeros((2, 32, 32, 3), np.uint8), tiny_model, np.array([0, 1]))
