"""CIFAR-10 sources: keras.datasets, pickled batches, an image tree, a pickle.

Every loader returns the same thing: uint8 images [N, 32, 32, 3] (RGB, NHWC,
values 0..255) and int64 labels [N] in 0..9, in CIFAR-10's label order
(`config.CIFAR10_CLASSES`). Bad input raises `DataError` naming the file and
the problem.

Pickles are loaded only through `safe_pickle_load`, a restricted unpickler
that admits what CIFAR-10 pickles hold and refuses every other global, so a
pickle from elsewhere cannot run code on the machine.
"""

import hashlib
import os
import pickle
import sys
import warnings

import numpy as np

from keras_seresnet.config import CIFAR10_CLASSES, is_integer
from keras_seresnet.data.images import IMAGE_EXTENSIONS, list_images, read_images
from keras_seresnet.errors import SeresnetError
from keras_seresnet.files import atomic_path

BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CACHE_FOLDER = ".keras_seresnet_cache"  # inside the image tree, when writable
_CACHE_VERSION = 1  # bump when the decoding or the canonical order changes
_DECODE_CHUNK = 5000  # images decoded between two progress lines
_MAX_LISTED_ERRORS = 20  # broken files named in a message; all are in `.errors`


class DataError(SeresnetError, ValueError):
    """A data file or folder that cannot be used; the message names it and why.

    Attributes:
        errors: for a tree with unreadable images, every `images.ImageError`
            (each has `.path` and `.reason`); otherwise empty.

    Example:

    >>> try:
    ...     load_cifar10("no-such-folder")
    ... except DataError as error:
    ...     print(error)
    no-such-folder: no such folder. data_dir (scripts: --data-dir) accepts ...
    """

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.errors = list(errors)


# --------------------------------------------------------------------------
# Restricted unpickling
# --------------------------------------------------------------------------


def _latin1_encode(text, encoding):
    # Python 3 pickles bytes with protocol < 3 as `_codecs.encode(str,
    # "latin1")`. Only that exact use is admitted: other codecs (zlib, bz2,
    # base64, ...) are refused.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(
            f"_codecs.encode is admitted only as encode(str, 'latin1'); got "
            f"encode({type(text).__name__}, {encoding!r})"
        )
    return text.encode("latin1")


def _numpy_globals():
    # The installed numpy's own reconstruct functions, reached through the
    # objects' reduce methods rather than by importing `numpy.core` (which
    # numpy 2 deprecates). Pickles name them by the module of the numpy that
    # wrote them: `numpy.core.*` (numpy 1, and Python 2's original CIFAR
    # batches) or `numpy._core.*` (numpy 2); both spellings map here.
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    frombuffer = np.ndarray.__reduce_ex__(np.zeros(1), 5)[0]
    scalar = np.int64(0).__reduce__()[0]
    admitted = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        admitted[(core + ".multiarray", "_reconstruct")] = reconstruct
        admitted[(core + ".multiarray", "scalar")] = scalar
        admitted[(core + ".numeric", "_frombuffer")] = frombuffer
    admitted[("_codecs", "encode")] = _latin1_encode
    return admitted


_ADMITTED_GLOBALS = _numpy_globals()


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module, name):
        super().__init__(f"{module}.{name}")
        self.qualified_name = f"{module}.{name}"


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `_ADMITTED_GLOBALS`.

    Every way a pickle can reach a callable (GLOBAL, STACK_GLOBAL, INST, OBJ,
    the EXT* registry) goes through `find_class`, so refusing here refuses
    them all; dicts, lists, tuples, bytes, str, ints and floats need no
    global. Persistent ids are refused by `pickle.Unpickler` itself.
    """

    def find_class(self, module, name):
        try:
            return _ADMITTED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(module, name) from None


def safe_pickle_load(path):
    """Loads a pickle that may only hold data, never code.

    Admits dicts, lists, tuples, bytes, str, ints, floats, numpy arrays,
    numpy scalars and dtypes, as pickled by Python 2 or 3 with any protocol
    and by numpy 1 or 2 (`numpy.core` and `numpy._core` reconstruct
    functions). Any other global (`os.system`, `subprocess.Popen`,
    `builtins.exec`, a class of some package...) is refused before it is
    called. Strings written by Python 2 load as bytes (`encoding="bytes"`),
    as in the original CIFAR-10 batches, whose keys are `b"data"` etc.

    Args:
        path: the pickle file.

    Returns:
        The unpickled object.

    Raises:
        DataError: the file is missing or unreadable, is not a pickle, or
            names a global outside the admitted set (the message gives the
            refused `module.name`).
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as e:
        raise DataError(
            f"{path}: refused to unpickle `{e.qualified_name}`: this loader "
            "admits only plain data (dict, list, bytes, str, int, numpy "
            "arrays); the file may be malicious or is not a CIFAR-style pickle"
        ) from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a pickle file") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        UnicodeDecodeError,
    ) as e:
        raise DataError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def _get(mapping, key, path):
    # Python 2 pickles (encoding="bytes") have bytes keys; Python 3 ones str.
    if not isinstance(mapping, dict):
        raise DataError(f"{path}: expected a dict, found {type(mapping).__name__}")
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    keys = ", ".join(repr(k) for k in list(mapping)[:10])
    raise DataError(f"{path}: no key {key.encode()!r} (keys: {keys})")


