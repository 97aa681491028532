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
...         f.write("{}")
"""

import contextlib
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
        Whatever the block raises; `path` is then unchanged.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(path)
    stem, suffix = os.path.splitext(name)
    scratch = tempfile.mkdtemp(dir=folder, prefix=f".tmp-{stem}-")
    tmp = os.path.join(scratch, stem + suffix)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"The writer created nothing at {tmp} for {path}.")
        if directory and os.path.isdir(path):
            old = os.path.join(scratch, ".previous")
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def write_json(path, value):
    """Writes `value` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
