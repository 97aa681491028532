"""The CIFAR-10 sources and the restricted unpickler, on fixtures written here."""

import builtins
import os
import pickle
import shutil
import struct
import subprocess
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_seresnet.data import cifar10 as data
from keras_seresnet.data.cifar10 import (
    DataError,
    load_cifar10,
    load_unlabelled_pickle,
    safe_pickle_load,
)


def random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 `str` (BINSTRING), as the original batches are."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_pickle(obj):
    """A protocol-2 pickle as Python 2 with numpy 1 wrote CIFAR-10's batches."""
    buffer = pickle.io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1 named its reconstruct function numpy.core.multiarray._reconstruct.
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_batch(path, images, labels, dumps=None):
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    batch = {
        b"batch_label": b"fixture",
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [b"x.png"] * len(images),
    }
    path.write_bytes((dumps or (lambda o: pickle.dumps(o, protocol=2)))(batch))


def write_batches(folder, per_batch=4, dumps=None):
    folder.mkdir(parents=True, exist_ok=True)
    images = random_images(6 * per_batch)
    labels = np.arange(6 * per_batch) % 10
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        part = slice(i * per_batch, (i + 1) * per_batch)
        write_batch(folder / name, images[part], labels[part], dumps)
    n_train = 5 * per_batch
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


# --- cifar-10-batches-py ----------------------------------------------------


@pytest.mark.parametrize(
    "dumps",
    [
        py2_pickle,
        lambda o: pickle.dumps(o, protocol=2),
        lambda o: pickle.dumps(o, protocol=4),
        lambda o: pickle.dumps(o, protocol=5),
    ],
    ids=["python2", "protocol2", "protocol4", "protocol5"],
)
def test_batches_folder_loads_exactly(tmp_path, dumps):
    (x_train, y_train), (x_test, y_test) = write_batches(
        tmp_path / "cifar-10-batches-py", dumps=dumps
    )
    (a, b), (c, d) = load_cifar10(tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(a, x_train)  # CHW rows became HWC images
    np.testing.assert_array_equal(c, x_test)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(d, y_test)
    assert a.dtype == np.uint8 and b.dtype == np.int64 and a.shape == (20, 32, 32, 3)


def test_parent_of_batches_folder_and_limits(tmp_path):
    (x_train, y_train), (x_test, _) = write_batches(tmp_path / "cifar-10-batches-py")
    (a, b), (c, _) = load_cifar10(tmp_path, limit_train=6, limit_test=3)
    np.testing.assert_array_equal(a, x_train[:6])  # spans data_batch_1 and 2
    np.testing.assert_array_equal(b, y_train[:6])
    np.testing.assert_array_equal(c, x_test[:3])


def test_missing_batch_is_named(tmp_path):
    write_batches(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3: missing"):
        load_cifar10(tmp_path)


def test_wrong_shape_and_bad_label_are_named(tmp_path):
    write_batches(tmp_path)
    images = random_images(2)
    bad = {b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match=r"data_batch_2: b'data' must have shape \(N, 3072\)"):
        load_cifar10(tmp_path)
    write_batch(tmp_path / "data_batch_2", images, [3, 10])
    with pytest.raises(DataError, match="data_batch_2: label 10 at index 1 is outside 0..9"):
        load_cifar10(tmp_path)
    write_batch(tmp_path / "data_batch_2", images, [3])
    with pytest.raises(DataError, match="data_batch_2: expected 2 labels"):
        load_cifar10(tmp_path)


def test_not_a_cifar_folder(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DataError, match="not a CIFAR-10 folder .*cifar-10-batches-py"):
        load_cifar10(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        load_cifar10(tmp_path / "absent")


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_bad_limit_is_named(value):
    with pytest.raises(ValueError, match="limit_test"):
        load_cifar10("/nonexistent", limit_test=value)


# --- keras.datasets ------------------------------------------------------------


def test_keras_datasets_source_labels_become_int64(monkeypatch):
    import keras

    x = random_images(5)
    y = np.array([[0], [9], [3], [1], [2]], np.uint8)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: ((x, y), (x[:2], y[:2])))
    (a, b), (c, d) = load_cifar10(limit_train=4)
    assert a.shape == (4, 32, 32, 3) and b.tolist() == [0, 9, 3, 1] and b.dtype == np.int64
    assert c.shape == (2, 32, 32, 3) and d.shape == (2,)


def test_offline_download_says_where_cifar10_is_and_which_layouts_work(monkeypatch):
    import keras

    def offline():
        # What keras.datasets.cifar10.load_data raises (from keras.utils.get_file)
        # when there is no network.
        try:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        except urllib.error.URLError as e:
            raise Exception(
                f"URL fetch failure on https://example.invalid: None -- {e.reason}"
            ) from e

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError) as info:
        load_cifar10()
    message = str(info.value)
    assert "Could not download CIFAR-10" in message and "name resolution" in message
    assert "cifar-10-batches-py" in message and "train/<class>" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "../shared" not in message  # no path that exists only beside the developers' clone
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- image tree ---------------------------------------------------------------


def write_tree(root, counts, seed=0):
    """PNG tree (lossless); returns {split: {class: [images in file-name order]}}."""
    written = {}
    rng = np.random.default_rng(seed)
    for split, per_class in counts.items():
        written[split] = {}
        for name, n in per_class.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            for i, image in enumerate(images):
                Image.fromarray(image).save(folder / f"{i:04d}.png")
            written[split][name] = images
    return written


def test_tree_interleaves_classes_in_label_order_and_caches(tmp_path, monkeypatch):
    written = write_tree(tmp_path, {"train": {"cat": 3, "airplane": 2}, "test": {"truck": 1}})
    (x, y), (xt, yt) = load_cifar10(tmp_path)
    # Canonical order: airplane 0, cat 0, airplane 1, cat 1, cat 2.
    assert y.tolist() == [0, 3, 0, 3, 3] and yt.tolist() == [9]
    expected = [
        written["train"]["airplane"][0],
        written["train"]["cat"][0],
        written["train"]["airplane"][1],
        written["train"]["cat"][1],
        written["train"]["cat"][2],
    ]
    np.testing.assert_array_equal(x, np.stack(expected))
    np.testing.assert_array_equal(xt[0], written["test"]["truck"][0])
    cache = tmp_path / data.CACHE_FOLDER
    assert sorted(p.name.split("-")[0] for p in cache.glob("*-x.npy")) == ["test", "train"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in cache.iterdir())  # readable by others

    # The second run reads the cache and decodes nothing.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(data, "read_images", no_decoding)
    (x2, y2), _ = load_cifar10(tmp_path)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)

    # A changed tree invalidates the cache, and the stale files are removed.
    monkeypatch.undo()
    Image.fromarray(random_images(1, seed=5)[0]).save(tmp_path / "train" / "cat" / "0009.png")
    (x3, y3), _ = load_cifar10(tmp_path)
    assert len(x3) == 6 and y3.tolist() == [0, 3, 0, 3, 3, 3]
    assert len(list(cache.glob("train-*-x.npy"))) == 1