def _check_labels(labels, count, path):
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: labels are not a list of integers ({e})") from None
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(
            f"{path}: expected {count} labels (one per image), found shape {labels.shape}"
        )
    if count and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, found dtype {labels.dtype}")
    last = len(CIFAR10_CLASSES) - 1
    bad = np.flatnonzero((labels < 0) | (labels > last))
    if bad.size:
        raise DataError(
            f"{path}: label {labels[bad[0]]} at index {bad[0]} is outside 0..{last} "
            f"({bad.size} such label(s))"
        )
    return labels.astype(np.int64)


def _as_uint8(array, path, what):
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: {what} must be a numpy array, found {type(array).__name__}")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer) and (
        array.size == 0 or (array.min() >= 0 and array.max() <= 255)
    ):
        return array.astype(np.uint8)
    raise DataError(f"{path}: {what} must be uint8 pixels 0..255, found dtype {array.dtype}")


# --------------------------------------------------------------------------
# cifar-10-batches-py
# --------------------------------------------------------------------------


def _load_batch(path):
    """One `data_batch_N`/`test_batch`: rows of 3072 = 3 x 32 x 32 (CHW) bytes."""
    batch = safe_pickle_load(path)
    data = _as_uint8(_get(batch, "data", path), path, "b'data'")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: b'data' must have shape (N, 3072) (32x32 RGB, channel-major "
            f"rows), found {data.shape}"
        )
    labels = _check_labels(_get(batch, "labels", path), len(data), path)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _load_batches(folder, names, limit):
    images, labels, count = [], [], 0
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise DataError(
                f"{path}: missing (a {BATCHES_FOLDER} folder holds "
                f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH})"
            )
        x, y = _load_batch(path)
        images.append(x)
        labels.append(y)
        count += len(x)
        if limit is not None and count >= limit:
            break
    return _concatenate(images, labels, limit)


def _concatenate(images, labels, limit):
    x, y = np.concatenate(images), np.concatenate(labels)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y


# --------------------------------------------------------------------------
# Class-folder image tree
# --------------------------------------------------------------------------


def _list_tree_split(split_dir, follow_symlinks):
    """Files of `split/<class>/*` in the canonical order, with their labels.

    The canonical order interleaves the classes: the first file (sorted by
    path) of every class in label order, then the second of every class, and
    so on. Any prefix is therefore close to class-balanced, which keeps
    `limit_*` quick runs meaningful.
    """
    if not follow_symlinks and os.path.islink(split_dir):
        raise DataError(
            f"{split_dir}: a symbolic link, and follow_symlinks=False; pass "
            "follow_symlinks=True to read what it links to"
        )
    if not os.path.isdir(split_dir):
        raise DataError(
            f"{split_dir}: missing (an image tree holds train/<class>/ and test/<class>/ folders)"
        )
    folders = sorted(
        d
        for d in os.listdir(split_dir)
        if not d.startswith(".")
        and os.path.isdir(os.path.join(split_dir, d))
        and (follow_symlinks or not os.path.islink(os.path.join(split_dir, d)))
    )
    unknown = [d for d in folders if d not in CIFAR10_CLASSES]
    if unknown:
        raise DataError(
            f"{split_dir}: unknown class folder(s) {', '.join(unknown)}; class "
            f"folders must be named {', '.join(CIFAR10_CLASSES)} (CIFAR-10's label order)"
        )
    if not folders:
        raise DataError(
            f"{split_dir}: no class folders (expected some of {', '.join(CIFAR10_CLASSES)})"
        )
    per_class = []
    for label, name in enumerate(CIFAR10_CLASSES):
        if name not in folders:
            continue
        files = list_images(os.path.join(split_dir, name), follow_symlinks=follow_symlinks)
        if not files:
            raise DataError(f"{os.path.join(split_dir, name)}: no image files")
        per_class.append((label, files))
    paths, labels = [], []
    longest = max(len(files) for _, files in per_class)
    for i in range(longest):
        for label, files in per_class:
            if i < len(files):
                paths.append(files[i])
                labels.append(label)
    return paths, np.asarray(labels, np.int64)


