import csv
import importlib.util
import json
import os
import pickle
import re
import shutil
import warnings
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from keras_seresnet import CIFAR10_CLASSES, build_seresnet, predict_dir
from keras_seresnet.inference.loading import ProbabilityModel, load_model, softmax
from keras_seresnet.inference.predict import (
    iter_predict_dir,
    predict_images,
    write_labels_csv,
    write_predictions_csv,
)
from keras_seresnet.training.distribute import precision_policy
from tests.test_images import png_bomb
from tests.tiny_model import TINY_MODEL

SCRIPTS = os.path.join(os.path.dirname(__file__), os.pardir, "scripts")


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return build_seresnet(**TINY_MODEL)


@pytest.fixture(scope="module")
def tiny_keras_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model.save(path)
    return str(path)


def pixels(seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return str(path)


@pytest.fixture
def mixed_folder(tmp_path):
    """Good, odd and broken image files, plus files that are not images."""
    folder = tmp_path / "images"
    good = {
        "a.png": write(folder / "a.png", Image.fromarray(pixels(1))),
        "B.JPG": write(folder / "B.JPG", Image.fromarray(pixels(2)), quality=95),
        "grey.png": write(folder / "grey.png", Image.fromarray(pixels(3, (40, 50)), "L")),
        "rgba.PNG": write(folder / "rgba.PNG", Image.fromarray(pixels(4, (32, 32, 4)), "RGBA")),
        "palette.gif": write(folder / "palette.gif", Image.fromarray(pixels(5)).convert("P")),
        "large.jpeg": write(folder / "large.jpeg", Image.fromarray(pixels(6, (600, 900, 3)))),
        "sub/deep/c.bmp": write(folder / "sub" / "deep" / "c.bmp", Image.fromarray(pixels(7))),
        "sub/d.WebP": write(folder / "sub" / "d.WebP", Image.fromarray(pixels(8))),
    }
    (folder / "empty.jpg").write_bytes(b"")
    jpeg = (folder / "B.JPG").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "text.jpg").write_text("I am a text file, renamed.")
    # 100 megapixels declared by a 1x1 PNG: under Pillow's own bomb limit,
    # above MAX_PIXELS, so the package's check is what refuses it.
    png_bomb(folder / "sub" / "bomb.png", 10_000, 10_000)
    (folder / "notes.txt").write_text("not an image, ignored")
    broken = [str(folder / n) for n in ("empty.jpg", "sub/bomb.png", "text.jpg", "truncated.jpg")]
    return folder, good, broken


def test_predict_dir_skips_each_broken_file_with_a_warning(tiny_model, mixed_folder):
    folder, good, broken = mixed_folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = predict_dir(folder, tiny_model, batch_size=3, verbose=0)
    assert [r["path"] for r in records] == sorted(good.values())
    messages = [str(w.message) for w in caught]
    for path in broken:
        assert sum(path in m for m in messages) == 1, (path, messages)
    assert any("exceeds the limit" in m for m in messages)  # the bomb, refused before decoding
    for record in records:
        assert set(record) == {"path", "label", "class_name", "confidence"}
        assert 0 <= record["label"] < 10
        assert record["class_name"] == CIFAR10_CLASSES[record["label"]]
        assert 0.1 <= record["confidence"] <= 1.0  # the top of 10 probabilities


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_predict_dir_raise_names_every_broken_file(tiny_model, mixed_folder):
    folder, _, broken = mixed_folder
    with pytest.raises(ValueError, match="4 broken image file") as info:
        predict_dir(folder, tiny_model, on_error="raise", batch_size=2, verbose=0)
    for path in broken:
        assert path in str(info.value)


def test_confidence_is_the_models_softmax_of_the_pixels(tiny_model, tmp_path):
    images = np.stack([pixels(i) for i in range(5)])
    for i, image in enumerate(images):
        write(tmp_path / f"{i}.png", Image.fromarray(image))
    records = predict_dir(tmp_path, tiny_model, batch_size=2, top_k=3, verbose=0)
    expected = softmax(tiny_model(images.astype("float32"), training=False))
    for record, p in zip(records, expected):
        assert record["label"] == int(p.argmax())
        np.testing.assert_allclose(record["confidence"], p.max(), rtol=1e-5)
        top = record["top_k"]
        assert [t["label"] for t in top] == list(np.argsort(-p, kind="stable")[:3])
        assert top[0]["label"] == record["label"]
        assert [t["confidence"] for t in top] == sorted(
            (t["confidence"] for t in top), reverse=True
        )
        assert [t["class_name"] for t in top] == [CIFAR10_CLASSES[t["label"]] for t in top]