def test_tree_limit_decodes_only_the_prefix(tmp_path):
    write_tree(tmp_path, {"train": {"dog": 2, "frog": 2}, "test": {"dog": 1}})
    (x, y), _ = load_cifar10(tmp_path, limit_train=3)
    assert y.tolist() == [5, 6, 5] and len(x) == 3
    assert not list((tmp_path / data.CACHE_FOLDER).glob("train-*"))


def test_tree_cache_falls_back_outside_an_unwritable_tree(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    write_tree(tree, {"train": {"ship": 1}, "test": {"ship": 1}})
    inside = str(tree / data.CACHE_FOLDER)
    writable = data._writable_dir
    monkeypatch.setattr(data, "_writable_dir", lambda p: p != inside and writable(p))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    load_cifar10(tree)
    assert len(list((tmp_path / "home-cache" / "keras_seresnet").glob("*/train-*-x.npy"))) == 1
    load_cifar10(tree, cache_dir=tmp_path / "chosen")
    assert len(list((tmp_path / "chosen").glob("test-*-y.npy"))) == 1


def test_failed_cache_write_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    write_tree(tmp_path, {"train": {"cat": 2}, "test": {"cat": 1}})
    real_save = np.save

    def disk_full(path, array, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY half")  # what a full disk leaves of a write
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    (x, y), _ = load_cifar10(tmp_path)
    assert len(x) == 2 and "cannot write the image cache" in capsys.readouterr().err
    cache = tmp_path / data.CACHE_FOLDER
    assert list(cache.iterdir()) == []  # neither a half file nor a temporary one
    monkeypatch.setattr(np, "save", real_save)
    (x2, _), _ = load_cifar10(tmp_path)
    np.testing.assert_array_equal(x2, x)
    assert len(list(cache.glob("*-x.npy"))) == 2


def test_tree_of_links_loads_like_a_tree_of_copies(tmp_path):
    # A symlink farm: class folders and files that link into another tree.
    write_tree(tmp_path / "store", {"train": {"cat": 2, "dog": 1}, "test": {"dog": 1}})
    farm = tmp_path / "farm"
    (farm / "train" / "cat").mkdir(parents=True)
    for image in sorted((tmp_path / "store" / "train" / "cat").iterdir()):
        (farm / "train" / "cat" / image.name).symlink_to(image)
    (farm / "train" / "dog").symlink_to(tmp_path / "store" / "train" / "dog")
    (farm / "test").symlink_to(tmp_path / "store" / "test")
    (x, y), (xt, yt) = load_cifar10(farm, cache_dir=tmp_path / "cache-farm")
    (xc, yc), (xtc, ytc) = load_cifar10(tmp_path / "store", cache_dir=tmp_path / "cache-store")
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(xt, xtc)
    assert y.tolist() == yc.tolist() == [3, 5, 3] and yt.tolist() == ytc.tolist() == [5]
    opted_out = dict(cache_dir=tmp_path / "cache-farm", follow_symlinks=False)
    with pytest.warns(UserWarning, match=r"Left out 2 symbolic link"):
        with pytest.raises(DataError, match=r"cat: no image files"):
            load_cifar10(farm, **opted_out)
    shutil.rmtree(farm / "train")
    write_tree(farm, {"train": {"cat": 1}})
    with pytest.raises(DataError, match=r"test: a symbolic link, and follow_symlinks=False"):
        load_cifar10(farm, **opted_out)


def test_tree_with_a_dangling_link_names_it(tmp_path):
    write_tree(tmp_path, {"train": {"bird": 1}, "test": {"bird": 1}})
    (tmp_path / "train" / "bird" / "moved.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(DataError, match=r"moved\.png: broken symbolic link"):
        load_cifar10(tmp_path)


def test_tree_reports_every_broken_image(tmp_path):
    write_tree(tmp_path, {"train": {"bird": 2}, "test": {"bird": 1}})
    (tmp_path / "train" / "bird" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "train" / "bird" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "2 of 4 image(s) cannot be read" in message
    assert "broken.jpg" in message and "empty.png" in message
    assert sorted(Path(e.path).name for e in info.value.errors) == ["broken.jpg", "empty.png"]


def test_tree_unknown_class_and_empty_folders(tmp_path):
    write_tree(tmp_path, {"train": {"cat": 1, "kitten": 1}, "test": {"cat": 1}})
    with pytest.raises(DataError, match="unknown class folder.*kitten"):
        load_cifar10(tmp_path)
    for image in (tmp_path / "train" / "kitten").iterdir():
        image.unlink()
    (tmp_path / "train" / "kitten").rmdir()
    (tmp_path / "train" / "deer").mkdir()
    with pytest.raises(DataError, match=r"deer: no image files"):
        load_cifar10(tmp_path)
    (tmp_path / "train" / "deer").rmdir()
    (tmp_path / "test" / "cat" / "0000.png").unlink()
    with pytest.raises(DataError, match=r"cat: no image files"):
        load_cifar10(tmp_path)


# --- limits above a split's size ---------------------------------------------------


def keras_datasets_source(tmp_path, monkeypatch):
    import keras

    x, y = random_images(3), np.array([[0], [1], [2]], np.uint8)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: ((x, y), (x[:1], y[:1])))
    return None, "keras.datasets.cifar10", 3, 1


def batches_source(tmp_path, monkeypatch):
    write_batches(tmp_path / "cifar-10-batches-py", per_batch=2)  # 10 training, 2 test
    return tmp_path, str(tmp_path / "cifar-10-batches-py"), 10, 2


def tree_source(tmp_path, monkeypatch):
    write_tree(tmp_path, {"train": {"cat": 2, "dog": 1}, "test": {"cat": 1}})
    return tmp_path, str(tmp_path), 3, 1


def limit_warnings(caught):
    return [w for w in caught if str(w.message).startswith("limit_")]


@pytest.mark.parametrize(
    "make_source",
    [keras_datasets_source, batches_source, tree_source],
    ids=["keras_datasets", "batches", "tree"],
)
def test_limit_above_the_split_size_warns_and_keeps_all(tmp_path, monkeypatch, make_source):
    data_dir, where, n_train, n_test = make_source(tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (x, y), (xt, yt) = load_cifar10(data_dir, limit_train=n_train + 5, limit_test=n_test + 1)
    assert len(x) == len(y) == n_train and len(xt) == len(yt) == n_test
    caught = limit_warnings(caught)
    assert [str(w.message) for w in caught] == [
        f"limit_train={n_train + 5} is more than the {n_train} training images in {where}; "
        f"using all {n_train}.",
        f"limit_test={n_test + 1} is more than the {n_test} test images in {where}; "
        f"using all {n_test}.",
    ]
    # UserWarnings, pointing at the line that called load_cifar10.
    assert all(w.category is UserWarning and w.filename == __file__ for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (x, _), (xt, _) = load_cifar10(data_dir, limit_train=n_train, limit_test=n_test)
        load_cifar10(data_dir, limit_train=n_train - 1)
    assert limit_warnings(caught) == [] and (len(x), len(xt)) == (n_train, n_test)


# --- unlabelled pickle ------------------------------------------------------------


def test_unlabelled_pickle_given_an_image_file_says_so(tmp_path):
    Image.fromarray(random_images(1)[0]).save(tmp_path / "photo.jpg")
    with pytest.raises(DataError, match=r"photo\.jpg: an image file, not a pickle.*predict_dir"):
        load_unlabelled_pickle(tmp_path / "photo.jpg")


def test_unlabelled_pickle(tmp_path):
    images = random_images(3)
    path = tmp_path / "unlabelled.pkl"
    path.write_bytes(pickle.dumps({b"data": images}))
    np.testing.assert_array_equal(load_unlabelled_pickle(path), images)
    path.write_bytes(py2_pickle({b"data": images}))
    np.testing.assert_array_equal(load_unlabelled_pickle(path), images)

    path.write_bytes(pickle.dumps({b"data": images.reshape(3, -1)}))
    with pytest.raises(
        DataError, match=r"unlabelled.pkl: b'data' must have shape \(N, 32, 32, 3\)"
    ):
        load_unlabelled_pickle(path)
    path.write_bytes(pickle.dumps({b"images": images}))
    with pytest.raises(DataError, match=r"unlabelled.pkl: no key b'data'"):
        load_unlabelled_pickle(path)
    path.write_bytes(pickle.dumps({b"data": images.astype(np.float32) / 255}))
    with pytest.raises(DataError, match="must be uint8"):
        load_unlabelled_pickle(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="unlabelled.pkl: not a readable pickle"):
        load_unlabelled_pickle(path)


# --- restricted unpickler ------------------------------------------------------------


class Payload:
    """Unpickling this calls `function(*args)`: what a malicious pickle does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker):
    return {
        f"{os.system.__module__}.system": Payload(os.system, f"touch {marker}"),
        "subprocess.call": Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("refused", ["system", "subprocess.call", "builtins.exec"])
def test_malicious_pickle_runs_nothing(tmp_path, refused):
    marker = tmp_path / "pwned"
    name, payload = next((n, p) for n, p in payloads(marker).items() if n.endswith(refused))
    blob = pickle.dumps({b"data": payload, b"labels": [0]}, protocol=4)
    # The payload is real: plain pickle would create the file.
    pickle.loads(blob)
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with pytest.raises(DataError) as info:
        safe_pickle_load(path)
    assert not marker.exists()
    assert str(info.value).startswith(f"{path}: refused to unpickle `{name}`")
    with pytest.raises(DataError, match=f"refused to unpickle `{name}`"):
        load_unlabelled_pickle(path)
    with pytest.raises(DataError, match=f"refused to unpickle `{name}`"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_codecs_encode_is_admitted_only_for_latin1(tmp_path):
    import codecs

    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(Payload(codecs.encode, "abc", "rot13"), protocol=2))
    with pytest.raises(DataError, match="only as encode\\(str, 'latin1'\\)"):
        safe_pickle_load(path)


# --- real data (skipped unless the JPEG tree is present) ---------------------------


def test_real_jpeg_tree_prefix(real_cifar10):
    (x, y), (xt, yt) = load_cifar10(real_cifar10, limit_train=20, limit_test=10)
    assert x.shape == (20, 32, 32, 3) and xt.shape == (10, 32, 32, 3)
    assert y.tolist() == list(range(10)) * 2 and yt.tolist() == list(range(10))
    assert 40 < x.mean() < 200 and x.std() > 20  # natural images, not blank


def test_numpy_integer_limits_are_accepted(tiny_image_tree):
    (x_train, y_train), (x_test, _) = load_cifar10(
        tiny_image_tree, limit_train=np.int64(3), limit_test=np.int32(2)
    )
    assert x_train.shape == (3, 32, 32, 3) and len(y_train) == 3 and len(x_test) == 2


def test_a_data_dir_that_is_not_a_path_is_a_type_error():
    with pytest.raises(
        TypeError,
        match=r"^Argument `data_dir` must be None or a folder path "
        r"\(str or os.PathLike\). Received: data_dir of type int$",
    ):
        load_cifar10(5)
