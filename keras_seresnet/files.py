"""Atomic file writes: a file the package writes is complete or absent, never half-written.

Every writer of the package (CSV, JSON, plots, `.keras` files, exports,
caches) goes through `atomic_path`: it writes to a temporary name in the same
folder, and only when the writing code returns does `os.replace` move the
result into place (atomic on POSIX and Windows for a file; for a folder the
previous one is moved aside first). On an exception, or a kill before the
move, the target keeps its previous contents and the temporary is removed (a
kill can leave a `.tmp-*` name behind, never a damaged target).

Example:

>>> with atomic_path("results.json") as tmp:
...     with open(tmp, "w") as f:
...         print("{}", file=f)
>>> with open("results.json") as f:
...     json.load(f)
{}
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path, *, directory=False):
    """Yields a temporary path beside `path`; moves it onto `path` when the block succeeds.

    Args:
        path: the file (or, with `directory=True`, folder) to create or replace.
        directory: the block creates a folder at the temporary path, not a file
            (a SavedModel export). An existing folder at `path` is replaced.

    Yields:
        A path in the same folder as `path` whose name keeps `path`'s suffix
        (`.keras`, `.png`), which some writers check. Nothing exists there yet.

    Raises:
        IsADirectoryError: `path` is a folder and `directory` is false.
        NotADirectoryError: a file stands where a folder above `path` should be.
        OSError: the folder of `path` cannot be created or written, or the
            move fails; the error names `path` (or that folder), never the
            temporary.
        Whatever the block raises; `path` is then unchanged.
    """
    path = os.fspath(path)
    if not directory and os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "Is a folder, where a file is to be written", path)
    folder = os.path.dirname(os.path.abspath(path))
    stem, suffix = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError as e:  # a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", e.filename) from e
    with _naming(path):
        scratch = tempfile.mkdtemp(dir=folder, prefix=f".tmp-{stem}-")
    tmp = os.path.join(scratch, stem + suffix)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"The writer created nothing at {tmp} for {path}.")
        with _naming(path):
            if directory and os.path.isdir(path):
                os.replace(path, os.path.join(scratch, ".previous"))
            os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _naming(path):
    """Re-raises an OSError of the block as the same error about `path`."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, path) from e


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
