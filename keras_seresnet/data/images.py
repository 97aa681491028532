"""Reading image files safely into 32x32 RGB arrays.

Shared by the class-folder data loader and `predict_dir()`. Every failure
(missing, empty, truncated, not an image, too many pixels, a dangling
symbolic link) becomes an `ImageError` that names the file, so callers can
skip or report it. Importing this module changes no Pillow setting: the
pixel limit is checked by `read_image` itself, from the image's header,
before anything is decoded.
"""

import concurrent.futures
import os
import warnings

import numpy as np
from PIL import Image

from keras_seresnet.errors import SeresnetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# Refuse, before decoding, any image that declares more pixels than this:
# 40 megapixels (a 7,300 x 5,500 photo) is larger than any camera image a
# user is likely to classify, and decodes to at most 120 MB of RGB. A
# "decompression bomb" (a tiny PNG declaring 100,000 x 100,000 pixels) is
# refused from its header alone.
MAX_PIXELS = 40_000_000


class ImageError(SeresnetError, ValueError):
    """An image file that cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_image(path, *, size=32, max_pixels=MAX_PIXELS):
    """Reads one image file as a `size` x `size` RGB array.

    Any mode becomes RGB: greyscale is repeated over channels, a palette is
    expanded, and transparency is composited over white. Animated files give
    their first frame. An image that is not `size` x `size` is centre-cropped
    to its largest square and resized to `size` with Pillow's antialiased
    bilinear filter (a square crop keeps the object's proportions, as CIFAR's
    own images were made); a `size` x `size` image is used as it is.

    Args:
        path: file path (str or `os.PathLike`).
        size: output side in pixels. Default 32.
        max_pixels: refuse images whose header declares more pixels than this,
            before decoding them. Default `MAX_PIXELS` (40 megapixels).

    Returns:
        uint8 array [size, size, 3], values in [0, 255].

    A truncated file is an error (unless the process itself has set
    Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES`, which this function leaves
    as it finds it). Pillow's own limit (`PIL.Image.MAX_IMAGE_PIXELS`) also
    still applies when it is lower than `max_pixels`.

    Raises:
        ImageError: the file is missing (or a symbolic link to nothing),
            empty, not a readable image, truncated, or larger than
            `max_pixels`.
    """
    try:
        if os.path.getsize(path) == 0:
            raise ImageError(path, "empty file")
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    path,
                    f"{width}x{height} = {width * height:,} pixels exceeds the "
                    f"limit of {max_pixels:,} (refused before decoding)",
                )
            if image.format == "JPEG" and (width, height) != (size, size):
                # Let libjpeg decode at a reduced scale: much less work for a
                # large photo, and still at least `size` on each side.
                image.draft("RGB", (size, size))
            image.load()
            return _to_square_rgb(image, size)
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"refused before decoding as a decompression bomb ({e})") from None
    except FileNotFoundError:
        if os.path.islink(path):
            target = os.readlink(path)
            raise ImageError(
                path, f"broken symbolic link (its target {target} does not exist)"
            ) from None
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory") from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not a readable image (unknown format or corrupt)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(path, f"cannot decode ({e})") from None


def _to_square_rgb(image, size):
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    image = image.convert("RGB")
    width, height = image.size
    if (width, height) != (size, size):
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def list_images(directory, *, recursive=True, follow_symlinks=True):
    """Lists the image files under a folder, sorted, by extension.

    Files count as images by their extension (`IMAGE_EXTENSIONS`, any case);
    everything else is ignored, and so are hidden names, those starting with
    a dot: the `._*` files macOS writes beside every image it copies to
    another disk, `.ipynb_checkpoints` folders. Symbolic links, to files and to folders, are
    followed by default wherever they lead (a symlink farm, a DVC or
    git-annex checkout), so a folder of links lists like a folder of copies.
    A link to a folder that contains it (a cycle) is skipped with a warning
    naming it, so the listing always ends. A link whose target does not
    exist is listed like a file: reading it raises an `ImageError` naming
    it. A subfolder that cannot be read is skipped with a warning.

    Args:
        directory: the folder to read (str or `os.PathLike`).
        recursive: also list subfolders. Default True.
        follow_symlinks: follow symbolic links below `directory`. Default
            True. With False, links (to files or folders) are left out, and
            one warning says how many were.

    Returns:
        Sorted list of paths (str), each under `directory` (the link's own
        path for a linked file).

    Raises:
        FileNotFoundError: `directory` does not exist.
        NotADirectoryError: `directory` is not a folder.
    """
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"No such folder: {directory}")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"Not a folder: {directory}")
    found, links_left_out = [], 0
    # Each pending folder carries the identities of the folders above it: a
    # link back to one of them is a cycle. Other folders reached twice (two
    # links to one folder) are listed twice, as copies would be.
    pending = [(directory, (_identity(directory),))]
    while pending:
        folder, ancestors = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as e:
            warnings.warn(f"Skipping folder {folder}: cannot list it ({e.strerror})", stacklevel=2)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if not follow_symlinks and entry.is_symlink():
                links_left_out += 1
            elif entry.is_dir():
                if not recursive:
                    continue
                identity = _identity(entry.path)
                if identity in ancestors:
                    warnings.warn(
                        f"Skipping {entry.path}: symbolic link to a folder that contains it "
                        f"({os.path.realpath(entry.path)}), which would loop forever",
                        stacklevel=2,
                    )
                else:
                    pending.append((entry.path, ancestors + (identity,)))
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(entry.path)
    if links_left_out:
        warnings.warn(
            f"Left out {links_left_out} symbolic link(s) under {directory} (follow_symlinks=False)",
            stacklevel=2,
        )
    return sorted(found)


def _identity(folder):
    stat = os.stat(folder)
    return stat.st_dev, stat.st_ino


def read_images(paths, *, size=32, max_pixels=MAX_PIXELS, workers=None):
    """Reads many image files in parallel threads (Pillow decodes without the GIL).

    Args:
        paths: sequence of file paths.
        size: output side in pixels. Default 32.
        max_pixels: per-image pixel limit, see `read_image`.
        workers: threads; default `min(8, os.cpu_count())`.

    Returns:
        `(images, kept, errors)`: uint8 array [K, size, size, 3] of the
        readable files in input order, the list of their K paths, and the
        list of `ImageError`s for the others, in input order.
    """
    workers = workers or min(8, os.cpu_count() or 1)

    def attempt(path):
        try:
            return read_image(path, size=size, max_pixels=max_pixels)
        except ImageError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(attempt, paths))
    kept = [p for p, r in zip(paths, results) if not isinstance(r, ImageError)]
    errors = [r for r in results if isinstance(r, ImageError)]
    arrays = [r for r in results if not isinstance(r, ImageError)]
    images = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return images, kept, errors
