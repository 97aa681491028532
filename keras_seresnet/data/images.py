"""Reading image files safely into 32x32 RGB arrays.

Shared by the class-folder data loader and `predict_dir()`. Every failure
(missing, empty, truncated, not an image, too many pixels) becomes an
`ImageError` that names the file, so callers can skip or report it.
"""

import concurrent.futures
import os
import warnings

import numpy as np
from PIL import Image, ImageFile

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# Refuse, before decoding, any image that declares more pixels than this:
# 40 megapixels (a 7,300 x 5,500 photo) is larger than any camera image a
# user is likely to classify, and decodes to at most 120 MB of RGB. A
# "decompression bomb" (a tiny PNG declaring 100,000 x 100,000 pixels) is
# refused from its header alone.
MAX_PIXELS = 40_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, not grey


class ImageError(ValueError):
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

    Raises:
        ImageError: the file is missing, empty, not a readable image,
            truncated, or larger than `max_pixels`.
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
        raise ImageError(path, f"refused as a decompression bomb ({e})") from None
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory") from None
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not a readable image (unknown format or corrupt)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(path, f"cannot decode ({e})") from None


def _to_square_rgb(image, size):
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
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


def list_images(directory, *, recursive=True):
    """Lists the image files under a folder, sorted, by extension.

    Files count as images by their extension (`IMAGE_EXTENSIONS`, any case);
    everything else is ignored. Symbolic links are followed only when their
    target lies inside `directory`; a link leading outside it (file or
    folder) is skipped with a warning, so a folder cannot make the reader
    open files elsewhere on the machine. Folder loops are visited once.

    Args:
        directory: the folder to read.
        recursive: also list subfolders. Default True.

    Returns:
        Sorted list of paths (str), each under `directory`.

    Raises:
        FileNotFoundError: `directory` does not exist.
        NotADirectoryError: `directory` is not a folder.
    """
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"No such folder: {directory}")
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"Not a folder: {directory}")
    root = os.path.realpath(directory)
    found, seen_dirs = [], {root}
    for current, dirs, files in os.walk(directory, followlinks=True):
        kept = []
        for d in sorted(dirs):
            real = os.path.realpath(os.path.join(current, d))
            if not _inside(real, root):
                _warn_outside(os.path.join(current, d))
            elif recursive and real not in seen_dirs:
                seen_dirs.add(real)
                kept.append(d)
        dirs[:] = kept
        for name in files:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(current, name)
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                _warn_outside(path)
                continue
            found.append(path)
    return sorted(found)


def _inside(real_path, root):
    return real_path == root or real_path.startswith(root + os.sep)


def _warn_outside(path):
    warnings.warn(f"Skipping {path}: symbolic link to outside the folder", stacklevel=3)


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