def test_keras_file_path_gives_the_same_predictions(tiny_model, tiny_keras_file, tmp_path):
    for i in range(3):
        write(tmp_path / f"{i}.png", Image.fromarray(pixels(i)))
    from_model = predict_dir(tmp_path, tiny_model, verbose=0)
    from_file = predict_dir(tmp_path, tiny_keras_file, verbose=0)
    assert [r["label"] for r in from_file] == [r["label"] for r in from_model]
    np.testing.assert_allclose(
        [r["confidence"] for r in from_file], [r["confidence"] for r in from_model], rtol=1e-5
    )


def test_non_recursive(tiny_model, tmp_path):
    top = write(tmp_path / "top.png", Image.fromarray(pixels(0)))
    write(tmp_path / "sub" / "nested.png", Image.fromarray(pixels(1)))
    records = predict_dir(tmp_path, tiny_model, recursive=False, verbose=0)
    assert [r["path"] for r in records] == [top]


def without_paths(records):
    return [{k: v for k, v in r.items() if k != "path"} for r in records]


def test_folder_of_links_predicts_like_a_folder_of_copies(tiny_model, tmp_path):
    store = tmp_path / "store"
    for i in range(3):
        write(store / "nested" / f"{i}.png", Image.fromarray(pixels(i)))
    write(store / "top.jpg", Image.fromarray(pixels(9)), quality=95)
    copies, links = tmp_path / "copies", tmp_path / "links"
    shutil.copytree(store, copies)
    links.mkdir()
    (links / "nested").symlink_to(store / "nested")  # a folder link
    (links / "top.jpg").symlink_to(store / "top.jpg")  # a file link, outside the folder
    expected = predict_dir(copies, tiny_model, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # following links is silent
        linked = predict_dir(links, tiny_model, verbose=0)
    assert [os.path.relpath(r["path"], links) for r in linked] == [
        os.path.relpath(r["path"], copies) for r in expected
    ]
    assert without_paths(linked) == without_paths(expected)
    with pytest.warns(UserWarning, match="Left out 2 symbolic link"):
        with pytest.raises(ValueError, match=r"No image files.*follow_symlinks=False"):
            predict_dir(links, tiny_model, follow_symlinks=False)


def test_link_cycle_terminates_and_dangling_link_is_named(tiny_model, tmp_path):
    good = write(tmp_path / "sub" / "a.png", Image.fromarray(pixels(0)))
    (tmp_path / "sub" / "again").symlink_to(tmp_path)
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = predict_dir(tmp_path, tiny_model, verbose=0)
    assert [r["path"] for r in records] == [good]
    messages = [str(w.message) for w in caught]
    assert any("again" in m and "contains it" in m for m in messages), messages
    assert any(str(tmp_path / "gone.png") in m and "broken symbolic link" in m for m in messages), (
        messages
    )


def test_one_image_file_gives_one_record(tiny_model, tmp_path):
    path = write(tmp_path / "photo.jpg", Image.fromarray(pixels(0, (48, 64, 3))))
    records = predict_dir(path, tiny_model, verbose=0)
    assert [r["path"] for r in records] == [path]
    assert without_paths(records) == without_paths(predict_dir(tmp_path, tiny_model, verbose=0))


def test_missing_folder_empty_folder_and_bad_arguments(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        predict_dir(tmp_path / "nowhere", tiny_model)
    with pytest.raises(TypeError, match="recursve"):
        predict_dir(tmp_path, tiny_model, recursve=False)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="No image files"):
        predict_dir(tmp_path, tiny_model)
    write(tmp_path / "a.png", Image.fromarray(pixels(0)))
    with pytest.raises(ValueError, match=r"`on_error`.*'ignore'"):
        predict_dir(tmp_path, tiny_model, on_error="ignore")
    with pytest.raises(ValueError, match=r"`top_k`.*11"):
        predict_dir(tmp_path, tiny_model, top_k=11)
    with pytest.raises(ValueError, match=r"`top_k`.*0"):
        predict_dir(tmp_path, tiny_model, top_k=0)
    with pytest.raises(ValueError, match=r"`batch_size`.*0"):
        predict_dir(tmp_path, tiny_model, batch_size=0)
    with pytest.raises(ValueError, match=r"predicts 10 classes but `class_names` has 3"):
        iter_predict_dir(tmp_path, tiny_model, class_names=("a", "b", "c"))
    with pytest.raises(ValueError, match="`model`"):
        predict_dir(tmp_path, object())
    with pytest.raises(
        ValueError,
        match=r"`directory` must be the path .*`predict_images`. "
        r"Received: directory of type int",
    ):
        predict_dir(5, tiny_model)


def test_class_names_must_not_be_a_single_string(tiny_model, tmp_path):
    write(tmp_path / "a.png", Image.fromarray(pixels(0)))
    # Ten characters for the ten classes: read name by name, it would pass the width check.
    for names in ("abcdefghij", b"abcdefghij"):
        message = (
            "Argument `class_names` must be a sequence of names, one per class, not a "
            f"single string. Received: class_names={names!r}"
        )
        for predict in (predict_dir, iter_predict_dir):
            with pytest.raises(ValueError, match=re.escape(message)):
                predict(tmp_path, tiny_model, class_names=names)
    (record,) = predict_dir(tmp_path, tiny_model, class_names=list("abcdefghij"), verbose=0)
    assert record["class_name"] == "abcdefghij"[record["label"]]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Argument `class_names` must be a sequence of names, one per class. "
            "Received: class_names=10"
        ),
    ):
        predict_dir(tmp_path, tiny_model, class_names=10)