def _tree_key(split_dir, paths):
    """A digest of the split's file names, sizes and modification times."""
    digest = hashlib.sha256(f"v{_CACHE_VERSION}\n".encode())
    for path in paths:
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:  # a dangling link: decoding names it
            size = mtime = -1
        rel = os.path.relpath(path, split_dir)
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:16]


def _writable_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _cache_folder(tree_dir, cache_dir):
    """Where a tree's decoded arrays live: `cache_dir`, the tree, or ~/.cache."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    inside = os.path.join(tree_dir, CACHE_FOLDER)
    if _writable_dir(inside):
        return inside
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tree_id = hashlib.sha256(os.path.realpath(tree_dir).encode()).hexdigest()[:16]
    return os.path.join(base, "keras_seresnet", tree_id)


def _read_cache(x_path, y_path, count):
    try:
        x = np.load(x_path, allow_pickle=False)
        y = np.load(y_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if x.shape != (count, 32, 32, 3) or x.dtype != np.uint8 or y.shape != (count,):
        return None
    return x, y.astype(np.int64)


def _write_cache(folder, split, key, x, y):
    """Writes the arrays, each complete or not at all, and removes the split's stale ones.

    The cache only saves time: a folder that cannot be written (read-only, or
    full) gives a note on stderr, and the tree is decoded again next time.
    """
    x_path, y_path = (os.path.join(folder, f"{split}-{key}-{part}.npy") for part in ("x", "y"))
    try:
        if not _writable_dir(folder):
            raise PermissionError(f"{folder} is not writable")
        # y first: a cache counts as present once its x file exists.
        for path, array in ((y_path, y), (x_path, x)):
            with atomic_path(path) as tmp:
                np.save(tmp, array, allow_pickle=False)
    except OSError as e:
        print(
            f"Note: cannot write the image cache in {folder} ({e}); the tree will be "
            "decoded again next time (pass cache_dir= to choose a folder)",
            file=sys.stderr,
        )
        return
    for name in os.listdir(folder):
        if name.startswith(f"{split}-") and name.endswith(".npy") and key not in name:
            os.remove(os.path.join(folder, name))


def _fault_point(point):
    """The test hook `run_folder.fault_point`, imported only when it is on: its module imports Keras."""
    if os.environ.get("KERAS_SERESNET_FAULT"):  # run_folder.FAULT_ENV
        from keras_seresnet.training.run_folder import fault_point

        fault_point(point)


def _decode(paths, split_dir):
    """Decodes every file; raises one `DataError` listing every broken one."""
    chunks, errors = [], []
    show = len(paths) > _DECODE_CHUNK
    overwrite = sys.stderr.isatty()  # one updating line on a terminal, else one per chunk
    start_of_line = "\r" if overwrite else ""
    for start in range(0, len(paths), _DECODE_CHUNK):
        _fault_point("decode")
        images, _, chunk_errors = read_images(paths[start : start + _DECODE_CHUNK])
        chunks.append(images)
        errors.extend(chunk_errors)
        if show:
            done = min(start + _DECODE_CHUNK, len(paths))
            print(
                f"{start_of_line}Decoding {split_dir}: {done:,}/{len(paths):,} images",
                end="" if overwrite and done < len(paths) else "\n",
                file=sys.stderr,
                flush=True,
            )
    if errors:
        listed = "\n".join(f"  {e}" for e in errors[:_MAX_LISTED_ERRORS])
        more = len(errors) - _MAX_LISTED_ERRORS
        tail = f"\n  ... and {more} more (all in the error's `.errors`)" if more > 0 else ""
        raise DataError(
            f"{split_dir}: {len(errors)} of {len(paths)} image(s) cannot be read:\n{listed}{tail}",
            errors,
        )
    return np.concatenate(chunks)


def _load_tree_split(tree_dir, split, limit, cache_dir, follow_symlinks):
    split_dir = os.path.join(tree_dir, split)
    paths, labels = _list_tree_split(split_dir, follow_symlinks)
    if limit is not None and limit < len(paths):
        # A quick run decodes only what it uses and leaves the cache alone.
        return _decode(paths[:limit], split_dir), labels[:limit]
    folder = _cache_folder(tree_dir, cache_dir)
    key = _tree_key(split_dir, paths)
    x_path, y_path = (os.path.join(folder, f"{split}-{key}-{part}.npy") for part in ("x", "y"))
    cached = _read_cache(x_path, y_path, len(paths)) if os.path.exists(x_path) else None
    if cached is not None and np.array_equal(cached[1], labels):
        return cached
    images = _decode(paths, split_dir)
    _write_cache(folder, split, key, images, labels)
    return images, labels


# --------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------


_LOCAL_COPY_HELP = (
    "data_dir (scripts: --data-dir) accepts a `cifar-10-batches-py` folder "
    "(data_batch_1..5 and test_batch) or the folder that contains one, or an image "
    "tree train/<class>/*.jpg and test/<class>/*.jpg whose class folders are named "
    f"{', '.join(CIFAR10_CLASSES)} (any image format). CIFAR-10 can be downloaded "
    "from https://www.cs.toronto.edu/~kriz/cifar.html: its 'CIFAR-10 python version' "
    "unpacks to cifar-10-batches-py/."
)


def _check_limit(name, value):
    if value is not None and (not is_integer(value) or value < 1):
        raise ValueError(
            f"Argument `{name}` must be a positive integer or None. Received: {name}={value!r}"
        )


def _warn_if_short(name, limit, found, split, source):
    """Warns when `limit` asked for more images than the split holds (`found`)."""
    if limit is not None and limit > found:
        warnings.warn(
            f"{name}={limit} is more than the {found} {split} images in {source}; "
            f"using all {found}.",
            UserWarning,
            stacklevel=3,
        )


def _download_cifar10():
    import keras  # Deferred: the file loaders need no TensorFlow.

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as e:  # keras re-raises network failures as bare Exception.
        raise DataError(
            "Could not download CIFAR-10 with keras.datasets.cifar10.load_data() "
            f"({type(e).__name__}: {e}). Offline? {_LOCAL_COPY_HELP}"
        ) from None
    source = "keras.datasets.cifar10"
    return (
        (x_train, _check_labels(y_train.reshape(-1), len(x_train), source)),
        (x_test, _check_labels(y_test.reshape(-1), len(x_test), source)),
    )


def _detect_layout(data_dir):
    """Returns ("batches", folder) or ("tree", folder) for a data folder."""
    if not os.path.exists(data_dir):
        raise DataError(f"{data_dir}: no such folder. {_LOCAL_COPY_HELP}")
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a folder. {_LOCAL_COPY_HELP}")
    entries = set(os.listdir(data_dir))
    if "data_batch_1" in entries or TEST_BATCH in entries:
        return "batches", data_dir
    if BATCHES_FOLDER in entries:
        return "batches", os.path.join(data_dir, BATCHES_FOLDER)
    if {"train", "test"} & entries:
        return "tree", data_dir
    found = ", ".join(sorted(entries)[:10]) or "nothing"
    raise DataError(f"{data_dir}: not a CIFAR-10 folder (found: {found}). {_LOCAL_COPY_HELP}")


def load_cifar10(
    data_dir=None, *, limit_train=None, limit_test=None, cache_dir=None, follow_symlinks=True
):
    """Loads CIFAR-10 from the source `data_dir` names.

    Sources:
        - `None`: `keras.datasets.cifar10.load_data()` (downloads once into
          ~/.keras/datasets). Offline, a `DataError` says how to pass a local
          copy instead.
        - A `cifar-10-batches-py` folder (`data_batch_1..5`, `test_batch`),
          or a folder containing one. The pickles are read with
          `safe_pickle_load`, which cannot run code.
        - An image tree `train/<class>/*` and `test/<class>/*` (any format
          `images.read_image` reads; class folder names from
          `CIFAR10_CLASSES`, whose order gives the labels; a class may be
          absent). Images are decoded once and cached as `.npy` files in
          `<data_dir>/.keras_seresnet_cache/` when that is writable, else in
          `~/.cache/keras_seresnet/` (or `cache_dir`). The cache key covers
          every file's name, size and modification time, so a changed tree
          is decoded again. The order is canonical and interleaves classes:
          the first file (sorted by name) of each class in label order, then
          the second of each, and so on. Symbolic links inside the tree
          (to files or folders, anywhere) are followed unless
          `follow_symlinks=False`; a link to nothing is an unreadable image.

    Args:
        data_dir: None, or a folder as above (str or `os.PathLike`).
        limit_train: keep only the first N training images (of the source's
            order: the batches' order, or the tree's interleaved order, so a
            prefix is close to class-balanced). None: all. An N above the
            number of training images keeps all of them, with a warning.
        limit_test: the same for the test images.
        cache_dir: where to cache a decoded image tree; None chooses as above.
            With a limit below the split's size the tree's first N files are
            decoded directly and no cache is written.
        follow_symlinks: for an image tree, follow symbolic links inside it
            (see `images.list_images`). Default True.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 [N, 32, 32, 3] RGB in
        0..255 and int64 [N] labels in 0..9.

    Raises:
        DataError: the source is missing, unreadable or malformed (missing
            files, wrong shapes, labels outside 0..9, unreadable images,
            unknown class folders, empty folders), or the download failed.
        ValueError: a limit is not a positive integer or None.
        TypeError: `data_dir` is neither None nor a str or `os.PathLike`.

    Warns:
        UserWarning: `limit_train` (or `limit_test`) is more than the split's
            images; the message names the limit, the count found and the
            source, and all the images are used.

    Example (with CIFAR-10's python batches in `cifar10/cifar-10-batches-py`):

        (x_train, y_train), (x_test, y_test) = load_cifar10("cifar10/", limit_train=5000)
        x_train.shape, x_train.dtype, y_train.dtype  # ((5000, 32, 32, 3), uint8, int64)
    """
    _check_limit("limit_train", limit_train)
    _check_limit("limit_test", limit_test)
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(
            "Argument `data_dir` must be None or a folder path (str or "
            f"os.PathLike). Received: data_dir of type {type(data_dir).__name__}"
        )
    if data_dir is None:
        source = "keras.datasets.cifar10"
        (x_train, y_train), (x_test, y_test) = _download_cifar10()
        train = x_train[:limit_train], y_train[:limit_train]
        test = x_test[:limit_test], y_test[:limit_test]
    else:
        layout, source = _detect_layout(os.fspath(data_dir))
        if layout == "batches":
            train = _load_batches(source, TRAIN_BATCHES, limit_train)
            test = _load_batches(source, (TEST_BATCH,), limit_test)
        else:
            train = _load_tree_split(source, "train", limit_train, cache_dir, follow_symlinks)
            test = _load_tree_split(source, "test", limit_test, cache_dir, follow_symlinks)
    # Every source keeps min(limit, count) images, so fewer than asked means all of them.
    _warn_if_short("limit_train", limit_train, len(train[0]), "training", source)
    _warn_if_short("limit_test", limit_test, len(test[0]), "test", source)
    return train, test


def load_unlabelled_pickle(path):
    """Loads a course's unlabelled test set: a pickled dict with b'data'.

    Read with `safe_pickle_load`, so the file cannot run code.

    Args:
        path: the pickle file; it holds a dict whose b'data' (or 'data') is an
            array [N, 32, 32, 3] of RGB pixels (uint8, or integers in 0..255).

    Returns:
        uint8 array [N, 32, 32, 3].

    Raises:
        DataError: missing or unreadable file, an image file (by its
            extension), refused content, no b'data', or data of the wrong
            shape or value range.

    Example:

    >>> import pickle
    >>> with open("unlabelled.pkl", "wb") as f:
    ...     pickle.dump({b"data": np.zeros((2, 32, 32, 3), np.uint8)}, f)
    >>> load_unlabelled_pickle("unlabelled.pkl").shape
    (2, 32, 32, 3)
    """
    path = os.fspath(path)
    if path.lower().endswith(IMAGE_EXTENSIONS):
        raise DataError(
            f"{path}: an image file, not a pickle of images; predict image "
            "files with `predict_dir` (it takes one file or a folder)"
        )
    data = _as_uint8(_get(safe_pickle_load(path), "data", path), path, "b'data'")
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3):
        raise DataError(f"{path}: b'data' must have shape (N, 32, 32, 3), found {data.shape}")
    return np.ascontiguousarray(data)
