"""The SavedModel's image decoding (TensorFlow ops) against `read_image` (Pillow)."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_seresnet.data.images import read_image
from keras_seresnet.inference.image_bytes import decode_image_bytes
from tests.test_images import png_bomb


def photo(height, width, seed=0):
    """Smooth colour gradients with noise: JPEG-friendly, and every resize filter matters."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([128 + 100 * np.sin(x / 17 + c) * np.cos(y / 23 - c) for c in range(3)], -1)
    noise = np.random.default_rng(seed).normal(0, 20, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def decode(data, **kwargs):
    """`decode_image_bytes` as a graph, as a SavedModel runs it."""
    return tf.function(lambda images: decode_image_bytes(images, **kwargs))(
        tf.constant(data, tf.string)
    ).numpy()


def encode(image, format, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format, **kwargs)
    return buffer.getvalue()


def with_alpha(height, width):
    alpha = np.random.default_rng(1).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return Image.fromarray(np.concatenate([photo(height, width), alpha], -1), "RGBA")


def palette_with_transparency():
    image = Image.fromarray(photo(32, 32)).convert("P", palette=Image.Palette.ADAPTIVE)
    return encode(image, "PNG", transparency=3)


def animation():
    first, second = (Image.fromarray(photo(32, 32, seed)).convert("P") for seed in (0, 1))
    return encode(first, "GIF", save_all=True, append_images=[second])


# name -> (encoded file, whether TensorFlow's pixels equal Pillow's exactly).
# Exact where nothing is resized; where a resize or a scaled JPEG decode
# happens the two libraries' integer rounding may differ by one level.
CASES = {
    "rgb 32x32 png": (encode(Image.fromarray(photo(32, 32)), "PNG"), True),
    "grey 32x32 png": (encode(Image.fromarray(photo(32, 32)[..., 0]), "PNG"), True),
    "grey 50x40 png": (encode(Image.fromarray(photo(40, 50)[..., 0]), "PNG"), False),
    "rgba png": (encode(with_alpha(37, 45), "PNG"), False),
    "grey+alpha png": (encode(with_alpha(32, 32).convert("LA"), "PNG"), False),
    "palette png with transparency": (palette_with_transparency(), True),
    "rgb 32x32 jpeg": (encode(Image.fromarray(photo(32, 32)), "JPEG", quality=90), True),
    "rgb 500x333 jpeg": (encode(Image.fromarray(photo(333, 500)), "JPEG", quality=90), False),
    "rgb 1600x1200 jpeg (1/8 scale)": (encode(Image.fromarray(photo(1200, 1600)), "JPEG"), False),
    "progressive jpeg": (encode(Image.fromarray(photo(200, 300)), "JPEG", progressive=True), False),
    "grey jpeg": (encode(Image.fromarray(photo(64, 64)[..., 0]), "JPEG"), False),
    "cmyk 32x32 jpeg": (encode(Image.fromarray(photo(32, 32)).convert("CMYK"), "JPEG"), True),
    "cmyk 300x300 jpeg": (encode(Image.fromarray(photo(300, 300)).convert("CMYK"), "JPEG"), False),
    "bmp": (encode(Image.fromarray(photo(48, 64)), "BMP"), False),
    "animated gif": (animation(), True),
    "webp": (encode(Image.fromarray(photo(32, 32)), "WEBP", lossless=True), True),
}


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    """`decode_image_bytes` of every case in one batch, and `read_image` of each file."""
    folder = tmp_path_factory.mktemp("encoded")
    pillow = {}
    for i, (name, (data, _)) in enumerate(CASES.items()):
        path = folder / f"{i}.img"
        path.write_bytes(data)
        pillow[name] = read_image(path)
    batch = decode([data for data, _ in CASES.values()])
    return dict(zip(CASES, batch)), pillow


@pytest.mark.parametrize("name", CASES)
def test_decoding_matches_read_image(decoded, name):
    graph, pillow = decoded
    assert graph[name].shape == (32, 32, 3) and graph[name].dtype == np.float32
    assert np.array_equal(graph[name], np.round(graph[name]))  # whole pixel values
    difference = np.abs(graph[name] - pillow[name].astype(np.float32))
    if CASES[name][1]:
        assert difference.max() == 0, name
    else:
        assert difference.max() <= 1 and difference.mean() < 0.5, name


def test_other_sizes():
    data = encode(Image.fromarray(photo(100, 80)), "PNG")
    assert decode([data, data], size=64).shape == (2, 64, 64, 3)
    assert decode([]).shape == (0, 32, 32, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "Input is empty"),
        (b"not an image", "Unknown image file format"),
        (CASES["rgba png"][0][:100], "Invalid PNG"),
        (CASES["rgb 500x333 jpeg"][0][:1000], "Invalid JPEG data"),
    ],
)
def test_corrupt_files_are_clear_errors(data, message):
    good = CASES["rgb 32x32 png"][0]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decode([good, data])


def test_images_declaring_too_many_pixels_are_refused_before_decoding(tmp_path):
    png = png_bomb(tmp_path / "bomb.png").read_bytes()  # 100,000 x 100,000
    gif = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    gif[6:10] = (60_000).to_bytes(2, "little") * 2
    for bomb, size in ((png, "100000x100000"), (bytes(gif), "60000x60000")):
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=f"refused before decoding: its header declares {size} pixels, "
            "more than the limit of 40,000,000",
        ):
            decode([bomb])
    small = encode(Image.fromarray(photo(40, 50)), "PNG")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="50x40 pixels, more than the limit of 1,999"
    ):
        decode([small], max_pixels=1999)
    assert decode([small], max_pixels=2000).shape == (1, 32, 32, 3)