@pytest.mark.parametrize("workers", [0, -2, 2.0, True, "4"])
def test_workers_must_be_a_positive_integer(tiny_model, tmp_path, workers):
    write(tmp_path / "a.png", Image.fromarray(pixels(0)))
    message = (
        f"Argument `workers` must be None or a positive integer. Received: workers={workers!r}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        predict_dir(tmp_path, tiny_model, workers=workers)


def test_one_decoding_worker_predicts_like_the_default(tiny_model, tmp_path):
    for i in range(3):
        write(tmp_path / f"{i}.png", Image.fromarray(pixels(i)))
    assert predict_dir(tmp_path, tiny_model, workers=1, verbose=0) == predict_dir(
        tmp_path, tiny_model, verbose=0
    )


def test_swapped_arguments_get_a_hint_true_for_predict_dirs_order(tiny_keras_file, tmp_path):
    images = tmp_path / "images"
    write(images / "a.png", Image.fromarray(pixels(0)))
    hint = (
        "It looks like image data, not a model: were the images and the model given in each "
        "other's places?"
    )
    for swapped in (images, images / "a.png"):
        with pytest.raises(ValueError, match=re.escape(hint)):
            predict_dir(tiny_keras_file, swapped)


def test_model_must_take_32x32_rgb_images(tmp_path):
    write(tmp_path / "a.png", Image.fromarray(pixels(0)))
    with pytest.raises(
        ValueError,
        match=r"`model` must be built \(have an input shape\) to take "
        r"images of shape \(None, 32, 32, 3\).*unbuilt model 'dense_only'",
    ):
        predict_dir(tmp_path, keras.Sequential([keras.layers.Dense(10)], name="dense_only"))
    mnist = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    wrong_input = (
        r"`model` must take images of shape \(None, 32, 32, 3\) .*"
        r"Received: a model with input shape \(None, 28, 28, 1\)$"
    )
    with pytest.raises(ValueError, match=wrong_input):
        predict_dir(tmp_path, mnist)
    with pytest.raises(ValueError, match=wrong_input):
        predict_images(np.zeros((1, 32, 32, 3)), mnist)
    per_pixel = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Dense(10)])
    with pytest.raises(
        ValueError,
        match=r"class scores of shape \(None, num_classes\). "
        r"Received: a model with output shape \(None, 32, 32, 10\)",
    ):
        predict_dir(tmp_path, per_pixel)
    any_size = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]
    )
    (record,) = predict_dir(tmp_path, any_size, verbose=0)  # None fits any size
    assert 0 <= record["label"] < 4


def test_iter_predict_dir_streams_in_batches(tiny_model, tmp_path):
    for i in range(5):
        write(tmp_path / f"{i}.png", Image.fromarray(pixels(i)))
    stream = iter_predict_dir(tmp_path, tiny_model, batch_size=2, verbose=0)
    first = next(stream)
    assert first["path"].endswith("0.png")
    assert len([first, *stream]) == 5


def test_class_names_follow_the_models_width(tmp_path):
    keras.utils.set_random_seed(0)
    three = build_seresnet(**TINY_MODEL, num_classes=3)
    write(tmp_path / "a.png", Image.fromarray(pixels(0)))
    (record,) = predict_dir(tmp_path, three, top_k=3, verbose=0)
    assert record["class_name"] == str(record["label"]) and 0 <= record["label"] < 3
    assert sorted(t["class_name"] for t in record["top_k"]) == ["0", "1", "2"]
    (named,) = predict_dir(tmp_path, three, class_names=("cat", "dog", "fox"), verbose=0)
    assert named["class_name"] == ("cat", "dog", "fox")[record["label"]]
    with pytest.raises(ValueError, match=r"`top_k`.*\[1, 3\]"):
        predict_dir(tmp_path, three, top_k=4)


def test_failed_prediction_leaves_an_existing_csv_untouched(tiny_model, tmp_path):
    folder = tmp_path / "images"
    for i in range(3):
        write(folder / f"{i}.jpg", Image.fromarray(pixels(i)), quality=95)
    jpeg = (folder / "0.jpg").read_bytes()
    (folder / "1-truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    output = tmp_path / "existing.csv"
    output.write_text("path,label,class_name,confidence\nprevious,1,automobile,0.9\n")
    before = output.read_bytes()
    records = iter_predict_dir(folder, tiny_model, on_error="raise", batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="1-truncated.jpg"):
        write_predictions_csv(records, output)
    assert output.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["existing.csv", "images"]  # no temporary left


def test_failed_labels_csv_leaves_an_existing_file_untouched(tmp_path):
    output = tmp_path / "labels.csv"
    output.write_text("ID,Labels\n0,7\n")
    with pytest.raises(ValueError, match="not a label"):  # fails at the second row
        write_labels_csv(["3", "not a label"], output)
    assert output.read_text() == "ID,Labels\n0,7\n"
    assert os.listdir(tmp_path) == ["labels.csv"]


def test_all_broken_folder_returns_no_records_with_warnings(tiny_model, tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="x.png"):
        assert predict_dir(tmp_path, tiny_model, verbose=0) == []


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_one_named_file_that_cannot_be_read_raises(tiny_model, tmp_path, on_error):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    (tmp_path / "x.png").write_bytes(b"")
    for path, reason in ((notes, "not a readable image"), (tmp_path / "x.png", "empty file")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # raised, not skipped with a warning
            with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {reason}"):
                predict_dir(path, tiny_model, on_error=on_error, verbose=0)


def test_progress_bar_counts_files_read(tiny_model, tmp_path, capsys):
    for i in range(2):
        write(tmp_path / f"{i}.png", Image.fromarray(pixels(i)))
    (tmp_path / "2.png").write_bytes(b"")
    (tmp_path / "3.png").write_text("broken")
    with pytest.warns(UserWarning, match="Skipping broken image"):
        records = predict_dir(tmp_path, tiny_model, batch_size=2, verbose=1)
    assert len(records) == 2
    out = capsys.readouterr().out
    assert "4/4" in out and "/file" in out and "/image" not in out  # files, not predictions


# --- model loading and safe mode ---


def lambda_model_file(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    return path


def test_lambda_keras_file_refused_unless_opted_in(tmp_path):
    path = lambda_model_file(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"Cannot load model file .*lambda\.keras: .*`Lambda` "
        r".*safe_mode=False",
    ):
        load_model(path)
    write(tmp_path / "images" / "a.png", Image.fromarray(pixels(0)))
    with pytest.raises(ValueError, match="safe_mode=False"):
        predict_dir(tmp_path / "images", path)
    assert isinstance(load_model(path, safe_mode=False), keras.Model)
    assert len(predict_dir(tmp_path / "images", path, safe_mode=False, verbose=0)) == 1


def test_vocabulary_file_outside_the_archive_is_refused_unless_opted_in(tmp_path):
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("cat\ndog\n")
    inputs = keras.Input((1,), dtype="string")
    model = keras.Model(
        inputs, keras.layers.StringLookup(vocabulary=str(vocabulary), name="lookup")(inputs)
    )
    saved = tmp_path / "saved.keras"
    model.save(saved)
    # Keras keeps an adapted vocabulary inside the archive; a hand-made file
    # can still name one outside it, which safe mode refuses to read.
    path = tmp_path / "lookup.keras"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1]["config"]["vocabulary"] = str(vocabulary)
                data = json.dumps(config)
            target.writestr(item, data)
    with pytest.raises(
        ValueError,
        match=r"Cannot load model file .*lookup\.keras: .*vocabulary"
        r".*safe_mode=False",
    ):
        load_model(path)
    assert isinstance(load_model(path, safe_mode=False), keras.Model)


def test_load_model_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_model(tmp_path / "missing.keras")
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"Unsupported model file .*weights\.h5"):
        load_model(tmp_path / "weights.h5")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a TensorFlow SavedModel"):
        load_model(tmp_path / "folder")
    (tmp_path / "corrupt.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt.keras"):
        load_model(tmp_path / "corrupt.keras")
    with pytest.raises(ValueError, match="`safe_mode`"):
        load_model(tmp_path / "corrupt.keras", safe_mode="no")
    # The arguments swapped: an image, or a folder of images, in the model's place.
    write(tmp_path / "images" / "a.png", Image.fromarray(pixels(0)))
    with pytest.raises(ValueError, match=r"not a TensorFlow SavedModel.*each other's places"):
        load_model(tmp_path / "images")
    with pytest.raises(ValueError, match=r"Unsupported model file .*a\.png.*each other's places"):
        load_model(tmp_path / "images" / "a.png")


def test_softmax_output_model_is_not_softmaxed_twice():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    x = pixels(0)[None].astype("float32")
    np.testing.assert_allclose(ProbabilityModel(model)(x), model(x), rtol=1e-6)


def test_savedmodel_whose_serve_returns_logits_is_refused():
    class Logits:
        def serve(self, x):
            return np.full((len(x), 10), 3.0, np.float32)

    with pytest.raises(ValueError, match="does not return class probabilities"):
        ProbabilityModel(Logits())(np.zeros((2, 32, 32, 3), np.float32))


@pytest.mark.parametrize(
    "precision,policy", [("bfloat16", "mixed_bfloat16"), ("float16", "mixed_float16")]
)
def test_reduced_precision_runs_a_copy_and_gives_float32_probabilities(
    tiny_model, precision, policy
):
    x = np.stack([pixels(i) for i in range(4)])
    reference = ProbabilityModel(tiny_model)
    assert reference.model is tiny_model  # float32: no copy
    low = ProbabilityModel(tiny_model, precision=precision)
    # As build_seresnet builds under the policy: normalisation and logits in float32.
    policies = {
        layer.name: layer.dtype_policy.name
        for layer in low.model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    }
    assert policies.pop("normalize") == policies.pop("logits") == "float32"
    assert set(policies.values()) == {policy}
    with precision_policy(policy):
        trained_under_policy = build_seresnet(**TINY_MODEL)
    assert ProbabilityModel(trained_under_policy, precision=precision).model is trained_under_policy
    probabilities = low(x)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, reference(x), atol=2e-2)  # bf16: 8-bit mantissa
    # The given model and Keras's global policy are as they were.
    assert {layer.dtype_policy.name for layer in tiny_model.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"
    np.testing.assert_array_equal(reference(x), ProbabilityModel(tiny_model)(x))


def test_precision_through_predict_dir_and_its_errors(tiny_model, tmp_path):
    for i in range(3):
        write(tmp_path / f"{i}.png", Image.fromarray(pixels(i)))
    plain = predict_dir(tmp_path, tiny_model, verbose=0)
    low = predict_dir(tmp_path, ProbabilityModel(tiny_model), precision="bfloat16", verbose=0)
    np.testing.assert_allclose(
        [r["confidence"] for r in low], [r["confidence"] for r in plain], atol=2e-2
    )
    with pytest.raises(ValueError, match=r"`precision`.*'bfloat16'.*Received: precision='int8'"):
        predict_dir(tmp_path, tiny_model, precision="int8")

    class Served:
        def serve(self, x):
            return np.full((len(x), 10), 0.1, np.float32)

    with pytest.raises(ValueError, match=r"`precision` must be 'float32' for a SavedModel"):
        predict_dir(tmp_path, Served(), precision="float16")


def test_predict_images_checks_shape(tiny_model):
    probabilities = predict_images(
        np.stack([pixels(i) for i in range(3)]), tiny_model, batch_size=2, verbose=0
    )
    assert probabilities.shape == (3, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[N, 32, 32, 3\].*\(3, 28, 28, 3\)"):
        predict_images(np.zeros((3, 28, 28, 3)), tiny_model)


# --- scripts/predict.py ---


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(SCRIPTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_predict_script_folder_csv(tiny_keras_file, mixed_folder, tmp_path, capsys):
    folder, good, broken = mixed_folder
    output = tmp_path / "out.csv"
    assert (
        load_script("predict").main(
            [tiny_keras_file, str(folder), "--output", str(output), "--batch-size", "4"]
        )
        == 0
    )
    warned = [
        line
        for line in capsys.readouterr().err.splitlines()
        if ": warning: Skipping broken image " in line
    ]  # the command's one-line warnings
    assert [next(p for p in broken if p in line) for line in warned] == broken
    with open(output, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "label", "class_name", "confidence"]
    assert [r[0] for r in rows[1:]] == sorted(good.values())
    for _, label, name, confidence in rows[1:]:
        assert CIFAR10_CLASSES[int(label)] == name and 0.1 <= float(confidence) <= 1.0


def test_predict_script_one_image_file(tiny_keras_file, tmp_path):
    image = write(tmp_path / "photo.JPG", Image.fromarray(pixels(0, (50, 40, 3))))
    output = tmp_path / "one.csv"
    assert load_script("predict").main([tiny_keras_file, image, "--output", str(output)]) == 0
    rows = output.read_text().splitlines()
    assert rows[0] == "path,label,class_name,confidence" and len(rows) == 2
    assert rows[1].startswith(image + ",")


def test_labels_csv_is_the_course_format(tmp_path):
    path = tmp_path / "labels.csv"
    assert write_labels_csv(np.array([3, 0, 9]), path) == 3
    assert path.read_text().splitlines() == ["ID,Labels", "0,3", "1,0", "2,9"]


def test_predict_script_unlabelled_pickle_csv(tiny_model, tiny_keras_file, tmp_path):
    images = np.stack([pixels(i) for i in range(5)])
    (tmp_path / "unlabelled.pkl").write_bytes(pickle.dumps({b"data": images}))
    output = tmp_path / "labels.csv"
    assert (
        load_script("predict").main(
            [tiny_keras_file, str(tmp_path / "unlabelled.pkl"), "--output", str(output)]
        )
        == 0
    )
    expected = softmax(tiny_model(images.astype("float32"), training=False)).argmax(axis=1)
    assert output.read_text().splitlines() == ["ID,Labels"] + [
        f"{i},{label}" for i, label in enumerate(expected)
    ]


def test_numpy_integer_arguments_are_accepted(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    records = predict_dir(
        tmp_path,
        tiny_model,
        batch_size=np.int64(2),
        top_k=np.int64(3),
        workers=np.int32(1),
        verbose=0,
    )
    assert len(records) == 3 and len(records[0]["top_k"]) == 3
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        predict_images(images, tiny_model, batch_size=np.int64(2), verbose=0),
        predict_images(images, tiny_model, verbose=0),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "images, arguments, message",
    [
        (
            np.zeros((2, 32, 32, 3), bool),
            {},
            r"^Argument `images` must hold integer or float pixels "
            r"in \[0, 255\]. Received: images with dtype bool$",
        ),
        (
            np.full((2, 32, 32, 3), "1"),
            {},
            r"^Argument `images` must hold integer or float pixels .*",
        ),
        (
            "some/folder",
            {},
            r"^Argument `images` must be an array \[N, 32, 32, 3\]; for a folder or "
            r"an image file use `predict_dir`. Received: images='some/folder'$",
        ),
        (
            np.zeros((2, 32, 32, 3), np.uint8),
            {"verbose": 5},
            r"^Argument `verbose` must be 'auto', 0 or 1. Received: verbose=5$",
        ),
    ],
)
def test_predict_images_refuses_bad_arguments(tiny_model, images, arguments, message):
    with pytest.raises(ValueError, match=message):
        predict_images(images, tiny_model, **arguments)


def test_a_probability_model_call_refuses_images_without_a_batch_axis(tiny_model):
    with pytest.raises(
        ValueError,
        match=r"^Argument `images` must be a batch \[N, 32, 32, 3\] of "
        r"raw RGB pixels. Received shape \(2, 32, 32\)$",
    ):
        ProbabilityModel(tiny_model)(np.zeros((2, 32, 32), np.uint8))


@pytest.mark.parametrize("path", [None, 5])
def test_load_model_refuses_what_is_not_a_path(path):
    with pytest.raises(
        TypeError,
        match=r"^Argument `path` must be the path \(str or os.PathLike\) "
        r"of a `.keras` file or a SavedModel folder. Received: path "
        r"of type (NoneType|int)$",
    ):
        load_model(path)
